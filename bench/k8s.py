"""``bench k8s``: the Kubernetes adapter and the policy engine at cluster scale.

Three parts, each bounded in time, each next to a baseline from the same run:

* ``normalize_rate``  pod watch events (one JSON line each, built from the
                      pod fixture) decoded and normalized as the adapter does
                      (``json.loads`` + :func:`parse_watch_event` +
                      :func:`normalize_pod`), on one core.  Baselines: bare
                      ``json.loads`` and ``msgspec.json.decode`` of the same lines.
* ``pods_services``   a :class:`testkit.k8s_fake.FakeKubeApi` in a child process
                      (like a real API server, it has its own process) serving
                      pods on nodes in namespaces, and services with one
                      EndpointSlice each; a real :class:`K8sAdapter` feeds a
                      :class:`hub.bus.Bus` and a :class:`Programmer` (as hubd
                      does) into a fresh NB.  Timed from adapter start until
                      ``flush()`` returns after the first Snapshot.  Baseline: the
                      same LS/LSP/Load_Balancer rows as one raw JSON-RPC
                      ``transact`` on a fresh NB.
* ``policies_500``    canonical Endpoints and Namespaces, then the same plus the
                      Policies, as two Snapshots straight into one Programmer on
                      a sandbox with ovn-northd.  Per stage: the hub's time to
                      flush, then ovn-northd's time until ``ovn-nbctl --wait=sb
                      sync`` returns, the NB rows and the SB logical flows.  The
                      pods-only stage is the baseline the policy stage adds to.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import cProfile
import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec
import yaml

from bench.bulk import _profile_report
from bench.common import HUB_ID, emit, environment, ipv4, log, mac, r, rate, short_tmpdir
from core.adapter import AdapterSpec
from core.model import (
    Delete,
    Endpoint,
    Event,
    Expr,
    InputEvent,
    Namespace,
    Object,
    Peer,
    Policy,
    PolicyPort,
    PortSpec,
    Rule,
    Selector,
    Service,
    Snapshot,
    Source,
    Upsert,
    validate,
)
from core.nb import Programmer
from core.nb.tables import ACL, AS, LB, LS, LSP, PG
from core.nb.tables.load_balancer import lb_rows
from core.nb.tables.port import lsp_columns
from core.nb.tables.switch import ls_columns
from core.ovsdb import OvsdbClient, py_map, py_set
from core.ovsdb.values import to_ovsdb
from hub.bus import AdapterSink, Bus
from hub.sandbox import OvnSandbox

SOURCE = Source("k8s", "bench")
NETWORK = "default"
TARGET_EVENTS_PER_S = 100000.0
PARTS = ("normalize", "pods_services", "policies")
ROOT = Path(__file__).resolve().parents[1]
#: the repo's own copy of the fixture (a path, not an import: bench/ never imports tests)
POD_FIXTURE = ROOT / "tests" / "fixtures" / "kubernetes" / "pod.apimachinery-managedfields.yaml"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ helpers
def pod_template() -> dict[str, Any]:
    """The pod fixture with JSON types, as an API server sends it."""
    text = POD_FIXTURE.read_text()
    obj: dict[str, Any] = json.loads(json.dumps(yaml.safe_load(text), default=str))
    return obj


def k8s_uid(kind: int, i: int) -> str:
    """A deterministic uid shaped like a Kubernetes one (a UUID)."""
    return f"{kind:08x}-0000-4000-8000-{i:012x}"


def pod_ip(i: int) -> str:
    """Pod i's IPv4 address, from 10.128.0.0/9."""
    return ipv4((1 << 23) + i)


