"""``bench churn``: one change's latency while 50k endpoints exist and change.

Setup: one source with ``--endpoints`` (50k) endpoints in ``--namespaces``
(100) namespaces, ``--policies`` (500) NetworkPolicies and ``--services``
(2k) Services of 10 backends, written into a fresh NB and flushed.  Then, for
each rate in ``--rates`` (200 and 1,000 events/s), a seeded, steady stream of
mixed changes for ``--duration`` seconds:

* 40 % label changes that move policy membership (``app`` label),
* 20 % endpoints added, 20 % deleted,
* 10 % IP changes,
* 10 % service backend changes.

Latency of one event: from the moment the adapter would have emitted it (its
scheduled time, so time spent queued behind a busy writer counts) to the reply
of the first NB transaction planned after the event was applied.  The writer's
``_derive`` and its client's ``transact`` are wrapped to know which transaction
that is.  An event after which the writer's derive finds nothing to write (a
label no policy selects, a change NB already has) is done at that derive (it
used to be charged the next transaction's reply, up to one event interval later:
~100 ms at 10/s).  Reported per rate: p50/p99/max, events applied, transactions
per second, derives that found nothing to write, and events whose first
transaction wrote nothing of theirs are still timed (they are done then).  ``max_rate_p99_under_100ms``: the highest rate of
the run whose p99 stayed at or under 100 ms (None if none).

Baseline, in the same run: the raw transaction of one event's rows — one
``update`` of one port's ``external_ids``, one ``mutate`` of one
Address_Set's ``addresses``, and an endpoint added (a port inserted into its
50k-port switch and the 50k-member default-deny group: ``port_add``) — timed
``--raw-samples`` times on the same NB.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import random
import time
from typing import Any

import msgspec

from bench.bulk import _profile_report
from bench.common import HUB_ID, emit, environment, ipv4, log, r, short_tmpdir
from core.model import (
    Delete,
    Endpoint,
    InputEvent,
    LBRule,
    Namespace,
    Peer,
    Policy,
    PolicyPort,
    Rule,
    Selector,
    Service,
    Snapshot,
    Source,
    Upsert,
)
from core.names import OWNER
from core.nb import Programmer
from core.ovsdb import OvsdbClient
from hub.sandbox import OvnSandbox

SOURCE = Source("k8s", "churn")
NETWORK = "pods"
APPS = 50


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


class World:
    def __init__(self, n: int, namespaces: int, policies: int, services: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.namespaces = namespaces
        self.eps: dict[str, Endpoint] = {}
        # the uids in a list too: a random pick is O(1), not a copy of 50k keys per event (the
        # stream is generated on the loop the hub runs on, inside the latency it measures)
        self.uids: list[str] = []
        self.pos: dict[str, int] = {}
        self.next_ip = 0
        for _ in range(n):
            self._new_endpoint()
        self.policies = [self._policy(i) for i in range(policies)]
        self.services = {f"s{i}": self._service(i) for i in range(services)}

    def _new_endpoint(self) -> Endpoint:
        i = self.next_ip
        self.next_ip += 1
        ep = Endpoint(source=SOURCE, uid=f"p{i}", namespace=f"ns{i % self.namespaces}", name=f"pod{i}", kind="pod",
                      network=NETWORK, ips=(ipv4(i),), labels={"app": f"a{i % APPS}"})  # fmt: skip
        self.eps[ep.uid] = ep
        self.pos[ep.uid] = len(self.uids)
        self.uids.append(ep.uid)
        return ep

    def _remove(self, uid: str) -> None:
        del self.eps[uid]
        i = self.pos.pop(uid)
        last = self.uids.pop()
        if last != uid:
            self.uids[i] = last
            self.pos[last] = i

    def _policy(self, i: int) -> Policy:
        return Policy(source=SOURCE, uid=f"np{i}", namespace=f"ns{i % self.namespaces}", name=f"np{i}",
                      pod_selector=Selector(match_labels={"app": f"a{i % APPS}"}),
                      ingress=(Rule(peers=(Peer(pod_selector=Selector(match_labels={"app": f"a{(i + 1) % APPS}"})),),
                                    ports=(PolicyPort(port=8000 + i % 100),)),))  # fmt: skip

    def _backends(self) -> tuple[str, ...]:
        uids = self.rng.sample(self.uids, 10) if len(self.uids) >= 10 else list(self.uids)
        return tuple(sorted(f"{self.eps[u].ips[0]}:8080" for u in uids))

    def _service(self, i: int) -> Service:
        vip = f"172.30.{i // 250}.{i % 250 + 1}"
        return Service(source=SOURCE, uid=f"s{i}", namespace=f"ns{i % self.namespaces}", name=f"svc{i}", network=NETWORK,
                       rules=(LBRule(vip=vip, port=80, backends=self._backends()),))  # fmt: skip

    def snapshot(self) -> Snapshot:
        nss = [Namespace(source=SOURCE, name=f"ns{i}") for i in range(self.namespaces)]
        return Snapshot(source=SOURCE, objects=(*nss, *self.eps.values(), *self.policies, *self.services.values()))

    def change(self) -> InputEvent:
        x = self.rng.random()
        if x < 0.4:  # a label change: the endpoint moves between policies' groups and address sets
            ep = self.eps[self.rng.choice(self.uids)]
            new = msgspec.structs.replace(ep, labels={"app": f"a{self.rng.randrange(APPS)}"})
            self.eps[ep.uid] = new
            return Upsert(obj=new)
        if x < 0.6:
            return Upsert(obj=self._new_endpoint())
        if x < 0.8 and len(self.eps) > 1:
            uid = self.rng.choice(self.uids)
            self._remove(uid)
            return Delete(source=SOURCE, kind="endpoint", key=f"{NETWORK}/{uid}")
        if x < 0.9:
            ep = self.eps[self.rng.choice(self.uids)]
            i = self.next_ip
            self.next_ip += 1
            new = msgspec.structs.replace(ep, ips=(ipv4(i),))
            self.eps[ep.uid] = new
            return Upsert(obj=new)
        uid = self.rng.choice(list(self.services))
        svc = msgspec.structs.replace(self.services[uid], rules=(msgspec.structs.replace(self.services[uid].rules[0],
                                                                                         backends=self._backends()),))  # fmt: skip
        self.services[uid] = svc
        return Upsert(obj=svc)


class Timed:
    """Wraps the writer's derive and its client's transact: which transaction carries an event."""

    def __init__(self, prog: Programmer) -> None:
        self.last_derive = 0.0
        self.replies: list[tuple[float, float]] = []  # (derive start of the batch, reply time)
        self.noops = 0  # derives that found nothing to write
        derive = prog._derive

        def timed_derive() -> None:
            self.last_derive = time.monotonic()
            derive()
            if not prog._is_dirty():
                # Nothing to write: the events applied before this derive are done now (a label no policy
                # selects, a change NB already has). Before, they were charged the next transaction's reply,
                # up to one event interval later (~100 ms at 10/s: the 10/s p99 was that).
                self.replies.append((self.last_derive, time.monotonic()))
                self.noops += 1

        prog._derive = timed_derive  # type: ignore[method-assign]
        self.prog = prog

    def wrap_client(self) -> None:
        client = self.prog._client
        assert client is not None
        real = client.transact

        async def transact(ops: list[dict[str, Any]], timeout: float | None = 300.0, on_reply: Any = None) -> list[Any]:
            d = self.last_derive
            res = await real(ops, timeout, on_reply)
            self.replies.append((d, time.monotonic()))
            return res

        client.transact = transact  # type: ignore[method-assign]


async def run_rate(prog: Programmer, timed: Timed, world: World, rate: float, duration: float) -> dict[str, Any]:
    timed.replies.clear()
    timed.noops = 0
    applied: list[tuple[float, float]] = []  # (scheduled, applied)
    t0 = time.monotonic()
    k = 0
    deadline = t0 + duration
    while (now := time.monotonic()) < deadline:
        due = int((now - t0) * rate) + 1  # events 0..due-1 are scheduled at or before now
        while k < due and t0 + k / rate < deadline:
            sched = t0 + k / rate
            prog.apply(world.change())
            applied.append((sched, time.monotonic()))
            k += 1
        await asyncio.sleep(0.005)
    await prog.flush(timeout=600)
    end = time.monotonic()
    replies = sorted(timed.replies)
    lat: list[float] = []
    j = 0
    for sched, at in applied:  # both lists are in time order
        while j < len(replies) and replies[j][0] < at:
            j += 1
        if j < len(replies):
            lat.append(replies[j][1] - sched)
    return {
        "rate": rate,
        "events": len(applied),
        "timed": len(lat),
        "p50_ms": r(1000 * (_pct(lat, 0.5) or 0), 2),
        "p99_ms": r(1000 * (_pct(lat, 0.99) or 0), 2),
        "max_ms": r(1000 * max(lat, default=0), 2),
        "transactions": len(replies) - timed.noops,
        "derives_with_nothing_to_write": timed.noops,
        "transactions_per_second": round((len(replies) - timed.noops) / (end - t0), 1),
    }


async def raw_baseline(remote: str, samples: int) -> dict[str, Any]:
    client = OvsdbClient(remote)
    await client.connect()
    try:
        owned = [["external_ids", "includes", ["map", [[OWNER, HUB_ID]]]]]
        port = await client.transact([{"op": "select", "table": "Logical_Switch_Port", "where": owned, "columns": ["_uuid"]}])
        aset = await client.transact([{"op": "select", "table": "Address_Set", "where": owned, "columns": ["_uuid"]}])
        p_uuid = port[0]["rows"][0]["_uuid"]
        a_uuid = aset[0]["rows"][0]["_uuid"] if aset[0]["rows"] else None
        out: dict[str, Any] = {}
        for name, ops in (
            ("port_update", lambda i: [{"op": "update", "table": "Logical_Switch_Port", "where": [["_uuid", "==", p_uuid]],
                                        "row": {"external_ids": ["map", [[OWNER, HUB_ID], ["bench", str(i)]]]}}]),
            ("address_set_mutate", lambda i: [{"op": "mutate", "table": "Address_Set", "where": [["_uuid", "==", a_uuid]],
                                               "mutations": [["addresses", "insert", ["set", [f"192.0.2.{i % 250 + 1}"]]]]}]),
        ):
            if name == "address_set_mutate" and a_uuid is None:
                continue
            xs = []
            for i in range(samples):
                t = time.perf_counter()
                await client.transact(ops(i))
                xs.append(time.perf_counter() - t)
            out[name] = {"p50_ms": r(1000 * (_pct(xs, 0.5) or 0), 3), "p99_ms": r(1000 * (_pct(xs, 0.99) or 0), 3)}
        out["port_add"] = await _raw_port_add(client, owned, samples)
        return out
    finally:
        await client.close()


async def _raw_port_add(client: OvsdbClient, owned: list[Any], samples: int) -> dict[str, Any]:
    """The rows of an endpoint added, raw: a port inserted, put into its switch's
    ``ports`` and into the largest port group (the default-deny group: every
    isolated port) — two mutations of sets of up to 50k uuids, which the server
    copies and checks whole.  Each sample's port is deleted again, untimed."""
    sw = await client.transact([{"op": "select", "table": "Logical_Switch", "where": owned, "columns": ["_uuid", "ports"]}])
    pg = await client.transact([{"op": "select", "table": "Port_Group", "where": owned, "columns": ["_uuid", "ports"]}])

    def size(row: dict[str, Any]) -> int:
        return len(row["ports"][1]) if row["ports"][0] == "set" else 1

    s_uuid = max(sw[0]["rows"], key=size)["_uuid"]
    groups = pg[0]["rows"]
    g_uuid = max(groups, key=size)["_uuid"] if groups else None
    xs = []
    for i in range(samples):
        ops: list[dict[str, Any]] = [
            {"op": "insert", "table": "Logical_Switch_Port", "uuid-name": "p",
             "row": {"name": f"bench-raw-{i}", "addresses": "dynamic", "external_ids": ["map", [["bench", "raw"]]]}},
            {"op": "mutate", "table": "Logical_Switch", "where": [["_uuid", "==", s_uuid]],
             "mutations": [["ports", "insert", ["named-uuid", "p"]]]},
        ]  # fmt: skip
        if g_uuid is not None:
            ops.append({"op": "mutate", "table": "Port_Group", "where": [["_uuid", "==", g_uuid]],
                        "mutations": [["ports", "insert", ["named-uuid", "p"]]]})  # fmt: skip
        t = time.perf_counter()
        res = await client.transact(ops)
        xs.append(time.perf_counter() - t)
        new = res[0]["uuid"]
        undo: list[dict[str, Any]] = [{"op": "mutate", "table": "Logical_Switch", "where": [["_uuid", "==", s_uuid]],
                                       "mutations": [["ports", "delete", new]]}]  # fmt: skip
        if g_uuid is not None:
            undo.append({"op": "mutate", "table": "Port_Group", "where": [["_uuid", "==", g_uuid]],
                         "mutations": [["ports", "delete", new]]})  # fmt: skip
        await client.transact(undo)  # (the port, now unreferenced, is collected by the server: a non-root table)
    return {"p50_ms": r(1000 * (_pct(xs, 0.5) or 0), 3), "p99_ms": r(1000 * (_pct(xs, 0.99) or 0), 3),
            "switch_ports": max(map(size, sw[0]["rows"])), "group_ports": max(map(size, groups), default=0)}  # fmt: skip


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--endpoints", type=int, default=50_000)
    ap.add_argument("--namespaces", type=int, default=100)
    ap.add_argument("--policies", type=int, default=500)
    ap.add_argument("--services", type=int, default=2_000)
    ap.add_argument("--rates", type=float, nargs="+", default=[200.0, 1000.0])
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per rate")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--raw-samples", type=int, default=200)
    ap.add_argument("--profile", type=float, default=0.0, metavar="SECONDS",
                    help="first, an uncounted pass of SECONDS at the first rate under cProfile (top functions on "
                         "stderr and in the JSON)")
    ap.add_argument("--profile-out", default=None, help="also dump the pstats file here")


