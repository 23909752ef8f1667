"""The Mesos adapter against the fake master and Marathon (testkit/mesos_fake.py):
real RecordIO and SSE framing, re-chunked at random, over loopback HTTP(S).

Each test runs the real :class:`~adapters.mesos.adapter.MesosAdapter` into a
recording sink (testkit.conformance.Recorder: the state its events amount to)
and waits, bounded, for that state."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.mesos.adapter import MesosAdapter
from core.adapter import AdapterSpec
from core.model import LABEL_WORKLOAD, Delete, Endpoint, PortSpec, Rejected, Service, Snapshot, Source, Upsert
from testkit.conformance import Recorder
from testkit.mesos_fake import FakeMarathon, FakeMesosMaster, docker_inspect_data, task_record
from testkit.pki import make_pki
from testkit.proxy import BreakableProxy
from testkit.wait import wait_until
from tests.conftest import FIXTURES_DIR

SRC = Source("mesos", "test")
WAIT = 15.0


@pytest.fixture
async def master() -> AsyncIterator[FakeMesosMaster]:
    m = FakeMesosMaster(heartbeat=0.2, seed=7)
    await m.start()
    try:
        yield m
    finally:
        await m.stop()


class Running:
    """An adapter's run() and what it emitted."""

    def __init__(self, adapter: MesosAdapter) -> None:
        self.adapter = adapter
        self.rec = Recorder(SRC)
        self.task = asyncio.create_task(adapter.run(self.rec))

    def endpoints(self) -> dict[str, Endpoint]:
        return {o.key: o for o in self.rec.view.values() if isinstance(o, Endpoint)}

    def by_name(self) -> dict[str, Endpoint]:
        return {o.name: o for o in self.rec.view.values() if isinstance(o, Endpoint)}

    def services(self) -> dict[str, Service]:
        return {o.name: o for o in self.rec.view.values() if isinstance(o, Service)}

    def rejected(self) -> list[Rejected]:
        return [e.event for e in self.rec.entries if isinstance(e.event, Rejected)]

    def snapshots(self) -> int:
        return sum(isinstance(e.event, Snapshot) for e in self.rec.entries)

    async def until(self, pred: Callable[[], Any], what: str, timeout: float = WAIT) -> None:
        def check() -> Any:
            if self.task.done():
                self.task.result()
                raise AssertionError("run() ended")
            return pred()

        await wait_until(check, timeout, what, interval=0.02)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        assert not self.rec.malformed, self.rec.malformed


@pytest.fixture
async def running() -> AsyncIterator[Callable[..., Running]]:
    made: list[Running] = []

    def start(**options: Any) -> Running:
        adapter = MesosAdapter(AdapterSpec(name="m", type="mesos", cluster="test", options=options))
        adapter.backoff_initial = 0.05
        r = Running(adapter)
        made.append(r)
        return r

    try:
        yield start
    finally:
        for r in made:
            await r.stop()


def cid() -> str:
    return str(uuid.uuid4())


# ------------------------------------------------------------------ tasks → endpoints
async def test_two_frameworks_tasks_land_on_their_networks_with_their_ips_and_a_finished_task_goes(
    master: FakeMesosMaster, running: Callable[..., Running]
) -> None:
    master.add_agent("a1", "node-1")
    master.add_framework("fw-web", "web")
    master.add_framework("fw-db", "db", role="storage")
    c1, c2, c3 = cid(), cid(), cid()
    master.launch("fw-web", "web-1", network="blue", ip="10.1.0.5", container_id=c1, labels={"app": "web"},
                  ports=[(8080, "http", "tcp"), (9090, "Admin_Port", "udp")])  # fmt: skip
    r = running(masters=[master.url])
    await r.until(lambda: len(r.endpoints()) == 1, "the first task's endpoint")
    master.launch("fw-db", "db-1", network="red", ip="10.2.0.7", container_id=c2)
    master.launch("fw-db", "db-2", network="red", ip="10.2.0.8", container_id=c3)
    await r.until(lambda: len(r.endpoints()) == 3, "the three tasks' endpoints")
    eps = r.by_name()
    web = eps["web-1"]
    assert (web.network, web.ips, web.uid, web.namespace, web.node, web.kind, web.state) == (
        "blue", ("10.1.0.5",), c1, "web", "node-1", "task", "running")
    assert web.labels == {"app": "web", LABEL_WORKLOAD: f"mesos:{c1}"}
    assert web.ports == (PortSpec(8080, "tcp", "http"), PortSpec(9090, "udp", ""))  # "admin_port" is no IANA name
    assert (eps["db-1"].network, eps["db-1"].ips, eps["db-1"].namespace) == ("red", ("10.2.0.7",), "db")
    assert eps["db-2"].key == f"red/{c3}"
    master.finish(next(t for t, v in master.tasks.items() if v["name"] == "db-1"))
    await r.until(lambda: set(r.by_name()) == {"web-1", "db-2"}, "the finished task's endpoint deleted")
    assert r.snapshots() == 1 and not r.rejected()
    # namespace = role
    r2 = running(masters=[master.url], namespace="role")
    await r2.until(lambda: len(r2.endpoints()) == 2, "a second adapter's snapshot")
    assert {e.name: e.namespace for e in r2.by_name().values()} == {"web-1": "default", "db-2": "storage"}