def svc_vip(s: int) -> str:
    """Service s's ClusterIP, from 172.30.0.0/16."""
    return f"172.30.{(s + 1) >> 8 & 255}.{(s + 1) & 255}"


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (``/proc/<pid>/stat``), in seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class CpuMeter:
    """CPU seconds that named processes spent between :meth:`start` and :meth:`stop`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._t0: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        out = {}
        for name, pid in self.pids.items():
            if pid == os.getpid():
                out[name] = time.process_time()
            else:
                with contextlib.suppress(OSError):
                    out[name] = cpu_seconds(pid)
        return out

    def start(self) -> None:
        self._t0 = self._now()

    def since_start(self) -> dict[str, float | None]:
        now = self._now()
        return {k: round(now[k] - self._t0[k], 2) if k in now and k in self._t0 else None for k in self.pids}

    def stop(self) -> dict[str, float | None]:
        end = self._now()
        self.used = {k: round(end[k] - self._t0[k], 2) for k in end if k in self._t0}
        return {k: self.used.get(k) for k in self.pids}


def sandbox_pids(sb: OvnSandbox) -> dict[str, int]:
    names = {"nb": "nb_ovsdb_server", "sb": "sb_ovsdb_server", "northd": "ovn_northd"}
    return {names[k]: p.pid for k, p in sb.procs.items() if k in names}


async def nb_counts(remote: str, tables: list[str], database: str = "OVN_Northbound") -> dict[str, int]:
    client = OvsdbClient(remote, database)
    await client.connect()
    try:
        res = await client.transact([{"op": "select", "table": t, "where": [], "columns": ["_uuid"]} for t in tables])
    finally:
        await client.close()
    return {t: len(x["rows"]) for t, x in zip(tables, res, strict=True)}


@contextlib.contextmanager
def sandbox(state_dir: Path, *, northd: bool) -> Iterator[OvnSandbox]:
    """A private NB (+SB and ovn-northd with ``northd``), always stopped."""
    sb = OvnSandbox(state_dir, northd=northd, sb=northd)
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


@contextlib.contextmanager
def one_core() -> Iterator[int | None]:
    """Pin this process to one CPU (restored after); yields the CPU or None."""
    try:
        before = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        yield None
        return
    cpu = min(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


# ================================================================== 1. normalize rate
def watch_lines(tpl: dict[str, Any], n: int, namespaces: int, nodes: int) -> list[bytes]:
    """``n`` distinct MODIFIED watch events (one JSON line each) of the fixture
    pod with uid, resourceVersion, creationTimestamp and podIPs added, and
    name, uid, namespace, node and IP varied."""
    pod = copy.deepcopy(tpl)
    pod["metadata"].update(
        name="@NAME@", namespace="@NS@", uid="@UID@", resourceVersion="@RV@", creationTimestamp="2019-07-08T09:31:18Z"
    )
    pod["spec"]["nodeName"] = "@NODE@"
    pod["status"]["podIP"] = "@IP@"
    pod["status"]["podIPs"] = [{"ip": "@IP@"}]
    text = json.dumps({"type": "MODIFIED", "object": pod}, separators=(",", ":"))
    parts = re.split(r"@(NAME|NS|UID|RV|NODE|IP)@", text)
    out: list[bytes] = []
    for i in range(n):
        values = {
            "NAME": f"some-name-{i:x}",
            "NS": f"ns-{i % namespaces}",
            "UID": k8s_uid(1, i),
            "RV": str(100000 + i),
            "NODE": f"node-{i % nodes}",
            "IP": pod_ip(i),
        }
        out.append("".join(values[p] if k % 2 else p for k, p in enumerate(parts)).encode())
    return out


def normalize_variants() -> dict[str, Callable[[bytes], Any]]:
    """What is timed per line.  ``decode_normalize`` is the adapter's path
    (adapter._handle_line + _apply_pod without the cache and the emit): the
    typed decode of the fields a pod's endpoint needs, normalized.
    ``dict_normalize`` is its dict path (untyped decode, parse_watch_event,
    normalize_pod), which a line takes when the typed one declines it."""
    from adapters.k8s.normalize import decode_pod_event, normalize_pod, parse_watch_event

    dec = msgspec.json.Decoder()

    def decode_normalize(line: bytes) -> Endpoint | None:
        ev = decode_pod_event(line, SOURCE, network=NETWORK)
        assert ev is not None
        return ev.endpoint

    def dict_normalize(line: bytes) -> Endpoint | None:
        return normalize_pod(parse_watch_event(dec.decode(line))["object"], SOURCE, network=NETWORK)

    return {
        "json_decode": json.loads,
        "msgspec_decode": dec.decode,
        "decode_normalize": decode_normalize,
        "dict_normalize": dict_normalize,
    }


def run_normalize(args: argparse.Namespace) -> dict[str, Any]:
    events: int = args.events
    pool_n = min(events, args.pool)
    lines = watch_lines(pod_template(), pool_n, args.namespaces, args.nodes)
    variants = normalize_variants()
    check = variants["decode_normalize"](lines[0])
    assert isinstance(check, Endpoint) and check.ips == (pod_ip(0),), check
    validate(check)
    rounds = max(1, args.rounds)
    per_round = max(1, events // rounds)
    spent = {name: 0.0 for name in variants}
    spent_cpu = {name: 0.0 for name in variants}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    samples_cpu: dict[str, list[float]] = {name: [] for name in variants}
    done = {name: 0 for name in variants}
    deadline = time.monotonic() + args.normalize_budget
    log(f"normalize: {events} events ({pool_n} distinct lines of {len(lines[0])} bytes), {rounds} rounds")
    with one_core() as cpu:
        for rnd in range(rounds):
            for name, fn in variants.items():
                k = 0
                c0, t0 = time.thread_time(), time.perf_counter()
                while k < per_round:
                    chunk = lines[: min(pool_n, per_round - k)]
                    for line in chunk:
                        fn(line)
                    k += len(chunk)
                dt, dc = time.perf_counter() - t0, time.thread_time() - c0
                spent[name] += dt
                spent_cpu[name] += dc
                done[name] += k
                samples[name].append(round(k / dt, 1))
                samples_cpu[name].append(round(k / dc, 1))
            log(f"normalize: round {rnd + 1}/{rounds}: " + ", ".join(f"{n} {samples_cpu[n][-1]:.0f}/cpu-s" for n in variants))
            if time.monotonic() > deadline and rnd + 1 < rounds:
                log(f"normalize: time budget {args.normalize_budget}s spent; stopping after {rnd + 1} rounds")
                break
        profile_top = None
        if args.profile:
            prof = cProfile.Profile()
            fn = variants["decode_normalize"]
            prof.enable()
            for line in lines:
                fn(line)
            prof.disable()
            profile_top = _profile_report(prof, None, top=20)
    rates = {name: rate(done[name], spent[name]) for name in variants}
    rates_cpu = {name: statistics.median(samples_cpu[name]) for name in variants}
    us = {name: round(spent_cpu[name] / done[name] * 1e6, 2) for name in variants}
    main = rates_cpu["decode_normalize"]
    per_round = [h / b for h, b in zip(samples_cpu["decode_normalize"], samples_cpu["msgspec_decode"], strict=True)]
    out: dict[str, Any] = {
        "events": done["decode_normalize"],
        "distinct_lines": pool_n,
        "line_bytes": len(lines[0]),
        "cpu": cpu,
        "events_per_s": rates["decode_normalize"],
        "events_per_cpu_s": round(main, 1),
        "events_per_cpu_s_range": [min(samples_cpu["decode_normalize"]), max(samples_cpu["decode_normalize"])],
        "target_events_per_s": TARGET_EVENTS_PER_S,
        "target_met": main >= TARGET_EVENTS_PER_S,
        "rates_per_s": rates,
        "rates_per_cpu_s": {name: round(v, 1) for name, v in rates_cpu.items()},
        "us_per_event": us,
        "samples_per_s": samples,
        "samples_per_cpu_s": samples_cpu,
        "ratio_vs_msgspec_decode": round(statistics.median(per_round), 3),
        "ratio_vs_msgspec_decode_range": [round(min(per_round), 3), round(max(per_round), 3)],
        "ratio_vs_json_decode": round(main / rates_cpu["json_decode"], 3),
        "ratio_dict_normalize_vs_msgspec_decode": round(rates_cpu["dict_normalize"] / rates_cpu["msgspec_decode"], 3),
    }
    if profile_top is not None:
        out["profile_top_tottime"] = profile_top
    return out


# ================================================================== 2. pods + services
class ClusterShape(msgspec.Struct, frozen=True):
    pods: int
    nodes: int
    namespaces: int
    services: int
    backends: int


def cluster_objects(shape: ClusterShape, tpl: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Raw API objects.  Pod i is in namespace ``ns-<(i // backends) % namespaces>``
    on ``node-<i % nodes>``, label ``app=svc-<i // backends>``; service s
    (ClusterIP, TCP 80 -> named port http/8080; every 10th also UDP 53 -> 5353)
    has one EndpointSlice with pods s*backends .. s*backends+backends-1, all
    ready."""
    b = shape.backends
    nodes = [
        {
            "metadata": {"name": f"node-{n}", "uid": k8s_uid(2, n), "labels": {"kubernetes.io/hostname": f"node-{n}"}},
            "status": {"addresses": [{"type": "InternalIP", "address": f"192.168.{n // 250}.{n % 250 + 1}"}]},
        }
        for n in range(shape.nodes)
    ]
    namespaces = [
        {
            "metadata": {
                "name": f"ns-{k}",
                "uid": k8s_uid(3, k),
                "labels": {"kubernetes.io/metadata.name": f"ns-{k}", "team": f"team-{k % 5}"},
            }
        }
        for k in range(shape.namespaces)
    ]
    base = copy.deepcopy(tpl)
    base["spec"]["containers"][0]["ports"] = [
        {"containerPort": 8080, "name": "http", "protocol": "TCP"},
        {"containerPort": 5353, "name": "dns", "protocol": "UDP"},
    ]
    pods = []
    for i in range(shape.pods):
        p = copy.deepcopy(base)
        meta = p["metadata"]
        meta.update(
            name=f"svc-{i // b}-{i % b:05x}",
            namespace=f"ns-{(i // b) % shape.namespaces}",
            uid=k8s_uid(1, i),
            creationTimestamp="2019-07-08T09:31:18Z",
        )
        meta["labels"] = dict(meta["labels"], app=f"svc-{i // b}")
        p["spec"]["nodeName"] = f"node-{i % shape.nodes}"
        p["status"]["podIP"] = pod_ip(i)
        p["status"]["podIPs"] = [{"ip": pod_ip(i)}]
        pods.append(p)
    services = []
    slices = []
    for s in range(shape.services):
        ns = f"ns-{s % shape.namespaces}"
        vip = svc_vip(s)
        ports = [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
        slice_ports = [{"name": "http", "port": 8080, "protocol": "TCP"}]
        if s % 10 == 0:
            ports.append({"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"})
            slice_ports.append({"name": "dns", "port": 5353, "protocol": "UDP"})
        services.append(
            {
                "metadata": {"name": f"svc-{s}", "namespace": ns, "uid": k8s_uid(4, s)},
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": vip,
                    "clusterIPs": [vip],
                    "selector": {"app": f"svc-{s}"},
                    "ports": ports,
                    "sessionAffinity": "None",
                },
            }
        )
        slices.append(
            {
                "metadata": {
                    "name": f"svc-{s}-x{s:04x}",
                    "namespace": ns,
                    "uid": k8s_uid(5, s),
                    "labels": {"kubernetes.io/service-name": f"svc-{s}"},
                },
                "addressType": "IPv4",
                "ports": slice_ports,
                "endpoints": [
                    {
                        "addresses": [pod_ip(i)],
                        "conditions": {"ready": True, "serving": True, "terminating": False},
                        "nodeName": f"node-{i % shape.nodes}",
                        "targetRef": {"kind": "Pod", "namespace": ns, "name": f"svc-{s}-{i % b:05x}"},
                    }
                    for i in range(s * b, min(shape.pods, (s + 1) * b))
                ],
            }
        )
    return {
        "Node": nodes,
        "Namespace": namespaces,
        "Pod": pods,
        "Service": services,
        "EndpointSlice": slices,
    }


