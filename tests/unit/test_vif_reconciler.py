"""core.vif's reconciler against the fake link layer and the fake bridge:
no process, no socket, no namespace.  What the Docker node relies on — adopt
without touching anything, orphans removed, a new netns re-plugged, failures
retried, N at a time, a lost orchestrator ending the pass — checked at the
boundary the reconciler talks to."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

import pytest

from core.vif import Attachment, FakeBridge, FakeLinks, PlumbError, Reconciler, veth_name
from core.vif.attachment import I_NETNS

OWNER = "hub-t"


def att(key: str, netns: str = "", ip: str = "10.0.0.5", **kw: object) -> Attachment:
    fields: dict[str, object] = {
        "key": key,
        "network": "blue",
        "netns_path": netns or f"/run/netns/{key}",
        "port": f"lsp-{key}",
        "mac": "0a:00:00:00:00:05",
        "addrs": (f"{ip}/24",),
        "gateway": "10.0.0.1",
    }
    fields.update(kw)
    return Attachment(**fields)  # type: ignore[arg-type]


class World:
    """What the orchestrator says exists: key → attachment."""

    def __init__(self, *atts: Attachment) -> None:
        self.want = {a.key: a for a in atts}
        self.asked: list[str] = []

    async def desired(self, key: str) -> Attachment | None:
        await asyncio.sleep(0)
        self.asked.append(key)
        return self.want.get(key)

    async def relist(self) -> Iterable[str]:
        await asyncio.sleep(0)
        return list(self.want)


def make(links: FakeLinks | None = None, bridge: FakeBridge | None = None, **kw: object) -> Reconciler:
    return Reconciler(links or FakeLinks(), bridge or FakeBridge(), owner=OWNER, **kw)  # type: ignore[arg-type]


async def first_pass(rec: Reconciler, world: World) -> None:
    await rec.adopt()
    rec.mark(await world.relist())
    await rec.reconcile(world.desired)


@contextlib.asynccontextmanager
async def running(rec: Reconciler, world: World, interval: float = 60.0):  # type: ignore[no-untyped-def]
    task = asyncio.create_task(rec.run(world.desired, world.relist, interval))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(pred, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.005)


def test_attachment_round_trips_through_external_ids() -> None:
    a = att("c1", extra=(("ovn-hub:pid", "42"),), ifname="net1")
    ids = a.ids(OWNER)
    assert ids["iface-id"] == "lsp-c1" and ids["ovn-hub:owner"] == OWNER and ids[I_NETNS] == "/run/netns/c1"
    assert ids["ovn-hub:addresses"] == "0a:00:00:00:00:05 10.0.0.5/24" and ids["ovn-hub:pid"] == "42"
    assert Attachment.from_ids(ids) == a
    assert a.dev == veth_name("c1", "blue") and len(a.dev) == 14 and a.peer == "ovp" + a.dev[3:]
    # the name the Docker-only node gave (sha1 of "container/network"): plumbing made before core.vif keeps it
    assert veth_name("c" * 64, "blue") == "ovh32dd1b93106"
    for missing in ("iface-id", "ovn-hub:container", "ovn-hub:network", I_NETNS):
        assert Attachment.from_ids({k: v for k, v in ids.items() if k != missing}) is None, missing
    assert Attachment.from_ids({**ids, "ovn-hub:addresses": ""}) is None
    no_ifname = {k: v for k, v in ids.items() if k != "ovn-hub:ifname"}
    assert Attachment.from_ids(no_ifname) == att("c1", extra=(("ovn-hub:pid", "42"),))  # eth0 by default


async def test_plug_configures_link_and_bridge_and_counts() -> None:
    links, bridge = FakeLinks(), FakeBridge(netdev=True)
    rec = make(links, bridge)
    plugged: list[tuple[Attachment, float]] = []
    rec.on_plugged = lambda a, s: plugged.append((a, s))
    a, b = att("a"), att("b", ip="10.0.0.6", gateway="")
    world = World(a, b)
    await first_pass(rec, world)
    assert set(rec.plugged) == {"a", "b"} and rec.plugs == 2 and rec.failures == 0
    assert links.links[a.dev] == {"netns": a.netns_path, "ifname": "eth0", "mac": a.mac, "addrs": a.addrs,
                                  "gateway": "10.0.0.1", "tx_offload_off": True}  # fmt: skip
    assert links.links[b.dev]["gateway"] == ""
    assert bridge.interfaces[a.dev] == a.ids(OWNER)
    assert [x.key for x, _ in plugged] == ["a", "b"] and all(s >= 0 for _, s in plugged)
    assert links.calls[:2] == [("delete", a.dev), ("add", a.dev)]  # stale leftovers go first


async def test_kernel_datapath_keeps_offload() -> None:
    links = FakeLinks()
    rec = make(links, FakeBridge(netdev=False))
    await first_pass(rec, World(att("a")))
    assert links.links[att("a").dev]["tx_offload_off"] is False


async def test_restart_adopts_untouched_and_removes_orphans() -> None:
    links, bridge = FakeLinks(), FakeBridge()
    a, b, c = att("a"), att("b", ip="10.0.0.6"), att("c", ip="10.0.0.7")
    await first_pass(make(links, bridge), World(a, b, c))
    links.calls.clear()
    bridge.calls.clear()
    # a new process: c went away while it was down, d is new; a and b are as they were
    d = att("d", ip="10.0.0.8")
    world = World(a, b, d)
    rec = make(links, bridge)
    await first_pass(rec, world)
    assert set(rec.plugged) == {"a", "b", "d"} and rec.unplugs == 1 and rec.plugs == 1
    assert set(world.asked) == {"a", "b", "c", "d"}  # the orphan is looked at because the bridge has it
    assert sorted(bridge.calls) == sorted([("delete", c.dev), ("add", d.dev)])  # (c and d are fixed concurrently)
    assert sorted(links.calls) == sorted([("delete", c.dev), ("delete", d.dev), ("add", d.dev)])
    assert c.dev not in links.links and c.dev not in bridge.interfaces


async def test_a_new_netns_is_replugged_and_a_vanished_link_recreated() -> None:
    links, bridge = FakeLinks(), FakeBridge()
    a = att("a", netns="/proc/10/ns/net")
    world = World(a)
    rec = make(links, bridge)
    await first_pass(rec, world)
    # the workload restarted: same key, new namespace
    a2 = att("a", netns="/proc/20/ns/net")
    world.want["a"] = a2
    links.calls.clear()
    bridge.calls.clear()
    await rec.fix(world.desired, "a")
    assert rec.plugged["a"] == a2 and links.links[a2.dev]["netns"] == "/proc/20/ns/net"
    assert bridge.calls == [("delete", a.dev), ("add", a.dev)] and rec.unplugs == 1
    # the namespace vanished under an unchanged record: the link is made again
    links.vanish(a2.dev)
    links.calls.clear()
    await rec.fix(world.desired, "a")
    assert a2.dev in links.links and links.calls == [("delete", a2.dev), ("add", a2.dev)]
    # nothing changed: nothing done
    links.calls.clear()
    bridge.calls.clear()
    await rec.fix(world.desired, "a")
    assert links.calls == [] and bridge.calls == []


async def test_incomplete_records_are_removed_and_old_ones_completed() -> None:
    bridge = FakeBridge()
    a = att("a")
    legacy = {k: v for k, v in a.ids(OWNER).items() if k != I_NETNS}
    bridge.interfaces[a.dev] = legacy  # what a version before core.vif wrote
    bridge.interfaces["ovhdeadbeef000"] = {"ovn-hub:owner": OWNER, "iface-id": "x"}
    bridge.interfaces["foreign"] = {"ovn-hub:owner": "someone-else", "iface-id": "y"}
    bridge.interfaces[att("b").dev + "x"] = att("b").ids(OWNER)  # name does not match its key: not ours
    rec = make(bridge=bridge)
    await rec.adopt()
    assert rec.plugged == {} and set(bridge.interfaces) == {"foreign"}

    bridge.interfaces[a.dev] = legacy
    rec = make(bridge=bridge, complete_ids=lambda ids: {I_NETNS: a.netns_path, **ids})
    await rec.adopt()
    assert rec.plugged == {"a": a} and rec.dirty == {"a"}


async def test_a_failed_plug_is_cleaned_up_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    links, bridge = FakeLinks(), FakeBridge()
    a, b = att("a"), att("b", ip="10.0.0.6")
    links.fail(a.dev, PlumbError("ip: RTNETLINK answers: Operation not permitted"))
    bridge.fail(b.dev, RuntimeError("ovsdb said no"))
    world = World(a, b)
    rec = make(links, bridge, retry=0.05, what="container")
    await first_pass(rec, world)
    assert rec.plugged == {} and rec.failures == 2
    assert a.dev not in links.links and b.dev not in links.links, "a failed plug leaves no veth"
    assert links.calls[-1] == ("delete", b.dev)  # the bridge failed after the link was made: removed again
    warn = [r for r in caplog.records if r.levelname == "WARNING"]
    err = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(warn) == 1 and "container a: ip: RTNETLINK" in warn[0].getMessage() and warn[0].exc_info is None
    assert len(err) == 1 and "RuntimeError: ovsdb said no" in err[0].getMessage() and err[0].exc_info
    async with running(rec, world):
        await until(lambda: set(rec.plugged) == {"a", "b"})
    assert rec.plugs == 2 and bridge.interfaces[a.dev] == a.ids(OWNER)


async def test_at_most_n_at_a_time_and_marks_during_a_fix_are_not_lost() -> None:
    links = FakeLinks()
    links.gate = asyncio.Event()
    world = World(*(att(f"k{i:02d}", ip=f"10.0.1.{i + 2}") for i in range(20)))
    rec = make(links, concurrency=8)
    async with running(rec, world):
        rec.mark(world.want)
        await until(lambda: links.active == 8)
        await asyncio.sleep(0.05)
        assert links.max_active == 8 and len(rec.plugged) == 0
        rec.mark(("k00",))  # marked again while being fixed: looked at once more afterwards
        links.gate.set()
        await until(lambda: len(rec.plugged) == 20)
        await until(lambda: world.asked.count("k00") == 2)
    assert links.max_active == 8 and rec.plugs == 20

    # the first pass (before READY) is bounded the same way
    links2 = FakeLinks()
    links2.gate = asyncio.Event()
    rec2 = make(links2, concurrency=3)
    rec2.mark(world.want)
    task = asyncio.create_task(rec2.reconcile(world.desired))
    await until(lambda: links2.active == 3)
    links2.gate.set()
    await task
    assert links2.max_active == 3 and len(rec2.plugged) == 20


async def test_periodic_relist_finds_what_no_event_announced() -> None:
    world = World()
    rec = make()
    async with running(rec, world, interval=0.05):
        world.want["late"] = att("late")  # nobody marks it
        await until(lambda: "late" in rec.plugged)
        del world.want["late"]
        await until(lambda: "late" not in rec.plugged)  # plugged keys are looked at too
    assert rec.unplugs == 1


async def test_a_lost_orchestrator_ends_the_pass_and_keeps_the_key_dirty() -> None:
    class Gone(ConnectionError):
        pass

    async def desired(key: str) -> Attachment | None:
        await asyncio.sleep(0)
        if key == "x":
            raise Gone("engine went away")
        return att(key)

    rec = make()
    rec.mark(("a", "x"))
    with pytest.raises(Gone):
        await rec.reconcile(desired)
    assert "a" in rec.plugged and rec.dirty == {"x"} and rec.failures == 0
    rec.mark(("x",))
    with pytest.raises(Gone):
        async with asyncio.timeout(5):
            await rec.run(desired, World().relist, 60.0)
    assert "x" in rec.dirty


async def test_no_leaked_tasks_after_cancel(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ovn_hub.node")
    links = FakeLinks()
    links.gate = asyncio.Event()  # never set: every plug hangs
    world = World(*(att(f"k{i}") for i in range(4)))
    rec = make(links)
    before = asyncio.all_tasks()
    async with running(rec, world):
        rec.mark(world.want)
        await until(lambda: links.active == 4)
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == before
    assert rec.plugged == {} and not any("plugged" in r.getMessage() for r in caplog.records)


async def test_docker_plumbing_from_before_core_vif_is_adopted_untouched() -> None:
    """The exact external_ids the Docker-only node wrote (pid, no netns, no ifname) match what the Docker
    glue now wants for the same running container: an upgraded node touches nothing."""
    from adapters.docker.node import I_PID, complete_ids

    cid, pid = "d" * 64, 4242
    dev = veth_name(cid, "blue")
    old = {
        "iface-id": "lsp-d", "ovn-hub:owner": OWNER, "ovn-hub:container": cid, "ovn-hub:network": "blue",
        "ovn-hub:pid": str(pid), "ovn-hub:addresses": "0a:00:00:00:00:05 10.0.0.5/24", "ovn-hub:gateway": "10.0.0.1",
    }  # fmt: skip
    links, bridge = FakeLinks(), FakeBridge()
    bridge.interfaces[dev] = old
    links.links[dev] = {}
    want = Attachment(key=cid, network="blue", netns_path=f"/proc/{pid}/ns/net", ifname="eth0", port="lsp-d",
                      mac="0a:00:00:00:00:05", addrs=("10.0.0.5/24",), gateway="10.0.0.1",
                      extra=((I_PID, str(pid)),))  # fmt: skip
    rec = make(links, bridge, complete_ids=complete_ids)
    await first_pass(rec, World(want))
    assert rec.plugged == {cid: want} and links.calls == [] and bridge.calls == []
    # the container restarted meanwhile (new pid): re-plugged, now with the new record
    new = Attachment(**{**{f: getattr(want, f) for f in want.__struct_fields__}, "netns_path": "/proc/4343/ns/net",
                        "extra": ((I_PID, "4343"),)})  # fmt: skip
    await rec.fix(World(new).desired, cid)
    assert bridge.interfaces[dev]["ovn-hub:pid"] == "4343" and bridge.interfaces[dev][I_NETNS] == "/proc/4343/ns/net"