async def test_agent_and_framework_events_follow_and_the_docker_executor_gives_the_mac(
    master: FakeMesosMaster, running: Callable[..., Running]
) -> None:
    master.add_framework("fw", "batch")
    c1 = cid()
    tid = master.launch("fw", "job", network="blue", ip="10.1.0.9", agent="a9", container_id=c1,
                        data=docker_inspect_data("blue", "02:42:0a:01:00:09", "10.1.0.9"))  # fmt: skip
    r = running(masters=[master.url])
    await r.until(lambda: "job" in r.by_name(), "the task")
    assert r.by_name()["job"].mac == "02:42:0a:01:00:09" and r.by_name()["job"].node == ""  # agent unknown yet
    master.add_agent("a9", "node-9")
    await r.until(lambda: r.by_name()["job"].node == "node-9", "the node once AGENT_ADDED names it")
    master.add_framework("fw", "batch-renamed")
    await r.until(lambda: r.by_name()["job"].namespace == "batch-renamed", "FRAMEWORK_UPDATED renames the namespace")
    master.remove_agent("a9")
    await r.until(lambda: r.by_name()["job"].node == "", "AGENT_REMOVED")
    master.update(tid, "TASK_UNREACHABLE")
    await r.until(lambda: r.by_name()["job"].state == "unreachable", "an unreachable task keeps its endpoint")
    master.update(tid, "TASK_GONE")
    await r.until(lambda: not r.endpoints(), "GONE deletes it")


async def test_a_task_group_shares_its_executors_container_and_a_task_without_network_has_none(
    master: FakeMesosMaster, running: Callable[..., Running]
) -> None:
    master.add_agent("a1", "node-1")
    master.add_framework("fw", "pods")
    executor = cid()
    for i in (2, 1):  # two tasks of one task group: nested containers under the executor's
        task = task_record(f"pod.t{i}", "fw", "a1", name=f"t{i}", network="blue", ip="10.1.0.20", container_id=None)
        task["statuses"][0]["container_status"] = {
            "container_id": {"value": cid(), "parent": {"value": executor}},
            "network_infos": [{"name": "blue", "ip_addresses": [{"ip_address": "10.1.0.20"}]}]}  # fmt: skip
        master.put_task(task)
    master.put_task(task_record("host.1", "fw", "a1", name="host", network=None, ip="192.0.2.1", container_id=cid()))
    master.put_task(task_record("stage.1", "fw", "a1", name="stage", network="blue", ip=None, container_id=None,
                                state="TASK_STAGING"))  # fmt: skip
    r = running(masters=[master.url])
    await r.until(lambda: r.snapshots() == 1, "the snapshot")
    (ep,) = r.endpoints().values()
    assert (ep.uid, ep.name, ep.ips) == (executor, "t1", ("10.1.0.20",)), "one endpoint, the first task's name"
    master.update("stage.1", "TASK_STARTING", network="blue", ip=None, container_id=cid())
    await r.until(lambda: "stage" in r.by_name(), "the staging task once its container is known")
    assert r.by_name()["stage"].ips == (), "no address yet: OVN's dynamic IPAM"
    master.update("stage.1", "TASK_RUNNING", ip="10.1.0.21")
    await r.until(lambda: r.by_name()["stage"].ips == ("10.1.0.21",), "its address from the RUNNING status")


