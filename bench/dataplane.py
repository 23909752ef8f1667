"""``bench dataplane``: container start to first packet through OVN, on one host.

Two runs, each on a fresh one-host OVN data plane (:class:`testkit.dataplane.OneHostOvn`:
NB/SB/northd, its own Open_vSwitch DB, ``ovs-vswitchd`` netdev in a private
netns, ``ovn-controller``; chassis ``node1``):

``hub``     the product path.  A private dockerd (:class:`testkit.dockerd.PrivateDockerd`,
            image ``busybox:hub``), a ``hubd`` subprocess (docker adapter,
            ``node = "node1"``, wrapper-mode network ``blue`` = 10.80.0.0/16)
            and the node side (:class:`adapters.docker.node.DockerNode`,
            in-process, in a thread with its own event loop, as
            ``hubd --role node`` runs it).  N ``--network none`` containers
            labeled ``ovn-hub.network=blue`` with static ``ovn-hub.ip`` /
            ``ovn-hub.mac`` are created first, then started in a burst
            (``--concurrency`` start calls in flight).  Per container, from the
            timestamp of its Docker ``start`` event (``timeNano``, converted to
            this process' monotonic clock) to
            (a) its Logical_Switch_Port in NB (``commit``: the insert reaches a
                monitor this bench holds on NB),
            (b) NB ``Logical_Switch_Port.up`` true (``up``, same monitor),
            (c) the first ICMP echo reply (``first_reply``) received by a prober.
            Also the node's plug begin / end (``Reconciler.plug`` wrapped on
            the instance; ``on_plugged`` gives the node's own start-event arrival),
            the Docker start call durations, and the hub's own histograms
            ``ovn_hub_event_to_commit_seconds`` / ``ovn_hub_commit_to_up_seconds``
            scraped from hubd's ``/metrics`` before and after the burst
            (quantiles derived from the bucket deltas, as histogram_quantile does).

``driver``  the same burst through the OVN Hub Docker network driver, in the same run: the node
            thread also serves the driver (:class:`adapters.docker.drivernode.DriverNode`, as
            ``hubd --role node`` with ``[node] driver_socket``), installed in the private
            dockerd through a uniquely named spec file in ``/etc/docker/plugins`` (removed
            afterwards); hubd's adapter has ``driver`` = that name.  The containers are
            ``docker run --network green --ip …`` on a driver network (``--subnet``
            10.80.0.0/16 ``--gateway`` 10.80.0.1; MAC 0a:58 + IP, the driver's); the prober
            is one too.  The plug stage is the driver's: its veth is made at ``Join``
            (``plug_begin``, before the start event) and bound on br-int once NB has the
            port (``plugged``).

``direct``  the baseline, no hub, no Docker: the bench is an ideal
            orchestrator that does one port at a time.  For port i it takes
            ``t_i``, writes its Logical_Switch_Port (the columns the hub writes,
            :func:`core.nb.tables.port.lsp_columns`) in one transaction, then plugs a
            netns with :meth:`OneHostOvn.add_port` (veth, ``ovs-vsctl
            add-port``); latencies are from ``t_i`` with the same monitor and
            prober.  There is no queueing here, so it is the floor OVN itself
            sets (northd + ovn-controller + flows); ``ratio_hub_vs_direct``
            divides the hub's latencies by these (N <= 998 only: veth names).

The prober is a wrapped container itself in the hub run (``dp-probe``,
10.80.0.2, plugged by the node before the burst) and a netns port in the
direct run; in both a small raw-socket pinger (``python -c``, run in the
probe's netns with ``nsenter --net``) sends one echo per ``--interval`` to every
target not answered yet, stops at the first reply per target or after
``--timeout`` seconds, and prints the reply times (CLOCK_MONOTONIC is shared by
all processes here).  Permanent neighbour entries in the probe's netns keep
ARP out of the measurement.

Context in the same JSON: CPU seconds per component over the burst window
(``/proc/<pid>/stat`` of the processes started here, dockerd's containerd and
shims found by their command line, and the machine's busy time from
``/proc/stat``: ``untracked_seconds`` is the kernel and anything else running),
dockerd's inspect latency during the burst (the adapter and the node inspect
every container they hear of), the Docker start call durations, and the load
average before and after (other work on the machine shows up there).

Everything is started by this process and stopped by pid in ``finally``
blocks; traffic stays inside the namespaces created here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from adapters.docker.driver import endpoint_mac
from adapters.docker.drivernode import DriverNode
from adapters.docker.node import DockerNode, NodeOptions
from bench.common import HUB_ID, emit, environment, log, mb, proc_status_kb, r, short_tmpdir
from bench.resync import HubdProcess, NotifySocket
from core.model import Endpoint, Network, Source
from core.names import UID, ls_name, lsp_name
from core.nb.tables import LS, LSP
from core.nb.tables.port import lsp_columns
from core.nb.tables.switch import ls_columns
from core.ovsdb import OvsdbClient, py_map
from core.ovsdb.values import to_ovsdb
from core.vif import Attachment
from testkit import dockerplugin
from testkit.dataplane import OneHostOvn
from testkit.dockerd import PrivateDockerd, docker, import_busybox

CHASSIS = "node1"
NETWORK = "blue"
SUBNET = "10.80.0.0/16"
PREFIX = 16
GATEWAY = "10.80.0.1"
PROBE_IP = "10.80.0.2"
PROBE_MAC = "0a:80:00:00:00:02"
FIRST_HOST = 10  # targets: 10.80.0.10, 10.80.0.11, ...
IMAGE = "busybox:hub"
DOCKER_SOURCE = Source("docker", "local")
DIRECT_SOURCE = Source("static", "direct")
#: ``testkit.dataplane`` names veths ``<tag>h<n>`` (15 chars max): n < 1000.
DIRECT_MAX = 998
HISTOGRAMS = {
    "event_to_commit": "ovn_hub_event_to_commit_seconds",
    "commit_to_up": "ovn_hub_commit_to_up_seconds",
}

# Runs in the probe's netns: one echo per round to every unanswered target,
# first reply per target recorded with time.monotonic(); bounded in rounds and time.
PINGER = r"""
import json, os, select, socket, struct, sys, time
cfg = json.loads(sys.stdin.readline())
targets = list(cfg["targets"])
interval = float(cfg["interval"])
deadline = time.monotonic() + float(cfg["timeout"])
max_rounds = int(float(cfg["timeout"]) / interval) + 2
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.setblocking(False)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
ident = os.getpid() & 0xFFFF
payload = b"ovn-hub-bench"

