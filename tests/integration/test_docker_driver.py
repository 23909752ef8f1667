"""The Docker network + IPAM driver against a REAL private dockerd, without OVN.

The plugin is served in this process (:meth:`DriverNode.start_server`) on a
unix socket in a temp dir and installed through Docker's plugin discovery (a
uniquely named spec file in ``/etc/docker/plugins``, removed afterwards).  Its
veths are real (netlink; the host end in a network namespace of the test's own,
standing in for ovs-vswitchd's), the bridge a dict.  What Docker asks and what
the containers get: the protocol over the socket, the IPAM's pool, gateway and
addresses, the MAC, the default route, the veth moved into the sandbox and
removed again; and what the hub's Docker adapter makes of it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.docker.driver import CONTENT_TYPE, handoff_names
from adapters.docker.drivernode import DriverNode
from core.model import Endpoint, Network, Snapshot, Upsert
from core.vif.handoff import FakeHandoff, HandoffLinks
from testkit import dockerplugin
from testkit.dockerd import PrivateDockerd, docker
from tests.unit.test_docker_adapter import Sink, make_adapter


class RealLinks(FakeHandoff):
    """Real veths (host end in ``netns``), the bridge in a dict."""

    def __init__(self, netns: str) -> None:
        super().__init__(netdev=True)
        self.real = HandoffLinks(netns)

    async def create(self, dev: str, peer: str, mac: str) -> None:
        await self.real.create(dev, peer, mac, tx_offload_off=True)

    async def exists(self, dev: str) -> bool:
        return await self.real.exists(dev)

    async def destroy(self, dev: str) -> None:
        await self.real.delete(dev)


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"hubt-{secrets.token_hex(3)}-dr"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, timeout=20)


async def cli(d: PrivateDockerd, *args: str, check: bool = True) -> str:
    """The docker CLI in a thread: the plugin answering it runs in this event loop."""
    return await asyncio.to_thread(docker, d, *args, check=check)


async def sh(*argv: str) -> str:
    """A command's stdout ("" if it failed), in a thread."""
    res = await asyncio.to_thread(subprocess.run, list(argv), capture_output=True, text=True, timeout=20)
    return res.stdout if res.returncode == 0 else ""


async def call(sock: str, method: str, body: bytes = b"") -> tuple[int, str, Any]:
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=sock)) as s:
        async with s.post(f"http://plugin/{method}", data=body) as r:
            return r.status, r.content_type, await r.json(content_type=None)


async def test_the_driver_serves_a_real_engine(dockerd: PrivateDockerd, netns: str, tmpdir_short: Path) -> None:
    d = dockerd
    name = dockerplugin.unique_name()
    sock = str(tmpdir_short / "p" / "driver.sock")
    links = RealLinks(netns)
    node = DriverNode(name=name, socket=sock, state_path=str(tmpdir_short / "state.json"), hub_id="h",
                      nb_remote="unix:/nonexistent", docker_url=d.url, chassis="c1", handoff=links)  # fmt: skip
    node.ovs_ready.set()
    await node.start_server()
    try:
        with dockerplugin.installed(name, sock) as spec:
            assert spec.read_text() == f"unix://{sock}\n"
            await run_engine(d, name, sock, node, links, netns)
        assert not spec.exists()
    finally:
        await node.stop_server()
        await cli(d, "rm", "-f", "dr1", "dr2", check=False)
        await cli(d, "network", "rm", "drnet", "drbr", check=False)
    assert not await asyncio.to_thread(Path(sock).exists)


