"""K8sAdapter with the REAL kubernetes_asyncio client against the in-repo fake
API server (testkit/k8s_fake.py, real list/watch wire protocol on 127.0.0.1).
What needs no server (options, a missing in-cluster config) is in
tests/unit/test_k8s_adapter.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio import watch as k8s_watch
from kubernetes_asyncio.client.exceptions import ApiException

from adapters.k8s import K8sAdapter, create
from adapters.k8s.normalize import (
    CHASSIS_KEY,
    SERVICE_NAME_LABEL,
    node_chassis,
    node_internal_ips,
    node_pod_cidrs,
    normalize_namespace,
    normalize_pod,
    normalize_policy,
    normalize_service,
    parse_endpoint_slice,
)
from adapters.k8s.podnet import cap, collapse, pod_network
from core.adapter import AdapterSpec
from core.model import (
    Delete,
    Endpoint,
    InputEvent,
    Invalid,
    LBRule,
    Namespace,
    Network,
    Object,
    Policy,
    Rejected,
    Service,
    Snapshot,
    Source,
    Upsert,
    kind_of,
    validate,
)
from testkit.k8s_fake import FakeKubeApi
from testkit.wait import wait_until
from tests.conftest import FIXTURES_DIR
from tests.unit.test_k8s_adapter import WAIT, Sink, mkpod

FIXTURES = FIXTURES_DIR / "kubernetes"
SRC = Source("k8s", "test")

if not FIXTURES.is_dir():  # a missing fixture dir is an error, never a silent skip
    raise RuntimeError(f"{FIXTURES} missing")


# ---------------------------------------------------------------- helpers
Key = tuple[str, str]


def replay_all(events: list[InputEvent]) -> tuple[dict[Key, Object], int]:
    """The state (every kind, by (kind, key)) the events amount to, and how many
    were redundant (an Upsert of an unchanged object, a Delete of an absent one)."""
    state: dict[Key, Object] = {}
    redundant = 0
    for ev in events:
        if isinstance(ev, Snapshot):
            state = {(kind_of(o), o.key): o for o in ev.objects}
        elif isinstance(ev, Upsert):
            k = (kind_of(ev.obj), ev.obj.key)
            redundant += state.get(k) == ev.obj
            state[k] = ev.obj
        elif isinstance(ev, Delete):
            redundant += state.pop((ev.kind, ev.key), None) is None
    return state, redundant


def replay(events: list[InputEvent]) -> tuple[dict[str, Endpoint], int]:
    """:func:`replay_all` restricted to the Endpoints (by key)."""
    state, redundant = replay_all(events)
    return {k: o for (_, k), o in state.items() if isinstance(o, Endpoint)}, redundant


def expected(fake: FakeKubeApi, network: str = "default") -> dict[str, Endpoint]:
    """What the adapter must converge to, computed from the server's objects."""
    chassis: dict[str, str] = {}
    for n in fake.objects("Node"):
        with contextlib.suppress(Invalid):
            name, ch = node_chassis(n)
            chassis[name] = ch
    out: dict[str, Endpoint] = {}
    for p in fake.objects("Pod"):
        try:
            ep = normalize_pod(p, SRC, network=network)
        except Invalid:
            continue
        if ep is not None:
            out[ep.key] = msgspec.structs.replace(ep, node=chassis.get(ep.node, ep.node))
    return out


def expected_network(fake: FakeKubeApi, network: str = "default") -> Network:
    """The pod network derived from the server's nodes: the collapsed slices of
    every node that is readable and has valid podCIDRs."""
    cidrs: list[str] = []
    for n in fake.objects("Node"):
        with contextlib.suppress(Invalid):
            node_chassis(n)
            node_internal_ips(n)
            cidrs += node_pod_cidrs(n)
    return pod_network(SRC, network, cap(collapse(cidrs))[0])


def expected_all(fake: FakeKubeApi, network: str = "default", net: Network | None = None) -> dict[Key, Object]:
    """Every canonical object the adapter must converge to (the pod network -
    ``net``, or else derived from the nodes -, endpoints, namespaces, services
    joined with slices and node IPs, policies)."""
    out: dict[Key, Object] = {("network", network): net or expected_network(fake, network)}
    out |= {("endpoint", k): ep for k, ep in expected(fake, network).items()}
    for n in fake.objects("Namespace"):
        with contextlib.suppress(Invalid):
            ns = normalize_namespace(n, SRC)
            out[("namespace", ns.key)] = ns
    node_ips: list[str] = []
    for n in fake.objects("Node"):
        with contextlib.suppress(Invalid):
            node_chassis(n)
            node_ips += node_internal_ips(n)
    slices = []
    for sl in fake.objects("EndpointSlice"):
        with contextlib.suppress(Invalid):
            slices.append(parse_endpoint_slice(sl))
    for svc in fake.objects("Service"):
        with contextlib.suppress(Invalid):
            s = normalize_service(svc, slices, node_ips, SRC, network)
            if s is not None:
                out[("service", s.key)] = s
    for p in fake.objects("NetworkPolicy"):
        with contextlib.suppress(Invalid):
            pol = normalize_policy(p, SRC)
            out[("policy", pol.key)] = pol
    return out


def cached(adapter: K8sAdapter) -> dict[str, Endpoint]:
    return {e.key: e for e in adapter.endpoints()}


def cached_all(adapter: K8sAdapter) -> dict[Key, Object]:
    return dict(adapter.cache.objects)


def uid_of(obj: dict[str, Any]) -> str:
    uid: str = obj["metadata"]["uid"]
    return uid


def key_of(obj: dict[str, Any]) -> str:
    return f"default/{uid_of(obj)}"


@pytest.fixture
async def fake() -> AsyncIterator[FakeKubeApi]:
    server = FakeKubeApi()
    await server.start()
    try:
        server.load_fixtures(FIXTURES)
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def running(fake: FakeKubeApi, tmp: Path, **options: Any) -> AsyncIterator[tuple[K8sAdapter, Sink]]:
    kubeconfig = fake.write_kubeconfig(tmp / "kubeconfig")
    spec = AdapterSpec(name="k8s", type="k8s", cluster="test", options={"kubeconfig": str(kubeconfig), **options})
    adapter = create(spec)
    assert isinstance(adapter, K8sAdapter)
    adapter.backoff_initial = 0.05
    sink = Sink()
    task = asyncio.create_task(adapter.run(sink))
    try:
        yield adapter, sink
        assert not task.done(), "run() ended by itself"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def converged(adapter: K8sAdapter, sink: Sink, fake: FakeKubeApi) -> None:
    """Wait until both the adapter's cache and the emitted events equal the server's
    state (every kind)."""
    net = adapter.pod_network if adapter.pod_cidr is not None else None  # pod_cidr: the option's, fixed
    await sink.wait_for(
        lambda: (
            cached_all(adapter) == expected_all(fake, adapter.network, net)
            and replay_all(sink.events)[0] == expected_all(fake, adapter.network, net)
        ),
        "convergence with the server",
    )