def echo(seq):
    b = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
    padded = b + b"\0" * (len(b) % 2)
    total = sum(struct.unpack("!%dH" % (len(padded) // 2), padded))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return struct.pack("!BBHHH", 8, 0, ~total & 0xFFFF, ident, seq) + payload

pending = set(targets)
first = {}
sent = errors = rounds = 0
print("R", flush=True)
nxt = time.monotonic()
while pending and rounds < max_rounds:
    now = time.monotonic()
    if now >= deadline:
        break
    if now >= nxt:
        rounds += 1
        pkt = echo(rounds & 0xFFFF)
        for ip in targets:
            if ip in pending:
                try:
                    s.sendto(pkt, (ip, 0))
                    sent += 1
                except OSError:
                    errors += 1
        nxt = now + interval
    ready, _, _ = select.select([s], [], [], max(0.0, min(nxt, deadline) - time.monotonic()))
    if ready:
        for _ in range(65536):
            try:
                data, addr = s.recvfrom(2048)
            except BlockingIOError:
                break
            t = time.monotonic()
            ihl = (data[0] & 15) * 4
            if len(data) >= ihl + 8 and data[ihl] == 0 and addr[0] in pending:
                if struct.unpack("!H", data[ihl + 4 : ihl + 6])[0] == ident:
                    pending.discard(addr[0])
                    first[addr[0]] = t
cpu = os.times()
print(json.dumps({"first": first, "sent": sent, "errors": errors, "rounds": rounds,
                  "unanswered": sorted(pending), "cpu_seconds": cpu.user + cpu.system}), flush=True)
"""


# ------------------------------------------------------------------ helpers
def target_ip(i: int) -> str:
    x = (10 << 24) | (80 << 16) | (FIRST_HOST + i)
    return f"10.80.{(x >> 8) & 255}.{x & 255}"


def target_mac(i: int) -> str:
    x = FIRST_HOST + i
    return f"0a:80:00:{(x >> 16) & 255:02x}:{(x >> 8) & 255:02x}:{x & 255:02x}"


def stats(values: list[float]) -> dict[str, Any]:
    """n, min, p50, p99, max (nearest rank), mean; seconds rounded to 0.1 ms."""
    if not values:
        return {"n": 0}
    v = sorted(values)

    def rank(q: float) -> float:
        return v[max(0, math.ceil(q * len(v)) - 1)]

    return {
        "n": len(v),
        "min": r(v[0]),
        "p50": r(rank(0.5)),
        "p99": r(rank(0.99)),
        "max": r(v[-1]),
        "mean": r(statistics.fmean(v)),
    }


def deltas(start: dict[str, float], end: dict[str, float]) -> list[float]:
    return [end[k] - start[k] for k in end if k in start]


def wall_to_mono_offset_ns() -> int:
    """time.time_ns() - time.monotonic_ns(), from the tightest of a few samples."""
    best: tuple[int, int] | None = None
    for _ in range(5):
        m0 = time.monotonic_ns()
        w = time.time_ns()
        m1 = time.monotonic_ns()
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, w - (m0 + m1) // 2)
    assert best is not None
    return best[1]


def parse_histograms(text: str) -> dict[str, dict[str, Any]]:
    """Buckets (le → cumulative count), sum and count of the hub's latency histograms."""
    out: dict[str, dict[str, Any]] = {k: {"buckets": {}, "sum": 0.0, "count": 0.0} for k in HISTOGRAMS}
    names = {v: k for k, v in HISTOGRAMS.items()}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        metric, _, value = line.rpartition(" ")
        base, _, labels = metric.partition("{")
        for suffix in ("_bucket", "_sum", "_count"):
            if base.endswith(suffix) and base[: -len(suffix)] in names:
                key = names[base[: -len(suffix)]]
                if suffix == "_bucket":
                    le = labels.split('le="', 1)[1].split('"', 1)[0]
                    out[key]["buckets"][le] = float(value)
                else:
                    out[key][suffix[1:]] = float(value)
    return out


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus histogram_quantile over (upper bound, cumulative count) pairs."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for le, cum in buckets:
        if cum >= rank:
            if math.isinf(le):
                return lower  # above the highest finite bucket: its bound is all we know
            return lower + (le - lower) * ((rank - below) / (cum - below) if cum > below else 1.0)
        lower, below = le, cum
    return lower


def histogram_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What one histogram observed between two scrapes."""
    count = after["count"] - before["count"]
    total = after["sum"] - before["sum"]
    buckets = sorted(
        ((float(le), after["buckets"][le] - before["buckets"].get(le, 0.0)) for le in after["buckets"]),
        key=lambda x: x[0],
    )
    return {
        "count": int(count),
        "sum_seconds": r(total),
        "mean_seconds": r(total / count) if count else None,
        "p50_seconds": r(histogram_quantile(0.5, buckets)),
        "p99_seconds": r(histogram_quantile(0.99, buckets)),
        "buckets": {("+Inf" if math.isinf(le) else f"{le:g}"): int(c) for le, c in buckets},
        "note": "quantiles interpolated within buckets (histogram_quantile)",
    }


async def scrape(api_sock: Path) -> dict[str, dict[str, Any]]:
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(api_sock))) as session:
        async with session.get("http://hubd/metrics", timeout=aiohttp.ClientTimeout(total=20)) as resp:
            resp.raise_for_status()
            return parse_histograms(await resp.text())


async def set_neighbours(netns_path: str, entries: list[tuple[str, str]]) -> None:
    """Permanent neighbour entries in the prober's netns: no ARP in the measurement."""
    batch = "".join(f"neigh replace {ip} lladdr {mac} dev eth0 nud permanent\n" for ip, mac in entries)
    proc = await asyncio.create_subprocess_exec(
        shutil.which("nsenter") or "nsenter",
        f"--net={netns_path}",
        shutil.which("ip") or "ip",
        "-batch",
        "-",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(batch.encode()), 60)
    if proc.returncode != 0:
        raise RuntimeError(f"ip -batch neigh in {netns_path}: {err.decode(errors='replace').strip()}")


class Pinger:
    """The raw-socket pinger in a netns (a child of this process, killed by pid)."""

    def __init__(self, netns_path: str, targets: list[str], interval: float, timeout: float) -> None:
        self.netns_path = netns_path
        self.cfg = {"targets": targets, "interval": interval, "timeout": timeout}
        self.timeout = timeout
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            shutil.which("nsenter") or "nsenter",
            f"--net={self.netns_path}",
            sys.executable,
            "-c",
            PINGER,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(self.cfg) + "\n").encode())
        await self.proc.stdin.drain()
        self.proc.stdin.close()
        line = await asyncio.wait_for(self.proc.stdout.readline(), 20)
        if line.strip() != b"R":
            err = b""
            if self.proc.stderr is not None:
                with contextlib.suppress(TimeoutError):
                    err = await asyncio.wait_for(self.proc.stderr.read(), 5)
            raise RuntimeError(f"pinger did not start: {line!r} {err.decode(errors='replace')[-500:]}")

    async def result(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), self.timeout + 30)
        await asyncio.wait_for(self.proc.wait(), 10)
        if not line:
            raise RuntimeError(f"pinger exited with {self.proc.returncode} without a result")
        res: dict[str, Any] = json.loads(line)
        return res

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 10)


