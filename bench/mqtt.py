"""``bench mqtt``: the hub's MQTT mirror (hub/mqtt.py) against a real mosquitto.

* ``publish``  N endpoint state updates (an Upsert and a Programmed per endpoint)
               through a :class:`hub.bus.Bus` into :class:`hub.mqtt.MqttMirror`,
               until a subscriber has every retained state with
               ``"programmed":true``; baseline: bare aiomqtt QoS 1 retained
               publishes of the same final payload bytes, same concurrency.
* ``events``   lifecycle events per second, bus -> mirror -> broker -> an
               aiomqtt subscriber; the mirror publishes events at QoS 1 (fixed),
               so bare aiomqtt at QoS 0 and QoS 1 are the comparison.
* ``late``     50000 retained states published by the mirror, then a new
               subscriber: time until it has all of them.

Every measurement gets its own mosquitto (loopback, no persistence). Subscribers
run in a child process (multiprocessing ``spawn``), like a real consumer, and
report ``time.monotonic()`` (system-wide on Linux) of the message that completes
their count. Every broker and child is stopped in a ``finally``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import statistics
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import aiomqtt
from prometheus_client import REGISTRY

from bench.common import emit, environment, log, make_endpoints, r, rate, short_tmpdir
from core.model import Endpoint, Programmed, Snapshot, Source, Upsert
from core.names import lsp_name
from hub.bus import Bus
from hub.config import MqttSection
from hub.mqtt import MqttMirror
from hub.mqttwire import PREFIX, props
from testkit.mosquitto import Mosquitto

SOURCE = Source("docker", "bench")
HUB = "bench"
BASE = f"{PREFIX}/{HUB}"
STATES = f"{BASE}/endpoints/#"
EVENTS = f"{BASE}/events"
TARGET_RATIO = 1.25
PROGRAMMED = b'"programmed":true'
EVENT_EXPIRY = MqttSection().event_expiry
# aiomqtt logs "There are N pending publish calls." at WARNING for every publish beyond 10 in flight
QUIET = logging.getLogger("bench.mqtt.paho")
QUIET.setLevel(logging.ERROR)
# the mirror's own paho logger (hub/mqtt.py) warns the same way; hubd leaves it at WARNING (see README)
MIRROR_PAHO = "ovn_hub.mqtt.paho"


# ------------------------------------------------------------------ subscriber (child process)
def _subscriber(port: int, topic: str, qos: int, expect: int, mode: str, conn: Connection, timeout: float) -> None:
    asyncio.run(_subscribe(port, topic, qos, expect, mode, conn, timeout))


async def _subscribe(port: int, topic: str, qos: int, expect: int, mode: str, conn: Connection, timeout: float) -> None:
    """mode ``count``: messages; ``programmed``: distinct topics whose payload has
    ``"programmed":true``; ``states``: distinct topics with a non-empty payload;
    ``retained``: the same, for messages flagged retained (sent at subscribe time)."""
    seen: set[str] = set()
    n = 0
    t_last: float | None = None
    t_first: float | None = None
    t_connect = time.monotonic()
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5, identifier=f"bench-sub-{mode}",
                              keepalive=60, timeout=30, logger=QUIET) as client:
        t_subscribe = time.monotonic()
        await client.subscribe(topic, qos=qos)
        conn.send({"t_connect": t_connect, "t_subscribe": t_subscribe})
        try:
            async with asyncio.timeout(timeout):
                async for msg in client.messages:
                    if t_first is None:
                        t_first = time.monotonic()
                    payload = msg.payload if isinstance(msg.payload, bytes) else b""
                    if mode == "count":
                        n += 1
                    elif mode == "programmed":
                        if PROGRAMMED in payload:
                            seen.add(msg.topic.value)
                            n = len(seen)
                    elif payload and (mode == "states" or msg.retain):
                        seen.add(msg.topic.value)
                        n = len(seen)
                    if n >= expect:
                        t_last = time.monotonic()
                        break
        except TimeoutError:
            pass
    conn.send({"received": n, "t_first": t_first, "t_last": t_last})


class Subscriber:
    """A subscriber in a child process; ``start`` returns once its SUBACK came back."""

    def __init__(self, port: int, topic: str, qos: int, expect: int, mode: str, timeout: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe(duplex=False)
        self.proc: BaseProcess = ctx.Process(
            target=_subscriber, args=(port, topic, qos, expect, mode, child, timeout), daemon=True
        )
        self.timeout = timeout
        self.proc.start()
        child.close()
        if not self.conn.poll(30):
            raise RuntimeError("subscriber did not subscribe within 30 s")
        self.started: dict[str, float] = self.conn.recv()

    def result(self) -> dict[str, Any]:
        """Blocks (run it in a thread) until the child reports or its timeout passed."""
        if not self.conn.poll(self.timeout + 15):
            raise RuntimeError("subscriber did not report")
        out: dict[str, Any] = self.conn.recv()
        return out

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()


@contextlib.contextmanager
def subscriber(port: int, topic: str, qos: int, expect: int, mode: str, timeout: float) -> Iterator[Subscriber]:
    sub = Subscriber(port, topic, qos, expect, mode, timeout)
    try:
        yield sub
    finally:
        sub.stop()


@contextlib.contextmanager
def broker(d: Path, max_queued: int) -> Iterator[Mosquitto]:
    m = Mosquitto(d)
    # per-client queue of QoS 1 messages beyond those in flight (mosquitto default 1000; 0 = no limit)
    m.conf.write_text(m.conf.read_text() + f"max_queued_messages {max_queued}\n")
    try:
        m.start()
        yield m
    finally:
        m.close()


def _published(what: str) -> float:
    return REGISTRY.get_sample_value("ovn_hub_mqtt_published_total", {"what": what}) or 0.0


# ------------------------------------------------------------------ hub side
async def _settle(limit: float = 3.0) -> None:
    """Until the mirror's publish counters stop moving for 0.1 s (bounded): they count PUBACKs."""
    end = time.monotonic() + limit
    last = (-1.0, -1.0)
    while time.monotonic() < end:
        now = (_published("state"), _published("event"))
        if now == last:
            return
        last = now
        await asyncio.sleep(0.1)


