"""Real packets: what the programmer writes makes ovn-controller forward pings.

One chassis (testkit/dataplane.py): ovs-vswitchd with the userspace datapath,
ovn-controller, a network namespace per endpoint.  Proves that the NB rows
the hub writes bind (``up``), that endpoints on one network reach each other,
that two networks without a router do not, and that ``Ready`` follows the
port going up rather than the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil

from core.model import Endpoint, Network, Programmed, Ready, Snapshot, Source
from core.names import lsp_name
from core.nb import Programmer
from testkit.dataplane import OneHostOvn
from testkit.wait import wait_until

_MISSING = [
    b for b in ("ovs-vswitchd", "ovn-controller", "ip", "ping", "ethtool")
    if not (shutil.which(b) or shutil.which(b, path="/usr/sbin:/sbin"))
]
if os.geteuid() != 0 or _MISSING:  # make test installs these and runs as root: a missing one is an error
    raise RuntimeError(f"the data-plane tests need root and {_MISSING or 'root'} (make test installs them)")

SRC = Source("docker", "local")


def ep(uid: str, net: str, ip: str) -> Endpoint:
    return Endpoint(
        source=SRC, uid=uid, namespace="default", name=uid, kind="container", network=net, ips=(ip,), node="node1"
    )


async def test_ping_same_network_not_across_and_ready_after_up() -> None:
    blue1, blue2, red = (
        ep("blue1", "blue", "10.50.0.11"),
        ep("blue2", "blue", "10.50.0.12"),
        ep("red1", "red", "10.60.0.13"),
    )
    objs = (
        Network(source=SRC, name="blue", subnets=("10.50.0.0/24",)),
        Network(source=SRC, name="red", subnets=("10.60.0.0/24",)),
        blue1,
        blue2,
        red,
    )
    # the hub writes options:requested-chassis=<ep.node>: the chassis must carry that name
    with OneHostOvn(chassis="node1") as host:
        events: list[object] = []
        up_when_ready: dict[str, bool] = {}

        async def publish(ev: object) -> None:
            if isinstance(ev, Ready):  # what NB says at the moment the hub reports readiness
                up_when_ready[ev.port] = host.port_up(ev.port)
            events.append(ev)

        prog = Programmer(host.ovn.nb_remote, "dp", publish=publish)  # type: ignore[arg-type]
        await prog.start()
        task = asyncio.create_task(prog.run())
        try:
            prog.apply(Snapshot(source=SRC, objects=objs))
            await prog.flush(20)
            await wait_until(
                lambda: sum(isinstance(e, Programmed) and e.kind == "endpoint" for e in events) >= 3,
                10,
                "Programmed for the three endpoints",
            )
            await asyncio.sleep(0.3)  # nothing is plugged in: no port may be reported ready
            assert not [e for e in events if isinstance(e, Ready)]

            names = {e.uid: lsp_name(e) for e in (blue1, blue2, red)}
            ns = {e.uid: host.add_port(e, prefix=24) for e in (blue1, blue2, red)}
            for name in names.values():
                await asyncio.to_thread(host.wait_up, name, 20)
            await wait_until(
                lambda: {e.port for e in events if isinstance(e, Ready)} >= set(names.values()),
                10,
                "Ready for the three endpoints",
            )
            ready = [e for e in events if isinstance(e, Ready)]
            assert {e.key for e in ready} == {blue1.key, blue2.key, red.key}
            assert up_when_ready == dict.fromkeys(names.values(), True)

            # on-link routes both ways: blue1 ARPs for red1 itself, so only OVN stands in the way
            host.ns_run(ns["blue1"], "ip", "route", "add", "10.60.0.0/24", "dev", "eth0")
            host.ns_run(ns["red1"], "ip", "route", "add", "10.50.0.0/24", "dev", "eth0")
            ping = asyncio.to_thread
            assert await ping(host.ping, ns["blue1"], "10.50.0.12"), "blue1 -> blue2 should pass"
            assert await ping(host.ping, ns["blue2"], "10.50.0.11"), "blue2 -> blue1 should pass"
            # TCP over the userspace datapath needs TX checksum offload off (add_port does it)
            assert await asyncio.to_thread(host.tcp, ns["blue1"], ns["blue2"], "10.50.0.12"), "TCP blue1 -> blue2"
            assert not await ping(host.ping, ns["blue1"], "10.60.0.13", 1, 1), (
                "blue1 -> red1: separate switches, no router"
            )
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await prog.close()