class NbWatch:
    """A monitor on NB Logical_Switch_Port: when each port's insert and its
    ``up=true`` reach this process (time.monotonic()), keyed by ``key_of(row)``."""

    def __init__(self, remote: str, key_of: Callable[[dict[str, Any]], str]) -> None:
        self.client = OvsdbClient(remote)
        self.key_of = key_of
        self.committed: dict[str, float] = {}
        self.up: dict[str, float] = {}
        self._keys: dict[str, str] = {}  # row uuid -> key

    async def start(self) -> None:
        await self.client.connect()
        self.client.on_update = self._on_update
        await self.client.monitor_cond(
            {LSP: [{"columns": ["name", "up", "external_ids"]}]}, monitor_id="bench-dataplane"
        )

    def _on_update(self, updates: dict[str, Any]) -> None:
        now = time.monotonic()
        for uuid, change in updates.get(LSP, {}).items():
            row = change.get("initial") or change.get("insert")
            if row is not None:
                key = self.key_of(row)
                self._keys[uuid] = key
                self.committed.setdefault(key, now)
                if row.get("up") is True:
                    self.up.setdefault(key, now)
            elif "modify" in change and change["modify"].get("up") is True and uuid in self._keys:
                self.up.setdefault(self._keys[uuid], now)

    async def close(self) -> None:
        self.client.on_update = None
        await self.client.close()