class Mirror:
    """An MqttMirror on a Bus, its run() task started and connected."""

    def __init__(self, port: int, queue_size: int, inflight: int) -> None:
        self.bus = Bus()
        self.cfg = MqttSection(enabled=True, url=f"mqtt://127.0.0.1:{port}", queue_size=queue_size,
                               max_inflight=inflight)
        self.mirror = MqttMirror(HUB, self.cfg, self.bus)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Mirror:
        self.task = asyncio.create_task(self.mirror.run(), name="bench-mirror")
        async with asyncio.timeout(15):
            while not self.mirror.connected:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # its "online" status publish
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


async def hub_publish(port: int, eps: list[Endpoint], sub: Subscriber, inflight: int) -> dict[str, Any]:
    """Upsert + Programmed per endpoint on the bus; until the subscriber has every programmed state."""
    states0, events0 = _published("state"), _published("event")
    async with Mirror(port, 10000, inflight) as m:
        t0 = time.monotonic()
        for ep in eps:
            await m.bus.publish(Upsert(obj=ep))
            await m.bus.publish(Programmed(source=SOURCE, kind="endpoint", key=ep.key, row=lsp_name(ep)))
        fed = time.monotonic() - t0
        res = await asyncio.to_thread(sub.result)
        await _settle()  # clock stopped: let the last PUBACKs reach the counters
        mi = m.mirror
        payloads = [(t, mi.state_payload(t)) for t in mi.topics]
        out = {
            "seconds": None if res["t_last"] is None else res["t_last"] - t0,
            "received": res["received"],
            "feed_seconds": fed,
            "published_states": int(_published("state") - states0),
            "published_events": int(_published("event") - events0),
            "superseded_states": mi.superseded,
            "dropped_events": mi.dropped_events,
            "payloads": payloads,
        }
    return out


async def bare_publish(port: int, items: list[tuple[str, bytes, bool]], qos: int, inflight: int,
                       sub: Subscriber) -> dict[str, Any]:
    """aiomqtt publishes (topic, payload, retain) with at most ``inflight`` unacknowledged (the mirror's
    sender pattern); retained ones carry the mirror's state properties, the others its event properties."""
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5, identifier="bench-bare",
                              max_inflight_messages=inflight, timeout=15, logger=QUIET) as client:
        props_state, props_event = props(), props(EVENT_EXPIRY)
        sem = asyncio.Semaphore(inflight)
        tasks: set[asyncio.Task[None]] = set()

        async def send(topic: str, payload: bytes, retain: bool) -> None:
            try:
                await client.publish(topic, payload, qos=qos, retain=retain,
                                     properties=props_state if retain else props_event, timeout=30)
            finally:
                sem.release()

        t0 = time.monotonic()
        for topic, payload, retain in items:
            await sem.acquire()
            t = asyncio.create_task(send(topic, payload, retain))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        sent = time.monotonic() - t0
        res = await asyncio.to_thread(sub.result)
    return {"seconds": None if res["t_last"] is None else res["t_last"] - t0, "received": res["received"],
            "send_seconds": sent}


