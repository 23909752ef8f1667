"""K8sAdapter with the REAL kubernetes_asyncio client against the in-repo fake
API server (tests/k8s_fake.py, real list/watch wire protocol on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio import watch as k8s_watch
from kubernetes_asyncio.client.exceptions import ApiException

from adapters.k8s import K8sAdapter, create
from adapters.k8s.normalize import CHASSIS_KEY, node_chassis, normalize_pod
from core.adapter import AdapterSpec, OptionsError
from core.model import Delete, Endpoint, InputEvent, Invalid, Rejected, Snapshot, Source, Upsert, validate

try:
    from tests.conftest import shared_dir
    from tests.k8s_fake import FakeKubeApi
except ImportError:  # tests/ itself on sys.path
    from conftest import shared_dir  # type: ignore[no-redef,import-not-found]
    from k8s_fake import FakeKubeApi  # type: ignore[no-redef,import-not-found]

FIXTURES = shared_dir() / "fixtures" / "kubernetes"
SRC = Source("k8s", "test")
WAIT = 20.0  # upper bound of every wait
T = TypeVar("T")

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"{FIXTURES} missing")


# ---------------------------------------------------------------- helpers
class Sink:
    def __init__(self) -> None:
        self.events: list[InputEvent] = []
        self._changed = asyncio.Event()

    async def emit(self, event: InputEvent) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, pred: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    res = pred()
                    if res:
                        return res
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            tail = "\n".join(repr(e)[:300] for e in self.events[-15:])
            raise AssertionError(f"timed out waiting for {what}; last events:\n{tail}") from None

    def snapshots(self) -> list[Snapshot]:
        return [e for e in self.events if isinstance(e, Snapshot)]

    def of(self, typ: type[T]) -> list[T]:
        return [e for e in self.events if isinstance(e, typ)]

    def upserts(self, uid: str) -> list[Endpoint]:
        return [
            e.obj for e in self.events if isinstance(e, Upsert) and isinstance(e.obj, Endpoint) and e.obj.uid == uid
        ]

    def find(self, pred: Callable[[InputEvent], bool], start: int = 0) -> InputEvent | None:
        return next((e for e in self.events[start:] if pred(e)), None)


def replay(events: list[InputEvent]) -> tuple[dict[str, Endpoint], int]:
    """The state the events amount to, and how many were redundant (an Upsert
    of an unchanged object, a Delete of an absent one)."""
    state: dict[str, Endpoint] = {}
    redundant = 0
    for ev in events:
        if isinstance(ev, Snapshot):
            state = {o.key: o for o in ev.objects if isinstance(o, Endpoint)}
        elif isinstance(ev, Upsert) and isinstance(ev.obj, Endpoint):
            redundant += state.get(ev.obj.key) == ev.obj
            state[ev.obj.key] = ev.obj
        elif isinstance(ev, Delete):
            redundant += state.pop(ev.key, None) is None
    return state, redundant


def expected(fake: FakeKubeApi) -> dict[str, Endpoint]:
    """What the adapter must converge to, computed from the server's objects."""
    chassis: dict[str, str] = {}
    for n in fake.objects("Node"):
        with contextlib.suppress(Invalid):
            name, ch = node_chassis(n)
            chassis[name] = ch
    out: dict[str, Endpoint] = {}
    for p in fake.objects("Pod"):
        try:
            ep = normalize_pod(p, SRC)
        except Invalid:
            continue
        if ep is not None:
            out[ep.key] = msgspec.structs.replace(ep, node=chassis.get(ep.node, ep.node))
    return out


def cached(adapter: K8sAdapter) -> dict[str, Endpoint]:
    return {e.key: e for e in adapter.endpoints()}


def mkpod(
    name: str, ip: str | None = None, *, node: str = "worker-1", namespace: str = "default", **extra: Any
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running" if ip else "Pending"}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    pod: dict[str, Any] = {
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name.split("-")[0]}},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "ports": [{"containerPort": 8080, "protocol": "TCP"}]}],
        },
        "status": status,
    }
    pod.update(extra)
    return pod


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
    """Wait until both the adapter's cache and the emitted events equal the server's state."""
    await sink.wait_for(
        lambda: cached(adapter) == expected(fake) and replay(sink.events)[0] == expected(fake),
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
        assert {o.key: o for o in first.objects} == expected(fake)

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


async def test_options() -> None:
    def spec(**options: Any) -> AdapterSpec:
        return AdapterSpec(name="k", type="k8s", cluster="test", options=options)

    adapter = create(spec(kubeconfig="/x", context="c", network="blue", page_size=10, backoff_max=2.5))
    assert isinstance(adapter, K8sAdapter) and adapter.options.page_size == 10 and adapter.network == "blue"
    for bad, where in (
        ({"nope": 1}, "adapters.k"),
        ({"page_size": 0}, "adapters.k.page_size"),
        ({"page_size": "10"}, "adapters.k.page_size"),
        ({"backoff_max": 0}, "adapters.k.backoff_max"),
        ({"context": "c"}, "adapters.k.context"),
        ({"network": "bad name"}, "adapters.k.network"),
    ):
        with pytest.raises(OptionsError, match=where.replace(".", r"\.")):
            create(spec(**bad))


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


def test_pod_copy_helper_is_isolated() -> None:
    a = mkpod("x-1", "10.0.0.1")
    b = copy.deepcopy(a)
    b["metadata"]["labels"]["app"] = "y"
    assert a["metadata"]["labels"]["app"] == "x"


async def test_in_cluster_config_missing_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """No kubeconfig and not in a pod: run() raises (the hub restarts it with backoff)."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    adapter = create(AdapterSpec(name="k", type="k8s", cluster="test"))
    with pytest.raises(k8s_config.ConfigException):
        async with asyncio.timeout(WAIT):
            await adapter.run(Sink())