def serve_fake(conn: Connection, shape_json: bytes) -> None:
    """Child process: a FakeKubeApi loaded with the cluster; sends
    ``{"port", "load_seconds", "objects"}``, serves until told to stop (or the
    parent's end of the pipe closes)."""
    asyncio.run(_serve_fake(conn, msgspec.json.decode(shape_json, type=ClusterShape)))


async def _serve_fake(conn: Connection, shape: ClusterShape) -> None:
    from testkit.k8s_fake import FakeKubeApi

    t0 = time.perf_counter()
    objects = cluster_objects(shape, pod_template())
    fake = FakeKubeApi(history=100)
    for kind, objs in objects.items():
        for o in objs:
            fake.add(kind, o)
    counts = {kind: len(objs) for kind, objs in objects.items()}
    del objects
    await fake.start()
    conn.send({"port": fake.port, "load_seconds": time.perf_counter() - t0, "objects": counts})
    try:
        await asyncio.to_thread(conn.recv)
    except EOFError:
        pass
    finally:
        await fake.stop()


class FakeServer:
    """The fake API server in a child process (spawned, so nothing of this
    process's state is shared); stopped by its own pid in :meth:`stop`."""

    def __init__(self, shape: ClusterShape) -> None:
        self.shape = shape
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=serve_fake, args=(child, msgspec.json.encode(shape)), name="fake-kube-api")
        self._child_conn = child
        self.info: dict[str, Any] = {}

    def start(self, timeout: float) -> dict[str, Any]:
        self.proc.start()
        self._child_conn.close()
        if not self._conn.poll(timeout):
            raise TimeoutError(f"fake API server not ready in {timeout}s")
        try:
            self.info = self._conn.recv()
        except EOFError:
            self.proc.join(5)
            raise RuntimeError(f"fake API server exited ({self.proc.exitcode}) before it was ready") from None
        return self.info

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.info['port']}"

    def write_kubeconfig(self, path: Path) -> Path:
        from testkit.k8s_fake import write_kubeconfig

        return write_kubeconfig(path, self.url)

    def stop(self) -> None:
        if self.proc.pid is None:  # never started
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