# ------------------------------------------------------------------ resync, masters, auth, TLS
async def test_a_silent_stream_is_resubscribed_and_converges(master: FakeMesosMaster, running: Callable[..., Running]) -> None:
    master.add_agent("a1", "node-1")
    master.add_framework("fw", "web")
    doomed = master.launch("fw", "doomed", network="blue", ip="10.1.0.5")
    master.launch("fw", "stays", network="blue", ip="10.1.0.6")
    r = running(masters=[master.url])
    await r.until(lambda: len(r.endpoints()) == 2, "both tasks")
    master.silent = True  # a hung master: no heartbeat, no event
    master.kill(doomed)  # while the adapter cannot hear it
    master.launch("fw", "new", network="blue", ip="10.1.0.7")
    assert "doomed" in r.by_name(), "nothing arrives while silent"
    # 5 heartbeat intervals (1 s) without a byte: the adapter gives the stream up and subscribes again
    await r.until(lambda: r.adapter.silences >= 1, "the silence noticed")
    await r.until(lambda: set(r.by_name()) == {"stays", "new"}, "the re-subscription's state: doomed gone, new there")
    master.silent = False
    assert master.subscriptions >= 2 and r.snapshots() >= 2
    assert not any(isinstance(e.event, Rejected) for e in r.rec.entries)


async def test_a_dropped_stream_is_resubscribed(master: FakeMesosMaster, running: Callable[..., Running]) -> None:
    master.add_framework("fw", "web")
    gone = master.launch("fw", "gone", network="blue", ip="10.1.0.5")
    r = running(masters=[master.url])
    await r.until(lambda: "gone" in r.by_name(), "the task")
    master.silent = True
    master.kill(gone)
    master.silent = False
    master.drop_streams()
    await r.until(lambda: not r.endpoints(), "the relist after the drop")
    assert r.adapter.silences == 0


async def test_a_redirect_to_the_leader_is_followed_and_a_503_retried(
    master: FakeMesosMaster, running: Callable[..., Running]
) -> None:
    master.add_framework("fw", "web")
    master.launch("fw", "t", network="blue", ip="10.1.0.5")
    follower = FakeMesosMaster()
    await follower.start()
    recovering = FakeMesosMaster()
    await recovering.start()
    try:
        follower.redirect_to = master.address
        recovering.unavailable = -1
        dead = "http://127.0.0.1:9"  # nothing listens on the discard port
        r = running(masters=[dead, recovering.url, follower.url])
        await r.until(lambda: "t" in r.by_name(), "the leader's snapshot through the follower's 307")
        assert str(r.adapter.leader) == master.url
        assert ("POST", "/api/v1", 307) in follower.requests and ("POST", "/api/v1", 503) in recovering.requests
        # the leader goes away: the next subscription starts from it, then the others again
        master.unavailable = 3
        master.drop_streams()
        await r.until(lambda: master.subscriptions >= 2, "subscribed again once the 503s are over")
        assert [s for _m, _p, s in master.requests].count(503) == 3
    finally:
        await follower.stop()
        await recovering.stop()


async def test_basic_auth(running: Callable[..., Running], tmp_path: Path) -> None:
    m = FakeMesosMaster(auth=("hub", "s3cret"))
    await m.start()
    try:
        m.add_framework("fw", "web")
        m.launch("fw", "t", network="blue", ip="10.1.0.5")
        anonymous = running(masters=[m.url])
        await anonymous.until(lambda: ("POST", "/api/v1", 401) in m.requests, "a 401 without credentials")
        assert anonymous.snapshots() == 0
        pw = tmp_path / "pw"
        pw.write_text("s3cret\n")
        r = running(masters=[m.url], username="hub", password_file=str(pw))
        await r.until(lambda: "t" in r.by_name(), "subscribed with credentials")
    finally:
        await m.stop()


async def test_tls(running: Callable[..., Running], tmp_path: Path) -> None:
    certs = make_pki(tmp_path / "certs")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs.server_cert, certs.server_key)
    m = FakeMesosMaster(ssl_context=ctx)
    await m.start()
    try:
        m.add_framework("fw", "web")
        m.launch("fw", "t", network="blue", ip="10.1.0.5")
        assert m.url.startswith("https://")
        untrusted = running(masters=[m.url])  # the system's CAs do not know the test CA
        r = running(masters=[m.url], ca_file=str(certs.ca))
        await r.until(lambda: "t" in r.by_name(), "subscribed over TLS")
        assert untrusted.snapshots() == 0 and m.subscriptions == 1
    finally:
        await m.stop()