async def wait_for(pred: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


# ------------------------------------------------------------------ CPU accounting
_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int, children: bool = True) -> float | None:
    """utime + stime (+ cutime + cstime: reaped children) of a process, in seconds."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = text[text.rfind(")") + 2 :].split()  # f[0] is field 3 (state); utime is field 14
    return sum(int(x) for x in f[11 : 15 if children else 13]) / _TCK


def pids_with(needle: str) -> list[int]:
    """Processes whose command line contains ``needle`` (our dockerd's containerd and shims)."""
    out = []
    key = needle.encode()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if key in (d / "cmdline").read_bytes():
                    out.append(int(d.name))
            except OSError:
                continue
    return out


def machine_busy() -> float:
    """CPU seconds the whole machine spent not idle (/proc/stat), all cores."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / _TCK  # minus idle and iowait


class CpuMeter:
    """CPU seconds per group of our processes over a window.  A process that
    appears during the window counts whole; one that exits is lost unless a
    tracked parent reaped it (then it is in the parent's cutime)."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.before: dict[str, dict[int, float]] = {}
        self.busy0 = 0.0
        self.children0 = 0.0
        self.t0 = 0.0

    def _sample(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for name, pids in self.groups.items():
            out[name] = {}
            for pid in pids():
                cpu = proc_cpu(pid, children=pid != os.getpid())
                if cpu is not None:
                    out[name][pid] = cpu
        return out

    def start(self) -> None:
        self.before = self._sample()
        self.busy0 = machine_busy()
        self.children0 = _children_cpu()
        self.t0 = time.monotonic()

    def stop(self, pinger_cpu: float) -> dict[str, Any]:
        after = self._sample()
        wall = time.monotonic() - self.t0
        busy = machine_busy() - self.busy0
        out: dict[str, Any] = {}
        for name, now in after.items():
            out[name] = round(sum(v - self.before[name].get(pid, 0.0) for pid, v in now.items()), 2)
        out["bench_children_minus_pinger"] = round(_children_cpu() - self.children0 - pinger_cpu, 2)
        out["pinger"] = round(pinger_cpu, 2)
        tracked = sum(v for v in out.values())
        return {
            "window_seconds": round(wall, 2),
            "machine_busy_seconds": round(busy, 2),
            "machine_busy_fraction": round(busy / (wall * (os.cpu_count() or 1)), 3) if wall else None,
            "cpu_seconds": out,
            "untracked_seconds": round(busy - tracked, 2),
            "note": "bench_process = this process (bench loop + the node's thread + its ovsdbapp thread); "
            "bench_children_minus_pinger = reaped children: the node's ip/nsenter/ethtool (hub run) or "
            "add_port's ip/ovs-vsctl/ethtool (direct run); docker = dockerd, containerd, shims (+runc); "
            "untracked = anything else on the machine in the window",
        }


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def ovn_groups(host: OneHostOvn) -> dict[str, Callable[[], list[int]]]:
    def pid_of(procs: dict[str, Any], *names: str) -> Callable[[], list[int]]:
        return lambda: [procs[x].pid for x in names if x in procs]

    return {
        "ovs-vswitchd": pid_of(host.procs, "vswitchd"),
        "ovn-controller": pid_of(host.procs, "controller"),
        "ovn-northd": pid_of(host.ovn.procs, "northd"),
        "ovsdb-servers": lambda: pid_of(host.procs, "ovsdb")() + pid_of(host.ovn.procs, "nb", "sb")(),
    }


# ------------------------------------------------------------------ node in a thread
class NodeThread:
    """:class:`DockerNode` on an event loop of its own, in a thread (it would be
    a process of its own in production: ``hubd --role node``)."""

    def __init__(self, options: NodeOptions, nb_remote: str, links: str = "netlink", state_dir: Path | None = None) -> None:
        self.node = DockerNode(options, hub_id=HUB_ID, nb_remote=nb_remote)
        #: the Docker network driver beside wrapper mode, as hubd --role node runs it with [node] driver_socket
        self.driver: DriverNode | None = None
        if options.driver_socket:
            assert state_dir is not None
            self.driver = DriverNode(
                name=options.driver_name, socket=options.driver_socket, hub_id=HUB_ID, nb_remote=nb_remote,
                state_path=str(state_dir / f"docker-driver-{options.driver_name}.json"), docker_url=options.docker,
                bridge=self.node.bridge, switch_netns=options.switch_netns, chassis=options.chassis,
                resync_interval=options.resync_interval,
            )  # fmt: skip
            self.driver.on_bound = self._on_bound
            self.driver.timings = {}
        self.bound_eid: dict[str, str] = {}  # container → its endpoint (driver)
        if links == "iproute2":  # the baseline link layer (subprocesses), see bench/plug.py
            from bench.plug import IpRoute2Links

            self.node.links = self.node.vif.links = IpRoute2Links(options.switch_netns)  # type: ignore[assignment]
        self.plug_begin: dict[str, float] = {}
        self.plug_end: dict[str, float] = {}
        self.node_start_seen: dict[str, float] = {}
        self.node.on_plugged = self._on_plugged
        orig = self.node.vif.plug

        async def timed_plug(a: Attachment) -> None:  # the plug's begin, on our clock
            self.plug_begin[a.key] = time.monotonic()
            await orig(a)

        self.node.vif.plug = timed_plug  # type: ignore[method-assign]
        self.loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._main, name="docker-node", daemon=True)

    def _on_plugged(self, a: Attachment, started: float | None) -> None:
        self.plug_end[a.key] = time.monotonic()
        if started is not None:
            self.node_start_seen[a.key] = started

    def _on_bound(self, eid: str, port: str, joined: float | None) -> None:
        cid = port.rsplit("/", 1)[1]  # docker/<cluster>/<network>/<container id>
        self.bound_eid[cid] = eid
        self.plug_end.setdefault(cid, time.monotonic())
        if joined is not None:
            self.plug_begin.setdefault(cid, joined)

    async def _run(self) -> None:
        if self.driver is None:
            await self.node.run()
            return
        await self.driver.start_server()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.node.run())
                tg.create_task(self.driver.run())
        finally:
            await self.driver.stop_server()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._task = self.loop.create_task(self._run(), name="docker-node")
        self._started.set()
        try:
            self.loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            try:
                self.loop.run_until_complete(self.node.close())
            finally:
                self.loop.close()

    def ready(self) -> bool:
        return self.node.ready.is_set() and (self.driver is None or self.driver.ready.is_set())

    def start(self) -> None:
        self.thread.start()
        self._started.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        if self.thread.is_alive() and self._task is not None:
            self.loop.call_soon_threadsafe(self._task.cancel)
        self.thread.join(timeout)
        if self.thread.is_alive():
            log("node thread did not stop in time")
        # ovsdbapp keeps a started connection on the class (one per process): the next run's node (another
        # Open_vSwitch DB) must start its own
        from ovsdbapp.schema.open_vswitch import impl_idl  # type: ignore[import-untyped]

        impl_idl.OvsdbIdl._ovsdb_connection = None


# ------------------------------------------------------------------ docker API
class DockerApi:
    def __init__(self, sock: str, limit: int) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=sock, limit=limit),
            timeout=aiohttp.ClientTimeout(total=120),
        )

    async def create(self, name: str, labels: dict[str, str], network: str = "none", ip: str = "") -> str:
        body: dict[str, Any] = {"Image": IMAGE, "Cmd": ["sleep", "3600"], "Labels": labels,
                                "HostConfig": {"NetworkMode": network}}  # fmt: skip
        if ip:
            body["NetworkingConfig"] = {"EndpointsConfig": {network: {"IPAMConfig": {"IPv4Address": ip}}}}
        async with self.session.post("http://docker/containers/create", params={"name": name}, json=body) as resp:
            data = await resp.json(content_type=None)
            if resp.status != 201:
                raise RuntimeError(f"create {name}: HTTP {resp.status} {data}")
            cid: str = data["Id"]
            return cid

    async def create_network(self, name: str, driver: str) -> None:
        body = {"Name": name, "Driver": driver, "CheckDuplicate": True,
                "IPAM": {"Driver": driver, "Config": [{"Subnet": SUBNET, "Gateway": GATEWAY}]}}  # fmt: skip
        async with self.session.post("http://docker/networks/create", json=body) as resp:
            if resp.status != 201:
                raise RuntimeError(f"network create {name}: HTTP {resp.status} {await resp.text()}")

    async def start(self, cid: str) -> None:
        async with self.session.post(f"http://docker/containers/{cid}/start") as resp:
            if resp.status not in (204, 304):
                raise RuntimeError(f"start {cid[:12]}: HTTP {resp.status} {await resp.text()}")

    async def inspect_latency(self, cid: str, out: list[float], period: float, bound: float) -> None:
        """Inspect ``cid`` every ``period`` seconds (at most ``bound`` seconds): how
        fast dockerd answers the adapter's and the node's inspects while it is busy."""
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            t = time.monotonic()
            async with self.session.get(f"http://docker/containers/{cid}/json") as resp:
                await resp.read()
            out.append(time.monotonic() - t)
            await asyncio.sleep(max(0.0, period - (time.monotonic() - t)))

    async def pid(self, cid: str) -> int:
        async with self.session.get(f"http://docker/containers/{cid}/json") as resp:
            data = await resp.json(content_type=None)
            pid: int = data["State"]["Pid"]
            return pid

    async def watch_starts(self, starts: dict[str, tuple[int, float]]) -> None:
        """Container ``start`` events: id → (timeNano, arrival monotonic)."""
        filters = json.dumps({"type": ["container"], "event": ["start"]})
        async with self.session.get(
            "http://docker/events",
            params={"filters": filters},
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=30),
        ) as resp:
            resp.raise_for_status()
            async for line in resp.content:
                now = time.monotonic()
                if not line.strip():
                    continue
                ev = json.loads(line)
                cid = (ev.get("Actor") or {}).get("ID") or ev.get("id")
                if ev.get("Action") == "start" and isinstance(cid, str):
                    starts.setdefault(cid, (int(ev.get("timeNano", 0)), now))

    async def close(self) -> None:
        await self.session.close()