# ---------------------------------------------------------------- tests
async def test_first_snapshot_then_deltas(fake: FakeKubeApi, tmp_path: Path) -> None:
    fixture_pod = fake.get("Pod", "some-name")
    p1 = fake.add("Pod", mkpod("web-1", "10.244.1.5"))
    p2 = fake.add("Pod", mkpod("db-1", "10.244.1.6", namespace="shop"))
    async with running(fake, tmp_path) as (adapter, sink):
        snap = await sink.wait_for(lambda: sink.snapshots(), "first snapshot")
        first = snap[0]
        assert sink.events.index(first) == 0, "the first event is the Snapshot"
        by_uid = {o.uid: o for o in first.objects if isinstance(o, Endpoint)}
        assert set(by_uid) == {uid_of(fixture_pod), uid_of(p1), uid_of(p2)}
        fx = by_uid[uid_of(fixture_pod)]
        validate(fx)
        assert (fx.name, fx.namespace, fx.kind, fx.node, fx.ips, fx.state) == (
            "some-name",
            "default",
            "pod",
            "node-name",
            ("10.0.0.1",),
            "running",
        )
        assert fx.labels["app"] == "some-app" and fx.source == SRC and fx.key == f"default/{uid_of(fixture_pod)}"
        assert by_uid[uid_of(p2)].namespace == "shop" and by_uid[uid_of(p2)].ports[0].port == 8080
        assert {(kind_of(o), o.key): o for o in first.objects} == expected_all(fake)
        assert Namespace(source=SRC, name="development", labels={"name": "development"}) in first.objects

        # stream quirks: every event split in two writes, blank lines in between
        fake.split_events = True
        fake.blank_lines = True
        p3 = fake.add("Pod", mkpod("api-1"))  # scheduled, no IP yet
        ups = await sink.wait_for(lambda: sink.upserts(uid_of(p3)), "upsert of a new pod")
        assert ups[0].ips == () and ups[0].state == "pending"

        # irrelevant changes: an annotation, nothing but a new resourceVersion
        cur = fake.get("Pod", "api-1")
        cur["metadata"]["annotations"] = {"kubectl.kubernetes.io/restartedAt": "now"}
        fake.update("Pod", cur)
        fake.update("Pod", fake.get("Pod", "api-1"))
        # then a relevant one: the pod gets its IP
        cur = fake.get("Pod", "api-1")
        cur["status"] = {"phase": "Running", "podIPs": [{"ip": "10.244.1.7"}, {"ip": "fd00:10:244:1::7"}]}
        fake.update("Pod", cur)
        ups = await sink.wait_for(
            lambda: sink.upserts(uid_of(p3)) if len(sink.upserts(uid_of(p3))) >= 2 else None, "upsert with the IP"
        )
        assert ups[1].ips == ("10.244.1.7", "fd00:10:244:1::7") and ups[1].state == "running"
        assert len(ups) == 2, "the MODIFIED events that changed nothing canonical emitted nothing"

        # a finished pod loses its endpoint; a deleted one too
        cur = fake.get("Pod", "db-1", "shop")
        cur["status"]["phase"] = "Succeeded"
        fake.update("Pod", cur)
        await sink.wait_for(
            lambda: sink.find(lambda e: isinstance(e, Delete) and e.key == f"default/{uid_of(p2)}"),
            "delete of a finished pod",
        )
        fake.delete("Pod", "web-1")
        await sink.wait_for(
            lambda: sink.find(lambda e: isinstance(e, Delete) and e.key == key_of(p1)), "delete of a deleted pod"
        )

        # bookmarks move the resume point
        fake.bookmark()
        await sink.wait_for(lambda: adapter.resource_versions.get("Pod") == str(fake.rv), "bookmark RV")

        await converged(adapter, sink, fake)
        assert replay(sink.events)[1] == 0, "no redundant events"
        assert len(sink.snapshots()) == 1 and adapter.relists == 1
        assert not sink.of(Rejected)
        assert adapter.namespaces.get("development") == {"name": "development"}
        assert adapter.chassis == {"node-default-pool-something": "node-default-pool-something"}


