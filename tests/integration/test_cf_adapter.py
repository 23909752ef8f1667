"""The Cloud Foundry adapter against the in-repo fakes (testkit/cf_fake.py): a BBS
that enforces mutual TLS and writes protobuf SSE in hand-chunked bodies, UAA,
the Cloud Controller v3 and the policy server; and through hubd into a real NB."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.cloudfoundry import proto
from adapters.cloudfoundry.adapter import CFAdapter
from adapters.cloudfoundry.normalize import APP_GUID, LIFECYCLE
from core.adapter import AdapterSpec
from core.model import Delete, Endpoint, InputEvent, Namespace, Object, Policy, Rejected, Snapshot, Upsert, kind_of
from hub.sandbox import OvnSandbox
from testkit.cf_fake import FakeBBS, FakeCC, FakePolicyServer, FakeUAA, Pki, lrp, make_pki
from testkit.nb import nb_rows
from testkit.proxy import BreakableProxy
from tests.conftest import FIXTURES_DIR

CF_FIXTURES = FIXTURES_DIR / "cloudfoundry"
Key = tuple[str, str]


class Sink:
    def __init__(self) -> None:
        self.events: list[InputEvent] = []
        self.state: dict[Key, Object] = {}
        self.history: list[dict[Key, Object]] = []
        self._changed = asyncio.Event()

    async def emit(self, ev: InputEvent) -> None:
        self.events.append(ev)
        if isinstance(ev, Snapshot):
            self.state = {(kind_of(o), o.key): o for o in ev.objects}
        elif isinstance(ev, Upsert):
            self.state[(kind_of(ev.obj), ev.obj.key)] = ev.obj
        elif isinstance(ev, Delete):
            self.state.pop((ev.kind, ev.key), None)
        self.history.append(dict(self.state))
        self._changed.set()

    def endpoints(self) -> dict[str, Endpoint]:
        return {o.uid: o for o in self.state.values() if isinstance(o, Endpoint)}

    def policies(self) -> dict[str, Policy]:
        return {o.uid: o for o in self.state.values() if isinstance(o, Policy)}

    def rejected(self) -> list[Rejected]:
        return [e for e in self.events if isinstance(e, Rejected)]

    def snapshots(self) -> int:
        return sum(isinstance(e, Snapshot) for e in self.events)

    async def wait(self, cond: Callable[[], Any], what: str, timeout: float = 15) -> Any:
        try:
            async with asyncio.timeout(timeout):
                while not (res := cond()):
                    self._changed.clear()
                    with contextlib.suppress(TimeoutError):  # some conditions are not events (poll counters)
                        await asyncio.wait_for(self._changed.wait(), 0.05)
                return res
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; last events: {self.events[-6:]}") from None


class World:
    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self.bbs = FakeBBS(pki)
        self.uaa = FakeUAA(pki)
        self.cc = FakeCC(pki, self.uaa, CF_FIXTURES)
        self.ps = FakePolicyServer(pki)
        self.secret_file = pki.dir / "uaa-secret"

    async def start(self) -> None:
        for s in (self.bbs, self.uaa, self.cc, self.ps):
            await s.start()
        self.secret_file.write_text(self.uaa.secret)
        self.secret_file.chmod(0o600)

    async def stop(self) -> None:
        for s in (self.bbs, self.uaa, self.cc, self.ps):
            await s.stop()

    def options(self, **over: Any) -> dict[str, Any]:
        p = self.pki
        opts: dict[str, Any] = {
            "bbs_url": self.bbs.url, "bbs_ca": str(p.ca), "bbs_cert": str(p.client_cert), "bbs_key": str(p.client_key),
            "cc_url": self.cc.url, "uaa_url": self.uaa.url, "uaa_client_id": "ovn-hub",
            "uaa_client_secret_file": str(self.secret_file), "cc_ca": str(p.ca),
            "policy_server_url": self.ps.url, "policy_server_ca": str(p.ca), "policy_server_cert": str(p.client_cert),
            "policy_server_key": str(p.client_key), "poll_interval": 0.2, "policy_poll_interval": 0.2,
            "asg_poll_interval": 0.2, "evacuation_grace": 0.3, "backoff_max": 0.3, "page_size": 2,
        }  # fmt: skip
        opts.update(over)
        return opts

    def adapter(self, **over: Any) -> CFAdapter:
        a = CFAdapter(AdapterSpec(name="cf", type="cloudfoundry", cluster="prod", options=self.options(**over)))
        a.backoff_initial = 0.05
        return a


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    w = World(make_pki(tmp_path / "pki"))
    await w.start()
    try:
        yield w
    finally:
        await w.stop()


@contextlib.asynccontextmanager
async def running(adapter: CFAdapter, sink: Sink) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(adapter.run(sink))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


def two_spaces(w: World) -> tuple[str, str, str, str]:
    org = w.cc.add_org("acme", {"tier": "gold"})
    sa, sb = w.cc.add_space("dev", org, {"env": "dev"}), w.cc.add_space("prod", org)
    a, b = w.cc.add_app("frontend", sa, {"team": "web"}), w.cc.add_app("backend", sb)
    return sa, sb, a, b


# ---------------------------------------------------------------- instances → ports
async def test_two_apps_in_two_spaces_land_with_overlay_ips_and_tenants(world: World) -> None:
    sa, sb, a, b = two_spaces(world)
    world.bbs.create(lrp(f"{a}-v1", 0, "ia0", "cell-1", "10.255.1.10"))
    world.bbs.create(lrp(f"{a}-v1", 1, "ia1", "cell-2", "10.255.2.10", ipv6="fd00:255::a1"))
    world.bbs.create(lrp(f"{b}-v1", 0, "ib0", "cell-2", "10.255.2.20"))
    sink = Sink()
    async with running(world.adapter(), sink):
        eps = await sink.wait(lambda: len(sink.endpoints()) == 3 and sink.endpoints(), "three instances")
        ia0, ia1, ib0 = eps["ia0"], eps["ia1"], eps["ib0"]
        assert (ia0.namespace, ia0.name, ia0.ips, ia0.node, ia0.state) == (
            "acme/dev", "frontend/web/0", ("10.255.1.10",), "cell-1", "running")  # fmt: skip
        assert ia1.ips == ("10.255.2.10", "fd00:255::a1") and ia1.name == "frontend/web/1"
        assert (ib0.namespace, ib0.name) == ("acme/prod", "backend/web/0")
        assert ia0.labels["team"] == "web" and ia0.labels[APP_GUID] == a and ia0.labels[LIFECYCLE] == "running"
        assert ia0.network == "apps" and {p.port for p in ia0.ports} == {8080}
        spaces = {o.name: o for o in sink.state.values() if isinstance(o, Namespace)}
        assert spaces["acme/dev"].labels["env"] == "dev" and spaces["acme/dev"].labels["tier"] == "gold"
        assert f"c2c-default:{sa}" in sink.policies() and f"asg-running:{sb}" in sink.policies()
        # the fixtures the CC serves (a space whose organization it does not have) cost nothing
        assert not any("my-space" in o.key for o in sink.state.values())


async def test_scale_down_and_crash_remove_the_port(world: World) -> None:
    _, _, a, _ = two_spaces(world)
    world.bbs.create(lrp(f"{a}-v1", 0, "i0", "cell-1", "10.255.1.10"))
    world.bbs.create(lrp(f"{a}-v1", 1, "i1", "cell-1", "10.255.1.11"))
    world.bbs.create(lrp(f"{a}-v1", 2, "i2", "cell-1", "10.255.1.12"))
    sink = Sink()
    async with running(world.adapter(), sink):
        await sink.wait(lambda: len(sink.endpoints()) == 3, "three instances")
        await world.bbs.wait_streams()
        world.bbs.remove((f"{a}-v1", 2, "ORDINARY"))  # scaled from 3 to 2
        await sink.wait(lambda: set(sink.endpoints()) == {"i0", "i1"}, "index 2's port gone")
        world.bbs.crash((f"{a}-v1", 1, "ORDINARY"))  # CRASHED: not up, no port
        await sink.wait(lambda: set(sink.endpoints()) == {"i0"}, "the crashed instance's port gone")
        # restarted: a new instance guid, claimed (dynamic port), then running
        claimed = lrp(f"{a}-v1", 1, "i1b", "cell-2", "", state="CLAIMED")
        world.bbs.change(claimed)
        eps = await sink.wait(lambda: "i1b" in sink.endpoints() and sink.endpoints(), "the claimed instance")
        assert eps["i1b"].ips == () and eps["i1b"].state == "claimed"
        world.bbs.change(lrp(f"{a}-v1", 1, "i1b", "cell-2", "10.255.2.77"))
        await sink.wait(lambda: sink.endpoints().get("i1b", None) and sink.endpoints()["i1b"].ips == ("10.255.2.77",),
                        "running with its address")  # fmt: skip


@pytest.mark.parametrize("order", ["created-first", "changed-first"])
async def test_an_evacuation_never_leaves_the_app_without_its_live_port(world: World, order: str) -> None:
    _, _, a, _ = two_spaces(world)
    pg = f"{a}-v1"
    world.bbs.create(lrp(pg, 0, "g1", "cell-old", "10.255.1.10"))
    sink = Sink()
    async with running(world.adapter(), sink):
        await sink.wait(lambda: "g1" in sink.endpoints(), "g1")
        await world.bbs.wait_streams()
        mark = len(sink.history)
        world.bbs.evacuate((pg, 0, "ORDINARY"), order=order)  # EVACUATING g1 + ORDINARY UNCLAIMED
        # a negative check (g1 must survive its grace): only the passing of the grace itself is waited for
        await asyncio.sleep(world.options()["evacuation_grace"] + 0.1)
        world.bbs.change(lrp(pg, 0, "g2", "cell-new", "", state="CLAIMED"))
        world.bbs.change(lrp(pg, 0, "g2", "cell-new", "10.255.2.10"))
        await sink.wait(lambda: "g2" in sink.endpoints() and sink.endpoints()["g2"].ips, "g2 running")
        assert all("g1" in {o.uid for o in s.values() if isinstance(o, Endpoint)} for s in sink.history[mark:])
        assert len([o for o in sink.state.values() if isinstance(o, Endpoint)]) == 2  # one port each, no twin
        world.bbs.remove((pg, 0, "EVACUATING"))  # the old cell is done
        await sink.wait(lambda: set(sink.endpoints()) == {"g2"}, "g1 gone once its evacuating record is")


async def test_a_reconnect_after_a_dropped_stream_converges_by_relist(world: World) -> None:
    _, _, a, _ = two_spaces(world)
    world.bbs.create(lrp(f"{a}-v1", 0, "i0", "cell-1", "10.255.1.10"))
    world.bbs.create(lrp(f"{a}-v1", 1, "i1", "cell-1", "10.255.1.11"))
    sink = Sink()
    adapter = world.adapter()
    async with running(adapter, sink):
        await sink.wait(lambda: len(sink.endpoints()) == 2, "two instances")
        await world.bbs.wait_streams()
        n = sink.snapshots()
        world.bbs.drop_connections()
        # while it is away (no events reach it): one instance gone, one new, one moved
        world.bbs.streams.clear()
        world.bbs.records.pop((f"{a}-v1", 0, "ORDINARY"))
        world.bbs.records[(f"{a}-v1", 2, "ORDINARY")] = lrp(f"{a}-v1", 2, "i2", "cell-2", "10.255.2.12")
        world.bbs.records[(f"{a}-v1", 1, "ORDINARY")] = lrp(f"{a}-v1", 1, "i1", "cell-3", "10.255.3.11")
        await sink.wait(lambda: sink.snapshots() > n, "a relist")
        eps = sink.endpoints()
        assert set(eps) == {"i1", "i2"} and eps["i1"].node == "cell-3"
        world.bbs.end_streams()  # a clean end (0\r\n\r\n) is a reconnect too
        await sink.wait(lambda: sink.snapshots() > n + 1, "a relist after a clean end")
        assert adapter.relists >= 3


async def test_a_bbs_client_without_a_certificate_is_refused(world: World) -> None:
    async def handshake(cert: Path | None, key: Path | None) -> bytes:
        ctx = ssl.create_default_context(cafile=str(world.pki.ca))
        if cert is not None:
            ctx.load_cert_chain(str(cert), str(key))
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", world.bbs.port, ssl=ctx), 5)
        try:
            writer.write(b"POST /v1/actual_lrps/list HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return await asyncio.wait_for(reader.read(100), 5)
        finally:
            writer.close()

    assert (await handshake(world.pki.client_cert, world.pki.client_key)).startswith(b"HTTP/1.1 200")
    for cert, key in ((None, None), (world.pki.other_cert, world.pki.other_key)):
        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            got = await handshake(cert, key)
            if not got:
                raise ConnectionResetError("closed")
    # the adapter with a stranger's certificate never lists
    before = len(world.bbs.requests)
    sink = Sink()
    stranger = world.adapter(bbs_cert=str(world.pki.other_cert), bbs_key=str(world.pki.other_key))
    async with running(stranger, sink):
        await sink.wait(lambda: stranger.bbs_failures >= 2, "two refused BBS sessions")
    assert sink.snapshots() == 0 and len(world.bbs.requests) == before


async def test_malformed_frames_are_rejected_and_the_stream_goes_on(world: World) -> None:
    _, _, a, _ = two_spaces(world)
    sink = Sink()
    async with running(world.adapter(), sink):
        await sink.wait(lambda: sink.snapshots(), "the snapshot")
        await world.bbs.wait_streams()
        good = base64.b64encode(proto.ActualLRPInstanceCreatedEvent(
            actual_lrp=lrp(f"{a}-v1", 0, "ok", "cell-1", "10.255.1.10")).SerializeToString()).decode()  # fmt: skip
        bad_ip = base64.b64encode(proto.ActualLRPInstanceCreatedEvent(
            actual_lrp=lrp(f"{a}-v1", 1, "badip", "cell-1", "10.255.1.300")).SerializeToString()).decode()  # fmt: skip
        frames = [
            b"id: 0\nevent: actual_lrp_instance_created\ndata: %%%notbase64\n\n",
            b"id: 1\nevent: actual_lrp_instance_created\ndata: " + base64.b64encode(b"\xff\xff\xff") + b"\n\n",
            b"id: 2\nevent: something_else\ndata: AAAA\n\n",
            b"id: 3\nevent: actual_lrp_instance_created\ndata\n\n",
            b"id: 4\nevent: actual_lrp_instance_created\ndata: " + bad_ip.encode() + b"\n\n",
            b"id: 5\nevent: actual_lrp_instance_created\nbogus: 1\ndata: " + good.encode() + b"\n\n",
        ]
        for f in frames:
            world.bbs.inject(f)
        world.bbs.desired()  # skipped silently
        world.bbs.inject(f"id: 6\nevent: actual_lrp_instance_created\ndata: {good}\n\n".encode())
        await sink.wait(lambda: "ok" in sink.endpoints(), "the good instance after the bad frames")
        reasons = [r.reason for r in sink.rejected()]
        assert reasons == ["bad-base64", "bad-protobuf", "unknown-event", "no-data", "bad-ip", "bad-frame"], sink.rejected()
        assert all(r.ref.startswith("event ") and r.message for r in sink.rejected())
        assert "badip" not in sink.endpoints() and sink.snapshots() == 1  # no reconnect for frame errors
        world.bbs.inject(b"zz;\r\nnot a chunk\r\n", chunked=False)  # broken framing: reconnect + relist
        await sink.wait(lambda: sink.snapshots() == 2, "a relist after broken framing")


# ---------------------------------------------------------------- CC, UAA, policy server
async def test_cc_names_follow_polls_token_refreshed_and_only_changes_emitted(world: World) -> None:
    _, _, a, b = two_spaces(world)
    world.uaa.expires_in = 1  # refreshed at half its life
    world.bbs.create(lrp(f"{a}-v1", 0, "ia0", "cell-1", "10.255.1.10"))
    world.bbs.create(lrp(f"{b}-v1", 0, "ib0", "cell-1", "10.255.1.20"))
    sink = Sink()
    adapter = world.adapter()
    async with running(adapter, sink):
        await sink.wait(lambda: len(sink.endpoints()) == 2, "two instances")
        await sink.wait(lambda: adapter.polls >= 6, "a few polls")
        mark = len(sink.events)
        assert not [e for e in sink.events[1:] if isinstance(e, Upsert | Delete)]  # polls of an unchanged CC: nothing
        world.cc.rename_app(a, "storefront")
        await sink.wait(lambda: sink.endpoints()["ia0"].name == "storefront/web/0", "the rename")
        polls = adapter.polls
        await sink.wait(lambda: adapter.polls >= polls + 3, "polls after the rename")
        changed = [e for e in sink.events[mark:] if isinstance(e, Upsert | Delete)]
        assert [e.obj.key for e in changed if isinstance(e, Upsert)] == ["apps/ia0"], changed
        assert world.uaa.tokens and adapter.token is not None and adapter.token.fetches >= 2
        world.uaa.revoke_all()  # 401: one fresh token and the poll goes on
        polls = adapter.polls
        await sink.wait(lambda: adapter.polls >= polls + 3, "polls after a revocation")
        world.cc.fail_next = 2  # failed polls keep the last state
        await sink.wait(lambda: world.cc.fail_next == 0, "two failed CC requests")
        polls = adapter.polls
        await sink.wait(lambda: adapter.polls > polls, "a poll after them")
        assert sink.endpoints()["ia0"].name == "storefront/web/0"
    assert any("page=2" in r for r in world.cc.requests)  # paginated (page_size 2)


async def test_c2c_policies_and_dynamic_asgs_with_logging(world: World) -> None:
    sa, sb, a, b = two_spaces(world)
    world.bbs.create(lrp(f"{a}-v1", 0, "ia0", "cell-1", "10.255.1.10"))
    world.bbs.create(lrp(f"{b}-v1", 0, "ib0", "cell-1", "10.255.1.20"))
    world.ps.allow(a, b, 8080)
    world.ps.allow(a, b, 9000, 9010)
    world.ps.add_group("dns", [{"protocol": "udp", "destination": "0.0.0.0/0", "ports": "53"}],
                       running_default=True, staging_default=True)  # fmt: skip
    world.ps.add_group("icmp", [{"protocol": "icmp", "destination": "0.0.0.0/0", "type": 0, "code": 0}],
                       running=(sa,))  # fmt: skip
    sink = Sink()
    async with running(world.adapter(), sink):
        pols = await sink.wait(lambda: f"c2c:{b}" in sink.policies() and sink.policies(), "the c2c policy")
        c2c = pols[f"c2c:{b}"]
        assert c2c.namespace == "acme/prod" and c2c.pod_selector.match_labels == {APP_GUID: b}
        (rule,) = c2c.ingress or ()
        assert rule.peers[0].pod_selector is not None and rule.peers[0].pod_selector.match_labels == {APP_GUID: a}
        assert {(p.port, p.end_port) for p in rule.ports} == {(8080, None), (9000, 9010)}
        running_b = pols[f"asg-running:{sb}"]
        assert [r.ports[0].port for r in running_b.egress or () if r.ports] == [53]
        assert any(r.reason == "unsupported-rule" for r in sink.rejected())
        # a new ASG bound to space b, with logging: applied without any restart
        world.ps.add_group("https-out", [{"protocol": "tcp", "destination": "172.16.0.0/24", "ports": "443",
                                          "log": True}], running=(sb,))  # fmt: skip
        await sink.wait(lambda: any(r.log for r in sink.policies()[f"asg-running:{sb}"].egress or ()), "the ASG")
        logged = [r for r in sink.policies()[f"asg-running:{sb}"].egress or () if r.log]
        assert logged[0].peers[0].cidr == "172.16.0.0/24" and logged[0].ports[0].port == 443
        assert not any(r.log for r in sink.policies()[f"asg-running:{sa}"].egress or ())
        world.ps.remove_group("https-out")
        await sink.wait(lambda: not any(r.log for r in sink.policies()[f"asg-running:{sb}"].egress or ()), "removal")
        world.ps.policies.clear()
        await sink.wait(lambda: f"c2c:{b}" not in sink.policies(), "the c2c policy gone")


async def test_cc_and_policy_server_cut_and_silent_stall_nothing(world: World, caplog: pytest.LogCaptureFixture) -> None:
    """The polled APIs' faults (a poll is a full list: no resume to lose, and a
    repeated answer is a no-op - tested above): an answer cut in the middle and a
    server that accepts and never answers.  The polls time out and say so, the BBS
    stream goes on meanwhile, and what changed while the servers were silent
    arrives once they answer."""
    _, _, a, b = two_spaces(world)
    world.bbs.create(lrp(f"{a}-v1", 0, "ia0", "cell-1", "10.255.1.10"))
    world.ps.allow(a, b, 8080)
    cc, ps = BreakableProxy(f"127.0.0.1:{world.cc.port}"), BreakableProxy(f"127.0.0.1:{world.ps.port}")
    await cc.start()
    await ps.start()
    sink = Sink()
    adapter = world.adapter(cc_url=f"https://{cc.address}", policy_server_url=f"https://{ps.address}",
                            request_timeout=0.5, page_size=5000)  # one page: CC's next links name the CC itself
    try:
        async with running(adapter, sink):
            await sink.wait(lambda: f"c2c:{b}" in sink.policies() and "ia0" in sink.endpoints(), "the first lists")
            # an answer of each cut in half: the poll fails, the next one reads it whole
            cc.cut_mid_record()
            ps.cut_mid_record()
            assert await cc.wait_cut() and await ps.wait_cut()
            world.cc.rename_app(a, "storefront")
            await sink.wait(lambda: sink.endpoints()["ia0"].name == "storefront/web/0", "the rename after a cut")
            # accepted, never answered
            cc.black_hole()
            ps.black_hole()
            world.cc.rename_app(a, "shop")
            world.ps.policies.clear()
            world.bbs.create(lrp(f"{b}-v1", 0, "ib0", "cell-1", "10.255.1.20"))  # the BBS is not held up
            await sink.wait(lambda: "ib0" in sink.endpoints(), "a BBS event while the CC and policy server are silent")
            await sink.wait(lambda: cc.swallowed and ps.swallowed, "polls into the black holes")
            await sink.wait(lambda: "poll: " in caplog.text and "Timeout" in caplog.text, "a poll timing out, logged")
            assert sink.endpoints()["ia0"].name == "storefront/web/0" and f"c2c:{b}" in sink.policies()  # last state
            cc.heal()
            ps.heal()
            await sink.wait(lambda: sink.endpoints()["ia0"].name == "shop/web/0" and f"c2c:{b}" not in sink.policies(),
                            "convergence once they answer")  # fmt: skip
            assert sink.endpoints()["ib0"].namespace == "acme/prod"
    finally:
        await cc.stop()
        await ps.stop()


# ---------------------------------------------------------------- through hubd into NB
async def test_through_hubd_instances_are_ports_and_a_logged_asg_is_a_logging_acl(
    world: World, ovn: OvnSandbox, tmpdir_short: Path, hubd_factory: Any
) -> None:
    _, sb, a, b = two_spaces(world)
    world.bbs.create(lrp(f"{a}-v1", 0, "ia0", "cell-1", "10.255.1.10"))
    world.bbs.create(lrp(f"{b}-v1", 0, "ib0", "cell-2", "10.255.2.20"))
    world.ps.add_group("https-out", [{"protocol": "tcp", "destination": "172.16.0.0/24", "ports": "443", "log": True}],
                       running=(sb,))  # fmt: skip
    opts = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in world.options().items() if not isinstance(v, bool))
    cfg = (f'[hub]\nid = "hubt"\nstate_dir = "{tmpdir_short}"\n[ovn]\nnb = "{ovn.nb_remote}"\n'
           f'[api]\nlisten = "unix:{tmpdir_short}/api.sock"\n[adapters.cf]\ntype = "cloudfoundry"\ncluster = "prod"\n{opts}')  # fmt: skip
    h = hubd_factory(cfg)
    try:
        await asyncio.get_running_loop().run_in_executor(None, h.wait_ready, 30)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{h.logtext()[-3000:]}") from None

    def ports() -> dict[str, dict[str, Any]]:
        return {r["name"]: r for r in nb_rows(ovn, "Logical_Switch_Port")}

    async def until(cond: Callable[[], Any], what: str) -> Any:
        async with asyncio.timeout(20):
            while not (res := cond()):
                await asyncio.sleep(0.1)
            return res

    got = await until(lambda: len(ports()) == 2 and ports(), "two ports")
    p = got["cloudfoundry/prod/apps/ia0"]
    assert "10.255.1.10" in str(p["addresses"]) and "acme/dev" in str(p["external_ids"]), p
    logged = await until(lambda: [r for r in nb_rows(ovn, "ACL") if r.get("log") is True], "a logging ACL")
    assert logged[0]["name"] == "asg-running" and logged[0]["severity"] == "info" and "443" in logged[0]["match"]
    world.bbs.remove((f"{b}-v1", 0, "ORDINARY"))
    await until(lambda: set(ports()) == {"cloudfoundry/prod/apps/ia0"}, "the removed instance's port gone")