def prefold(mirror: MqttMirror, eps: list[Endpoint]) -> None:
    """Known, already programmed endpoints (so a Programmed event changes no state), nothing pending.
    Synchronous: the sender never sees the intermediate work."""
    for ep in eps:
        mirror.fold(Upsert(obj=ep))
    for rec in mirror.topics.values():
        rec.programmed = True
    mirror.pending.clear()
    mirror.events.clear()


async def hub_events(port: int, eps: list[Endpoint], sub: Subscriber, inflight: int) -> dict[str, Any]:
    events0 = _published("event")
    async with Mirror(port, len(eps) + 10, inflight) as m:
        prefold(m.mirror, eps)
        t0 = time.monotonic()
        for ep in eps:
            await m.bus.publish(Programmed(source=SOURCE, kind="endpoint", key=ep.key, row=lsp_name(ep)))
        res = await asyncio.to_thread(sub.result)
        await _settle()
        return {"seconds": None if res["t_last"] is None else res["t_last"] - t0, "received": res["received"],
                "published_events": int(_published("event") - events0), "dropped_events": m.mirror.dropped_events}


def update_event_payloads(eps: list[Endpoint]) -> list[bytes]:
    """The lifecycle events the mirror makes for hub_publish (observed + programmed per endpoint), none dropped."""
    m = MqttMirror(HUB, MqttSection(queue_size=2 * len(eps) + 10), Bus())
    for ep in eps:
        m.fold(Upsert(obj=ep))
        m.fold(Programmed(source=SOURCE, kind="endpoint", key=ep.key, row=lsp_name(ep)))
    return [b for _, b in m.events]


def event_payloads(eps: list[Endpoint]) -> list[bytes]:
    """The bytes the mirror publishes for hub_events (an offline mirror, same folding)."""
    m = MqttMirror(HUB, MqttSection(queue_size=len(eps) + 10), Bus())
    prefold(m, eps)
    for ep in eps:
        m.fold(Programmed(source=SOURCE, kind="endpoint", key=ep.key, row=lsp_name(ep)))
    return [b for _, b in m.events]


async def hub_late(port: int, eps: list[Endpoint], first: Subscriber, late_args: tuple[int, float],
                   inflight: int) -> dict[str, Any]:
    """A Snapshot of the endpoints through the mirror until ``first`` has every state; then a new subscriber."""
    async with Mirror(port, 10000, inflight) as m:
        t0 = time.monotonic()
        await m.bus.publish(Snapshot(source=SOURCE, objects=tuple(eps)))
        res = await asyncio.to_thread(first.result)
        publish = None if res["t_last"] is None else res["t_last"] - t0
        if res["received"] < len(eps):
            return {"publish_seconds": publish, "published_received": res["received"], "seconds": None}
        port_, timeout = late_args
        late = await asyncio.to_thread(Subscriber, port_, STATES, 1, len(eps), "retained", timeout)  # a new client
        try:
            lr = await asyncio.to_thread(late.result)
        finally:
            late.stop()
        st = late.started
        return {
            "publish_seconds": publish,
            "seconds": None if lr["t_last"] is None else lr["t_last"] - st["t_subscribe"],
            "connect_to_last_seconds": None if lr["t_last"] is None else lr["t_last"] - st["t_connect"],
            "first_message_seconds": None if lr["t_first"] is None else lr["t_first"] - st["t_subscribe"],
            "received": lr["received"],
        }


