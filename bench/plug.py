"""``bench plug``: one attachment's link plumbing, iproute2 subprocesses vs pyroute2 in-process.

What differs between the two is the link layer of :mod:`core.vif` (the bridge
is ovsdbapp either way), so this times :meth:`Links.add` (veth with the peer
created in the workload's namespace, name/MAC/addresses/up/default route
inside it, TX checksum offload off on both ends, host end up), ``exists`` and
``delete`` for N attachments into N namespaces of their own, with the host
ends in a "switch" namespace, exactly as ``hubd --role node`` lays them out:

``iproute2``        :class:`IpRoute2Links` here: ``ip``, ``nsenter ip -batch``, ``ethtool`` subprocesses
                    (core.vif's link layer until pyroute2 measured faster; the baseline);
``pyroute2-fork``   the same code with every namespace socket from pyroute2's documented netns API:
                    ``IPRoute(netns=<path>)`` (it forks a child that enters the namespace and hands the
                    socket back) and ``pyroute2.netns.create_socket`` for the ioctl (another child);
``pyroute2-setns``  :class:`core.vif.NetlinkLinks`, the product path: pyroute2 on netlink sockets
                    opened in-process (a worker thread enters the namespace, opens the netlink and
                    ioctl sockets, returns: setns(2) moves only the calling thread).

Each implementation runs ``--rounds`` times over the same N fresh namespaces,
interleaved (A, B, C, A, B, C, …) in one process, sequentially (one plug at a
time: the latency of one) and then ``--concurrency`` at a time through the
event loop (what the node's reconciler does: throughput).  Every plug is then
checked from outside (``ip -n``: the address inside, the host end up, ``tx-checksumming: off``).
Namespaces are named ``hubt-<hex>-*`` and removed in ``finally``.  Needs root.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.common import emit, environment, log
from core.vif import Attachment, NetlinkLinks, PlumbError


def _tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


class IpRoute2Links:
    """The baseline: iproute2, nsenter and ethtool subprocesses (core.vif's link layer before pyroute2)."""

    def __init__(self, switch_netns: str = "", timeout: float = 30.0) -> None:
        self.switch_netns = switch_netns  # ``ip netns`` name ovs-vswitchd runs in; "" = this one
        self.timeout = timeout
        self._ip = _tool("ip") or "ip"
        self._nsenter = shutil.which("nsenter") or "nsenter"
        self._ethtool = _tool("ethtool")
        self.offload_available = self._ethtool is not None

    def close(self) -> None:
        pass

    async def _run(self, *argv: str, stdin: bytes | None = None, check: bool = True) -> str:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(self.timeout):
                out, err = await proc.communicate(stdin)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise PlumbError(f"{' '.join(argv)}: timed out") from None
        except asyncio.CancelledError:
            if proc.returncode is None:
                proc.kill()
            raise
        if check and proc.returncode != 0:
            raise PlumbError(f"{' '.join(argv)}: {err.decode(errors='replace').strip()}")
        return out.decode(errors="replace")

    def _sw(self, *argv: str) -> list[str]:
        """iproute2 in the switch's namespace."""
        ns = ("-n", self.switch_netns) if self.switch_netns else ()
        return [self._ip, *ns, *argv]

    def _sw_exec(self, *argv: str) -> list[str]:
        """Any command in the switch's namespace."""
        if self.switch_netns:
            return [self._ip, "netns", "exec", self.switch_netns, *argv]
        return list(argv)

    async def exists(self, dev: str) -> bool:
        out = await self._run(*self._sw("-o", "link", "show", "dev", dev), check=False)
        return dev in out

    async def delete(self, dev: str) -> None:
        await self._run(*self._sw("link", "del", "dev", dev), check=False)

    async def add(self, a: Attachment, *, tx_offload_off: bool) -> None:
        await self.veth(a)
        try:
            await self.configure(a)
            if tx_offload_off:
                await self.offload_off(a)
            await self._run(*self._sw("link", "set", "dev", a.dev, "up"))
        except BaseException:
            await self.delete(a.dev)
            raise

    async def veth(self, a: Attachment) -> None:
        """The pair: host end in the switch's namespace, peer moved into the workload's."""
        await self._run(*self._sw("link", "add", a.dev, "type", "veth", "peer", "name", a.peer, "netns", a.netns_path))

    async def configure(self, a: Attachment) -> None:
        """Inside the workload's namespace: name, MAC, addresses, up, default route."""
        batch = [f"link set dev {a.peer} name {a.ifname}", f"link set dev {a.ifname} address {a.mac}"]
        batch += [f"addr add {addr} dev {a.ifname}" for addr in a.addrs]
        batch.append(f"link set dev {a.ifname} up")
        if a.gateway:
            batch.append(f"route add default via {a.gateway} dev {a.ifname}")
        await self._run(
            self._nsenter, f"--net={a.netns_path}", self._ip, "-batch", "-", stdin=("\n".join(batch) + "\n").encode()
        )

    async def offload_off(self, a: Attachment) -> None:
        """TX checksum offload off on both ends (best effort, as ethtool's absence is)."""
        if self._ethtool is None:
            return
        await self._run(self._nsenter, f"--net={a.netns_path}", self._ethtool, "-K", a.ifname, "tx", "off", check=False)
        await self._run(*self._sw_exec(self._ethtool, "-K", a.dev, "tx", "off"), check=False)


class ForkNetlinkLinks(NetlinkLinks):
    """NetlinkLinks with pyroute2's own netns sockets (a forked child per socket)."""

    @contextlib.contextmanager
    def _open(self, path: str | None) -> Iterator[tuple[Any, socket.socket]]:
        from pyroute2 import IPRoute, netns

        if path is None:
            with super()._open(None) as pair:
                yield pair
            return
        ipr = IPRoute(netns=path, flags=0)
        io = netns.create_socket(path, socket.AF_INET, socket.SOCK_DGRAM, flags=0)
        try:
            yield ipr, io
        finally:
            ipr.close()
            io.close()


def _ip(*argv: str, check: bool = True) -> str:
    res = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=20)
    if check and res.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)}: {res.stderr.strip()}")
    return res.stdout


def stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    s = sorted(values)

    def q(p: float) -> float:
        return round(s[min(len(s) - 1, int(p * len(s)))] * 1000, 2)

    return {"n": len(s), "p50_ms": q(0.5), "p90_ms": q(0.9), "p99_ms": q(0.99), "mean_ms": round(statistics.fmean(s) * 1000, 2)}


def attachment(i: int, netns: str) -> Attachment:
    return Attachment(
        key=f"bench-plug-{i}", network="blue", netns_path=netns, ifname="eth0", port=f"p{i}",
        mac=f"0a:81:00:00:{i // 256:02x}:{i % 256:02x}", addrs=(f"10.81.{i // 250}.{i % 250 + 2}/16",),
        gateway="10.81.0.1",
    )  # fmt: skip


def verify(sw: str, a: Attachment) -> None:
    """From outside, with iproute2 and ethtool: what the plug must have done."""
    inside = subprocess.run(["nsenter", f"--net={a.netns_path}", "ip", "-o", "addr", "show", "dev", a.ifname],
                            capture_output=True, text=True, timeout=20).stdout  # fmt: skip
    route = subprocess.run(["nsenter", f"--net={a.netns_path}", "ip", "route"], capture_output=True, text=True,
                           timeout=20).stdout  # fmt: skip
    link = subprocess.run(["nsenter", f"--net={a.netns_path}", "ip", "-o", "link", "show", "dev", a.ifname],
                          capture_output=True, text=True, timeout=20).stdout  # fmt: skip
    host = _ip("-n", sw, "-o", "link", "show", "dev", a.dev)
    k = subprocess.run(["nsenter", f"--net={a.netns_path}", "ethtool", "-k", a.ifname], capture_output=True,
                       text=True, timeout=20).stdout  # fmt: skip
    problems = []
    if a.addrs[0] not in inside:
        problems.append(f"address {a.addrs[0]} missing: {inside!r}")
    if f"default via {a.gateway} dev {a.ifname}" not in route:
        problems.append(f"default route missing: {route!r}")
    if a.mac not in link or "UP" not in link.split(">")[0]:
        problems.append(f"peer not up with {a.mac}: {link!r}")
    if "UP" not in host.split(">")[0]:
        problems.append(f"host end not up: {host!r}")
    if "tx-checksumming: off" not in k:
        problems.append("tx-checksumming still on inside")
    if problems:
        raise AssertionError(f"{a.dev}: " + "; ".join(problems))


