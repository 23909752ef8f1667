"""core.vif.NetlinkLinks on real namespaces (root): what a plug leaves behind,
read back with iproute2 and ethtool, and what a failed one does not."""

from __future__ import annotations

import asyncio
import gc
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from core.vif import Attachment, NetlinkLinks, PlumbError

if os.geteuid() != 0 or not shutil.which("ethtool"):
    raise RuntimeError("the link tests need root and ethtool (make test installs it)")


def ip(*argv: str, check: bool = True) -> str:
    res = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=20)
    if check and res.returncode != 0:
        raise AssertionError(f"ip {' '.join(argv)}: {res.stderr}")
    return res.stdout


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    tag = "hubt-" + secrets.token_hex(3)
    sw, ct = f"{tag}-sw", f"{tag}-ct"
    ip("netns", "add", sw)
    try:
        ip("netns", "add", ct)
        try:
            yield sw, ct
        finally:
            ip("netns", "del", ct, check=False)
    finally:
        ip("netns", "del", sw, check=False)


def features(ns: str, dev: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-k", dev], capture_output=True, text=True,
                          timeout=20).stdout  # fmt: skip


def att(ct: str, **kw: object) -> Attachment:
    fields: dict[str, object] = {
        "key": "c" * 64, "network": "blue", "netns_path": f"/var/run/netns/{ct}", "ifname": "eth0",
        "port": "p1", "mac": "0a:00:00:00:70:14", "addrs": ("10.70.0.20/24",), "gateway": "10.70.0.1",
    }  # fmt: skip
    fields.update(kw)
    return Attachment(**fields)  # type: ignore[arg-type]


async def test_plug_into_a_netns_path(namespaces: tuple[str, str]) -> None:
    sw, ct = namespaces
    gc.collect()  # what earlier tests left behind is theirs: the check below is about this test's own garbage
    links = NetlinkLinks(sw)
    try:
        a = att(ct)
        assert not await links.exists(a.dev)
        await links.add(a, tx_offload_off=True)
        assert await links.exists(a.dev)
        host = ip("-n", sw, "-o", "link", "show", "dev", a.dev)
        assert "state" in host and ",UP" in host.split(">")[0] + ">", host
        inside = ip("-n", ct, "-o", "link", "show", "dev", "eth0")
        assert a.mac in inside and ",UP" in inside.split(">")[0] + ">", inside
        assert "10.70.0.20/24" in ip("-n", ct, "-o", "addr", "show", "dev", "eth0")
        assert "default via 10.70.0.1 dev eth0" in ip("-n", ct, "route")
        for ns, dev in ((ct, "eth0"), (sw, a.dev)):
            k = features(ns, dev)
            assert "tx-checksumming: off" in k, (dev, k)
        assert a.peer not in ip("-n", sw, "-o", "link")  # the peer never lived in the switch's namespace

        # a second interface in the same namespace, another name, no gateway, offload left alone
        b = att(ct, network="red", ifname="net1", mac="0a:00:00:00:71:05", addrs=("10.71.0.5/24",), gateway="")
        await links.add(b, tx_offload_off=False)
        assert "10.71.0.5/24" in ip("-n", ct, "-o", "addr", "show", "dev", "net1")
        assert "tx-checksumming: on" in features(ct, "net1")

        # the name is taken inside: the plug fails and leaves no veth behind
        c = att(ct, network="green", mac="0a:00:00:00:72:05", addrs=("10.72.0.5/24",))
        with pytest.raises(PlumbError):
            await links.add(c, tx_offload_off=True)
        assert not await links.exists(c.dev)
        # a namespace that does not exist
        with pytest.raises(PlumbError, match="netns"):
            await links.add(att(ct, netns_path="/proc/999999999/ns/net", network="x"), tx_offload_off=True)

        await links.delete(a.dev)
        await links.delete(a.dev)  # absent is fine
        assert not await links.exists(a.dev)
        assert "eth0" not in ip("-n", ct, "-o", "link")
        # the worker threads are back in this process' namespace
        here = os.readlink("/proc/self/ns/net")
        tids = os.listdir("/proc/self/task")
        assert all(os.readlink(f"/proc/self/task/{t}/ns/net") == here for t in tids)
        await asyncio.sleep(0)
    finally:
        links.close()
    # nothing is left for the garbage collector to complain about (pyroute2 sockets closed in their own thread)
    unraisable: list[str] = []
    hook, sys.unraisablehook = sys.unraisablehook, lambda u: unraisable.append(f"{u.exc_type.__name__}: {u.exc_value}")
    try:
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert not unraisable, unraisable
