"""``bench mesos``: the Mesos adapter's stream path and a big SUBSCRIBED into NB.

Two parts, each next to a baseline from the same run:

* ``parse_normalize``  a RecordIO stream (64 KiB chunks, as aiohttp's ``readany``
                       hands them over) of task lifecycles shaped like the
                       master's events (testkit/mesos_fake.py): per task
                       TASK_ADDED (staging), TASK_UPDATED STARTING (its container
                       status: ContainerID, named network, address), RUNNING, a
                       RUNNING health update (no change), KILLING, KILLED; a
                       HEARTBEAT every ten tasks.  Timed on one core, as the
                       adapter does it: RecordIO split, typed decode
                       (:func:`decode_event`), :class:`MesosState` and the
                       no-op filter (:class:`core.adapter.ObjectCache`), without
                       the bus.  Baselines: the RecordIO split alone, and split +
                       a bare ``msgspec.json.decode`` / ``json.loads``.  Also
                       the rate of the Docker executor's real TASK_UPDATED
                       (12.9 KB, its base64 ``docker inspect`` read for a MAC).
* ``snapshot``         a :class:`testkit.mesos_fake.FakeMesosMaster` in a child
                       process (a master has its own) holding N tasks (default
                       20,000) of several frameworks on several agents and
                       networks; a real :class:`MesosAdapter` feeds a
                       :class:`hub.bus.Bus` and a :class:`Programmer` (as hubd
                       does) into a fresh NB.  Timed from the adapter's start
                       until ``flush()`` returns after the SUBSCRIBED's Snapshot.
                       Baseline: the same Logical_Switch and Logical_Switch_Port
                       rows as one raw JSON-RPC ``transact`` on a fresh NB; the
                       two NBs are compared row for row.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import multiprocessing
import os
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec

from bench.bulk import _profile_report
from bench.common import HUB_ID, emit, environment, log, r, rate, short_tmpdir
from bench.k8s import CpuMeter, TimedSink, k8s_fingerprint, nb_counts, one_core, raw_transact, sandbox, sandbox_pids
from core.adapter import AdapterSpec, ObjectCache
from core.model import Delete, Endpoint, Event, Network, Snapshot, Source, Upsert
from core.nb import Programmer
from core.nb.tables import LB, LS, LSP
from core.nb.tables.port import lsp_columns
from core.nb.tables.switch import ls_columns
from core.ovsdb.values import to_ovsdb
from hub.bus import AdapterSink, Bus

SOURCE = Source("mesos", "bench")
TARGET_EVENTS_PER_S = 100000.0
PARTS = ("parse_normalize", "snapshot")
ROOT = Path(__file__).resolve().parents[1]
#: the repo's own copy (a path: bench/ never imports tests)
DOCKER_EXECUTOR_FIXTURE = ROOT / "tests" / "fixtures" / "mesos" / "operator-event-task-updated-running.asgard.json"
LIFECYCLE = ("TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED")


def _ip(i: int, base: int = 10) -> str:
    x = i + 2
    return f"{base}.{(x >> 16) & 255}.{(x >> 8) & 255}.{x & 255}"


def _cid(i: int) -> str:
    return str(uuid.UUID(int=(0xC0 << 120) + i))


# ================================================================== 1. parse + normalize
def lifecycle_stream(tasks: int, frameworks: int = 10, agents: int = 100) -> tuple[bytes, int]:
    """The RecordIO bytes of ``tasks`` task lifecycles, and the number of events."""
    from testkit.mesos_fake import recordio, task_record, task_status

    out: list[bytes] = []
    for i in range(tasks):
        fid, aid = f"fw-{i % frameworks}", f"agent-{i % agents}"
        tid, cid, ip = f"app-{i}.{uuid.UUID(int=i)}", _cid(i), _ip(i)
        task = task_record(tid, fid, aid, name=f"app-{i}", network=f"net-{i % 4}", ip=None, container_id=None,
                           state="TASK_STAGING", labels={"app": f"app-{i % 500}", "team": f"t{i % 7}"},
                           ports=[(8080, "http", "tcp")])  # fmt: skip
        out.append(recordio({"type": "TASK_ADDED", "task_added": {"task": task}}))
        for state in LIFECYCLE:
            st = task_status(tid, aid, state, f"net-{i % 4}", ip, cid)
            out.append(recordio({"type": "TASK_UPDATED", "task_updated": {"framework_id": {"value": fid},
                                                                          "status": st, "state": state}}))  # fmt: skip
        if i % 10 == 0:
            out.append(recordio({"type": "HEARTBEAT"}))
    return b"".join(out), len(out)


def docker_executor_stream(tasks: int) -> tuple[bytes, int]:
    """TASK_ADDED + the Docker executor's real RUNNING update (its inspect in status.data) per task."""
    from testkit.mesos_fake import recordio, task_record

    tpl = json.loads(DOCKER_EXECUTOR_FIXTURE.read_text())
    out: list[bytes] = []
    for i in range(tasks):
        tid, fid = f"ct:{i}:0:asgard:", tpl["task_updated"]["framework_id"]["value"]
        task = task_record(tid, fid, "a1", name=f"asgard-{i}", network="blue", ip=None, container_id=None,
                           state="TASK_STAGING")  # fmt: skip
        out.append(recordio({"type": "TASK_ADDED", "task_added": {"task": task}}))
        ev = json.loads(json.dumps(tpl))
        st = ev["task_updated"]["status"]
        st["task_id"]["value"] = tid
        st["container_status"] = {"container_id": {"value": _cid(i)},
                                  "network_infos": [{"name": "blue", "ip_addresses": [{"ip_address": _ip(i)}]}]}  # fmt: skip
        out.append(recordio(ev))
    return b"".join(out), len(out)