def labels_for(ip: str, mac: str) -> dict[str, str]:
    return {"ovn-hub.network": NETWORK, "ovn-hub.ip": ip, "ovn-hub.mac": mac}


# ------------------------------------------------------------------ hub run
def hub_config(tmp: Path, nb_remote: str, docker_url: str, driver: str = "") -> Path:
    path = tmp / "hubd.toml"
    text = (
        f'[hub]\nid = "{HUB_ID}"\nstate_dir = "{tmp / "state"}"\nlog_level = "info"\n'
        f'[ovn]\nnb = "{nb_remote}"\n'
        f'[api]\nlisten = "unix:{tmp / "api.sock"}"\n'
        f'[adapters.docker]\ntype = "docker"\ncluster = "{DOCKER_SOURCE.cluster}"\nurl = "{docker_url}"\n'
        f'node = "{CHASSIS}"\n'
    )
    if driver:  # the driver's network is created in Docker by the bench
        text += f'driver = "{driver}"\n'
    else:
        text += f'[adapters.docker.networks.{NETWORK}]\nsubnet = "{SUBNET}"\ngateway = "{GATEWAY}"\n'
    path.write_text(text)
    return path


async def hub_measure(
    args: argparse.Namespace,
    host: OneHostOvn,
    dockerd: PrivateDockerd,
    node: NodeThread,
    api_sock: Path,
    hubd_pid: int,
    driver: str = "",
) -> dict[str, Any]:
    """One burst; ``driver``: through the Docker network driver of that name, else wrapper mode."""
    n: int = args.n
    api = DockerApi(dockerd.sock, limit=max(args.concurrency, 8) + 2)
    watch = NbWatch(host.ovn.nb_remote, lambda row: py_map(row.get("external_ids", ["map", []])).get(UID, ""))
    starts: dict[str, tuple[int, float]] = {}
    events = asyncio.create_task(api.watch_starts(starts), name="docker-events")
    pinger: Pinger | None = None
    inspector: asyncio.Task[None] | None = None
    try:
        await watch.start()
        # the prober: a container plugged by the node like the others
        what = "driver" if driver else "hub"
        if driver:
            await api.create_network(NETWORK, driver)
            probe = await api.create("dp-probe", {}, network=NETWORK, ip=PROBE_IP)
        else:
            probe = await api.create("dp-probe", labels_for(PROBE_IP, PROBE_MAC))
        await api.start(probe)
        await wait_for(lambda: probe in watch.up and probe in node.plug_end, args.timeout, "the probe plugged and up")
        probe_ns = f"/proc/{await api.pid(probe)}/ns/net"
        ips = [target_ip(i) for i in range(n)]
        macs = [endpoint_mac("", ip) if driver else target_mac(i) for i, ip in enumerate(ips)]
        await set_neighbours(probe_ns, list(zip(ips, macs, strict=True)))

        log(f"{what}: creating {n} containers (not started)")
        sem = asyncio.Semaphore(args.concurrency)

        async def create(i: int) -> str:
            async with sem:
                if driver:
                    return await api.create(f"dp{i}", {}, network=NETWORK, ip=ips[i])
                return await api.create(f"dp{i}", labels_for(ips[i], target_mac(i)))

        cids = await asyncio.gather(*(create(i) for i in range(n)))
        ip_of = dict(zip(cids, ips, strict=True))
        await asyncio.sleep(1.0)  # the create events are no-ops for hub and node; let them pass
        before = await scrape(api_sock)

        meter = CpuMeter(
            {
                **ovn_groups(host),
                "hubd": lambda: [hubd_pid],
                "docker": lambda: sorted({dockerd.pid or 0, *pids_with(dockerd.tmp)} - {0}),
                "bench_process": lambda: [os.getpid()],
            }
        )
        meter.start()
        pinger = Pinger(probe_ns, ips, args.interval, args.timeout)
        await pinger.start()
        offset_ns = wall_to_mono_offset_ns()
        call_seconds: list[float] = []
        log(f"{what}: starting {n} containers ({args.concurrency} start calls in flight)")
        inspect_seconds: list[float] = []
        inspector = asyncio.create_task(api.inspect_latency(probe, inspect_seconds, 0.1, args.timeout))
        t_burst = time.monotonic()

        async def start(cid: str) -> None:
            async with sem:
                t = time.monotonic()
                await api.start(cid)
                call_seconds.append(time.monotonic() - t)

        await asyncio.gather(*(start(c) for c in cids))
        t_started = time.monotonic()
        log(f"{what}: start calls returned after {t_started - t_burst:.2f}s; waiting for first replies")
        ping = await pinger.result()
        inspector.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await inspector
        log(f"{what}: pinger done after {time.monotonic() - t_burst:.2f}s, {len(ping['unanswered'])} unanswered")
        with contextlib.suppress(TimeoutError):
            await wait_for(lambda: all(c in watch.up for c in cids), 30, "every port up")
        cpu = meter.stop(ping["cpu_seconds"])
        after = await scrape(api_sock)
    finally:
        if pinger is not None:
            await pinger.stop()
        if inspector is not None:
            inspector.cancel()
        events.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await events
        await watch.close()
        await api.close()

    # everything on this process' monotonic clock
    start_ev = {c: (starts[c][0] - offset_ns) / 1e9 for c in cids if c in starts}
    arrival = {c: starts[c][1] for c in cids if c in starts}
    commit = {c: watch.committed[c] for c in cids if c in watch.committed}
    up = {c: watch.up[c] for c in cids if c in watch.up}
    first_reply = {c: ping["first"][ip_of[c]] for c in cids if ip_of[c] in ping["first"]}
    plug_begin = {c: node.plug_begin[c] for c in cids if c in node.plug_begin}
    plugged = {c: node.plug_end[c] for c in cids if c in node.plug_end}
    burst = dict.fromkeys(cids, t_burst)
    points = {
        "commit": commit,
        "plug_begin": plug_begin,
        "plugged": plugged,
        "up": up,
        "first_reply": first_reply,
    }
    last = {k: max(v.values()) - t_burst if v else None for k, v in {"start_event": start_ev, **points}.items()}
    return {
        "committed": len(commit),
        "plugged": len(plugged),
        "up": len(up),
        "answered": len(first_reply),
        "latency_from_start_event": {k: stats(deltas(start_ev, v)) for k, v in points.items()},
        "stages": {
            "start_event_to_commit": stats(deltas(start_ev, commit)),
            "commit_to_plug_begin": stats(deltas(commit, plug_begin)),
            "plug": stats(deltas(plug_begin, plugged)),
            "plugged_to_up": stats(deltas(plugged, up)),
            "plugged_to_first_reply": stats(deltas(plugged, first_reply)),
            "up_to_first_reply": stats(deltas(up, first_reply)),
            "commit_to_up": stats(deltas(commit, up)),
        }
        if not driver
        else {
            "join_to_start_event": stats(deltas(plug_begin, start_ev)),  # Docker's own start after the veth exists
            "start_event_to_commit": stats(deltas(start_ev, commit)),
            "commit_to_bound": stats(deltas(commit, plugged)),  # NB → the agent's view → iface-id on br-int
            "bound_to_up": stats(deltas(plugged, up)),
            "bound_to_first_reply": stats(deltas(plugged, first_reply)),
            "up_to_first_reply": stats(deltas(up, first_reply)),
            "commit_to_up": stats(deltas(commit, up)),
        },
        "from_burst": {
            **{k: stats(deltas(burst, v)) for k, v in {"start_event": start_ev, **points}.items()},
            "last_seconds": {k: r(v, 3) for k, v in last.items()},
            "start_calls_returned_seconds": r(t_started - t_burst, 3),
        },
        "hub_metrics": {k: histogram_delta(before[k], after[k]) for k in HISTOGRAMS},
        "node": {
            "plug_seconds": stats(deltas(plug_begin, plugged)),
            "start_event_seen_to_plugged": stats(deltas(node.node_start_seen, plugged)),
            "plugs": node.driver.binds if node.driver is not None else node.node.plugs,
            "failures": node.driver.failures if node.driver is not None else node.node.failures,
            "note": (
                "plug_begin = the driver's Join (veth made, before the start event); plugged = its host end bound "
                "on br-int with iface-id once NB had the port; plug = from the one to the other"
                if node.driver is not None
                else "plug = core.vif Reconciler.plug (veth, addresses, route, TX offload, OVS port); "
                "start_event_seen = when the node's own docker events stream delivered the start"
            ),
        },
        **({"driver_calls": {m: stats(v) for m, v in sorted(node.driver.call_seconds.items())},
            "driver_binding": driver_binding(node, cids, start_ev, commit, plugged)}
           if node.driver is not None else {}),
        "docker": {
            "start_call_seconds": stats(call_seconds),
            "inspect_seconds_during_burst": stats(inspect_seconds),
            "event_arrival_lag": stats(deltas(start_ev, arrival)),
        },
        "pinger": {k: ping[k] for k in ("sent", "errors", "rounds")} | {"unanswered": len(ping["unanswered"])},
        "cpu": cpu,
    }


