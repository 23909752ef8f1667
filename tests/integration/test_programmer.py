"""The OVN programmer against a real ovsdb-server with the OVN NB schema."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import msgspec
import pytest

from core.model import Delete, Endpoint, Network, Programmed, Ready, Rejected, Snapshot, Source, Upsert
from core.names import OWNER
from core.nb import Programmer
from core.nb.tables import LS
from hub.sandbox import OvnSandbox
from testkit.nb import nb_rows, ovs_map, ovs_set
from testkit.wait import wait_until

SRC = Source("docker", "local")
OTHER = Source("k8s", "prod")


def eps(n: int, src: Source = SRC, net: str = "blue", base: int = 0) -> list[Endpoint]:
    return [
        Endpoint(
            source=src, uid=f"u{i}", namespace="default", name=f"c{i}", kind="container", network=net,
            ips=(f"10.1.{i // 250}.{i % 250 + 2}",), mac=f"02:00:00:00:{i // 256:02x}:{i % 256:02x}", node="node1",
        )
        for i in range(base, base + n)
    ]


def snap(objs: list[Endpoint | Network], src: Source = SRC) -> Snapshot:
    return Snapshot(source=src, objects=tuple(objs))


class Published:
    def __init__(self) -> None:
        self.events: list[object] = []

    async def __call__(self, ev: object) -> None:
        self.events.append(ev)


@pytest.fixture
async def prog_factory(ovn: OvnSandbox) -> AsyncIterator[object]:
    made: list[tuple[Programmer, asyncio.Task[None]]] = []

    async def make(hub_id: str = "hub1", **kw: object) -> Programmer:
        p = Programmer(ovn.nb_remote, hub_id, **kw)  # type: ignore[arg-type]
        await p.start()
        task = asyncio.create_task(p.run())
        made.append((p, task))
        p.test_task = task  # type: ignore[attr-defined]
        return p

    yield make
    for p, t in made:
        await stop(p, t)


async def stop(p: Programmer, t: asyncio.Task[None] | None = None) -> None:
    t = t or p.test_task  # type: ignore[attr-defined]
    t.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await t
    await p.close()


def lsp_by_name(ovn: OvnSandbox) -> dict[str, dict[str, object]]:
    return {r["name"]: r for r in nb_rows(ovn, "Logical_Switch_Port")}


async def test_converge_from_empty_then_second_pass_writes_nothing(ovn: OvnSandbox, prog_factory: object) -> None:
    p = await prog_factory()  # type: ignore[operator]
    net = Network(source=SRC, name="blue", subnets=("10.1.0.0/16",), gateway="10.1.0.1")
    objs: list[Endpoint | Network] = [net, *eps(50), *eps(3, net="red", base=100)]
    p.apply(snap(objs))
    await p.flush(30)
    ports = lsp_by_name(ovn)
    assert len(ports) == 53
    row = ports["docker/local/blue/u7"]
    assert ovs_set(row["addresses"]) == ["02:00:00:00:00:07 10.1.0.9"]
    assert ovs_set(row["port_security"]) == ["02:00:00:00:00:07 10.1.0.9"]
    assert ovs_map(row["options"]) == {"requested-chassis": "node1"}
    ext = ovs_map(row["external_ids"])
    assert ext[OWNER] == "hub1" and ext["ovn-hub:uid"] == "u7" and ext["ovn-hub:name"] == "c7"
    switches = {r["name"]: r for r in nb_rows(ovn, "Logical_Switch")}
    assert set(switches) == {"docker/local/blue", "docker/local/red"}
    assert ovs_map(switches["docker/local/blue"]["other_config"]) == {"subnet": "10.1.0.0/16", "exclude_ips": "10.1.0.1"}
    assert len(ovs_set(switches["docker/local/red"]["ports"])) == 3
    assert p.plan() == []
    writes = p.writes
    # replaying the same snapshot and events changes nothing
    p.apply(snap(objs))
    for o in objs:
        p.apply(Upsert(obj=o))
    await p.flush(30)
    assert p.writes == writes
    # a fresh programmer (a restart) finds NB equal to desired and writes nothing
    q = await prog_factory()  # type: ignore[operator]
    q.apply(snap(objs))
    await q.flush(30)
    assert q.writes == 0 and q.plan() == []


async def test_dynamic_addresses_and_updates(ovn: OvnSandbox, prog_factory: object) -> None:
    p = await prog_factory()  # type: ignore[operator]
    e = Endpoint(source=SRC, uid="d1", namespace="ns", name="dyn", kind="container", network="blue")
    p.apply(snap([Network(source=SRC, name="blue", subnets=("10.9.0.0/24",)), e]))
    await p.flush(10)
    assert ovs_set(lsp_by_name(ovn)["docker/local/blue/d1"]["addresses"]) == ["dynamic"]
    moved = Endpoint(source=SRC, uid="d1", namespace="ns", name="dyn", kind="container", network="blue", ips=("10.9.0.7",))
    p.apply(Upsert(obj=moved))
    await p.flush(10)
    assert ovs_set(lsp_by_name(ovn)["docker/local/blue/d1"]["addresses"]) == ["0a:58:0a:09:00:07 10.9.0.7"]


async def test_foreign_rows_are_byte_identical(ovn: OvnSandbox, prog_factory: object) -> None:
    # 100 foreign ports on a foreign switch, one foreign port on a would-be hub name
    args: list[str] = ["ls-add", "foreign"]
    for i in range(100):
        args += ["--", "lsp-add", "foreign", f"f{i}", "--", "lsp-set-addresses", f"f{i}", f"02:aa:00:00:00:{i:02x} 192.168.0.{i + 1}"]
    ovn.nbctl(*args)
    ovn.nbctl("ls-add", "taken", "--", "lsp-add", "taken", "docker/local/blue/u3")
    before = ovn.nbctl("--format=json", "list", "Logical_Switch_Port"), ovn.nbctl("--format=json", "find", "Logical_Switch", "name=foreign")
    published = Published()
    p = await prog_factory(publish=published, retry_interval=3600)  # type: ignore[operator]
    p.apply(snap(eps(10)))
    await p.flush(30)
    # every other port is programmed; the clashing one is rejected with a reason
    names = set(lsp_by_name(ovn))
    assert {f"docker/local/blue/u{i}" for i in range(10)} <= names
    assert "docker/local/blue/u3" in p.failed
    await wait_until(lambda: any(isinstance(e, Rejected) and e.reason == "nb-conflict" for e in published.events), 5)
    # GC of the whole source leaves foreign rows alone
    p.apply(snap([]))
    await p.flush(30)
    after_ports = json.loads(ovn.nbctl("--format=json", "list", "Logical_Switch_Port"))
    before_ports = json.loads(before[0])
    assert after_ports == before_ports
    assert ovn.nbctl("--format=json", "find", "Logical_Switch", "name=foreign") == before[1]
    assert {r["name"] for r in nb_rows(ovn, "Logical_Switch")} == {"foreign", "taken"}


async def test_no_gc_before_snapshot(ovn: OvnSandbox, prog_factory: object) -> None:
    p = await prog_factory()  # type: ignore[operator]
    p.apply(snap(eps(20)))
    p.apply(snap(eps(5, src=OTHER, net="pods"), src=OTHER))
    await p.flush(30)
    await stop(p)
    # restart: docker/local is heard from only through deltas, not a snapshot yet
    q = await prog_factory()  # type: ignore[operator]
    q.apply(Upsert(obj=eps(1, base=100)[0]))
    q.apply(snap(eps(2, src=OTHER, net="pods"), src=OTHER))
    await q.flush(30)
    names = set(lsp_by_name(ovn))
    assert {f"docker/local/blue/u{i}" for i in range(20)} <= names, "GC ran before the source's snapshot"
    assert "docker/local/blue/u100" in names
    assert {n for n in names if n.startswith("k8s/")} == {"k8s/prod/pods/u0", "k8s/prod/pods/u1"}
    # the snapshot licenses GC: exactly the snapshot survives
    q.apply(snap(eps(3)))
    await q.flush(30)
    assert {n for n in lsp_by_name(ovn) if n.startswith("docker/")} == {f"docker/local/blue/u{i}" for i in range(3)}


async def test_switch_with_foreign_port_is_not_deleted(ovn: OvnSandbox, prog_factory: object) -> None:
    p = await prog_factory()  # type: ignore[operator]
    p.apply(snap(eps(2)))
    await p.flush(10)
    ovn.nbctl("lsp-add", "docker/local/blue", "operator-port")
    p.apply(snap([]))
    await p.flush(10)
    assert {r["name"] for r in nb_rows(ovn, "Logical_Switch_Port")} == {"operator-port"}
    assert [r["name"] for r in nb_rows(ovn, "Logical_Switch")] == ["docker/local/blue"]


async def test_foreign_port_survives_single_port_removals(ovn: OvnSandbox, prog_factory: object) -> None:
    """update2 sends a one-element set diff as a bare atom; the replica must
    toggle it, or it loses track of a foreign port on a hub switch."""
    p = await prog_factory()  # type: ignore[operator]
    p.apply(snap(eps(3)))
    await p.flush(10)
    ovn.nbctl("lsp-add", "docker/local/blue", "operator-port")
    p.apply(snap(eps(2)))  # removes u2 alone: a single-atom diff of ports
    await p.flush(10)
    p.apply(snap(eps(1)))
    await p.flush(10)
    await wait_until(lambda: len(p.rows(LS)["docker/local/blue"].cols["ports"]) == 2, 5, "replica ports = u0 + operator-port")
    p.apply(snap([]))
    await p.flush(10)
    assert {r["name"] for r in nb_rows(ovn, "Logical_Switch_Port")} == {"operator-port"}
    assert [r["name"] for r in nb_rows(ovn, "Logical_Switch")] == ["docker/local/blue"]


async def test_delete_and_status_events(ovn: OvnSandbox, prog_factory: object) -> None:
    published = Published()
    p = await prog_factory(publish=published)  # type: ignore[operator]
    p.apply(snap(eps(3)))
    await p.flush(10)
    await wait_until(lambda: sum(isinstance(e, Programmed) and e.kind == "endpoint" for e in published.events) == 3, 5)
    # OVN reports the port up (ovn-northd would, from the SB binding) → Ready
    ovn.nbctl("set", "Logical_Switch_Port", "docker/local/blue/u1", "up=true")
    await wait_until(lambda: any(isinstance(e, Ready) and e.key == "blue/u1" for e in published.events), 5, "ready")
    p.apply(Delete(source=SRC, kind="endpoint", key="blue/u2"))
    await p.flush(10)
    assert set(lsp_by_name(ovn)) == {"docker/local/blue/u0", "docker/local/blue/u1"}
    await wait_until(lambda: any(isinstance(e, Programmed) and e.deleted and e.key == "blue/u2" for e in published.events), 5)


async def test_drift_on_owned_row_is_repaired(ovn: OvnSandbox, prog_factory: object) -> None:
    p = await prog_factory()  # type: ignore[operator]
    p.apply(snap(eps(2)))
    await p.flush(10)
    ovn.nbctl("lsp-set-addresses", "docker/local/blue/u0", "02:bb:bb:bb:bb:bb 10.99.0.1")
    await wait_until(
        lambda: ovs_set(lsp_by_name(ovn)["docker/local/blue/u0"]["addresses"]) == ["02:00:00:00:00:00 10.1.0.2"], 10, "repair"
    )
    ovn.nbctl("lsp-del", "docker/local/blue/u1")
    await wait_until(lambda: "docker/local/blue/u1" in lsp_by_name(ovn), 10, "re-create")


async def test_nb_restart_resyncs(ovn: OvnSandbox, prog_factory: object) -> None:
    p = await prog_factory()  # type: ignore[operator]
    p.apply(snap(eps(5)))
    await p.flush(10)
    ovn.restart("nb")
    p.apply(snap(eps(7)))
    await wait_until(lambda: len(lsp_by_name(ovn)) == 7, 20, "7 ports after NB restart")
    await p.flush(20)
    assert p.plan() == []


async def test_endpoints_changed_while_stopped_are_rewritten_after_a_clean_restart(
    ovn: OvnSandbox, prog_factory: object, tmp_path: object
) -> None:
    """hubd's order at start: the adapters' Snapshot is applied while NB still
    loads, so the ports are digested ahead of the first diff (``Ahead``).  An
    endpoint that changed while the hub was stopped (another IP, another node,
    a MAC left to derive, gone, new) is written after a restart from the port
    cache all the same; the unchanged ones are not touched."""
    from pathlib import Path

    cache = Path(str(tmp_path)) / "ports.cache"
    net = Network(source=SRC, name="blue", subnets=("10.1.0.0/16",))
    old = eps(200)
    p = await prog_factory(cache_path=cache)  # type: ignore[operator]
    p.apply(snap([net, *old]))
    await p.flush(30)
    assert await p.save_port_cache()
    await stop(p)
    before = lsp_by_name(ovn)

    new = list(old)
    new[3] = msgspec.structs.replace(old[3], ips=("10.1.9.3",))
    new[4] = msgspec.structs.replace(old[4], node="node2")
    new[5] = msgspec.structs.replace(old[5], mac=None)
    del new[6]
    new.append(eps(1, base=500)[0])
    q = Programmer(ovn.nb_remote, "hub1", cache_path=cache)
    q.apply(snap([net, *new]))  # before NB answered: digested ahead
    assert q.view.ahead is not None
    moved = msgspec.structs.replace(old[10], ips=("10.1.9.10",))
    q.apply(Upsert(obj=moved))  # changed after it was digested (as NB had it)
    await q.start()
    task = asyncio.create_task(q.run())
    try:
        await q.flush(30)
        assert (q.ports_from_cache, q.ports_read) == (200, 0)
        assert q.view.ahead is None, "taken by the first batch"
        assert q.writes == 6  # four updates, a delete, an insert: nothing else
        after = lsp_by_name(ovn)
        assert set(after) == {f"docker/local/blue/{e.uid}" for e in new}
        assert ovs_set(after["docker/local/blue/u3"]["addresses"]) == ["02:00:00:00:00:03 10.1.9.3"]
        assert ovs_map(after["docker/local/blue/u4"]["options"]) == {"requested-chassis": "node2"}
        assert ovs_set(after["docker/local/blue/u10"]["addresses"]) == ["02:00:00:00:00:0a 10.1.9.10"]
        assert ovs_set(after["docker/local/blue/u5"]["addresses"]) == ["0a:58:0a:01:00:07 10.1.0.7"]
        for name in ("docker/local/blue/u0", "docker/local/blue/u199"):
            assert after[name] == before[name], "unchanged: not written"
        assert q.plan() == []
    finally:
        await stop(q, task)


async def test_restart_cache_reads_only_changed_ports_and_still_repairs_drift(
    ovn: OvnSandbox, prog_factory: object, tmp_path: object
) -> None:
    """A clean stop writes the port cache; the next start takes unchanged rows
    from it (same _uuid and _version) and reads only rows changed while it was
    down, and those changes are still repaired.  A damaged or missing cache
    means a full read."""
    from pathlib import Path

    cache = Path(str(tmp_path)) / "ports.cache"
    net = Network(source=SRC, name="blue", subnets=("10.1.0.0/16",))
    objs: list[Endpoint | Network] = [net, *eps(300)]
    p = await prog_factory(cache_path=cache)  # type: ignore[operator]
    p.apply(snap(objs))
    await p.flush(30)
    assert p.ports_read == 0 and p.ports_from_cache == 0  # empty NB: nothing to load
    assert await p.save_port_cache() and cache.exists() and (cache.stat().st_mode & 0o777) == 0o600
    await stop(p)
    before = lsp_by_name(ovn)

    # while the hub is down: one port edited by someone, one deleted
    edited, deleted = "docker/local/blue/u7", "docker/local/blue/u8"
    ovn.nbctl("lsp-set-addresses", edited, "02:00:00:00:00:ff 10.1.9.9")
    ovn.nbctl("lsp-del", deleted)

    q = await prog_factory(cache_path=cache)  # type: ignore[operator]
    assert (q.ports_from_cache, q.ports_read) == (298, 1)
    assert not cache.exists(), "the cache is consumed at start"
    q.apply(snap(objs))
    await q.flush(30)
    after = lsp_by_name(ovn)
    assert set(after) == set(before)
    assert ovs_set(after[edited]["addresses"]) == ovs_set(before[edited]["addresses"]), "drift repaired"
    assert q.writes == 2  # the edited port rewritten, the deleted one re-created: nothing else
    untouched = "docker/local/blue/u9"
    assert after[untouched]["_uuid"] == before[untouched]["_uuid"]

    # a damaged cache: warned, removed, everything read
    assert await q.save_port_cache()
    await stop(q)
    cache.write_bytes(b"\x93garbage")
    r = await prog_factory(cache_path=cache)  # type: ignore[operator]
    assert (r.ports_from_cache, r.ports_read) == (0, 300) and not cache.exists()
    r.apply(snap(objs))
    await r.flush(30)
    assert r.writes == 0
    await stop(r)
    # no cache at all (a kill -9 writes none): everything read
    s = await prog_factory(cache_path=cache)  # type: ignore[operator]
    assert (s.ports_from_cache, s.ports_read) == (0, 300)
    s.apply(snap(objs))
    await s.flush(30)
    # the generation counts cache-based starts in a row; at the limit one full read breaks the chain
    from core.nb.portcache import CACHE_MAX_GENERATIONS, PortCache

    assert await s.save_port_cache()
    await stop(s)
    saved = msgspec.msgpack.decode(cache.read_bytes(), type=PortCache)
    assert saved.generation == 0 and len(saved.ports) == 300
    cache.write_bytes(msgspec.msgpack.encode(msgspec.structs.replace(saved, generation=CACHE_MAX_GENERATIONS - 1)))
    t = await prog_factory(cache_path=cache)  # type: ignore[operator]
    assert (t.ports_from_cache, t.ports_read) == (300, 0)
    t.apply(snap(objs))
    await t.flush(30)
    assert await t.save_port_cache()
    await stop(t)
    assert msgspec.msgpack.decode(cache.read_bytes(), type=PortCache).generation == CACHE_MAX_GENERATIONS
    u = await prog_factory(cache_path=cache)  # type: ignore[operator]
    assert (u.ports_from_cache, u.ports_read) == (0, 300)