# ------------------------------------------------------------------ driver
def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [x for x in runs if x.get("seconds") is not None]
    if not ok:
        return {**(runs[-1] if runs else {}), "seconds": None, "samples": [None for _ in runs]}
    ordered = sorted(ok, key=lambda x: x["seconds"])
    med = ordered[(len(ordered) - 1) // 2]
    return {**{k: (r(v) if k.endswith("seconds") else v) for k, v in med.items()},
            "samples": [r(x.get("seconds")) for x in runs]}


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    deadline = started + args.budget
    parts = set(args.parts.split(","))
    unknown = parts - {"publish", "events", "late"}
    if unknown:
        raise SystemExit(f"bench mqtt: unknown --parts {sorted(unknown)}")
    timeout = args.wait_timeout
    logging.getLogger(MIRROR_PAHO).setLevel(logging.ERROR)
    out: dict[str, Any] = {
        "bench": "mqtt",
        "env": environment(),
        "broker": {"mosquitto": "loopback, persistence false, one fresh broker per measurement",
                   "max_queued_messages": args.max_queued},
        "max_inflight": args.inflight,
        "quiet_loggers": [QUIET.name, MIRROR_PAHO],
        "repeat": args.repeat,
    }
    with short_tmpdir("bq", keep=args.keep) as tmp:
        k = 0

        def fresh() -> contextlib.AbstractContextManager[Mosquitto]:
            nonlocal k
            k += 1
            return broker(tmp / f"m{k}", args.max_queued)

        if "publish" in parts:
            n = args.n
            eps = make_endpoints(n, SOURCE)
            upd_events = update_event_payloads(eps)
            hub_runs: list[dict[str, Any]] = []
            bare_runs: list[dict[str, Any]] = []
            same_runs: list[dict[str, Any]] = []
            for i in range(args.repeat):
                if i and time.perf_counter() > deadline:
                    log("publish: budget reached, fewer repeats")
                    break
                with fresh() as mq, subscriber(mq.port, STATES, 1, n, "programmed", timeout) as sub:
                    h = asyncio.run(hub_publish(mq.port, eps, sub, args.inflight))
                states = [(t, p, True) for t, p in h.pop("payloads")]
                hub_runs.append(h)
                log(f"publish N={n}: hub #{i + 1} {h['seconds']}s, received {h['received']}, "
                    f"{h['published_states']} states + {h['published_events']} events published")
                with fresh() as mq, subscriber(mq.port, STATES, 1, n, "programmed", timeout) as sub:
                    b = asyncio.run(bare_publish(mq.port, states, 1, args.inflight, sub))
                bare_runs.append(b)
                log(f"publish N={n}: bare #{i + 1} {b['seconds']}s, received {b['received']}")
                same = [(EVENTS, p, False) for p in upd_events[: h["published_events"]]] + states
                with fresh() as mq, subscriber(mq.port, STATES, 1, n, "programmed", timeout) as sub:
                    b = asyncio.run(bare_publish(mq.port, same, 1, args.inflight, sub))
                same_runs.append({**b, "messages": len(same)})
                log(f"publish N={n}: bare_same_messages #{i + 1} {b['seconds']}s, received {b['received']}")
            hub, bare, same_med = _median(hub_runs), _median(bare_runs), _median(same_runs)
            ratio = hub["seconds"] / bare["seconds"] if hub["seconds"] and bare["seconds"] else None
            out["publish"] = {
                "n": n,
                "what": "Upsert + Programmed per endpoint on the bus -> MqttMirror -> broker, until a QoS 1 "
                        "subscriber (another process) has all N retained states with programmed=true",
                "hub": {**hub, "states_per_s": rate(n, hub["seconds"])},
                "bare": {**bare, "states_per_s": rate(n, bare["seconds"]),
                         "what": "aiomqtt QoS 1 retained publishes of the mirror's final N state payloads "
                                 "(same topics, bytes and properties), same max in flight"},
                "bare_same_messages": {**same_med, "states_per_s": rate(n, same_med["seconds"]),
                                       "what": "bare, but first as many QoS 1 lifecycle events (the mirror's bytes) "
                                               "as the mirror published in that run, then the N states: the "
                                               "mirror's message set without the mirror"},
                "ratio_hub_vs_bare": r(ratio, 3),
                "ratio_hub_vs_bare_same_messages": r(hub["seconds"] / same_med["seconds"], 3)
                if hub["seconds"] and same_med["seconds"] else None,
                "target_ratio": TARGET_RATIO,
                "target_met": ratio is not None and ratio <= TARGET_RATIO,
            }
            del eps

        if "events" in parts:
            n = args.events
            eps = make_endpoints(n, SOURCE)
            payloads_ev = [(EVENTS, b, False) for b in event_payloads(eps)]
            runs: dict[str, list[dict[str, Any]]] = {"hub_qos1": [], "bare_qos1": [], "bare_qos0": []}
            for i in range(args.repeat):
                if i and time.perf_counter() > deadline:
                    log("events: budget reached, fewer repeats")
                    break
                with fresh() as mq, subscriber(mq.port, EVENTS, 1, n, "count", timeout) as sub:
                    runs["hub_qos1"].append(asyncio.run(hub_events(mq.port, eps, sub, args.inflight)))
                for qos in (1, 0):
                    with fresh() as mq, subscriber(mq.port, EVENTS, qos, n, "count", timeout) as sub:
                        runs[f"bare_qos{qos}"].append(
                            asyncio.run(bare_publish(mq.port, payloads_ev, qos, args.inflight, sub)))
                log(f"events E={n} #{i + 1}: " + ", ".join(f"{k_} {v[-1]['seconds']}s ({v[-1]['received']})"
                                                         for k_, v in runs.items()))
            ev_out: dict[str, Any] = {
                "events": n,
                "note": "the mirror publishes lifecycle events at QoS 1 only (hub/mqtt.py), so the hub is measured "
                        "at QoS 1 (subscriber QoS 1); bare aiomqtt publishes the same event bytes at QoS 1 and at "
                        "QoS 0 (subscriber at the same QoS), same max in flight. Each event is a 'programmed' "
                        "event of a known endpoint (no state change); the mirror's queue_size is raised to N so "
                        "none is dropped. Clock: first bus publish (or first bare publish) to the subscriber's "
                        "N-th message.",
                "payload_bytes_mean": round(statistics.fmean(len(b) for _, b, _ in payloads_ev), 1),
            }
            for key, vals in runs.items():
                med = _median(vals)
                ev_out[key] = {**med, "events_per_s": rate(n, med["seconds"])}
            hub_s, b1 = ev_out["hub_qos1"]["seconds"], ev_out["bare_qos1"]["seconds"]
            ev_out["ratio_hub_vs_bare_qos1"] = r(hub_s / b1, 3) if hub_s and b1 else None
            out["events"] = ev_out
            del eps, payloads_ev

        if "late" in parts:
            n = args.late
            eps = make_endpoints(n, SOURCE)
            late_runs: list[dict[str, Any]] = []
            for i in range(args.late_repeat):
                if i and time.perf_counter() > deadline:
                    log("late: budget reached, fewer repeats")
                    break
                with fresh() as mq, subscriber(mq.port, STATES, 1, n, "states", timeout) as first:
                    res = asyncio.run(hub_late(mq.port, eps, first, (mq.port, timeout), args.inflight))
                late_runs.append(res)
                log(f"late N={n} #{i + 1}: mirror published in {res['publish_seconds']}s; "
                    f"late subscriber {res['seconds']}s ({res.get('received')})")
            med = _median(late_runs)
            out["late"] = {
                "n": n,
                "what": "the mirror publishes a Snapshot of N endpoints (retained states) until a first subscriber "
                        "has them all; then a new QoS 1 subscriber (another process) subscribes to endpoints/#. "
                        "seconds: SUBSCRIBE sent to the N-th retained message",
                **med,
                "states_per_s": rate(n, med["seconds"]),
            }
            del eps

    out["target_met"] = out.get("publish", {}).get("target_met")
    out["wall_seconds"] = round(time.perf_counter() - started, 1)
    emit(out)
    return 0


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--parts", default="publish,events,late", help="comma-separated subset of publish,events,late")
    ap.add_argument("--n", type=int, default=20000, help="endpoint state updates in the publish part (default 20000)")
    ap.add_argument("--events", type=int, default=20000, help="lifecycle events in the events part (default 20000)")
    ap.add_argument("--late", type=int, default=50000, help="retained states for the late subscriber (default 50000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of publish and events (alternating); medians count")
    ap.add_argument("--late-repeat", type=int, default=1, help="runs of the late part; the median counts")
    ap.add_argument("--inflight", type=int, default=100, help="max unacknowledged publishes (the mirror's default)")
    ap.add_argument("--max-queued", type=int, default=0,
                    help="mosquitto max_queued_messages (default 0 = no limit; mosquitto's own default is 1000)")
    ap.add_argument("--wait-timeout", type=float, default=60.0, help="bound on each wait for a subscriber (s)")
    ap.add_argument("--budget", type=float, default=120.0, help="no new repeat starts after this many seconds")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (broker configs and logs)")