async def test_node_chassis_follows_node_events(fake: FakeKubeApi, tmp_path: Path) -> None:
    fake.add("Node", {"metadata": {"name": "worker-1", "annotations": {CHASSIS_KEY: "chassis-1"}}, "status": {}})
    p = fake.add("Pod", mkpod("web-1", "10.244.1.5"))
    other = fake.add("Pod", mkpod("web-2", "10.244.2.5", node="worker-2"))
    async with running(fake, tmp_path) as (adapter, sink):
        await sink.wait_for(lambda: sink.snapshots(), "first snapshot")
        assert cached(adapter)[key_of(p)].node == "chassis-1"
        assert cached(adapter)[key_of(other)].node == "worker-2"  # unknown node: its name

        n = fake.get("Node", "worker-1")
        n["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}  # a heartbeat: nothing
        fake.update("Node", n)
        n["metadata"]["annotations"][CHASSIS_KEY] = "chassis-2"
        fake.update("Node", n)
        ups = await sink.wait_for(
            lambda: [u for u in sink.upserts(uid_of(p)) if u.node == "chassis-2"], "re-emit with the new chassis"
        )
        assert ups[0].ips == ("10.244.1.5",)
        assert sink.upserts(uid_of(p)) == ups, "one upsert per chassis change, none for the heartbeat"
        assert not sink.upserts(uid_of(other)), "pods on other nodes are not re-emitted"

        fake.add("Node", {"metadata": {"name": "worker-2", "labels": {CHASSIS_KEY: "chassis-w2"}}})
        await sink.wait_for(lambda: [u for u in sink.upserts(uid_of(other)) if u.node == "chassis-w2"], "label chassis")
        fake.delete("Node", "worker-1")
        await sink.wait_for(
            lambda: [u for u in sink.upserts(uid_of(p)) if u.node == "worker-1"], "back to the node name"
        )
        await converged(adapter, sink, fake)
        assert replay(sink.events)[1] == 0


async def test_watch_expired_midstream_converges(fake: FakeKubeApi, tmp_path: Path) -> None:
    pods = [fake.add("Pod", mkpod(f"web-{i}", f"10.244.0.{i + 10}")) for i in range(8)]
    async with running(fake, tmp_path, page_size=3) as (adapter, sink):
        await sink.wait_for(lambda: sink.snapshots(), "first snapshot")
        lists_before = sum(r.startswith("GET /api/v1/pods?limit=") for r in fake.requests)
        await fake.wait_watching()
        fake.add("Pod", mkpod("seen-1", "10.244.9.1"))  # delivered before the expiry
        fake.expire_watches()
        # changes the expired watches never deliver: only the relist can find them
        fake.delete("Pod", "web-0")
        fake.delete("Pod", "web-1")
        cur = fake.get("Pod", "web-2")
        cur["status"]["podIPs"] = [{"ip": "10.244.5.2"}]
        fake.update("Pod", cur)
        new = [fake.add("Pod", mkpod(f"late-{i}", f"10.244.6.{i + 1}")) for i in range(3)]
        await converged(adapter, sink, fake)
        assert sum(r.startswith("GET /api/v1/pods?limit=") for r in fake.requests) > lists_before, "relisted"
        assert adapter.connected, "a 410 is not a disconnection"
        deletes = {e.key for e in sink.of(Delete)}
        assert {key_of(pods[0]), key_of(pods[1])} <= deletes
        assert all(sink.upserts(uid_of(p)) for p in new)
        state, redundant = replay(sink.events)
        assert redundant == 0, "no duplicate upserts or deletes"
        assert len(state) == len(expected(fake)) == 1 + 8 - 2 + 1 + 3
        # watches resumed from the relist's RV: later changes arrive as deltas
        fake.delete("Pod", "late-0")
        await sink.wait_for(
            lambda: sink.find(lambda e: isinstance(e, Delete) and e.key == key_of(new[0])), "delete after the relist"
        )
        await converged(adapter, sink, fake)


async def test_replayed_older_events_are_skipped_not_applied(fake: FakeKubeApi, tmp_path: Path) -> None:
    """A server that repeats its history (every event twice, re-watches replaying
    older resourceVersions, objects' events swapped): the adapter skips what is at
    or below the RV it applied, so a deleted pod never comes back, a changed one
    never goes back, even for a moment."""
    gone = fake.add("Pod", mkpod("gone-1", "10.244.3.1"))
    moved = fake.add("Pod", mkpod("moved-1", "10.244.3.2"))
    async with running(fake, tmp_path) as (adapter, sink):
        await sink.wait_for(lambda: sink.snapshots(), "first snapshot")
        await fake.wait_watching()
        fake.duplicate_and_reorder(replay=50, seed=16)
        fake.delete("Pod", "gone-1")
        cur = fake.get("Pod", "moved-1")
        cur["status"]["podIPs"] = [{"ip": "10.244.4.2"}]
        cur["status"]["podIP"] = "10.244.4.2"
        fake.update("Pod", cur)
        late = fake.add("Pod", mkpod("late-1", "10.244.3.3"))
        await converged(adapter, sink, fake)
        mark = len(sink.events)
        replayed = fake.replayed
        fake.end_watches()  # clean ends: re-watches from the adapter's RVs get the older events again
        stale = adapter.stale_events
        await wait_until(lambda: fake.replayed > replayed and adapter.stale_events > stale, 15, "replays, skipped")
        fake.stop_duplicating()
        fake.add("Pod", mkpod("after-1", "10.244.3.4"))  # a barrier: the replays were read before it
        await converged(adapter, sink, fake)
        after = sink.events[mark:]
        assert not [e for e in after if isinstance(e, Upsert) and e.obj.uid in (uid_of(gone), uid_of(moved))], after
        assert not [e for e in after if isinstance(e, Delete)], after
        state, redundant = replay(sink.events)
        assert redundant == 0 and uid_of(late) in {ep.uid for ep in state.values()}


async def test_watch_expired_at_start_relists(fake: FakeKubeApi, tmp_path: Path) -> None:
    victim = fake.add("Pod", mkpod("web-0", "10.244.0.10"))
    done: list[str] = []

    def after_list(kind: str) -> None:
        # between the pods list and its watch: changes, then a compaction, so
        # the watch from the list's RV gets an ERROR 410 event right away
        if kind == "Pod" and not done:
            done.append(kind)
            fake.delete("Pod", "web-0")
            fake.add("Pod", mkpod("late-1", "10.244.0.11"))
            fake.compact()

    fake.after_list = after_list
    async with running(fake, tmp_path) as (adapter, sink):
        await converged(adapter, sink, fake)
        assert sink.find(lambda e: isinstance(e, Delete) and e.key == key_of(victim)) is not None
        assert len(sink.snapshots()) >= 2, "a Snapshot after the relist"
        assert replay(sink.events)[1] == 0
        assert adapter.connected


async def test_pod_deleted_while_disconnected(fake: FakeKubeApi, tmp_path: Path) -> None:
    pods = [fake.add("Pod", mkpod(f"web-{i}", f"10.244.0.{i + 10}")) for i in range(3)]
    async with running(fake, tmp_path) as (adapter, sink):
        await sink.wait_for(lambda: sink.snapshots(), "first snapshot")
        await fake.wait_watching()
        mark = len(sink.events)
        fake.drop_connections()
        fake.delete("Pod", "web-1")  # before the adapter reconnects
        cur = fake.get("Pod", "web-2")
        cur["metadata"]["labels"] = {"app": "changed"}
        fake.update("Pod", cur)
        await sink.wait_for(
            lambda: sink.find(lambda e: isinstance(e, Delete) and e.key == key_of(pods[1]), mark),
            "delete after the relist",
        )
        await sink.wait_for(lambda: sink.find(lambda e: isinstance(e, Snapshot), mark), "snapshot after the relist")
        await converged(adapter, sink, fake)
        assert sink.upserts(uid_of(pods[2]))[-1].labels == {"app": "changed"}
        assert replay(sink.events)[1] == 0
        assert adapter.connected
        # and it watches again
        fake.add("Pod", mkpod("web-9", "10.244.0.99"))
        await converged(adapter, sink, fake)


async def test_bad_objects_are_rejected_and_the_adapter_goes_on(fake: FakeKubeApi, tmp_path: Path) -> None:
    no_uid = mkpod("no-uid", "10.244.0.3")
    no_uid["metadata"]["uid"] = ""
    fake.add("Pod", no_uid, raw=True)
    fake.add("Pod", mkpod("bad-ip", "10.244.0.300"))
    good = fake.add("Pod", mkpod("good-1", "10.244.0.4"))
    async with running(fake, tmp_path) as (adapter, sink):
        await sink.wait_for(lambda: sink.snapshots(), "first snapshot")
        rejected = {(r.ref, r.reason) for r in sink.of(Rejected)}
        assert {("default/no-uid", "missing-field"), ("default/bad-ip", "bad-ip")} <= rejected
        assert set(cached(adapter)) == set(expected(fake)) and key_of(good) in cached(adapter)

        # live: nonsense objects, garbage on the wire, a good pod turning bad
        await fake.wait_watching()
        fake.add(
            "Pod",
            {"metadata": {"name": "weird", "namespace": "default", "uid": "u-weird"}, "spec": "nonsense"},
            raw=True,
        )
        fake.inject("Pod", b'{"type": "ADDED", "obj\n')
        fake.inject("Pod", b'{"type": "EXPLODED", "object": {}}\n')
        fake.add("Node", {"metadata": {"name": "n-bad", "annotations": {CHASSIS_KEY: "has space"}}})
        fake.add("Namespace", {"metadata": {"name": "ns-bad", "labels": {"x": 1}}}, raw=True)
        cur = fake.get("Pod", "good-1")
        cur["status"]["podIPs"] = [{"ip": "not-an-ip"}]
        fake.update("Pod", cur)
        await sink.wait_for(
            lambda: sink.find(lambda e: isinstance(e, Delete) and e.key == key_of(good)), "a pod turning bad is dropped"
        )
        later = fake.add("Pod", mkpod("good-2", "10.244.0.5"))
        await sink.wait_for(lambda: sink.upserts(uid_of(later)), "the adapter goes on")
        reasons = {r.reason for r in sink.of(Rejected)}
        assert {"bad-field", "bad-json", "bad-event", "bad-chassis", "bad-label", "bad-ip"} <= reasons
        assert adapter.rejected["bad-ip"] >= 2
        assert all(r.source == SRC and r.message and "\n" not in r.message for r in sink.of(Rejected))
        await converged(adapter, sink, fake)
        assert len(sink.snapshots()) == 1, "bad input never forced a reconnect"

        # a non-410 ERROR event is a server problem: reconnect and relist
        await fake.wait_watching()
        fake.inject(
            "Pod",
            b'{"type": "ERROR", "object": {"kind": "Status", "code": 500, "reason": "InternalError", "message": "etcd"}}\n',
        )
        await sink.wait_for(lambda: len(sink.snapshots()) >= 2, "relist after a watch error")
        await converged(adapter, sink, fake)


async def test_paging_smaller_than_the_pod_count(fake: FakeKubeApi, tmp_path: Path) -> None:
    for i in range(11):
        fake.add("Pod", mkpod(f"web-{i:02d}", f"10.244.0.{i + 10}"))
    gone = fake.get("Pod", "web-09")
    done: list[str] = []

    def after_list(kind: str) -> None:
        # after the first page: the rest of the list must still be served at the first page's RV
        if kind == "Pod" and not done:
            done.append(kind)
            fake.delete("Pod", "web-09")
            fake.add("Pod", mkpod("web-99", "10.244.0.99"))

    fake.after_list = after_list
    async with running(fake, tmp_path, page_size=4) as (adapter, sink):
        first = (await sink.wait_for(lambda: sink.snapshots(), "first snapshot"))[0]
        uids = {o.uid for o in first.objects if isinstance(o, Endpoint)}
        assert len(uids) == 12 and uid_of(gone) in uids, "a consistent list at the first page's RV"
        pages = [r for r in fake.requests if r.startswith("GET /api/v1/pods?") and "watch" not in r]
        assert len(pages) == 3 and sum("continue=" in r for r in pages) == 2
        await converged(adapter, sink, fake)  # the watch delivers the changes made during the list
        assert len(cached(adapter)) == 12

        # an expired continue token during a relist: the list starts over
        fake.expire_next_continues = 1
        await fake.wait_watching()
        mark = len(sink.events)
        fake.drop_connections()
        await sink.wait_for(lambda: sink.find(lambda e: isinstance(e, Snapshot), mark), "snapshot after the relist")
        assert fake.expire_next_continues == 0
        await converged(adapter, sink, fake)


async def test_fake_speaks_the_protocol_to_kubernetes_asyncio(fake: FakeKubeApi, tmp_path: Path) -> None:
    """The fake's 410 is what the real client expects (ApiException(410) from its Watch)."""
    cfg = k8s_client.Configuration()
    await k8s_config.load_kube_config(
        config_file=str(fake.write_kubeconfig(tmp_path / "kc")), client_configuration=cfg, persist_config=False
    )
    async with k8s_client.ApiClient(configuration=cfg) as api:
        v1 = k8s_client.CoreV1Api(api)
        pods = await v1.list_pod_for_all_namespaces(limit=1)
        assert [p.metadata.name for p in pods.items] == ["some-name"] and pods.metadata.resource_version == str(fake.rv)
        nodes = await v1.list_node()
        assert nodes.items[0].metadata.uid == "0c24d0e1-a265-11e9-abe4-42010a80026b"
        # a watch from the list RV sees a new pod (typed by the client)
        w = k8s_watch.Watch()
        rv = pods.metadata.resource_version
        fake.add("Pod", mkpod("web-1", "10.244.0.1"))
        async with asyncio.timeout(WAIT):
            async for ev in w.stream(v1.list_pod_for_all_namespaces, resource_version=rv, timeout_seconds=5):
                assert ev["type"] == "ADDED" and ev["object"].metadata.name == "web-1"
                assert ev["object"].status.pod_ip == "10.244.0.1"
                w.stop()
                break
        await w.close()
        # compaction: its Watch raises ApiException(410)
        fake.compact()
        w = k8s_watch.Watch()
        with pytest.raises(ApiException) as info:
            async with asyncio.timeout(WAIT):
                async for _ in w.stream(v1.list_pod_for_all_namespaces, resource_version=rv):
                    pass
        assert info.value.status == 410
        await w.close()
        # an expired continue token is an HTTP 410 Status
        fake.expire_next_continues = 1
        page = await v1.list_pod_for_all_namespaces(limit=1)
        with pytest.raises(ApiException) as info:
            await v1.list_pod_for_all_namespaces(limit=1, _continue=page.metadata._continue)
        assert info.value.status == 410


# ---------------------------------------------------------------- services, slices, policies, namespaces
def mksvc(name: str, *cluster_ips: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {
        "type": "ClusterIP",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}],
        "selector": {"app": name},
    }
    if cluster_ips:
        s["clusterIP"], s["clusterIPs"] = cluster_ips[0], list(cluster_ips)
    s.update(spec)
    return {"metadata": {"name": name, "namespace": namespace}, "spec": s}