def main(args: argparse.Namespace) -> int:
    return asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> int:
    world = World(args.endpoints, args.namespaces, args.policies, args.services, args.seed)
    with short_tmpdir("churn") as tmp:
        sb = OvnSandbox(tmp / "nb", northd=False, sb=False)
        sb.start()
        try:
            prog = Programmer(sb.nb_remote, HUB_ID)
            timed = Timed(prog)
            await prog.start()
            timed.wrap_client()
            writer = asyncio.create_task(prog.run())
            try:
                log(f"churn: setup {args.endpoints} endpoints, {args.policies} policies, {args.services} services")
                t = time.perf_counter()
                prog.apply(world.snapshot())
                await prog.flush(timeout=1800)
                setup = time.perf_counter() - t
                gc.freeze()  # as hubd does at READY (hub/daemon.py): the long-lived state stays out of collections
                profile_top = None
                if args.profile > 0:
                    log(f"churn: profiling {args.rates[0]:g} events/s for {args.profile:g} s (not counted)")
                    profile = cProfile.Profile()
                    profile.enable()
                    profiled = await run_rate(prog, timed, world, args.rates[0], args.profile)
                    profile.disable()
                    profile_top = {"run": profiled, "top_tottime": _profile_report(profile, args.profile_out)}
                runs = []
                for rate in args.rates:
                    log(f"churn: {rate:g} events/s for {args.duration:g} s")
                    runs.append(await run_rate(prog, timed, world, rate, args.duration))
                raw = await raw_baseline(sb.nb_remote, args.raw_samples)
            finally:
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
                await prog.close()
        finally:
            sb.stop()
    ok = [x["rate"] for x in runs if x["p99_ms"] is not None and x["p99_ms"] <= 100]
    emit({
        "bench": "churn",
        "endpoints": args.endpoints,
        "policies": args.policies,
        "services": args.services,
        "setup_seconds": r(setup),
        "runs": runs,
        "max_rate_p99_under_100ms": max(ok) if ok else None,
        "raw_one_event": raw,
        **({"profile": profile_top} if profile_top is not None else {}),
        "environment": environment(),
    })  # fmt: skip
    return 0