# ------------------------------------------------------------------ hostile input
async def test_malformed_records_are_rejected_with_a_reason_and_the_stream_goes_on(
    master: FakeMesosMaster, running: Callable[..., Running]
) -> None:
    master.add_framework("fw", "web")
    master.launch("fw", "before", network="blue", ip="10.1.0.5")
    r = running(masters=[master.url])
    await r.until(lambda: "before" in r.by_name(), "the snapshot")
    bad_task = task_record("bad.1", "fw", "a1", name="bad", network="blue", ip="10.1.0.300", container_id=cid())
    for raw in (
        b"not json",
        b'{"type":"TASK_UPDATED","task_updated":7}',
        b'{"type":"NO_SUCH_EVENT"}',
        b'{"type":"TASK_ADDED"}',
        b"[1,2,3]",
    ):
        master.inject(raw)
    master.event({"type": "TASK_ADDED", "task_added": {"task": bad_task}})
    master.event({"type": "TASK_ADDED", "task_added": {"task": {**bad_task, "task_id": {"value": 42}}}})
    master.event({"type": "TASK_UPDATED", "task_updated": {"framework_id": {"value": "fw"}, "state": "TASK_SLEEPY",
                                                           "status": {"task_id": {"value": "x"}}}})  # fmt: skip
    master.launch("fw", "after", network="blue", ip="10.1.0.6")
    await r.until(lambda: "after" in r.by_name(), "a good task after the bad records")
    reasons = [x.reason for x in r.rejected()]
    assert reasons == ["bad-json", "bad-field", "unknown-event", "missing-field", "bad-field", "bad-ip", "bad-field",
                       "bad-state"], reasons  # fmt: skip
    assert all(x.message and "\n" not in x.message for x in r.rejected())
    assert set(r.by_name()) == {"before", "after"}, "the bad task made no endpoint"
    assert r.adapter.rejected["bad-json"] == 1 and master.subscriptions == 1
    # broken framing cannot be resynchronised: re-subscribe, and converge
    master.inject_bytes(b"12x\n{}")
    await r.until(lambda: master.subscriptions == 2 and r.snapshots() == 2, "re-subscribed after broken framing")
    assert set(r.by_name()) == {"before", "after"}


# ------------------------------------------------------------------ Marathon
@pytest.fixture
async def marathon(master: FakeMesosMaster) -> AsyncIterator[FakeMarathon]:
    master.add_agent("a1", "node-1")
    mt = FakeMarathon(master, seed=3)
    await mt.start()
    try:
        yield mt
    finally:
        await mt.stop()


def marathon_opts(mt: FakeMarathon, **kw: Any) -> dict[str, Any]:
    return {"urls": [mt.url], "vip_cidr": "10.99.0.0/24", "debounce": 0.05, "max_delay": 0.5, **kw}


async def test_marathon_vips_become_services_whose_backends_follow_healthy_running_tasks(
    master: FakeMesosMaster, marathon: FakeMarathon, running: Callable[..., Running]
) -> None:
    marathon.add_app("/shop/web", network="blue", container_port=8080, vips={"VIP_0": "/web:80"}, health_checks=True)
    marathon.add_app("/shop/db", network="blue", container_port=5432, vips={"VIP_0": "10.98.0.5:5432"})
    marathon.add_app("/batch", network="blue")  # no VIP
    w1 = marathon.start_task("/shop/web", "10.1.0.11", healthy=True)
    w2 = marathon.start_task("/shop/web", "10.1.0.12", healthy=True)
    marathon.start_task("/shop/db", "10.1.0.21")
    marathon.start_task("/batch", "10.1.0.31")
    r = running(masters=[master.url], marathon=marathon_opts(marathon))
    await r.until(lambda: len(r.services()) == 2 and len(r.endpoints()) == 4, "services and endpoints")
    web = r.services()["web"]
    (rule,) = web.rules
    assert (web.namespace, web.network, rule.vip, rule.port) == ("marathon", "blue", r.adapter.vips.get("web"), 80)
    assert rule.backends == ("10.1.0.11:8080", "10.1.0.12:8080")
    db = r.services()["vip-10-98-0-5"]
    assert (db.namespace, db.rules[0].vip, db.rules[0].backends) == ("shop", "10.98.0.5", ("10.1.0.21:5432",))
    # the tasks' endpoints take their app's group namespace and name
    names = sorted((e.namespace, e.name) for e in r.endpoints().values())
    assert names == [("marathon", "batch"), ("shop", "db"), ("shop", "web"), ("shop", "web")]

    def backends() -> tuple[str, ...]:
        return r.services()["web"].rules[0].backends

    marathon.set_health(w2, False)
    await r.until(lambda: backends() == ("10.1.0.11:8080",), "an unhealthy task leaves the backends")
    marathon.set_health(w2, True)
    await r.until(lambda: len(backends()) == 2, "and comes back")
    relists = r.adapter.marathon_relists
    marathon.kill_task(w1)
    await r.until(lambda: backends() == ("10.1.0.12:8080",), "a killed task leaves them")
    assert len(r.endpoints()) == 3
    w3 = marathon.start_task("/shop/web", "10.1.0.13", healthy=True)
    await r.until(lambda: backends() == ("10.1.0.12:8080", "10.1.0.13:8080"), "a new task joins them")
    assert r.adapter.marathon_relists > relists
    marathon.remove_app("/shop/web")
    await r.until(lambda: "web" not in r.services(), "the app's removal deletes its VIP's service")
    assert w3 not in {e.uid for e in r.endpoints().values()}
    assert not r.rejected()


