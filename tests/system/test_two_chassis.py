"""The two-chassis harness (testkit/chassis.py) carries packets across Geneve.

Raw NB rows through ``ovn-nbctl``, no hub: this tests the harness, so later
tests can trust a verdict of "the packet crossed".  Two ports of one switch,
each bound to its own chassis by ``options:requested-chassis``; ping and TCP
between them must pass, and each chassis' datapath must show the packets
encapsulated (``tnl_push``) and decapsulated (``tnl_pop``): the two namespaces
have no other link than the underlay veth, so nothing else could carry them.

A last test puts the hub's programmer in front: endpoints whose ``node`` are
the two chassis names bind where the hub's ``options:requested-chassis`` says.

The provider-network part: an "outside host" behind ``br-ex`` on chassis 1,
reached from a port on a switch with a localnet port.

Synchronisation is ``ovn-nbctl --wait=hv sync`` (both ovn-controllers have
installed the flows for what NB holds) and bounded condition waits, never a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Iterator

import pytest

from core.model import Endpoint, Network, Ready, Snapshot, Source
from core.names import derived_mac, lsp_name
from core.nb import Programmer
from testkit.chassis import TwoChassisOvn
from testkit.wait import wait_until

_MISSING = [
    b
    for b in ("ovs-vswitchd", "ovn-controller", "ip", "ping", "ethtool")
    if not (shutil.which(b) or shutil.which(b, path="/usr/sbin:/sbin"))
]
if os.geteuid() != 0 or _MISSING:  # make test installs these and runs as root: a missing one is an error
    raise RuntimeError(f"the data-plane tests need root and {_MISSING or 'root'} (make test installs them)")

SRC = Source("docker", "local")
SWITCH = "geneve-net"
WAIT = 20.0


def ep(uid: str, ip: str, node: str, net: str = SWITCH) -> Endpoint:
    return Endpoint(
        source=SRC, uid=uid, namespace="default", name=uid, kind="container", network=net, ips=(ip,), node=node
    )


def add_lsp(pair: TwoChassisOvn, switch: str, e: Endpoint) -> str:
    """The row the hub would write: MAC + IP, port security, requested-chassis = node."""
    name, addr = lsp_name(e), f"{derived_mac(e)} {e.ips[0]}"
    pair.ovn.nbctl(
        "lsp-add", switch, name,
        "--", "lsp-set-addresses", name, addr,
        "--", "lsp-set-port-security", name, addr,
        "--", "lsp-set-options", name, f"requested-chassis={e.node}",
    )  # fmt: skip
    return name


@pytest.fixture
def pair() -> Iterator[TwoChassisOvn]:
    with TwoChassisOvn() as p:
        yield p


def test_ping_and_tcp_cross_the_geneve_tunnel(pair: TwoChassisOvn) -> None:
    c1, c2 = pair.chassis_names
    a, b = ep("a", "10.70.0.11", c1), ep("b", "10.70.0.12", c2)
    pair.ovn.nbctl("ls-add", SWITCH)
    names = [add_lsp(pair, SWITCH, e) for e in (a, b)]
    ns_a, ns_b = pair.add_port(0, a), pair.add_port(1, b)
    for name in names:
        pair.wait_up(name, WAIT)
    assert [pair.bound_chassis(n) for n in names] == [c1, c2]
    pair.ovn.nbctl(f"--timeout={int(WAIT)}", "--wait=hv", "sync")

    before = [ch.tunnel_flow_packets() for ch in pair.chassis]
    assert pair.ping(ns_a, "10.70.0.12"), "a (chassis 1) -> b (chassis 2)"
    assert pair.ping(ns_b, "10.70.0.11"), "b (chassis 2) -> a (chassis 1)"
    assert pair.tcp(ns_a, ns_b, "10.70.0.12"), "TCP a -> b"
    # a full 1500-byte inner frame, not fragmented: the underlay's MTU leaves room for the Geneve header
    pair.ns_run(ns_a, "ping", "-c", "2", "-i", "0.2", "-W", "2", "-M", "do", "-s", "1472", "10.70.0.12")
    after = [ch.tunnel_flow_packets() for ch in pair.chassis]
    for i, ((push0, pop0), (push1, pop1)) in enumerate(zip(before, after, strict=True)):
        # two pings each way and a TCP exchange: at least 4 packets each way through each tunnel end
        assert push1 - push0 >= 4, f"chassis {i + 1} encapsulated {push1 - push0} packets"
        assert pop1 - pop0 >= 4, f"chassis {i + 1} decapsulated {pop1 - pop0} packets"


async def test_the_hub_binds_each_endpoint_on_its_node(pair: TwoChassisOvn) -> None:
    c1, c2 = pair.chassis_names
    a, b = ep("ha", "10.80.0.11", c1, net="hubnet"), ep("hb", "10.80.0.12", c2, net="hubnet")
    events: list[object] = []

    async def publish(ev: object) -> None:
        events.append(ev)

    prog = Programmer(pair.nb_remote, "two-chassis", publish=publish)  # type: ignore[arg-type]
    await prog.start()
    task = asyncio.create_task(prog.run())
    try:
        prog.apply(Snapshot(source=SRC, objects=(Network(source=SRC, name="hubnet", subnets=("10.80.0.0/24",)), a, b)))
        await prog.flush(WAIT)
        ns_a = await asyncio.to_thread(pair.add_port, 0, a)
        await asyncio.to_thread(pair.add_port, 1, b)
        names = {lsp_name(a), lsp_name(b)}
        await wait_until(lambda: {e.port for e in events if isinstance(e, Ready)} >= names, WAIT, "Ready for both")
        assert [await asyncio.to_thread(pair.bound_chassis, lsp_name(e)) for e in (a, b)] == [c1, c2]
        await asyncio.to_thread(pair.ovn.nbctl, f"--timeout={int(WAIT)}", "--wait=hv", "sync")
        assert await asyncio.to_thread(pair.ping, ns_a, "10.80.0.12"), "ha (chassis 1) -> hb (chassis 2)"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await prog.close()


def test_outside_host_over_a_provider_network(pair: TwoChassisOvn) -> None:
    c1, _ = pair.chassis_names
    outside = pair.add_outside_host(0, "physnet1", "172.31.0.100/24")
    vm = ep("vm", "172.31.0.11", c1, net="provider")
    pair.ovn.nbctl(
        "ls-add", "provider",
        "--", "lsp-add", "provider", "provider-localnet",
        "--", "lsp-set-type", "provider-localnet", "localnet",
        "--", "lsp-set-addresses", "provider-localnet", "unknown",
        "--", "lsp-set-options", "provider-localnet", "network_name=physnet1",
    )  # fmt: skip
    name = add_lsp(pair, "provider", vm)
    ns_vm = pair.add_port(0, vm)
    pair.wait_up(name, WAIT)
    pair.ovn.nbctl(f"--timeout={int(WAIT)}", "--wait=hv", "sync")
    cms = pair.sbctl("--bare", "--columns=other_config", "find", "Chassis", f"name={c1}")
    assert "enable-chassis-as-gw" in cms
    assert pair.ping(ns_vm, "172.31.0.100"), "vm -> outside host through br-ex"
    assert pair.ping(outside, "172.31.0.11"), "outside host -> vm"