def chunks_of(data: bytes, size: int = 65536) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _state() -> Any:
    from adapters.mesos.normalize import MesosState
    from testkit.mesos_fake import agent_info, framework_info

    st = MesosState(SOURCE)
    st.subscribed({"get_frameworks": {"frameworks": [framework_info(f"fw-{f}", f"framework-{f}") for f in range(10)]},
                   "get_agents": {"agents": [agent_info(f"agent-{a}", f"node-{a}") for a in range(100)]}})  # fmt: skip
    return st


def variants() -> dict[str, Any]:
    """name → fn(chunks) → events handled."""
    from adapters.mesos.normalize import Removed, decode_event
    from adapters.mesos.streams import RecordIOReader

    bare = msgspec.json.Decoder()

    def split(chunks: list[bytes]) -> int:
        reader = RecordIOReader()
        return sum(len(reader.feed(c)) for c in chunks)

    def split_msgspec(chunks: list[bytes]) -> int:
        reader, n, dec = RecordIOReader(), 0, bare.decode
        for c in chunks:
            for rec in reader.feed(c):
                dec(rec)
                n += 1
        return n

    def split_json(chunks: list[bytes]) -> int:
        reader, n = RecordIOReader(), 0
        for c in chunks:
            for rec in reader.feed(c):
                json.loads(rec)
                n += 1
        return n

    def adapter_path(chunks: list[bytes], state: Any = None) -> int:
        """MesosAdapter._record without the lock and the emit: decode, state, no-op filter."""
        st = state if state is not None else _state()
        cache = ObjectCache(SOURCE)
        reader, n = RecordIOReader(), 0
        for c in chunks:
            for rec in reader.feed(c):
                for ch in st.apply(decode_event(rec)):
                    if isinstance(ch, Endpoint):
                        cache.upsert(ch)
                    elif isinstance(ch, Removed):
                        cache.delete("endpoint", ch.key)
                n += 1
        return n

    return {"recordio_split": split, "split_msgspec_decode": split_msgspec, "split_json_loads": split_json,
            "parse_normalize": adapter_path}  # fmt: skip