def mkslice(
    name: str,
    service: str,
    *addresses: str | tuple[str, bool],
    family: str = "IPv4",
    port: int = 8080,
    port_name: str = "http",
    namespace: str = "default",
) -> dict[str, Any]:
    endpoints = []
    for a in addresses:
        ip, ready = a if isinstance(a, tuple) else (a, True)
        endpoints.append({"addresses": [ip], "conditions": {"ready": ready}, "nodeName": "worker-1"})
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": {SERVICE_NAME_LABEL: service}},
        "addressType": family,
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
        "endpoints": endpoints,
    }


def website_policy() -> dict[str, Any]:
    import yaml

    obj: dict[str, Any] = yaml.safe_load((FIXTURES / "networkpolicy.k8s-website-example.yaml").read_text())
    return obj


def services_of(sink: Sink, uid: str) -> list[Service]:
    return [e.obj for e in sink.events if isinstance(e, Upsert) and isinstance(e.obj, Service) and e.obj.uid == uid]


def deleted(sink: Sink, kind: str, key: str) -> bool:
    return sink.find(lambda e: isinstance(e, Delete) and e.kind == kind and e.key == key) is not None


def rule_map(svc: Service) -> dict[tuple[str, int], tuple[str, ...]]:
    return {(r.vip, r.port): r.backends for r in svc.rules}