async def one_round(links: Any, sw: str, atts: list[Attachment], concurrency: int) -> dict[str, Any]:
    add_s: list[float] = []
    exists_s: list[float] = []
    del_s: list[float] = []

    async def plug(a: Attachment) -> None:
        t0 = time.perf_counter()
        await links.add(a, tx_offload_off=True)
        add_s.append(time.perf_counter() - t0)

    t_seq = time.perf_counter()
    for a in atts:  # one at a time: the latency of one plug
        await plug(a)
    seq_wall = time.perf_counter() - t_seq
    verify(sw, atts[0])
    verify(sw, atts[-1])
    for a in atts:
        t0 = time.perf_counter()
        assert await links.exists(a.dev)
        exists_s.append(time.perf_counter() - t0)
    for a in atts:
        t0 = time.perf_counter()
        await links.delete(a.dev)
        del_s.append(time.perf_counter() - t0)
    # N at a time, as the reconciler runs them
    sem = asyncio.Semaphore(concurrency)
    conc_add: list[float] = []

    async def plug_bounded(a: Attachment) -> None:
        async with sem:
            t0 = time.perf_counter()
            await links.add(a, tx_offload_off=True)
            conc_add.append(time.perf_counter() - t0)

    t_conc = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for a in atts:
            tg.create_task(plug_bounded(a))
    conc_wall = time.perf_counter() - t_conc
    verify(sw, atts[len(atts) // 2])
    for a in atts:
        await links.delete(a.dev)
    return {"add": add_s, "exists": exists_s, "delete": del_s, "seq_wall": seq_wall,
            "conc_add": conc_add, "conc_wall": conc_wall}  # fmt: skip


def cpu_self() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


async def measure(args: argparse.Namespace, sw: str, paths: list[str]) -> dict[str, Any]:
    impls: dict[str, Callable[[], Any]] = {"iproute2": lambda: IpRoute2Links(sw)}
    try:
        import pyroute2  # noqa: F401

        impls["pyroute2-fork"] = lambda: ForkNetlinkLinks(sw)
        impls["pyroute2-setns"] = lambda: NetlinkLinks(sw)
    except ImportError:
        log("pyroute2 is not installed: measuring iproute2 only")
    made = {name: make() for name, make in impls.items()}
    atts = [attachment(i, p) for i, p in enumerate(paths)]
    acc: dict[str, dict[str, Any]] = {n: {"add": [], "exists": [], "delete": [], "conc_add": [], "seq_wall": [],
                                          "conc_wall": [], "cpu": 0.0} for n in made}  # fmt: skip
    try:
        for rnd in range(args.rounds):
            for name, links in made.items():
                log(f"plug: round {rnd + 1}/{args.rounds}: {name}, N={len(atts)}")
                c0 = cpu_self()
                res = await one_round(links, sw, atts, args.concurrency)
                acc[name]["cpu"] += cpu_self() - c0
                for k in ("add", "exists", "delete", "conc_add"):
                    acc[name][k] += res[k]
                acc[name]["seq_wall"].append(res["seq_wall"])
                acc[name]["conc_wall"].append(res["conc_wall"])
    finally:
        for links in made.values():
            if hasattr(links, "close"):
                links.close()
    out: dict[str, Any] = {}
    for name, a in acc.items():
        n_plugs = len(a["add"]) + len(a["conc_add"])
        out[name] = {
            "add_one_at_a_time": stats(a["add"]),
            f"add_{args.concurrency}_at_a_time": stats(a["conc_add"]),
            f"plugs_per_second_{args.concurrency}_at_a_time": (
                round(len(a["conc_add"]) / sum(a["conc_wall"]), 1) if a["conc_wall"] else None
            ),
            "exists": stats(a["exists"]),
            "delete": stats(a["delete"]),
            "cpu_ms_per_plug": round(a["cpu"] * 1000 / n_plugs, 2) if n_plugs else None,
        }
    base = out["iproute2"]["add_one_at_a_time"]["p50_ms"]
    out["ratio_p50_add_vs_iproute2"] = {n: round(v["add_one_at_a_time"]["p50_ms"] / base, 3) for n, v in out.items()
                                        if isinstance(v, dict) and "add_one_at_a_time" in v}  # fmt: skip
    return out


def main(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("bench plug needs root (network namespaces)", file=sys.stderr)
        return 2
    if not 1 <= args.n <= 1000:
        raise SystemExit("--n must be between 1 and 1000")
    tag = "hubt-" + secrets.token_hex(3)
    sw = f"{tag}-sw"
    made: list[str] = []
    out: dict[str, Any] = {"bench": "plug", "env": environment(), "n": args.n, "rounds": args.rounds,
                           "concurrency": args.concurrency, "loadavg_before": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
    started = time.perf_counter()
    try:
        _ip("netns", "add", sw)
        made.append(sw)
        paths = []
        for i in range(args.n):
            name = f"{tag}-{i}"
            _ip("netns", "add", name)
            made.append(name)
            paths.append(f"/var/run/netns/{name}")
        out["results"] = asyncio.run(measure(args, sw, paths))
    finally:
        for name in reversed(made):
            _ip("netns", "del", name, check=False)
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    out["wall_seconds"] = round(time.perf_counter() - started, 1)
    emit(out)
    return 0


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--n", type=int, default=50, help="attachments (namespaces) per round (default 50)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds per implementation, interleaved (default 2)")
    ap.add_argument("--concurrency", type=int, default=8, help="plugs in flight in the concurrent pass (default 8)")