def run_parse_normalize(args: argparse.Namespace) -> dict[str, Any]:
    data, n_events = lifecycle_stream(args.tasks)
    chunks = chunks_of(data)
    dock, n_dock = docker_executor_stream(max(1, args.tasks // 10))
    dock_chunks = chunks_of(dock)
    fns = variants()
    got = fns["parse_normalize"](chunks)
    assert got == n_events, (got, n_events)
    log(f"parse_normalize: {n_events} events ({len(data) / n_events:.0f} bytes each), {args.rounds} rounds")
    samples: dict[str, list[float]] = {name: [] for name in (*fns, "docker_executor")}
    samples_cpu: dict[str, list[float]] = {name: [] for name in samples}
    spent = {name: 0.0 for name in samples}
    done = {name: 0 for name in samples}
    deadline = time.monotonic() + args.budget
    with one_core() as cpu:
        for rnd in range(args.rounds):
            for name, fn in fns.items():
                st = _state() if name == "parse_normalize" else None
                c0, t0 = time.thread_time(), time.perf_counter()
                k = fn(chunks, st) if st is not None else fn(chunks)
                dt, dc = time.perf_counter() - t0, time.thread_time() - c0
                spent[name] += dt
                done[name] += k
                samples[name].append(round(k / dt, 1))
                samples_cpu[name].append(round(k / dc, 1))
            st = _state()
            c0, t0 = time.thread_time(), time.perf_counter()
            k = fns["parse_normalize"](dock_chunks, st)
            dt, dc = time.perf_counter() - t0, time.thread_time() - c0
            spent["docker_executor"] += dt
            done["docker_executor"] += k
            samples["docker_executor"].append(round(k / dt, 1))
            samples_cpu["docker_executor"].append(round(k / dc, 1))
            log(f"parse_normalize: round {rnd + 1}: " + ", ".join(f"{n} {v[-1]:.0f}/s" for n, v in samples.items()))
            if time.monotonic() > deadline and rnd + 1 < args.rounds:
                log(f"parse_normalize: time budget {args.budget}s spent after {rnd + 1} rounds")
                break
        profile_top = None
        if args.profile:
            prof = cProfile.Profile()
            st = _state()
            prof.enable()
            fns["parse_normalize"](chunks, st)
            prof.disable()
            profile_top = _profile_report(prof, None, top=20)

    def median(xs: list[float]) -> float:
        return sorted(xs)[(len(xs) - 1) // 2]

    rates = {name: rate(done[name], spent[name]) for name in samples}
    medians = {name: median(v) for name, v in samples.items()}
    medians_cpu = {name: median(v) for name, v in samples_cpu.items()}
    main = medians["parse_normalize"]
    main_cpu = medians_cpu["parse_normalize"]
    per_round = [h / b for h, b in zip(samples_cpu["parse_normalize"], samples_cpu["split_msgspec_decode"], strict=True)]
    out: dict[str, Any] = {
        "events": n_events,
        "event_bytes": round(len(data) / n_events),
        "chunk_bytes": 65536,
        "cpu": cpu,
        "events_per_s": main,
        "events_per_cpu_s": main_cpu,
        "events_per_cpu_s_range": [min(samples_cpu["parse_normalize"]), max(samples_cpu["parse_normalize"])],
        "target_events_per_s": TARGET_EVENTS_PER_S,
        "target_met": main_cpu >= TARGET_EVENTS_PER_S,
        "median_per_s": medians,
        "median_per_cpu_s": medians_cpu,
        "samples_per_cpu_s": samples_cpu,
        "ratio_vs_split_msgspec_decode_cpu": round(median(per_round), 3),
        "ratio_vs_split_msgspec_decode_cpu_range": [round(min(per_round), 3), round(max(per_round), 3)],
        "rates_per_s": rates,
        "samples_per_s": samples,
        "us_per_event": {name: round(spent[name] / done[name] * 1e6, 2) for name in samples if done[name]},
        "ratio_vs_split_msgspec_decode": round(main / medians["split_msgspec_decode"], 3),
        "docker_executor": {
            "events": n_dock, "event_bytes": round(len(dock) / n_dock), "events_per_s": medians["docker_executor"]
        },
    }
    if profile_top is not None:
        out["profile_top_tottime"] = profile_top
    return out


# ================================================================== 2. a big SUBSCRIBED into NB
class Shape(msgspec.Struct, frozen=True):
    tasks: int
    frameworks: int
    agents: int
    networks: int


def networks(shape: Shape) -> dict[str, str]:
    return {f"net-{n}": f"10.{100 + n}.0.0/16" for n in range(shape.networks)}


def serve_master(conn: Connection, shape_json: bytes) -> None:
    """Child process: a FakeMesosMaster holding the cluster; sends ``{"port", "load_seconds"}``,
    serves until told to stop (or the parent's end of the pipe closes)."""
    asyncio.run(_serve_master(conn, msgspec.json.decode(shape_json, type=Shape)))


async def _serve_master(conn: Connection, shape: Shape) -> None:
    from testkit.mesos_fake import FakeMesosMaster, agent_info, framework_info, task_record

    t0 = time.perf_counter()
    m = FakeMesosMaster(heartbeat=15.0, rechunk=True)
    for f in range(shape.frameworks):
        m.frameworks[f"fw-{f}"] = framework_info(f"fw-{f}", f"framework-{f}")
    for a in range(shape.agents):
        m.agents[f"agent-{a}"] = agent_info(f"agent-{a}", f"node-{a}")
    for i in range(shape.tasks):
        n = i % shape.networks
        m.put_task(task_record(f"app-{i}.{uuid.UUID(int=i)}", f"fw-{i % shape.frameworks}", f"agent-{i % shape.agents}",
                               name=f"app-{i}", network=f"net-{n}", ip=_net_ip(n, i // shape.networks),
                               container_id=_cid(i), labels={"app": f"app-{i % 500}"},
                               ports=[(8080, "http", "tcp")]))  # fmt: skip
    await m.start()
    conn.send({"port": m.port, "load_seconds": time.perf_counter() - t0})
    try:
        await asyncio.to_thread(conn.recv)
    except EOFError:
        pass
    finally:
        await m.stop()


def _net_ip(n: int, j: int) -> str:
    x = j + 2
    return f"10.{100 + n}.{(x >> 8) & 255}.{x & 255}"


class MasterProcess:
    """The fake master in a spawned child process; stopped by its own pid."""

    def __init__(self, shape: Shape) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=serve_master, args=(child, msgspec.json.encode(shape)), name="fake-mesos-master")
        self._child = child
        self.info: dict[str, Any] = {}

    def start(self, timeout: float) -> dict[str, Any]:
        self.proc.start()
        self._child.close()
        if not self._conn.poll(timeout):
            raise TimeoutError(f"fake master not ready in {timeout}s")
        try:
            self.info = self._conn.recv()
        except EOFError:
            self.proc.join(5)
            raise RuntimeError(f"fake master exited ({self.proc.exitcode}) before it was ready") from None
        return self.info

    def stop(self) -> None:
        if self.proc.pid is None:
            self._conn.close()
            return
        with contextlib.suppress(OSError, ValueError):
            self._conn.send("stop")
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self._conn.close()


async def hub_mesos_path(nb_remote: str, master_url: str, shape: Shape, cpu: CpuMeter,
                         timeout: float) -> tuple[dict[str, Any], Snapshot]:  # fmt: skip
    """MesosAdapter → Bus → consumer → Programmer; adapter start to flush."""
    from adapters.mesos.adapter import MesosAdapter

    bus = Bus()
    prog = Programmer(nb_remote, HUB_ID, publish=bus.publish, publish_many=bus.publish_many)
    await prog.start()
    sub = bus.subscribe("programmer", accept=lambda e: isinstance(e, Snapshot | Upsert | Delete))
    applied = asyncio.Event()
    totals = {"apply_seconds": 0.0, "normalize_seconds": 0.0}
    applied_at = 0.0

    async def consume() -> None:
        nonlocal applied_at
        while True:
            ev: Event = await sub.get()
            if isinstance(ev, Snapshot | Upsert | Delete):
                t = time.perf_counter()
                prog.apply(ev)
                totals["apply_seconds"] += time.perf_counter() - t
                if isinstance(ev, Snapshot) and not applied.is_set():
                    applied_at = time.perf_counter()
                    applied.set()

    spec = AdapterSpec(name="bench", type="mesos", cluster=SOURCE.cluster,
                       options={"masters": [master_url],
                                "networks": {n: {"subnet": s} for n, s in networks(shape).items()}})  # fmt: skip
    adapter = MesosAdapter(spec)
    orig = adapter.state.subscribed

    def subscribed(*a: Any, **kw: Any) -> Any:  # decode of each task + the endpoints
        t = time.perf_counter()
        try:
            return orig(*a, **kw)
        finally:
            totals["normalize_seconds"] += time.perf_counter() - t

    adapter.state.subscribed = subscribed  # type: ignore[method-assign]
    first_record: list[float] = []
    orig_first = adapter._first

    async def first(record: bytes, leader: Any) -> None:
        first_record.append(time.perf_counter())
        await orig_first(record, leader)

    adapter._first = first  # type: ignore[method-assign]
    sink = TimedSink(AdapterSink(bus, spec.name), cpu)
    writer = asyncio.create_task(prog.run(), name="nb-writer")
    consumer = asyncio.create_task(consume(), name="consumer")
    task: asyncio.Task[None] | None = None
    try:
        await prog.flush(timeout=30)
        cpu.start()
        t0 = time.perf_counter()
        task = asyncio.create_task(adapter.run(sink), name="adapter:bench")
        async with asyncio.timeout(timeout):
            await applied.wait()
            await prog.flush()
        t_end = time.perf_counter()
        used = cpu.stop()
        snap = adapter.snapshot()
    finally:
        for t in (task, consumer, writer):
            if t is not None:
                t.cancel()
        await asyncio.gather(*(t for t in (task, consumer, writer) if t is not None), return_exceptions=True)
        await prog.close()
    assert sink.snapshot_at is not None and first_record
    return {
        "seconds": t_end - t0,
        "subscribed_received_seconds": first_record[0] - t0,
        "snapshot_emitted_seconds": sink.snapshot_at - t0,
        "normalize_seconds": totals["normalize_seconds"],
        "apply_seconds": totals["apply_seconds"],
        "write_seconds": t_end - applied_at,
        "transactions": prog.transactions,
        "writes": prog.writes,
        "failed": len(prog.failed),
        "rejected_inputs": sink.rejected,
        "snapshot_objects": sink.snapshot_objects,
        "process_cpu": used,
    }, snap


def raw_ops(snap: Snapshot) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The hub's rows of the snapshot as one transaction: each switch with its ports as named uuids."""
    nets = [o for o in snap.objects if isinstance(o, Network)]
    eps = [o for o in snap.objects if isinstance(o, Endpoint)]
    ops: list[dict[str, Any]] = []
    by_net: dict[str, list[int]] = {}
    for i, ep in enumerate(eps):
        by_net.setdefault(ep.network, []).append(i)
        ops.append({"op": "insert", "table": LSP, "row": to_ovsdb(lsp_columns(ep, HUB_ID)), "uuid-name": f"p{i}"})
    for j, net in enumerate(nets):
        row = to_ovsdb(ls_columns(SOURCE, net.name, net, HUB_ID))
        row["ports"] = ["set", [["named-uuid", f"p{i}"] for i in by_net.get(net.name, [])]]
        ops.append({"op": "insert", "table": LS, "row": row, "uuid-name": f"s{j}"})
    return ops, {LS: len(nets), LSP: len(eps)}


def run_snapshot(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    shape = Shape(args.snapshot_tasks, args.frameworks, args.agents, args.networks)
    log(f"snapshot: starting the fake master ({shape.tasks} tasks)")
    master = MasterProcess(shape)
    hub_runs: list[dict[str, Any]] = []
    raw_runs: list[float] = []
    prints: dict[str, Any] = {}
    counts: dict[str, dict[str, int]] = {}
    try:
        info = master.start(timeout=args.part_timeout)
        url = f"http://127.0.0.1:{info['port']}"
        log(f"snapshot: fake master on {url}, loaded in {info['load_seconds']:.1f}s")
        for i in range(args.repeat):
            with sandbox(tmp / f"h{i}", northd=False) as sb:
                cpu = CpuMeter({**sandbox_pids(sb), "hub": os.getpid(), "fake_master": master.proc.pid or 0})
                res, snap = asyncio.run(hub_mesos_path(sb.nb_remote, url, shape, cpu, args.part_timeout))
                hub_runs.append(res)
                if i == 0:
                    counts["hub"] = asyncio.run(nb_counts(sb.nb_remote, [LS, LSP, LB]))
                    prints["hub"] = asyncio.run(k8s_fingerprint(sb.nb_remote))
            log(f"snapshot: hub #{i + 1} {res['seconds']:.2f}s (SUBSCRIBED received {res['subscribed_received_seconds']:.2f}s, "
                f"snapshot emitted {res['snapshot_emitted_seconds']:.2f}s, {res['transactions']} txns)")  # fmt: skip
            ops, want = raw_ops(snap)
            with sandbox(tmp / f"r{i}", northd=False) as sb:
                raw_runs.append(asyncio.run(raw_transact(sb.nb_remote, ops)))
                if i == 0:
                    counts["raw"] = asyncio.run(nb_counts(sb.nb_remote, [LS, LSP, LB]))
                    prints["raw"] = asyncio.run(k8s_fingerprint(sb.nb_remote))
            log(f"snapshot: raw #{i + 1} {raw_runs[-1]:.2f}s ({sum(want.values())} rows)")
    finally:
        master.stop()
    hub = sorted(hub_runs, key=lambda x: x["seconds"])[(len(hub_runs) - 1) // 2]
    raw_s = sorted(raw_runs)[(len(raw_runs) - 1) // 2]
    rows = counts["hub"][LS] + counts["hub"][LSP]
    hub_out = {k: (r(v) if k.endswith("seconds") else v) for k, v in hub.items()}
    hub_out["samples"] = [r(x["seconds"]) for x in hub_runs]
    hub_out["rows_per_s"] = rate(rows, hub["seconds"])
    return {
        "shape": msgspec.to_builtins(shape),
        "fake_master_load_seconds": r(info["load_seconds"], 2),
        "nb_rows": counts["hub"],
        "nb_rows_raw": counts["raw"],
        "hub": hub_out,
        "raw": {"seconds": r(raw_s), "samples": [r(x) for x in raw_runs], "rows_per_s": rate(rows, raw_s)},
        "rows_identical": prints["hub"] == prints["raw"],
        "ratio_raw_vs_hub": r(raw_s / hub["seconds"], 3),
        "ratio_raw_vs_hub_after_snapshot": r(raw_s / max(1e-9, hub["seconds"] - hub["snapshot_emitted_seconds"]), 3),
    }


# ================================================================== driver
def main(args: argparse.Namespace) -> int:
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"bench mesos: unknown --parts {sorted(unknown)}; choose from {list(PARTS)}")
    started = time.perf_counter()
    out: dict[str, Any] = {"bench": "mesos", "env": environment(), "hub_id": HUB_ID, "source": str(SOURCE)}
    if "parse_normalize" in parts:
        out["parse_normalize"] = run_parse_normalize(args)
        log(f"parse_normalize: {out['parse_normalize']['events_per_s']:.0f} events/s (median)")
    if "snapshot" in parts:
        with short_tmpdir("bm", keep=args.keep) as tmp:
            out["snapshot"] = run_snapshot(args, tmp)
    targets: dict[str, bool] = {}
    if "parse_normalize" in out:
        targets[f"parse_normalize events_per_s >= {TARGET_EVENTS_PER_S:.0f}"] = out["parse_normalize"]["target_met"]
    if "snapshot" in out:
        targets["snapshot rows_identical"] = out["snapshot"]["rows_identical"]
    out["targets"] = targets
    out["target_met"] = all(targets.values())
    out["wall_seconds"] = round(time.perf_counter() - started, 1)
    emit(out)
    return 0


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    g = ap.add_argument_group("parse_normalize")
    g.add_argument("--tasks", type=int, default=20000, help="task lifecycles in the stream (6 events each; default 20000)")
    g.add_argument("--rounds", type=int, default=5, help="variants alternate in this many rounds (default 5); medians")
    g.add_argument("--budget", type=float, default=90.0, help="stop after the round that passes this (s)")
    g.add_argument("--profile", action="store_true", help="cProfile one extra, uncounted pass")
    g = ap.add_argument_group("snapshot")
    g.add_argument("--snapshot-tasks", type=int, default=20000)
    g.add_argument("--frameworks", type=int, default=10)
    g.add_argument("--agents", type=int, default=100)
    g.add_argument("--networks", type=int, default=4)
    g.add_argument("--repeat", type=int, default=3, help="hub and raw runs, alternating (default 3); medians count")
    ap.add_argument("--part-timeout", type=float, default=150.0, help="upper bound of each timed wait (s)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (databases and logs)")