class TimedSink:
    """An :class:`hub.bus.AdapterSink` that notes when the first Snapshot leaves the adapter."""

    def __init__(self, inner: AdapterSink, cpu: CpuMeter) -> None:
        self.inner = inner
        self.cpu = cpu
        self.snapshot_at: float | None = None
        self.snapshot_cpu: dict[str, float | None] = {}
        self.snapshot_objects = 0
        self.rejected = 0

    async def emit(self, event: InputEvent) -> None:
        if isinstance(event, Snapshot) and self.snapshot_at is None:
            self.snapshot_at = time.perf_counter()
            self.snapshot_cpu = self.cpu.since_start()
            self.snapshot_objects = len(event.objects)
        elif not isinstance(event, Snapshot | Upsert | Delete):
            self.rejected += 1
        await self.inner.emit(event)


def time_adapter(adapter: Any, totals: dict[str, float]) -> None:
    """Time the adapter's phases before its Snapshot: the paged list requests
    (``_list``: client, transfer, page decode, and the server's work), the
    normalization of each resource's items (``_replace``) and the join of
    services with slices and node IPs (``_resync_services``)."""
    orig_list = adapter._list

    async def list_(*a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return await orig_list(*a, **kw)
        finally:
            totals["list_requests_seconds"] += time.perf_counter() - t

    adapter._list = list_

    def wrap(name: str, key: str) -> None:
        orig = getattr(adapter, name)

        def timed(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return orig(*a, **kw)
            finally:
                totals[key] += time.perf_counter() - t

        setattr(adapter, name, timed)

    wrap("_replace", "normalize_seconds")
    wrap("_resync_services", "services_join_seconds")


def timed_derive(prog: Programmer, totals: dict[str, float]) -> None:
    """Count the time spent in ``Programmer._derive``: where the derived rows
    are computed (``core.nb.tables.load_balancer.lb_rows``, ``core.nb.tables.policy.policy_rows``)."""
    orig = prog._derive

    def derive() -> None:
        t = time.perf_counter()
        try:
            orig()
        finally:
            totals["derive_seconds"] += time.perf_counter() - t

    prog._derive = derive  # type: ignore[method-assign]


def timed_transact(prog: Programmer, totals: dict[str, float]) -> None:
    """Count the time spent inside ``OvsdbClient.transact`` (as bench bulk does)."""
    client = prog._client
    assert client is not None
    orig = client.transact

    async def transact(ops: list[dict[str, Any]], timeout: float | None = 300.0,
                       on_reply: Callable[[list[Any]], None] | None = None) -> list[Any]:
        t = time.perf_counter()
        try:
            return await orig(ops, timeout, on_reply)
        finally:
            totals["transact_seconds"] += time.perf_counter() - t

    client.transact = transact  # type: ignore[method-assign]


async def hub_k8s_path(
    nb_remote: str, kubeconfig: Path, page_size: int, cpu: CpuMeter, timeout: float
) -> tuple[dict[str, Any], Snapshot]:
    """K8sAdapter → Bus → consumer → Programmer; adapter start to flush."""
    from adapters.k8s.adapter import K8sAdapter

    bus = Bus()
    prog = Programmer(nb_remote, HUB_ID, publish=bus.publish, publish_many=bus.publish_many)
    await prog.start()
    sub = bus.subscribe("programmer", accept=lambda e: isinstance(e, Snapshot | Upsert | Delete))
    applied = asyncio.Event()
    totals = {"apply_seconds": 0.0, "derive_seconds": 0.0, "transact_seconds": 0.0}
    applied_at = 0.0

    async def consume() -> None:  # hub/daemon.py Hub._consume
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

    timed_transact(prog, totals)
    timed_derive(prog, totals)
    spec = AdapterSpec(
        name="bench",
        type="k8s",
        cluster=SOURCE.cluster,
        options={"kubeconfig": str(kubeconfig), "page_size": page_size},
    )
    adapter = K8sAdapter(spec)
    phases = {"list_requests_seconds": 0.0, "normalize_seconds": 0.0, "services_join_seconds": 0.0}
    time_adapter(adapter, phases)
    sink = TimedSink(AdapterSink(bus, spec.name), cpu)
    writer = asyncio.create_task(prog.run(), name="nb-writer")
    consumer = asyncio.create_task(consume(), name="consumer")
    task: asyncio.Task[None] | None = None
    try:
        await prog.flush(timeout=30)  # the writer's first (empty) pass
        cpu.start()
        t0 = time.perf_counter()
        task = asyncio.create_task(adapter.run(sink), name="adapter:bench")
        async with asyncio.timeout(timeout):
            await applied.wait()
            await prog.flush()
        t_end = time.perf_counter()
        seconds = t_end - t0
        used = cpu.stop()
        snap = adapter.snapshot()
    finally:
        for t in (task, consumer, writer):
            if t is not None:
                t.cancel()
        await asyncio.gather(*(t for t in (task, consumer, writer) if t is not None), return_exceptions=True)
        await prog.close()
    assert sink.snapshot_at is not None
    return {
        "seconds": seconds,
        "list_seconds": sink.snapshot_at - t0,
        "adapter_phases": {k: r(v) for k, v in phases.items()},
        "process_cpu_until_snapshot": sink.snapshot_cpu,
        "apply_seconds": totals["apply_seconds"],
        "write_seconds": t_end - applied_at,
        "derive_seconds": totals["derive_seconds"],
        "transact_seconds": totals["transact_seconds"],
        "transactions": prog.transactions,
        "writes": prog.writes,
        "failed": len(prog.failed),
        "rejected_inputs": sink.rejected,
        "snapshot_objects": sink.snapshot_objects,
        "process_cpu": used,
    }, snap


def raw_k8s_ops(snap: Snapshot) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The rows the hub writes for the snapshot, as one transaction: the switch
    (``ports`` and ``load_balancer`` as named uuids), every LSP, every LB
    (``core.nb.tables.load_balancer.lb_rows``, the programmer's LB row builder)."""
    eps = [o for o in snap.objects if isinstance(o, Endpoint)]
    svcs = [o for o in snap.objects if isinstance(o, Service)]
    lbs = [row for svc in svcs for row in lb_rows(svc, HUB_ID)]
    ls_row = to_ovsdb(ls_columns(SOURCE, NETWORK, None, HUB_ID))
    ls_row["ports"] = ["set", [["named-uuid", f"p{i}"] for i in range(len(eps))]]
    ls_row["load_balancer"] = ["set", [["named-uuid", f"b{i}"] for i in range(len(lbs))]]
    ops: list[dict[str, Any]] = [{"op": "insert", "table": LS, "row": ls_row, "uuid-name": "s0"}]
    ops += [
        {"op": "insert", "table": LSP, "row": to_ovsdb(lsp_columns(ep, HUB_ID)), "uuid-name": f"p{i}"}
        for i, ep in enumerate(eps)
    ]
    ops += [
        {"op": "insert", "table": LB, "row": to_ovsdb(row.columns), "uuid-name": f"b{i}"} for i, row in enumerate(lbs)
    ]
    return ops, {LS: 1, LSP: len(eps), LB: len(lbs)}


async def raw_transact(remote: str, ops: list[dict[str, Any]]) -> float:
    client = OvsdbClient(remote)
    await client.connect()
    try:
        t0 = time.perf_counter()
        result = await client.transact(ops)
        seconds = time.perf_counter() - t0
    finally:
        await client.close()
    assert len(result) == len(ops)
    return seconds


async def k8s_fingerprint(remote: str) -> dict[str, Any]:
    """What was written, uuids left out: switches (with port/LB counts), ports, LBs."""
    client = OvsdbClient(remote)
    await client.connect()
    try:
        res = await client.transact(
            [
                {
                    "op": "select",
                    "table": LS,
                    "where": [],
                    "columns": ["name", "ports", "load_balancer", "external_ids"],
                },
                {
                    "op": "select",
                    "table": LSP,
                    "where": [],
                    "columns": ["name", "addresses", "port_security", "options", "external_ids"],
                },
                {
                    "op": "select",
                    "table": LB,
                    "where": [],
                    "columns": ["name", "vips", "protocol", "options", "external_ids"],
                },
            ]
        )
    finally:
        await client.close()

    def norm(row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in row.items():
            if k in ("ports", "load_balancer"):
                out[k] = len(py_set(v)) if v != ["set", []] else 0
            elif isinstance(v, list) and v and v[0] == "map":
                out[k] = py_map(v)
            elif isinstance(v, list) and v and v[0] == "set":
                out[k] = sorted(py_set(v))
            else:
                out[k] = v
        return out

    switches = sorted((norm(x) for x in res[0]["rows"]), key=lambda x: x["name"])
    ports = {x["name"]: norm(x) for x in res[1]["rows"]}
    lbs = {x["name"]: norm(x) for x in res[2]["rows"]}
    return {"switches": switches, "ports": ports, "lbs": lbs}


def run_pods_services(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    shape = ClusterShape(args.pods, args.nodes, args.namespaces, args.services, args.backends)
    log(f"pods_services: starting the fake API server ({shape.pods} pods, {shape.services} services)")
    fake = FakeServer(shape)
    hub_runs: list[dict[str, Any]] = []
    raw_runs: list[float] = []
    prints: dict[str, Any] = {}
    counts: dict[str, dict[str, int]] = {}
    try:
        info = fake.start(timeout=args.part_timeout)
        log(f"pods_services: fake API server on port {info['port']}, loaded in {info['load_seconds']:.1f}s")
        kubeconfig = fake.write_kubeconfig(tmp / "kubeconfig")
        snap: Snapshot | None = None
        for i in range(args.repeat):
            with sandbox(tmp / f"h{i}", northd=False) as sb:
                pids = {**sandbox_pids(sb), "hub": os.getpid(), "fake_api_server": fake.proc.pid or 0}
                cpu = CpuMeter(pids)
                res, snap = asyncio.run(hub_k8s_path(sb.nb_remote, kubeconfig, args.page_size, cpu, args.part_timeout))
                hub_runs.append(res)
                if i == 0:
                    counts["hub"] = asyncio.run(nb_counts(sb.nb_remote, [LS, LSP, LB]))
                    prints["hub"] = asyncio.run(k8s_fingerprint(sb.nb_remote))
            log(
                f"pods_services: hub #{i + 1} {res['seconds']:.2f}s (list {res['list_seconds']:.2f}s, "
                f"{res['transactions']} txns, {res['writes']} writes)"
            )
            assert snap is not None
            ops, want = raw_k8s_ops(snap)
            with sandbox(tmp / f"r{i}", northd=False) as sb:
                raw_runs.append(asyncio.run(raw_transact(sb.nb_remote, ops)))
                if i == 0:
                    counts["raw"] = asyncio.run(nb_counts(sb.nb_remote, [LS, LSP, LB]))
                    prints["raw"] = asyncio.run(k8s_fingerprint(sb.nb_remote))
            del ops
            log(f"pods_services: raw #{i + 1} {raw_runs[-1]:.2f}s ({sum(want.values())} rows)")
    finally:
        fake.stop()
    hub = sorted(hub_runs, key=lambda x: x["seconds"])[(len(hub_runs) - 1) // 2]
    raw_s = _median(raw_runs)
    vips = sum(len(x["vips"]) for x in prints["hub"]["lbs"].values())
    backends = sum(len(b.split(",")) for x in prints["hub"]["lbs"].values() for b in x["vips"].values())
    hub_out = {k: (r(v) if k.endswith("seconds") else v) for k, v in hub.items()}
    hub_out["samples"] = [r(x["seconds"]) for x in hub_runs]
    hub_rows = counts["hub"][LSP] + counts["hub"][LB] + counts["hub"][LS]
    hub_out["rows_per_s"] = rate(hub_rows, hub["seconds"])
    return {
        "shape": msgspec.to_builtins(shape),
        "page_size": args.page_size,
        "fake_api_server": {"load_seconds": r(info["load_seconds"], 2), "objects": info["objects"]},
        "nb_rows": counts["hub"],
        "nb_rows_raw": counts["raw"],
        "lb_vips": vips,
        "lb_backends": backends,
        "hub": hub_out,
        "raw": {"seconds": r(raw_s), "samples": [r(x) for x in raw_runs], "rows_per_s": rate(hub_rows, raw_s)},
        "rows_identical": prints["hub"] == prints["raw"],
        "ratio_raw_vs_hub": r(raw_s / hub["seconds"], 3),
        "ratio_raw_vs_hub_write": r(raw_s / max(1e-9, hub["seconds"] - hub["list_seconds"]), 3),
    }


# ================================================================== 3. policies
def policy_objects(pods: int, namespaces: int, policies: int, nodes: int) -> list[Object]:
    """Namespaces (labels: name, team, env), pods (app, tier, named ports http
    and metrics) and a mix of policies, ``policies // namespaces`` per
    namespace, cycling through ten shapes: default deny; allow from the
    namespace; app -> app on TCP 8080 (x3); namespaceSelector (team) on 80/443;
    namespace AND pod selector on 5432; ipBlock with except on 443; egress to
    DNS in ns-0 (UDP 53) plus an ipBlock on a port range; a named port from
    ``app In (...)``."""
    ns_objs = [
        Namespace(
            source=SOURCE,
            name=f"ns-{k}",
            labels={
                "kubernetes.io/metadata.name": f"ns-{k}",
                "team": f"team-{k % 5}",
                "env": "prod" if k % 2 == 0 else "dev",
            },
        )
        for k in range(namespaces)
    ]
    tiers = ("web", "db", "cache")
    ports = (PortSpec(8080, "tcp", "http"), PortSpec(9090, "tcp", "metrics"))
    eps = [
        Endpoint(
            source=SOURCE,
            uid=k8s_uid(1, i),
            namespace=f"ns-{i % namespaces}",
            name=f"pod-{i}",
            kind="pod",
            network=NETWORK,
            node=f"node-{i % nodes}",
            ips=(pod_ip(i),),
            mac=mac(i),
            labels={"app": f"app-{(i // namespaces) % 10}", "tier": tiers[(i // namespaces) % 3]},
            ports=ports,
        )
        for i in range(pods)
    ]

    def sel(**labels: str) -> Selector:
        return Selector(match_labels=labels)

    def tcp(port: int | str | None, end: int | None = None) -> PolicyPort:
        return PolicyPort(protocol="tcp", port=port, end_port=end)

    pols: list[Policy] = []
    for j in range(policies):
        k = j % namespaces
        shape = (j // namespaces) % 10
        ns = f"ns-{k}"

        def policy(
            pod_selector: Selector, ingress: tuple[Rule, ...] | None = None, egress: tuple[Rule, ...] | None = None
        ) -> Policy:
            return Policy(
                source=SOURCE,
                uid=k8s_uid(6, j),  # noqa: B023 - called right away
                namespace=ns,  # noqa: B023
                name=f"pol-{j}-s{shape}",  # noqa: B023
                pod_selector=pod_selector,
                ingress=ingress,
                egress=egress,
            )

        if shape == 0:
            pol = policy(pod_selector=Selector(), ingress=())
        elif shape == 1:
            pol = policy(pod_selector=Selector(), ingress=(Rule(peers=(Peer(pod_selector=Selector()),)),))
        elif shape in (2, 3, 4):
            a, b = f"app-{shape}", f"app-{shape + 1}"
            pol = policy(
                pod_selector=sel(app=a), ingress=(Rule(peers=(Peer(pod_selector=sel(app=b)),), ports=(tcp(8080),)),)
            )
        elif shape == 5:
            peer = Peer(namespace_selector=sel(team=f"team-{k % 5}"))
            pol = policy(pod_selector=sel(tier="web"), ingress=(Rule(peers=(peer,), ports=(tcp(80), tcp(443))),))
        elif shape == 6:
            peer = Peer(namespace_selector=sel(env="prod"), pod_selector=sel(tier="web"))
            pol = policy(pod_selector=sel(tier="db"), ingress=(Rule(peers=(peer,), ports=(tcp(5432),)),))
        elif shape == 7:
            blocks = (Peer(cidr="0.0.0.0/0", except_cidrs=("10.0.0.0/8",)), Peer(cidr="192.168.0.0/16"))
            pol = policy(pod_selector=sel(tier="web"), ingress=(Rule(peers=blocks, ports=(tcp(443),)),))
        elif shape == 8:
            dns = Rule(
                peers=(Peer(namespace_selector=sel(**{"kubernetes.io/metadata.name": "ns-0"})),),
                ports=(PolicyPort(protocol="udp", port=53),),
            )
            block = Rule(peers=(Peer(cidr="10.0.0.0/8", except_cidrs=("10.128.0.0/9",)),), ports=(tcp(8000, 8100),))
            pol = policy(pod_selector=sel(app=f"app-{k % 10}"), egress=(dns, block))
        else:
            peer = Peer(
                pod_selector=Selector(
                    match_expressions=(Expr(key="app", operator="In", values=("app-1", "app-2", "app-3")),)
                )
            )
            pol = policy(pod_selector=sel(tier="web"), ingress=(Rule(peers=(peer,), ports=(tcp("http"),)),))
        pols.append(pol)
    objs: list[Object] = [*ns_objs, *eps, *pols]
    checks: list[Object] = [*ns_objs[:3], *eps[:: max(1, pods // 50)], *pols]
    for o in checks:
        validate(o)
    return objs


def _wait_time(text: str) -> dict[str, float]:
    """``ovn-nbctl --print-wait-time`` lines → milliseconds."""
    out: dict[str, float] = {}
    for key, pattern in (
        ("delay_ms", r"delay before processing:\s*(\d+)ms"),
        ("completion_ms", r"completion:\s*(\d+)ms"),
    ):
        m = re.search(pattern, text)
        if m:
            out[key] = float(m.group(1))
    return out


def nbctl_sync(sb: OvnSandbox, timeout: float) -> tuple[float, dict[str, float]]:
    """``ovn-nbctl --wait=sb sync``: returns once ovn-northd has processed
    every NB change so far (NB_Global.sb_cfg caught up with nb_cfg)."""
    argv = [
        shutil.which("ovn-nbctl") or "ovn-nbctl",
        f"--db={sb.nb_remote}",
        f"--timeout={max(1, int(timeout))}",
        "--wait=sb",
        "--print-wait-time",
        "sync",
    ]
    t0 = time.perf_counter()
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 10)
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"ovn-nbctl --wait=sb sync failed: {res.stderr.strip()[:300]}")
    return seconds, _wait_time(res.stdout)


def northd_stopwatches(sb: OvnSandbox, names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """``stopwatch/show`` of ovn-northd: samples and maximum (ms) per stopwatch."""
    res = subprocess.run(
        [shutil.which("ovn-appctl") or "ovn-appctl", "-t", str(sb.dir / "northd.ctl"), "stopwatch/show"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    out: dict[str, dict[str, float]] = {}
    for block in res.stdout.split("Statistics for ")[1:]:
        name = block.split("'")[1]
        if name not in names:
            continue
        samples = re.search(r"Total samples:\s*(\d+)", block)
        maximum = re.search(r"Maximum:\s*(\d+) msec", block)
        out[name] = {
            "samples": float(samples.group(1)) if samples else 0.0,
            "max_ms": float(maximum.group(1)) if maximum else 0.0,
        }
    return out


def northd_reset(sb: OvnSandbox) -> None:
    subprocess.run(
        [shutil.which("ovn-appctl") or "ovn-appctl", "-t", str(sb.dir / "northd.ctl"), "stopwatch/reset"],
        capture_output=True,
        timeout=10,
    )


STOPWATCHES = ("ovn-northd-loop", "ovnnb_db_run", "build_lflows", "lflows_to_sb", "ovnsb_db_run")
SB_TABLES = ["Logical_Flow", "Port_Group", "Address_Set"]


class PolicyStage:
    """One Snapshot into a running Programmer, then ovn-northd: hub time to
    flush, northd time after it (``--wait=sb sync``), and what came out."""

    def __init__(self, sb: OvnSandbox, prog: Programmer, totals: dict[str, float], cpu: CpuMeter) -> None:
        self.sb = sb
        self.prog = prog
        self.totals = totals
        self.cpu = cpu

    async def run(self, snap: Snapshot, timeout: float) -> dict[str, Any]:
        prog, sb = self.prog, self.sb
        await asyncio.to_thread(northd_reset, sb)
        for k in self.totals:
            self.totals[k] = 0.0
        txns, writes = prog.transactions, prog.writes
        self.cpu.start()
        t0 = time.perf_counter()
        prog.apply(snap)
        apply_seconds = time.perf_counter() - t0
        async with asyncio.timeout(timeout):
            await prog.flush()
        hub_seconds = time.perf_counter() - t0
        sync_seconds, wait = await asyncio.to_thread(nbctl_sync, sb, timeout)
        total = time.perf_counter() - t0
        used = self.cpu.stop()
        watches = await asyncio.to_thread(northd_stopwatches, sb, STOPWATCHES)
        return {
            "hub_seconds": hub_seconds,
            "apply_seconds": apply_seconds,
            "derive_seconds": self.totals["derive_seconds"],
            "transact_seconds": self.totals["transact_seconds"],
            "transactions": prog.transactions - txns,
            "writes": prog.writes - writes,
            "failed": len(prog.failed),
            "northd_after_flush_seconds": sync_seconds,
            "nbctl_wait_time": wait,
            "total_seconds": total,
            "process_cpu": used,
            "northd_stopwatches": watches,
            "nb_rows": await nb_counts(sb.nb_remote, [LS, LSP, PG, AS, ACL]),
            "sb_rows": await nb_counts(sb.sb_remote, SB_TABLES, "OVN_Southbound"),
        }


async def hub_policy_path(
    sb: OvnSandbox, stages: list[Snapshot], cpu: CpuMeter, timeout: float
) -> list[dict[str, Any]]:
    """Each Snapshot in turn into one Programmer (as hubd's consumer would)."""
    prog = Programmer(sb.nb_remote, HUB_ID)
    await prog.start()
    totals = {"transact_seconds": 0.0, "derive_seconds": 0.0}
    timed_transact(prog, totals)
    timed_derive(prog, totals)
    writer = asyncio.create_task(prog.run(), name="nb-writer")
    out = []
    try:
        await prog.flush(timeout=30)
        await asyncio.to_thread(nbctl_sync, sb, 30)  # northd made NB_Global and is idle
        stage = PolicyStage(sb, prog, totals, cpu)
        for snap in stages:
            out.append(await stage.run(snap, timeout))
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await prog.close()
    return out


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (r(v) if k.endswith("seconds") and isinstance(v, float) else v) for k, v in d.items()}


def run_policies(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    objs = policy_objects(args.policy_pods, args.policy_namespaces, args.policies, args.nodes)
    pods_only = Snapshot(source=SOURCE, objects=tuple(o for o in objs if not isinstance(o, Policy)))
    full = Snapshot(source=SOURCE, objects=tuple(objs))
    log(f"policies: {args.policies} policies over {args.policy_pods} pods in {args.policy_namespaces} namespaces")
    with sandbox(tmp / "p", northd=True) as sb:
        idle_sync, _ = nbctl_sync(sb, 30)
        cpu = CpuMeter({**sandbox_pids(sb), "hub": os.getpid()})
        pods, pol = asyncio.run(hub_policy_path(sb, [pods_only, full], cpu, args.part_timeout))
    log(
        f"policies: pods stage hub {pods['hub_seconds']:.2f}s + northd {pods['northd_after_flush_seconds']:.2f}s; "
        f"policies stage hub {pol['hub_seconds']:.2f}s (derive {pol['derive_seconds']:.2f}s, "
        f"{pol['transactions']} txns) + northd {pol['northd_after_flush_seconds']:.2f}s, "
        f"{pol['sb_rows']['Logical_Flow']} logical flows"
    )
    added_flows = pol["sb_rows"]["Logical_Flow"] - pods["sb_rows"]["Logical_Flow"]
    return {
        "policies": args.policies,
        "pods": args.policy_pods,
        "namespaces": args.policy_namespaces,
        **_rounded(pol),
        "logical_flows_added": added_flows,
        "ratio_northd_vs_hub": r(pol["northd_after_flush_seconds"] / pol["hub_seconds"], 3),
        "idle_sync_seconds": r(idle_sync),
        "pods_stage": _rounded(pods),
    }


# ================================================================== driver
def main(args: argparse.Namespace) -> int:
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"bench k8s: unknown --parts {sorted(unknown)}; choose from {list(PARTS)}")
    started = time.perf_counter()
    out: dict[str, Any] = {"bench": "k8s", "env": environment(), "hub_id": HUB_ID, "source": str(SOURCE)}
    if "normalize" in parts:
        out["normalize_rate"] = run_normalize(args)
        log(f"normalize: {out['normalize_rate']['events_per_s']:.0f} events/s")
    with short_tmpdir("bk", keep=args.keep) as tmp:
        if "pods_services" in parts:
            out["pods_services"] = run_pods_services(args, tmp)
        if "policies" in parts:
            out["policies_500"] = run_policies(args, tmp)
    targets: dict[str, bool] = {}
    if "normalize_rate" in out:
        targets[f"normalize events_per_s >= {TARGET_EVENTS_PER_S:.0f}"] = out["normalize_rate"]["target_met"]
    if "pods_services" in out:
        targets["pods_services rows_identical"] = out["pods_services"]["rows_identical"]
    out["targets"] = targets
    out["target_met"] = all(targets.values())
    out["wall_seconds"] = round(time.perf_counter() - started, 1)
    emit(out)
    return 0


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    g = ap.add_argument_group("normalize_rate")
    g.add_argument("--events", type=int, default=200000, help="pod watch events per variant (default 200000)")
    g.add_argument("--pool", type=int, default=10000, help="distinct event lines, cycled (default 10000)")
    g.add_argument("--rounds", type=int, default=5, help="variants alternate in this many rounds (default 5)")
    g.add_argument("--normalize-budget", type=float, default=60.0, help="stop after the round that passes this (s)")
    g.add_argument("--profile", action="store_true", help="cProfile one extra, uncounted pass over the distinct lines")
    g = ap.add_argument_group("pods_services")
    g.add_argument("--pods", type=int, default=20000)
    g.add_argument("--nodes", type=int, default=100)
    g.add_argument("--namespaces", type=int, default=50)
    g.add_argument("--services", type=int, default=2000)
    g.add_argument("--backends", type=int, default=10, help="ready endpoints per EndpointSlice (default 10)")
    g.add_argument("--page-size", type=int, default=500, help="K8sAdapter page_size (default 500)")
    g.add_argument("--repeat", type=int, default=3, help="hub and raw runs, alternating (default 3); medians count")
    g = ap.add_argument_group("policies_500")
    g.add_argument("--policies", type=int, default=500)
    g.add_argument("--policy-pods", type=int, default=5000)
    g.add_argument("--policy-namespaces", type=int, default=50)
    ap.add_argument("--part-timeout", type=float, default=150.0, help="upper bound of each timed wait (s)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (databases and logs)")