def driver_binding(node: NodeThread, cids: list[str], start_ev: dict[str, float], commit: dict[str, float],
                   bound: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    """Where commit → bound goes: the agent learns the owner (its inspect), the port (its NB view), binds."""
    assert node.driver is not None and node.driver.timings is not None
    t = {c: node.driver.timings.get(node.bound_eid.get(c, ""), {}) for c in cids}
    owner = {c: v["owner"] for c, v in t.items() if "owner" in v}
    nb = {c: v["nb"] for c, v in t.items() if "nb" in v}
    bind = {c: v["bind"] for c, v in t.items() if "bind" in v}
    ready = {c: max(owner[c], nb[c]) for c in cids if c in owner and c in nb}
    return {
        "start_event_to_owner_known": stats(deltas(start_ev, owner)),
        "commit_to_agent_nb_view": stats(deltas(commit, nb)),
        "owner_and_port_known_to_bind": stats(deltas(ready, bind)),
        "bind_transaction": stats(deltas(bind, bound)),
    }


def run_hub(args: argparse.Namespace, tmp: Path, driver: str = "") -> dict[str, Any]:
    """The product path: wrapper mode, or (``driver``) the Docker network driver of that name."""
    what = "driver" if driver else "hub"
    tmp = tmp / what
    tmp.mkdir()
    host = OneHostOvn(tmp / "dp", chassis=CHASSIS)
    dockerd = PrivateDockerd()
    notify: NotifySocket | None = None
    hubd: HubdProcess | None = None
    node: NodeThread | None = None
    spec: contextlib.ExitStack = contextlib.ExitStack()
    socket = tmp / "plugin" / "driver.sock"
    try:
        if driver:
            spec.enter_context(dockerplugin.installed(driver, socket))
        log(f"{what}: starting OVN (NB/SB/northd, ovs-vswitchd, ovn-controller) and dockerd")
        host.start()
        dockerd.start()
        import_busybox(dockerd.sock)
        config = hub_config(tmp, host.ovn.nb_remote, dockerd.url, driver)
        notify = NotifySocket(tmp / "n.sock")
        hubd = HubdProcess(tmp, config, notify)
        hubd.start()
        ready = hubd.wait_ready(60)
        log(f"{what}: hubd READY after {ready:.2f}s")
        node = NodeThread(
            NodeOptions(
                docker=dockerd.url,
                ovs=host.db_remote,
                chassis=CHASSIS,
                switch_netns=host.sw_ns,
                resync_interval=60.0,
                driver_socket=str(socket) if driver else "",
                driver_name=driver or "ovn-hub",
            ),
            host.ovn.nb_remote,
            links=args.links,
            state_dir=tmp / "nodestate",
        )
        node.start()
        deadline = time.monotonic() + 60
        while not node.ready():
            if time.monotonic() > deadline or not node.thread.is_alive():
                raise RuntimeError("the node did not become ready within 60s")
            time.sleep(0.05)
        assert hubd.proc is not None
        res = asyncio.run(hub_measure(args, host, dockerd, node, tmp / "api.sock", hubd.proc.pid, driver))
        res["hubd_rss_mb"] = mb(proc_status_kb(hubd.proc.pid).get("VmRSS"))
        return res
    except BaseException:
        if hubd is not None:
            log(f"hubd log tail:\n{hubd.log_tail()}")
        raise
    finally:
        if driver and node is not None and dockerd.running:
            # while the driver still answers: Docker's Leave/DeleteEndpoint calls would otherwise wait
            # for it (30 s each) and leave the veths' container ends in this namespace
            with contextlib.suppress(Exception):
                ids = docker(dockerd, "ps", "-aq").split()
                if ids:
                    docker(dockerd, "rm", "-f", *ids)
        if node is not None:
            node.stop()
        spec.close()
        if hubd is not None:
            hubd.ensure_stopped()
        if notify is not None:
            notify.close()
        try:
            dockerd.stop()  # kills the containers (SIGKILL after --shutdown-timeout), wipes its data root
        finally:
            host.stop()


# ------------------------------------------------------------------ direct run
def direct_endpoint(uid: str, name: str, ip: str, mac: str) -> Endpoint:
    return Endpoint(
        source=DIRECT_SOURCE,
        uid=uid,
        namespace="default",
        name=name,
        kind="container",
        network=NETWORK,
        node=CHASSIS,
        ips=(ip,),
        mac=mac,
    )


async def direct_measure(args: argparse.Namespace, host: OneHostOvn) -> dict[str, Any]:
    n: int = args.n
    net = Network(source=DIRECT_SOURCE, name=NETWORK, subnets=(SUBNET,), gateway=GATEWAY)
    sw = ls_name(DIRECT_SOURCE, NETWORK)
    probe_ep = direct_endpoint("probe", "probe", PROBE_IP, PROBE_MAC)
    eps = [direct_endpoint(f"e{i}", f"c{i}", target_ip(i), target_mac(i)) for i in range(n)]
    names = [lsp_name(ep) for ep in eps]
    client = OvsdbClient(host.ovn.nb_remote)
    watch = NbWatch(host.ovn.nb_remote, lambda row: str(row.get("name", "")))
    pinger: Pinger | None = None
    try:
        await client.connect()
        await watch.start()
        await client.transact(
            [
                {
                    "op": "insert",
                    "table": LS,
                    "row": to_ovsdb(ls_columns(DIRECT_SOURCE, NETWORK, net, HUB_ID))
                    | {"ports": ["set", [["named-uuid", "probe"]]]},
                },
                {"op": "insert", "table": LSP, "row": to_ovsdb(lsp_columns(probe_ep, HUB_ID)), "uuid-name": "probe"},
            ]
        )
        probe_ns = await asyncio.to_thread(host.add_port, probe_ep, None, PREFIX)
        probe_name = lsp_name(probe_ep)
        await wait_for(lambda: probe_name in watch.up, args.timeout, "the probe port up")
        netns_path = f"/run/netns/{probe_ns}"
        ips = [target_ip(i) for i in range(n)]
        await set_neighbours(netns_path, [(ips[i], target_mac(i)) for i in range(n)])
        meter = CpuMeter({**ovn_groups(host), "bench_process": lambda: [os.getpid()]})
        meter.start()
        pinger = Pinger(netns_path, ips, args.interval, args.timeout)
        await pinger.start()
        begin: dict[str, float] = {}
        plugged: dict[str, float] = {}
        log(f"direct: writing and plugging {n} ports, one at a time")
        t_burst = time.monotonic()
        for name, ep in zip(names, eps, strict=True):
            begin[name] = time.monotonic()
            await client.transact(
                [
                    {"op": "insert", "table": LSP, "row": to_ovsdb(lsp_columns(ep, HUB_ID)), "uuid-name": "p"},
                    {
                        "op": "mutate",
                        "table": LS,
                        "where": [["name", "==", sw]],
                        "mutations": [["ports", "insert", ["set", [["named-uuid", "p"]]]]],
                    },
                ]
            )
            await asyncio.to_thread(host.add_port, ep, None, PREFIX)
            plugged[name] = time.monotonic()
            if time.monotonic() - t_burst > args.timeout:
                raise TimeoutError(f"direct: plugging took more than {args.timeout}s")
        t_plugged = time.monotonic()
        log(f"direct: {n} ports plugged after {t_plugged - t_burst:.2f}s; waiting for first replies")
        ping = await pinger.result()
        with contextlib.suppress(TimeoutError):
            await wait_for(lambda: all(x in watch.up for x in names), 30, "every port up")
        cpu = meter.stop(ping["cpu_seconds"])
    finally:
        if pinger is not None:
            await pinger.stop()
        await watch.close()
        await client.close()

    ip_of = dict(zip(names, [target_ip(i) for i in range(n)], strict=True))
    commit = {x: watch.committed[x] for x in names if x in watch.committed}
    up = {x: watch.up[x] for x in names if x in watch.up}
    first_reply = {x: ping["first"][ip_of[x]] for x in names if ip_of[x] in ping["first"]}
    burst = dict.fromkeys(names, t_burst)
    points = {"commit": commit, "plugged": plugged, "up": up, "first_reply": first_reply}
    return {
        "committed": len(commit),
        "plugged": len(plugged),
        "up": len(up),
        "answered": len(first_reply),
        "latency_from_begin": {k: stats(deltas(begin, v)) for k, v in points.items()},
        "stages": {
            "begin_to_commit": stats(deltas(begin, commit)),
            "plug": stats(deltas(commit, plugged)),
            "plugged_to_up": stats(deltas(plugged, up)),
            "plugged_to_first_reply": stats(deltas(plugged, first_reply)),
            "up_to_first_reply": stats(deltas(up, first_reply)),
        },
        "from_burst": {
            **{k: stats(deltas(burst, v)) for k, v in points.items()},
            "last_seconds": {k: r(max(v.values()) - t_burst, 3) if v else None for k, v in points.items()},
        },
        "pinger": {k: ping[k] for k in ("sent", "errors", "rounds")} | {"unanswered": len(ping["unanswered"])},
        "cpu": cpu,
    }


def run_direct(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    host = OneHostOvn(tmp / "dirdp", chassis=CHASSIS)
    try:
        log("direct: starting OVN (NB/SB/northd, ovs-vswitchd, ovn-controller)")
        host.start()
        return asyncio.run(direct_measure(args, host))
    finally:
        host.stop()


# ------------------------------------------------------------------ driver
def _ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> float | None:
    x, y = a.get(key), b.get(key)
    return r(x / y, 2) if x is not None and y else None


def source_state() -> dict[str, Any]:
    """Which code was measured: HEAD and the files modified in the working tree (best effort)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        st = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {"head": head.stdout.strip(), "modified": [line[3:] for line in st.stdout.splitlines() if line.strip()]}


def main(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("bench dataplane needs root (network namespaces, ovs-vswitchd, dockerd)", file=sys.stderr)
        return 2
    for tool in ("ovs-vswitchd", "ovn-controller", "nsenter", "dockerd"):
        if not (shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")):
            print(f"bench dataplane needs {tool}", file=sys.stderr)
            return 2
    if args.n < 1 or FIRST_HOST + args.n > (1 << 16) - 2:
        raise SystemExit("--n must be between 1 and 65524")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="[%(name)s] %(levelname)s %(message)s")
    started = time.perf_counter()
    out: dict[str, Any] = {
        "bench": "dataplane",
        "env": environment(),
        "source": source_state(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "n": args.n,
        "concurrency": args.concurrency,
        "node_links": args.links,
        "probe_interval_seconds": args.interval,
        "timeout_seconds": args.timeout,
        "network": {"subnet": SUBNET, "gateway": GATEWAY, "probe": PROBE_IP, "first_target": target_ip(0)},
    }
    with short_tmpdir("bd", keep=args.keep) as tmp:
        if args.skip_direct or args.n > DIRECT_MAX:
            direct: dict[str, Any] = {"skipped": "--skip-direct" if args.skip_direct else f"N > {DIRECT_MAX}"}
        else:
            direct = run_direct(args, tmp)
        hub = run_hub(args, tmp)
        drv: dict[str, Any] = (
            {"skipped": "--skip-driver"} if args.skip_driver else run_hub(args, tmp, dockerplugin.unique_name())
        )
    out["hub"] = hub
    out["driver"] = drv
    out["direct"] = direct
    if "latency_from_start_event" in drv:
        a, b = drv["latency_from_start_event"], hub["latency_from_start_event"]
        out["ratio_driver_vs_wrapper"] = {
            "note": "the Docker network driver's latency from the start event / wrapper mode's, same run",
            **{f"{k}_{q}": _ratio(a[k], b[k], q) for k in ("commit", "up", "first_reply") for q in ("p50", "p99")},
            "all_answered": _ratio(drv["from_burst"]["last_seconds"], hub["from_burst"]["last_seconds"], "first_reply"),
        }
    if "latency_from_begin" in direct:
        h, d = hub["latency_from_start_event"], direct["latency_from_begin"]
        out["ratio_hub_vs_direct"] = {
            "note": "hub latency from the Docker start event / direct latency from the port's own begin",
            **{f"{k}_{q}": _ratio(h[k], d[k], q) for k in ("commit", "up", "first_reply") for q in ("p50", "p99")},
            "all_answered": _ratio(
                hub["from_burst"]["last_seconds"], direct["from_burst"]["last_seconds"], "first_reply"
            ),
        }
    out["complete"] = (
        hub["answered"] == args.n
        and ("answered" not in direct or direct["answered"] == args.n)
        and ("answered" not in drv or drv["answered"] == args.n)
    )
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    out["wall_seconds"] = round(time.perf_counter() - started, 1)
    emit(out)
    return 0


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--n", type=int, default=100, help="containers started in the burst (default 100)")
    ap.add_argument("--concurrency", type=int, default=32, help="Docker create/start calls in flight (default 32)")
    ap.add_argument(
        "--interval", type=float, default=0.02, help="seconds between echo rounds to unanswered targets (default 0.02)"
    )
    ap.add_argument("--timeout", type=float, default=120.0, help="bound of each wait, pinger included (default 120)")
    ap.add_argument("--skip-direct", action="store_true", help="skip the hand-plugged netns baseline")
    ap.add_argument("--skip-driver", action="store_true", help="skip the run through the Docker network driver")
    ap.add_argument("--links", choices=("netlink", "iproute2"), default="netlink",
                    help="the node's link layer: core.vif's netlink (default) or the iproute2 subprocess baseline")  # fmt: skip
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (OVN/OVS logs, hubd log)")