async def test_services_joined_with_slices(fake: FakeKubeApi, tmp_path: Path) -> None:
    web = fake.add("Service", mksvc("web", "10.96.0.10", "fd00:96::a", sessionAffinity="ClientIP"))
    fake.add("EndpointSlice", mkslice("web-v4", "web", "10.244.1.5", "10.244.1.6", ("10.244.1.7", False)))
    fake.add("EndpointSlice", mkslice("web-v6", "web", "fd00:10:244::5", family="IPv6"))
    np_ports = [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8081, "nodePort": 30080}]
    np = fake.add("Service", mksvc("np", "10.96.0.11", type="NodePort", ports=np_ports, externalIPs=["192.0.2.10"]))
    fake.add("EndpointSlice", mkslice("np-1", "np", "10.244.2.5"))
    fake.add("Service", mksvc("headless", "None"))
    fake.add("EndpointSlice", mkslice("headless-1", "headless", "10.244.3.5"))
    fake.add("Service", {"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "a.example"}})
    async with running(fake, tmp_path, network="blue") as (adapter, sink):
        first = (await sink.wait_for(lambda: sink.snapshots(), "first snapshot"))[0]
        svcs = {o.name: o for o in first.objects if isinstance(o, Service)}
        assert set(svcs) == {"web", "np"}, "headless and ExternalName services emit nothing"
        w = svcs["web"]
        validate(w)
        assert (w.uid, w.namespace, w.network, w.affinity_timeout) == (uid_of(web), "default", "blue", 10800)
        assert w.rules == (
            LBRule(protocol="tcp", vip="10.96.0.10", port=80, backends=("10.244.1.5:8080", "10.244.1.6:8080")),
            LBRule(protocol="tcp", vip="fd00:96::a", port=80, backends=("[fd00:10:244::5]:8080",)),
        )
        # NodePort: cluster IP, external IP and the fixture node's InternalIP 10.0.0.1, numeric targetPort
        assert rule_map(svcs["np"]) == {
            ("10.96.0.11", 80): ("10.244.2.5:8081",),
            ("192.0.2.10", 80): ("10.244.2.5:8081",),
            ("10.0.0.1", 30080): ("10.244.2.5:8081",),
        }
        assert not sink.of(Rejected)

        # an endpoint turns not ready: its backend goes
        cur = fake.get("EndpointSlice", "web-v4")
        cur["endpoints"][1]["conditions"]["ready"] = False
        fake.update("EndpointSlice", cur)
        ups = await sink.wait_for(lambda: services_of(sink, uid_of(web)), "web re-emitted")
        assert rule_map(ups[-1])[("10.96.0.10", 80)] == ("10.244.1.5:8080",)
        assert rule_map(ups[-1])[("fd00:96::a", 80)] == ("[fd00:10:244::5]:8080",)
        # a slice update that changes nothing canonical emits nothing
        cur = fake.get("EndpointSlice", "web-v4")
        cur["endpoints"][0]["zone"] = "z1"
        fake.update("EndpointSlice", cur)
        # the v6 slice goes: that rule keeps no backends
        fake.delete("EndpointSlice", "web-v6")
        await sink.wait_for(lambda: len(services_of(sink, uid_of(web))) >= 2, "web without v6 backends")
        assert rule_map(services_of(sink, uid_of(web))[-1])[("fd00:96::a", 80)] == ()

        # a new node: NodePort services get its InternalIP; a heartbeat does nothing
        fake.add(
            "Node",
            {
                "metadata": {"name": "worker-2"},
                "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]},
            },
        )
        nps = await sink.wait_for(lambda: services_of(sink, uid_of(np)), "np re-emitted for the new node")
        assert rule_map(nps[-1])[("10.0.0.2", 30080)] == ("10.244.2.5:8081",)
        n = fake.get("Node", "worker-2")
        n["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
        fake.update("Node", n)

        # the service changes its port; then it is deleted
        cur = fake.get("Service", "web")
        cur["spec"]["ports"][0]["port"] = 8000
        fake.update("Service", cur)
        await sink.wait_for(
            lambda: [s for s in services_of(sink, uid_of(web)) if ("10.96.0.10", 8000) in rule_map(s)], "port change"
        )
        fake.delete("Service", "web")
        await sink.wait_for(lambda: deleted(sink, "service", uid_of(web)), "Delete of the service")
        # a slice of a deleted service changes: nothing
        fake.update("EndpointSlice", mkslice("web-v4", "web", "10.244.1.9"))

        # a headless service becoming a ClusterIP one appears; a bad service is rejected
        cur = fake.get("Service", "headless")
        cur["spec"]["clusterIP"], cur["spec"]["clusterIPs"] = "10.96.0.12", ["10.96.0.12"]
        fake.update("Service", cur)
        await sink.wait_for(lambda: services_of(sink, uid_of(cur)), "headless → ClusterIP")
        fake.add("Service", mksvc("bad", "10.96.0.300"))
        await sink.wait_for(lambda: sink.find(lambda e: isinstance(e, Rejected) and e.ref == "default/bad"), "reject")
        await converged(adapter, sink, fake)
        assert replay_all(sink.events)[1] == 0, "no redundant events"
        assert len(services_of(sink, uid_of(np))) == 1, "one upsert per node IP change, none for the heartbeat"
        assert len(sink.snapshots()) == 1


async def test_policies_added_updated_deleted(fake: FakeKubeApi, tmp_path: Path) -> None:
    pol = fake.add("NetworkPolicy", website_policy())
    async with running(fake, tmp_path) as (adapter, sink):
        first = (await sink.wait_for(lambda: sink.snapshots(), "first snapshot"))[0]
        [p] = [o for o in first.objects if isinstance(o, Policy)]
        assert p.uid == uid_of(pol) and p.pod_selector.match_labels == {"role": "db"}
        assert p.ingress is not None and p.ingress[0].ports[0].port == 6379

        deny = fake.add(
            "NetworkPolicy", {"metadata": {"name": "deny", "namespace": "shop"}, "spec": {"podSelector": {}}}
        )
        ups = await sink.wait_for(
            lambda: [e.obj for e in sink.of(Upsert) if isinstance(e.obj, Policy) and e.obj.uid == uid_of(deny)], "add"
        )
        assert (ups[0].namespace, ups[0].ingress, ups[0].egress) == ("shop", (), None)

        cur = fake.get("NetworkPolicy", "test-network-policy")
        cur["spec"]["ingress"][0]["ports"][0]["port"] = 6380
        fake.update("NetworkPolicy", cur)
        ups = await sink.wait_for(
            lambda: [e.obj for e in sink.of(Upsert) if isinstance(e.obj, Policy) and e.obj.uid == uid_of(pol)], "update"
        )
        assert ups[-1].ingress is not None and ups[-1].ingress[0].ports[0].port == 6380

        # turning bad: rejected and withdrawn
        cur = fake.get("NetworkPolicy", "deny", "shop")
        cur["spec"]["podSelector"] = {"matchExpressions": [{"key": "a", "operator": "Like", "values": ["x"]}]}
        fake.update("NetworkPolicy", cur)
        await sink.wait_for(lambda: deleted(sink, "policy", uid_of(deny)), "bad policy withdrawn")
        assert [r.reason for r in sink.of(Rejected)] == ["bad-selector"]
        fake.delete("NetworkPolicy", "test-network-policy")
        await sink.wait_for(lambda: deleted(sink, "policy", uid_of(pol)), "Delete of the policy")
        await converged(adapter, sink, fake)
        assert replay_all(sink.events)[1] == 0


async def test_namespace_objects(fake: FakeKubeApi, tmp_path: Path) -> None:
    async with running(fake, tmp_path) as (adapter, sink):
        await sink.wait_for(lambda: sink.snapshots(), "first snapshot")
        ns = fake.get("Namespace", "development")
        ns["metadata"]["labels"]["team"] = "a"
        fake.update("Namespace", ns)
        ns = fake.get("Namespace", "development")
        ns["metadata"]["annotations"] = {"x": "y"}  # no label change: nothing
        fake.update("Namespace", ns)
        fake.add("Namespace", {"metadata": {"name": "shop"}})
        ups = await sink.wait_for(
            lambda: [e.obj for e in sink.of(Upsert) if isinstance(e.obj, Namespace)] or None, "namespace upserts"
        )
        await sink.wait_for(lambda: len([e for e in sink.of(Upsert) if isinstance(e.obj, Namespace)]) >= 2, "two")
        ups = [e.obj for e in sink.of(Upsert) if isinstance(e.obj, Namespace)]
        assert ups == [
            Namespace(source=SRC, name="development", labels={"name": "development", "team": "a"}),
            Namespace(source=SRC, name="shop", labels={}),
        ]
        assert adapter.namespaces["development"] == {"name": "development", "team": "a"}
        fake.delete("Namespace", "development")
        await sink.wait_for(lambda: deleted(sink, "namespace", "development"), "Delete of the namespace")
        assert "development" not in adapter.namespaces
        await converged(adapter, sink, fake)
        assert replay_all(sink.events)[1] == 0


def _populate(fake: FakeKubeApi) -> None:
    fake.add("Service", mksvc("web", "10.96.0.10"))
    fake.add("Service", mksvc("api", "10.96.0.20"))
    fake.add("EndpointSlice", mkslice("web-1", "web", "10.244.1.5", "10.244.1.6"))
    fake.add("EndpointSlice", mkslice("api-1", "api", "10.244.2.5"))
    fake.add("NetworkPolicy", website_policy())
    fake.add("NetworkPolicy", {"metadata": {"name": "deny"}, "spec": {"podSelector": {}}})


def _change_everything(fake: FakeKubeApi) -> None:
    fake.delete("Service", "api")
    cur = fake.get("EndpointSlice", "web-1")
    cur["endpoints"][0]["conditions"]["ready"] = False
    fake.update("EndpointSlice", cur)
    fake.delete("NetworkPolicy", "deny")
    cur = fake.get("NetworkPolicy", "test-network-policy")
    cur["spec"]["podSelector"] = {"matchLabels": {"role": "cache"}}
    fake.update("NetworkPolicy", cur)
    cur = fake.get("Namespace", "development")
    cur["metadata"]["labels"] = {"name": "dev"}
    fake.update("Namespace", cur)
    fake.add("Service", mksvc("late", "10.96.0.30"))


NEW_PATHS = {
    "Service": "GET /api/v1/services?",
    "EndpointSlice": "GET /apis/discovery.k8s.io/v1/endpointslices?",
    "NetworkPolicy": "GET /apis/networking.k8s.io/v1/networkpolicies?",
    "Namespace": "GET /api/v1/namespaces?",
}


def _lists(fake: FakeKubeApi, kind: str) -> int:
    return sum(r.startswith(NEW_PATHS[kind]) and "watch" not in r for r in fake.requests)


async def test_watch_expired_on_new_resources_converges(fake: FakeKubeApi, tmp_path: Path) -> None:
    _populate(fake)
    async with running(fake, tmp_path, page_size=1) as (adapter, sink):
        await sink.wait_for(lambda: sink.snapshots(), "first snapshot")
        await converged(adapter, sink, fake)
        before = {k: _lists(fake, k) for k in NEW_PATHS}
        await fake.wait_watching()
        fake.expire_watches()
        _change_everything(fake)  # never delivered by the expired watches: only the relists find them
        await converged(adapter, sink, fake)
        assert all(_lists(fake, k) > before[k] for k in NEW_PATHS), "each resource relisted"
        state, redundant = replay_all(sink.events)
        assert redundant == 0
        svc = next(o for o in state.values() if isinstance(o, Service) and o.name == "web")
        assert rule_map(svc)[("10.96.0.10", 80)] == ("10.244.1.6:8080",)
        assert not any(isinstance(o, Service) and o.name == "api" for o in state.values())
        assert state[("namespace", "development")] == Namespace(source=SRC, name="development", labels={"name": "dev"})
        assert adapter.connected
        # and the watches resumed
        fake.delete("Service", "late")
        await converged(adapter, sink, fake)


@pytest.mark.parametrize("kind", ["Service", "EndpointSlice", "NetworkPolicy"])
async def test_watch_expired_at_start_of_new_resource(fake: FakeKubeApi, tmp_path: Path, kind: str) -> None:
    _populate(fake)
    done: list[str] = []

    def after_list(listed: str) -> None:
        if listed == kind and not done:
            done.append(listed)
            _change_everything(fake)
            fake.compact()

    fake.after_list = after_list
    async with running(fake, tmp_path) as (adapter, sink):
        await converged(adapter, sink, fake)
        assert done and len(sink.snapshots()) >= 2 and _lists(fake, kind) >= 2
        assert replay_all(sink.events)[1] == 0
        assert adapter.connected


async def test_fake_serves_the_new_resources_to_kubernetes_asyncio(fake: FakeKubeApi, tmp_path: Path) -> None:
    _populate(fake)
    cfg = k8s_client.Configuration()
    await k8s_config.load_kube_config(
        config_file=str(fake.write_kubeconfig(tmp_path / "kc")), client_configuration=cfg, persist_config=False
    )
    async with k8s_client.ApiClient(configuration=cfg) as api:
        svcs = await k8s_client.CoreV1Api(api).list_service_for_all_namespaces()
        assert sorted(s.metadata.name for s in svcs.items) == ["api", "web"]
        slices = await k8s_client.DiscoveryV1Api(api).list_namespaced_endpoint_slice("default", limit=1)
        assert slices.items[0].address_type == "IPv4" and slices.metadata._continue
        pols = await k8s_client.NetworkingV1Api(api).list_network_policy_for_all_namespaces()
        assert {p.metadata.name for p in pols.items} == {"deny", "test-network-policy"}
        assert pols.items[1].spec.ingress[0].ports[0].port == 6379


# ---------------------------------------------------------------- the pod network
# The only Node fixture is the GKE one (spec.podCIDR 10.0.0.1/24, served by the
# `fake` fixture); every other Node below is TEST-BUILT from the core/v1 Node
# shape (metadata.name, spec.podCIDR / spec.podCIDRs, status.addresses).
def mknode(
    name: str, *cidrs: str, old: bool = False, chassis: str | None = None, ip: str | None = None
) -> dict[str, Any]:
    """A TEST-BUILT Node: ``spec.podCIDRs`` = ``cidrs`` (``old``: only
    ``spec.podCIDR``, as on nodes from before dual-stack)."""
    meta: dict[str, Any] = {"name": name, "labels": {"kubernetes.io/hostname": name}}
    if chassis:
        meta["annotations"] = {CHASSIS_KEY: chassis}
    spec: dict[str, Any] = {}
    if cidrs:
        spec["podCIDR"] = cidrs[0]
        if not old:
            spec["podCIDRs"] = list(cidrs)
    status: dict[str, Any] = {"addresses": [{"type": "InternalIP", "address": ip}] if ip else []}
    return {"metadata": meta, "spec": spec, "status": status}


def networks_of(sink: Sink, start: int = 0) -> list[Network]:
    """The Networks upserted since event ``start``."""
    return [e.obj for e in sink.events[start:] if isinstance(e, Upsert) and isinstance(e.obj, Network)]


def snapshot_network(snap: Snapshot) -> Network:
    [net] = [o for o in snap.objects if isinstance(o, Network)]
    return net


def pod_net(*subnets: str, gateway: str | None = None) -> Network:
    return Network(source=SRC, name="default", subnets=subnets, gateway=gateway)


async def test_pod_network_from_the_nodes_pod_cidrs(fake: FakeKubeApi, tmp_path: Path) -> None:
    fake.add("Node", mknode("worker-1", "10.244.1.0/24", "fd00:10:244:1::/64", chassis="chassis-1"))
    fake.add("Node", mknode("worker-3", "10.244.3.0/24", old=True))
    fake.add("Node", mknode("worker-9"))  # no podCIDR allocated yet
    p1 = fake.add("Pod", mkpod("web-1", "10.244.1.5"))
    outside = fake.add("Pod", mkpod("odd-1", "192.168.7.7", node="worker-3"))  # in no subnet: programmed all the same
    async with running(fake, tmp_path) as (adapter, sink):
        first = (await sink.wait_for(lambda: sink.snapshots(), "first snapshot"))[0]
        # the GKE fixture node's 10.0.0.1/24 is 10.0.0.0/24; the gateway: first host of the lowest IPv4 subnet
        want = pod_net("10.0.0.0/24", "10.244.1.0/24", "10.244.3.0/24", "fd00:10:244:1::/64", gateway="10.0.0.1")
        assert snapshot_network(first) == want and adapter.pod_network == want and adapter.pod_cidr is None
        assert first.objects[0] == want, "the network comes before its endpoints"
        assert cached(adapter)[key_of(outside)].ips == ("192.168.7.7",)
        assert cached(adapter)[key_of(p1)].node == "chassis-1"
        assert not networks_of(sink) and not sink.of(Rejected)

        # a heartbeat and a chassis change: no Network event
        n = fake.get("Node", "worker-1")
        n["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
        fake.update("Node", n)
        n["metadata"]["annotations"][CHASSIS_KEY] = "chassis-2"
        fake.update("Node", n)
        await sink.wait_for(lambda: [u for u in sink.upserts(uid_of(p1)) if u.node == "chassis-2"], "chassis change")
        assert not networks_of(sink)

        # a node gets its slice (MODIFIED): 10.244.2.0/24 and 10.244.3.0/24 collapse, 10.244.1.0/24 stays apart
        n = fake.get("Node", "worker-9")
        n["spec"] = {"podCIDR": "10.244.2.0/24", "podCIDRs": ["10.244.2.0/24"]}
        fake.update("Node", n)
        net = (await sink.wait_for(lambda: networks_of(sink), "the network grows"))[-1]
        assert net == pod_net("10.0.0.0/24", "10.244.1.0/24", "10.244.2.0/23", "fd00:10:244:1::/64", gateway="10.0.0.1")
        # a new node (ADDED)
        fake.add("Node", mknode("worker-4", "10.244.4.0/24", "fd00:10:244::/64"))
        net = (await sink.wait_for(lambda: networks_of(sink)[1:], "a new node's slice"))[-1]
        assert net.subnets == ("10.0.0.0/24", "10.244.1.0/24", "10.244.2.0/23", "10.244.4.0/24", "fd00:10:244::/63")
        # nodes deleted shrink it; the lowest slice's node goes: the gateway moves to the next lowest
        fake.delete("Node", "node-default-pool-something")
        net = (await sink.wait_for(lambda: networks_of(sink)[2:], "the fixture node's slice goes"))[-1]
        assert net == pod_net("10.244.1.0/24", "10.244.2.0/23", "10.244.4.0/24", "fd00:10:244::/63", gateway="10.244.1.1")
        fake.delete("Node", "worker-4")
        net = (await sink.wait_for(lambda: networks_of(sink)[3:], "worker-4's slice goes"))[-1]
        assert net == pod_net("10.244.1.0/24", "10.244.2.0/23", "fd00:10:244:1::/64", gateway="10.244.1.1")

        await converged(adapter, sink, fake)
        assert len(networks_of(sink)) == 4, "one Upsert per change of the slices, none otherwise"
        assert replay_all(sink.events)[1] == 0, "no redundant events"
        assert len(sink.snapshots()) == 1 and not sink.of(Rejected)
        assert adapter.node_cidrs == {"worker-1": ("10.244.1.0/24", "fd00:10:244:1::/64"),
                                      "worker-3": ("10.244.3.0/24",), "worker-9": ("10.244.2.0/24",)}  # fmt: skip


async def test_pod_network_after_a_relist(fake: FakeKubeApi, tmp_path: Path) -> None:
    """Node changes the watches never delivered (a dropped connection, an
    expired node watch) reach the Network through the relist: an Upsert, then
    the Snapshot; an unchanged relist emits no Network."""
    fake.add("Node", mknode("worker-1", "10.244.1.0/24"))
    async with running(fake, tmp_path) as (adapter, sink):
        await sink.wait_for(lambda: sink.snapshots(), "first snapshot")
        assert adapter.pod_network == pod_net("10.0.0.0/24", "10.244.1.0/24", gateway="10.0.0.1")
        # a relist with nothing changed
        await fake.wait_watching()
        mark = len(sink.events)
        fake.drop_connections()
        await sink.wait_for(lambda: sink.find(lambda e: isinstance(e, Snapshot), mark), "snapshot after the relist")
        assert not networks_of(sink, mark)

        await fake.wait_watching()
        mark = len(sink.events)
        fake.drop_connections()
        fake.delete("Node", "node-default-pool-something")  # while the adapter is away
        fake.add("Node", mknode("worker-5", "10.244.5.0/24"))
        snap = await sink.wait_for(lambda: sink.find(lambda e: isinstance(e, Snapshot), mark), "snapshot after the relist")
        assert isinstance(snap, Snapshot)
        want = pod_net("10.244.1.0/24", "10.244.5.0/24", gateway="10.244.1.1")
        assert snapshot_network(snap) == want and networks_of(sink, mark) == [want]
        upsert = sink.find(lambda e: isinstance(e, Upsert) and isinstance(e.obj, Network), mark)
        assert upsert is not None and sink.events.index(upsert) < sink.events.index(snap), "the delta, then the Snapshot"

        # the node watch expires; the change after it is found by the nodes' relist alone
        await fake.wait_watching()
        mark = len(sink.events)
        fake.expire_watches()
        fake.delete("Node", "worker-1")
        net = (await sink.wait_for(lambda: networks_of(sink, mark), "the network after the node relist"))[-1]
        assert net == pod_net("10.244.5.0/24", gateway="10.244.5.1")
        await converged(adapter, sink, fake)
        assert replay_all(sink.events)[1] == 0
        assert adapter.connected


async def test_pod_cidr_option_is_the_network(fake: FakeKubeApi, tmp_path: Path) -> None:
    """pod_cidr: the network is the option's, whatever the nodes say (their
    podCIDRs are not read: a malformed one is not even rejected)."""
    fake.add("Node", mknode("worker-1", "10.244.1.0/24", chassis="chassis-1"))
    p1 = fake.add("Pod", mkpod("web-1", "10.244.1.5"))
    options = {"pod_cidr": ["fd00:10:244::/56", "10.244.0.0/16"], "pod_gateway": "10.244.255.254"}
    async with running(fake, tmp_path, **options) as (adapter, sink):
        first = (await sink.wait_for(lambda: sink.snapshots(), "first snapshot"))[0]
        want = pod_net("10.244.0.0/16", "fd00:10:244::/56", gateway="10.244.255.254")
        assert snapshot_network(first) == want and adapter.pod_cidr == want.subnets
        # the fixture pod's 10.0.0.1 is outside the cluster CIDR: programmed all the same, nothing rejected
        assert {e.name for e in cached(adapter).values()} == {"some-name", "web-1"}
        fake.add("Node", mknode("worker-2", "10.99.0.0/24", chassis="chassis-w2"))
        fake.add("Node", mknode("worker-bad", "banana", chassis="chassis-b"))
        n = fake.get("Node", "worker-1")
        n["spec"] = {}
        n["metadata"]["annotations"][CHASSIS_KEY] = "chassis-1b"
        fake.update("Node", n)
        await sink.wait_for(lambda: [u for u in sink.upserts(uid_of(p1)) if u.node == "chassis-1b"], "chassis change")
        assert adapter.chassis["worker-bad"] == "chassis-b"
        await converged(adapter, sink, fake)
        assert not networks_of(sink) and not sink.of(Rejected) and adapter.node_cidrs == {}
        # the default gateway: the first host address of the lowest IPv4 subnet
    async with running(fake, tmp_path, pod_cidr="10.244.0.0/16, fd00:10:244::/56") as (adapter, sink):
        first = (await sink.wait_for(lambda: sink.snapshots(), "first snapshot"))[0]
        assert snapshot_network(first) == pod_net("10.244.0.0/16", "fd00:10:244::/56", gateway="10.244.0.1")


async def test_bad_node_pod_cidr_is_rejected_and_nothing_else_is_lost(fake: FakeKubeApi, tmp_path: Path) -> None:
    fake.add("Node", mknode("worker-1", "10.244.1.0/24", chassis="chassis-1"))
    fake.add("Node", mknode("worker-bad", "banana", chassis="chassis-b", ip="10.0.0.9"))
    fake.add("Node", mknode("worker-4", "10.244.4.0/24"))
    p1 = fake.add("Pod", mkpod("web-1", "10.244.1.5"))
    pb = fake.add("Pod", mkpod("web-b", "10.244.8.5", node="worker-bad"))
    np = fake.add("Service", mksvc("np", "10.96.0.11", type="NodePort",
                                   ports=[{"port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080}]))  # fmt: skip
    async with running(fake, tmp_path) as (adapter, sink):
        first = (await sink.wait_for(lambda: sink.snapshots(), "first snapshot"))[0]
        [rej] = sink.of(Rejected)
        assert (rej.ref, rej.reason) == ("worker-bad", "bad-subnet") and "'banana' is not a CIDR" in rej.message
        assert sink.events.index(rej) < sink.events.index(first)
        assert snapshot_network(first) == pod_net("10.0.0.0/24", "10.244.1.0/24", "10.244.4.0/24", gateway="10.0.0.1")
        # only the slice is lost: the bad node's chassis and InternalIP still count
        assert cached(adapter)[key_of(pb)].node == "chassis-b"
        [svc] = [o for o in first.objects if isinstance(o, Service) and o.uid == uid_of(np)]
        assert ("10.0.0.9", 30080) in rule_map(svc)

        # a good node turning bad (two IPv4 podCIDRs): rejected, its slice goes, nothing else changes
        mark = len(sink.events)
        n = fake.get("Node", "worker-1")
        n["spec"]["podCIDRs"] = ["10.244.1.0/24", "10.244.11.0/24"]
        fake.update("Node", n)
        net = (await sink.wait_for(lambda: networks_of(sink, mark), "the bad slice withdrawn"))[-1]
        assert net == pod_net("10.0.0.0/24", "10.244.4.0/24", gateway="10.0.0.1")
        assert [(r.ref, r.reason) for r in sink.of(Rejected)][1:] == [("worker-1", "bad-subnet")]
        assert "two IPv4 CIDRs" in sink.of(Rejected)[-1].message
        assert adapter.chassis["worker-1"] == "chassis-1" and not sink.upserts(uid_of(p1))
        # garbage on the node watch, a node nobody can read (it had a slice: withdrawn)
        fake.inject("Node", b'{"type": "ADDED", "obj\n')
        n = fake.get("Node", "worker-4")
        n["metadata"]["annotations"] = {CHASSIS_KEY: "has space"}
        fake.update("Node", n)
        await sink.wait_for(lambda: len(networks_of(sink, mark)) >= 2, "the unreadable node's slice withdrawn")
        assert networks_of(sink, mark)[-1] == pod_net("10.0.0.0/24", gateway="10.0.0.1")
        # both fixed: their slices come back
        n = fake.get("Node", "worker-1")
        n["spec"]["podCIDRs"] = ["10.244.1.0/24"]
        fake.update("Node", n)
        n = fake.get("Node", "worker-bad")
        n["spec"] = {"podCIDR": "10.244.8.0/24", "podCIDRs": ["10.244.8.0/24"]}
        fake.update("Node", n)
        want = pod_net("10.0.0.0/24", "10.244.1.0/24", "10.244.8.0/24", gateway="10.0.0.1")
        await sink.wait_for(lambda: networks_of(sink, mark)[-1] == want, "the fixed slices back")
        later = fake.add("Pod", mkpod("web-2", "10.244.1.6"))
        await sink.wait_for(lambda: sink.upserts(uid_of(later)), "the adapter goes on")

        reasons = [r.reason for r in sink.of(Rejected)]
        assert reasons == ["bad-subnet", "bad-subnet", "bad-json", "bad-chassis"], reasons
        assert adapter.rejected["bad-subnet"] == 2 and adapter.rejected["bad-chassis"] == 1
        assert all(r.source == SRC and r.message and "\n" not in r.message for r in sink.of(Rejected))
        await converged(adapter, sink, fake)
        assert replay_all(sink.events)[1] == 0
        assert len(sink.snapshots()) == 1, "bad nodes never forced a reconnect"