async def test_a_task_mesos_reports_killed_leaves_the_backends_before_marathon_relists(
    master: FakeMesosMaster, marathon: FakeMarathon, running: Callable[..., Running]
) -> None:
    marathon.add_app("/web", network="blue", vips={"VIP_0": "/web:80"})
    t1 = marathon.start_task("/web", "10.1.0.11")
    marathon.start_task("/web", "10.1.0.12")
    r = running(masters=[master.url], marathon=marathon_opts(marathon, debounce=30, max_delay=60))
    await r.until(lambda: "web" in r.services() and len(r.services()["web"].rules[0].backends) == 2, "the VIP")
    master.kill(t1)  # Mesos only: Marathon's next relist is half a minute away
    await r.until(lambda: r.services()["web"].rules[0].backends == ("10.1.0.12:8080",), "the backend left at once")


async def test_marathon_redirects_to_its_leader_and_a_slow_consumer_cut_off_relists(
    master: FakeMesosMaster, marathon: FakeMarathon, running: Callable[..., Running]
) -> None:
    follower = FakeMarathon(master)
    await follower.start()
    try:
        follower.redirect_to = marathon.url
        marathon.max_outstanding = 20
        marathon.add_app("/web", network="blue", vips={"VIP_0": "/web:80"})
        marathon.start_task("/web", "10.1.0.11")
        r = running(masters=[master.url], marathon=marathon_opts(follower))
        await r.until(lambda: "web" in r.services(), "the VIP through the follower's redirect")
        assert str(r.adapter.marathon_leader) == marathon.url
        assert any(s == 302 and p.startswith("/v2/events") for _m, p, s in follower.requests)
        attached = sum(p.startswith("/v2/events") for _m, p, _s in marathon.requests)
        relists = r.adapter.marathon_relists
        marathon.stall_streams = True  # the adapter stops reading (as if slow): events pile up
        added = [marathon.start_task("/web", f"10.1.0.{20 + i}") for i in range(25)]
        await r.until(lambda: marathon.cutoffs >= 1, "Marathon cuts the slow consumer off")
        marathon.stall_streams = False
        await r.until(lambda: len(r.services()["web"].rules[0].backends) == 26, "the relist after the cut-off")
        assert sum(p.startswith("/v2/events") for _m, p, _s in marathon.requests) > attached
        assert r.adapter.marathon_relists > relists and added
    finally:
        await follower.stop()


