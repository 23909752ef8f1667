"""Shared networks against a real ovsdb-server: two sources declaring one shared
network get one switch ``ovn-hub/net/<name>`` holding both sources' ports and
one router port; one source leaving keeps it, both gone collects it (only once
every expected source listed); a conflicting subnet is rejected with its reason;
100 foreign rows stay byte-identical throughout."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from core.model import Endpoint, Network, Rejected, Snapshot, Source
from core.model.fabric import Fabric, RouterSpec
from core.names import SOURCE
from core.nb import Programmer
from hub.sandbox import OvnSandbox
from testkit.nb import nb_rows, ovs_map, ovs_set
from testkit.wait import wait_until

A = Source("docker", "a")
B = Source("docker", "b")
SHARED = "ovn-hub/net/green"


def green(src: Source, subnet: str = "10.60.0.0/24", gateway: str = "10.60.0.1") -> Network:
    return Network(source=src, name="green", subnets=(subnet,), gateway=gateway, shared=True)


def ep(src: Source, uid: str, ip: str) -> Endpoint:
    return Endpoint(source=src, uid=uid, namespace="default", name=uid, kind="container", network="green",
                    ips=(ip,), node="n1")  # fmt: skip


class Published:
    def __init__(self) -> None:
        self.events: list[object] = []

    async def __call__(self, ev: object) -> None:
        self.events.append(ev)


@pytest.fixture
async def make_prog(ovn: OvnSandbox) -> AsyncIterator[Callable[..., Awaitable[Programmer]]]:
    made: list[tuple[Programmer, asyncio.Task[None]]] = []

    async def make(**kw: Any) -> Programmer:
        p = Programmer(ovn.nb_remote, "hub1", **kw)
        p.set_fabric(Fabric(routers=(RouterSpec(name="main"),)))
        p.expect([A, B])
        await p.start()
        made.append((p, asyncio.create_task(p.run())))
        return p

    make.made = made  # type: ignore[attr-defined]
    yield make
    for p, t in made:
        await stop(p, t)


async def stop(p: Programmer, t: asyncio.Task[None]) -> None:
    t.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await t
    await p.close()


async def stop_all(make_prog: Any) -> None:
    """Stop every programmer made so far (a hub going down)."""
    for p, t in make_prog.made:
        await stop(p, t)


def switches(ovn: OvnSandbox) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in nb_rows(ovn, "Logical_Switch")}


def ports_of(ovn: OvnSandbox, switch: str) -> set[str]:
    uuids = {u[1] if isinstance(u, list) else u for u in ovs_set(switches(ovn)[switch]["ports"])}
    return {r["name"] for r in nb_rows(ovn, "Logical_Switch_Port") if r["_uuid"][1] in uuids}


def foreign(ovn: OvnSandbox) -> tuple[list[Any], str]:
    """The foreign rows as ovn-nbctl prints them (every column, uuids and versions included)."""
    ports = json.loads(ovn.nbctl("--format=json", "list", "Logical_Switch_Port"))
    name = ports["headings"].index("name")
    return ([r for r in ports["data"] if not str(r[name]).startswith(("docker/", "ovn-hub/"))],
            ovn.nbctl("--format=json", "find", "Logical_Switch", "name=foreign"))  # fmt: skip


async def test_one_switch_for_two_sources_kept_while_one_declares_it_then_collected(
    ovn: OvnSandbox, make_prog: Callable[..., Awaitable[Programmer]]
) -> None:
    args: list[str] = ["ls-add", "foreign"]
    for i in range(100):
        args += ["--", "lsp-add", "foreign", f"f{i}", "--", "lsp-set-addresses", f"f{i}", f"02:aa:00:00:00:{i:02x} 10.60.0.{i + 2}"]
    ovn.nbctl(*args)
    before = foreign(ovn)

    p = await make_prog()
    p.apply(Snapshot(source=A, objects=(green(A), ep(A, "a1", "10.60.0.200"))))
    p.apply(Snapshot(source=B, objects=(green(B), ep(B, "b1", "10.60.0.201"))))
    await p.flush(30)
    sw = switches(ovn)
    assert set(sw) == {"foreign", SHARED}  # no docker/a/green nor docker/b/green
    assert ovs_map(sw[SHARED]["other_config"]) == {"subnet": "10.60.0.0/24", "exclude_ips": "10.60.0.1"}
    assert ovs_map(sw[SHARED]["external_ids"])[SOURCE] == "ovn-hub/fabric"
    assert ports_of(ovn, SHARED) == {"docker/a/green/a1", "docker/b/green/b1", f"ovn-hub/stor/{SHARED}"}
    lrps = {r["name"]: r for r in nb_rows(ovn, "Logical_Router_Port")}
    assert set(lrps) == {f"ovn-hub/rtos/{SHARED}"}  # the router joins it once
    assert ovs_set(lrps[f"ovn-hub/rtos/{SHARED}"]["networks"]) == ["10.60.0.1/24"]
    dns = {n for r in nb_rows(ovn, "DNS") for n in ovs_map(r["records"])}
    assert dns == {"a1.default.docker.a.hub", "b1.default.docker.b.hub"}

    # a restart writes nothing
    await stop_all(make_prog)
    q = await make_prog()
    q.apply(Snapshot(source=A, objects=(green(A), ep(A, "a1", "10.60.0.200"))))
    q.apply(Snapshot(source=B, objects=(green(B), ep(B, "b1", "10.60.0.201"))))
    await q.flush(30)
    assert q.writes == 0 and q.plan() == []

    # A leaves: its port goes, the switch stays with B's
    q.apply(Snapshot(source=A, objects=()))
    await q.flush(30)
    assert ports_of(ovn, SHARED) == {"docker/b/green/b1", f"ovn-hub/stor/{SHARED}"}
    # B gone too: the switch, its router port and its DNS are collected
    q.apply(Snapshot(source=B, objects=()))
    await q.flush(30)
    assert set(switches(ovn)) == {"foreign"}
    assert nb_rows(ovn, "Logical_Router_Port") == [] and nb_rows(ovn, "DNS") == []
    assert foreign(ovn) == before


async def test_a_source_that_has_not_listed_keeps_the_switch(
    ovn: OvnSandbox, make_prog: Callable[..., Awaitable[Programmer]]
) -> None:
    p = await make_prog()
    p.apply(Snapshot(source=A, objects=(green(A),)))
    p.apply(Snapshot(source=B, objects=(green(B), ep(B, "b1", "10.60.0.201"))))
    await p.flush(30)
    await stop_all(make_prog)
    # a restarted hub: A listed without green, B has not listed yet
    q = await make_prog()
    q.apply(Snapshot(source=A, objects=()))
    await q.flush(30)
    assert ports_of(ovn, SHARED) == {"docker/b/green/b1", f"ovn-hub/stor/{SHARED}"}
    q.apply(Snapshot(source=B, objects=(green(B), ep(B, "b1", "10.60.0.201"))))
    await q.flush(30)
    assert SHARED in switches(ovn)


async def test_a_conflicting_subnet_is_rejected_and_nothing_else_stops(
    ovn: OvnSandbox, make_prog: Callable[..., Awaitable[Programmer]]
) -> None:
    published = Published()
    p = await make_prog(publish=published)
    p.apply(Snapshot(source=B, objects=(green(B, "10.61.0.0/24", "10.61.0.1"), ep(B, "b1", "10.61.0.5"))))
    p.apply(Snapshot(source=A, objects=(green(A), ep(A, "a1", "10.60.0.200"))))
    await p.flush(30)
    await wait_until(lambda: any(isinstance(e, Rejected) for e in published.events), 5)
    (rej,) = [e for e in published.events if isinstance(e, Rejected)]
    assert (rej.source, rej.reason, rej.ref) == (B, "shared-conflict", SHARED)
    assert "10.61.0.0/24" in rej.message and "10.60.0.0/24" in rej.message
    assert ovs_map(switches(ovn)[SHARED]["other_config"])["subnet"] == "10.60.0.0/24"  # docker/a wins
    assert ports_of(ovn, SHARED) >= {"docker/a/green/a1", "docker/b/green/b1"}