async def run_engine(d: PrivateDockerd, name: str, sock: str, node: DriverNode, links: RealLinks, netns: str) -> None:
    # the protocol itself
    status, ctype, body = await call(sock, "Plugin.Activate")
    assert (status, ctype, body) == (200, CONTENT_TYPE, {"Implements": ["NetworkDriver", "IpamDriver"]})
    assert (await call(sock, "NetworkDriver.Frobnicate"))[0] == 404
    assert (await call(sock, "IpamDriver.RequestPool", b"{nope"))[0] == 400
    status, _, body = await call(sock, "IpamDriver.RequestAddress", b'{"PoolID": "x/y"}')
    assert status == 500 and "unknown pool" in body["Err"], body

    # Docker's calls: a network needs a subnet; then pool, gateway and the network
    res = await asyncio.to_thread(subprocess.run, ["docker", "-H", d.url, "network", "create", "-d", name,
                                                   "--ipam-driver", name, "drnet"], capture_output=True, text=True,
                                  timeout=60)  # fmt: skip
    assert res.returncode != 0 and "give --subnet" in res.stderr, res.stderr
    nid = await cli(d, "network", "create", "-d", name, "--ipam-driver", name, "--subnet", "10.77.0.0/24", "drnet")
    assert node.state.networks[nid].gateways == ["10.77.0.1/24"]
    await cli(d, "network", "create", "--subnet", "10.78.0.0/24", "drbr")  # Docker's own bridge, beside it

    # the hub's Docker adapter: the driver's network is a hub network, Docker's bridge is not
    adapter = make_adapter(d.url, driver=name)
    sink = Sink()
    task = asyncio.create_task(adapter.run(sink))
    try:
        first = sink.events[await sink.wait_for(lambda e: isinstance(e, Snapshot))]
        assert isinstance(first, Snapshot)
        nets = {o.name: o for o in first.objects if isinstance(o, Network)}
        assert set(nets) == {"drnet"} and (nets["drnet"].subnets, nets["drnet"].gateway) == (("10.77.0.0/24",),
                                                                                           "10.77.0.1")  # fmt: skip

        cid = await cli(d, "run", "-d", "--name", "dr1", "--network", "drnet", "busybox:hub", "sleep", "3600")
        await cli(d, "run", "-d", "--name", "dr2", "--network", "drbr", "busybox:hub", "sleep", "3600")
        i = await sink.wait_for(lambda e: isinstance(e, Upsert) and isinstance(e.obj, Endpoint) and e.obj.uid == cid)
        ev = sink.events[i]
        assert isinstance(ev, Upsert) and isinstance(ev.obj, Endpoint)
        assert (ev.obj.network, ev.obj.ips, ev.obj.mac) == ("drnet", ("10.77.0.2",), "0a:58:0a:4d:00:02")
        assert not [e for e in sink.events if isinstance(e, Upsert) and isinstance(e.obj, Endpoint)
                    and e.obj.network == "drbr"]  # fmt: skip
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    # inside the container: Docker moved the driver's veth in as eth0 with the address, MAC and route
    addr = await cli(d, "exec", "dr1", "ip", "-o", "addr", "show", "eth0")
    assert "10.77.0.2/24" in addr, addr
    assert "0a:58:0a:4d:00:02" in await cli(d, "exec", "dr1", "ip", "-o", "link", "show", "eth0")
    assert "default via 10.77.0.1 dev eth0" in await cli(d, "exec", "dr1", "ip", "route")
    nets = json.loads(await cli(d, "inspect", "--format", "{{json .NetworkSettings.Networks}}", "dr1"))
    eid = nets["drnet"]["EndpointID"]
    dev, peer = handoff_names(eid)
    assert await links.exists(dev)
    ep = node.state.endpoints[eid]
    assert ep.joined and ep.sandbox == (await cli(d, "inspect", "--format", "{{.NetworkSettings.SandboxKey}}", "dr1"))
    # the host end's TX checksum offload is off (netdev), and so is the container end's after the move
    feats = await sh("ip", "netns", "exec", netns, "ethtool", "-k", dev)
    assert "tx-checksumming: off" in feats, feats
    pid = await cli(d, "inspect", "--format", "{{.State.Pid}}", "dr1")
    inner = await sh("nsenter", f"--net=/proc/{pid}/ns/net", "ethtool", "-k", "eth0")
    assert "tx-checksumming: off" in inner, inner
    assert await sh("ip", "link", "show", peer) == "", "the container end is no longer in Docker's namespace"

    # stop and remove: DeleteEndpoint removes the veth, ReleaseAddress frees the address
    await cli(d, "rm", "-f", "dr1")
    assert not await links.exists(dev) and eid not in node.state.endpoints
    assert "10.77.0.2" not in node.state.pools["ovn-hub-local/10.77.0.0/24"].allocated
    await cli(d, "network", "rm", "drnet")
    assert node.state.networks == {} and node.state.pools == {}
    saved = json.loads(await asyncio.to_thread(Path(node.state.path).read_text))
    assert saved["networks"] == {} and saved["endpoints"] == {} and saved["pools"] == {}