async def test_marathon_faults_cut_duplicated_and_silent_converge(
    master: FakeMesosMaster, marathon: FakeMarathon, running: Callable[..., Running]
) -> None:
    """Marathon behind a proxy (its events are invalidations of a relist; it has no
    resume, and a dropped stream is tested above): an event stream cut mid-frame,
    events delivered twice (a relist of unchanged state emits nothing), and a
    Marathon that accepts and never answers - its silent stream is covered by the
    periodic relist, which lands in the hole, times out, and converges after it."""
    proxy = BreakableProxy(f"127.0.0.1:{marathon.port}")
    await proxy.start()
    try:
        marathon.add_app("/web", network="blue", vips={"VIP_0": "/web:80"})
        t1 = marathon.start_task("/web", "10.1.0.11")
        r = running(masters=[master.url], connect_timeout=0.5,
                    marathon=marathon_opts(marathon, urls=[f"http://{proxy.address}"], resync_interval=0.5))  # fmt: skip

        def backends() -> tuple[str, ...]:
            svc = r.services().get("web")
            return svc.rules[0].backends if svc is not None else ()

        await r.until(lambda: backends() == ("10.1.0.11:8080",), "the VIP's backend")
        # cut mid-frame
        proxy.cut_mid_record()
        t2 = marathon.start_task("/web", "10.1.0.12")
        assert await proxy.wait_cut()
        await r.until(lambda: backends() == ("10.1.0.11:8080", "10.1.0.12:8080"), "the new task after a cut")
        # every event twice: more relists, no delta
        mark, relists = len(r.rec.entries), r.adapter.marathon_relists
        capture = (FIXTURES_DIR / "mesos" / "marathon-sse-stream.doc-capture.txt").read_bytes()
        marathon.inject(capture + capture)
        await r.until(lambda: r.adapter.marathon_relists > relists, "a relist after the duplicated events")
        assert not [e for e in r.rec.since(mark) if isinstance(e.event, Upsert | Delete)]
        # accepted, never answered: the relist falls into the hole and must time out
        swallowed = proxy.swallowed
        proxy.black_hole()
        marathon.kill_task(t1)
        t3 = marathon.start_task("/web", "10.1.0.13")
        await r.until(lambda: proxy.swallowed > swallowed, "a relist into the black hole")
        # Mesos is not held up: its kill leaves the backends while Marathon is silent
        await r.until(lambda: backends() == ("10.1.0.12:8080",), "the Mesos kill applied during Marathon's silence")
        proxy.heal()
        await r.until(lambda: backends() == ("10.1.0.12:8080", "10.1.0.13:8080"), "convergence after the hole")
        assert t2 and t3
    finally:
        await proxy.stop()


async def test_bad_apps_are_rejected_and_the_rest_applies(
    master: FakeMesosMaster, marathon: FakeMarathon, running: Callable[..., Running]
) -> None:
    marathon.add_app("/good", network="blue", vips={"VIP_0": "/good:80"})
    marathon.add_app("/badvip", network="blue", vips={"VIP_0": "not a vip"})
    marathon.add_app("/badproto", network="blue", vips={"VIP_0": "/x:80"})["container"]["portMappings"][0]["protocol"] = "ipx"
    marathon.apps["/broken"] = {"id": "/broken", "container": {"portMappings": "nope"}}
    marathon.start_task("/good", "10.1.0.11")
    r = running(masters=[master.url], marathon=marathon_opts(marathon))
    await r.until(lambda: "good" in r.services() and len(r.rejected()) >= 3, "the good VIP and three rejections")
    assert sorted(x.reason for x in r.rejected()) == ["bad-field", "bad-protocol", "bad-vip"]


async def test_fixture_shaped_state_is_served(master: FakeMesosMaster, running: Callable[..., Running]) -> None:
    """The fixtures' frameworks and agents (GET_STATE doc example) feed the tasks' namespace and node."""
    master.load_fixtures(FIXTURES_DIR / "mesos")
    fid = "628984d0-4213-4140-bcb0-99d7ef46b1df-0000"
    master.launch(fid, "test-task", network="blue", ip="10.1.0.5", agent="628984d0-4213-4140-bcb0-99d7ef46b1df-S0")
    r = running(masters=[master.url])
    await r.until(lambda: "test-task" in r.by_name(), "the task")
    ep = r.by_name()["test-task"]
    assert (ep.namespace, ep.node) == ("default", "myhost")


async def test_the_fixture_event_stream_is_an_invalidation_and_a_dropped_stream_relists(
    master: FakeMesosMaster, marathon: FakeMarathon, running: Callable[..., Running]
) -> None:
    marathon.add_app("/web", network="blue", vips={"VIP_0": "/web:80"})
    r = running(masters=[master.url], marathon=marathon_opts(marathon))
    await r.until(lambda: "web" in r.services() and r.adapter.marathon_relists >= 1, "the first relist")
    marathon.start_task("/web", "10.1.0.11", container_id=cid())
    await r.until(lambda: r.services()["web"].rules[0].backends == ("10.1.0.11:8080",), "the new task a backend")
    await asyncio.sleep(0.3)  # the debounce (0.05 s) of that event's relist is over
    relists = r.adapter.marathon_relists
    marathon.inject((FIXTURES_DIR / "mesos" / "marathon-sse-stream.doc-capture.txt").read_bytes())
    await r.until(lambda: r.adapter.marathon_relists > relists, "a relist after the fixture's events")
    relists = r.adapter.marathon_relists
    marathon.drop_streams()
    await r.until(lambda: r.adapter.marathon_relists > relists, "attached again and relisted")
