"""Fuzz every door malformed input can come through (issue 16 item 6): at least
``OVN_HUB_FUZZ_EXAMPLES`` (10,000 by default, the issue's count) generated inputs per door, mostly near-valid
mutations of the real fixtures in tests/fixtures/ (testkit/fuzz.py), plus random
bytes and JSON.

For every input: no exception escapes the door (its documented outcome is a
canonical object, a Rejected, a ConfigError, a CNI error answer, a driver
``{"Err": …}`` answer, or, for a stream, the reconnect the adapter does on bad
framing), it returns within a hard bound (``SIGALRM``: 0 stalls), every
rejection carries a tag-shaped reason and a message, and an adapter's catch-all
``internal-error`` rejection (a bug caught at run time) fails the test as a
crash.  Once per door, rejections are counted in ``ovn_hub_rejected_total``
through the real path: the adapter's sink, the bus and its RejectionLog.

Hypothesis draws one seed per example (derandomized, no database) and each seed
makes a batch of inputs (testkit.fuzz.Mutator): cheap generation is what lets
every door see 10,000 inputs within the CI budget.  The figures (inputs,
outcomes by kind, slowest input) are printed and written to
``<pytest basetemp>/fuzz-report.json``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import logging
import os
import random
import re
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from aiohttp import streams, web
from aiohttp.test_utils import make_mocked_request
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from adapters.cloudfoundry import proto
from adapters.cloudfoundry.adapter import BBSError, CFAdapter
from adapters.cloudfoundry.normalize import Catalog, parse_c2c, parse_cc_resource, parse_security_groups
from adapters.cloudfoundry.wire import SSEParser, encode_frame
from adapters.docker.adapter import DockerAdapter
from adapters.docker.driver import Driver, DriverState
from adapters.docker.drivernode import plugin_app
from adapters.k8s.adapter import RESOURCES, K8sAdapter, _ApiError, _Expired
from adapters.mesos.adapter import MesosAdapter, _StreamError
from adapters.mesos.streams import FramingError, RecordIOReader, recordio_frame
from adapters.static import StaticAdapter
from core.adapter import AdapterSpec
from core.model import Delete, Invalid, Object, Rejected, Snapshot, Source, Upsert, encode
from core.vif.bridge import FakeBridge
from core.vif.handoff import FakeHandoff
from core.vif.link import FakeLinks
from hub import cniplugin as P
from hub.bus import AdapterSink, Bus
from hub.cni import CniAgent
from hub.config import CniNetwork, CniSection, ConfigError, MqttSection, load, loads
from hub.plugins import normalizer
from hub.remote import ApiIngest, RemoteIngest, ingest_topic
from testkit.cf_fake import lrp
from testkit.fuzz import Door, Mutator, to_toml

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
#: Inputs per door (``make fuzz`` runs more).
N = int(os.environ.get("OVN_HUB_FUZZ_EXAMPLES", "10000"))
BATCH = 100
#: Hard bound per input (seconds): a stall guard, not a speed test; generous for a loaded CI machine.
BOUND = 30.0
TAG = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
FUZZ = settings(
    max_examples=-(-N // BATCH), derandomize=True, database=None, deadline=None, phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)  # fmt: skip
SEED = st.integers(0, 2**63 - 1)


def batch_rngs(seed: int) -> Iterator[tuple[int, random.Random]]:
    r = random.Random(seed)
    for _ in range(BATCH):
        s = r.getrandbits(63)
        yield s, random.Random(s)


# ---------------------------------------------------------------- fixtures as seed documents
def _json(name: str) -> Any:
    return json.loads((FIX / name).read_text())


def _jsonl(name: str) -> list[Any]:
    out = []
    for line in (FIX / name).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _yaml(name: str) -> Any:
    return yaml.safe_load((FIX / name).read_text())


@pytest.fixture(autouse=True, scope="module")
def _quiet() -> Iterator[None]:
    """Rejections log a warning each: 10,000 of them per door would be most of the run's time."""
    hub_log = logging.getLogger("ovn_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)
    yield
    hub_log.setLevel(level)


@pytest.fixture(scope="module")
def report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[Door], None]]:
    doors: list[dict[str, Any]] = []

    def add(door: Door) -> None:
        doors.append(door.report())

    yield add
    path = tmp_path_factory.getbasetemp() / "fuzz-report.json"
    path.write_text(json.dumps(doors, indent=1))
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if tr is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            tr.write_line(f"\nfuzz report ({path}):")
            for d in doors:
                tr.write_line(f"  {json.dumps(d)}")


def check_rejected(door: Door, ev: Any) -> None:
    """A Rejected has a tag-shaped reason and a message; ``internal-error`` is a crash caught at run time."""
    assert isinstance(ev, Rejected)
    assert TAG.fullmatch(ev.reason), (door.name, ev.reason)
    assert ev.message, (door.name, ev)
    assert ev.reason != "internal-error", f"{door.name}: a crash caught as a rejection: {ev.message}"
    door.outcome(f"rejected:{ev.reason}")


def drain(door: Door, sub: Any) -> int:
    """Account for what the door put on the bus; the number of Rejected."""
    n = 0
    while not sub.queue.empty():
        ev = sub.queue.get_nowait()
        if isinstance(ev, Rejected):
            check_rejected(door, ev)
            n += 1
        elif isinstance(ev, Upsert):
            door.outcome(f"upsert:{type(ev.obj).__name__.lower()}")
        elif isinstance(ev, Delete):
            door.outcome("delete")
        elif isinstance(ev, Snapshot):
            door.outcome("snapshot")
        else:
            door.outcome(type(ev).__name__.lower())
    return n


def metric(source: str, reason: str) -> float:
    return REGISTRY.get_sample_value("ovn_hub_rejected_total", {"source": source, "reason": reason}) or 0.0


class Counted:
    """``ovn_hub_rejected_total`` before a door ran, to check once per door that the
    door's rejections reached it through the bus (once per distinct object)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.before: dict[tuple[str, str], float] = {}

    def check(self, door: Door) -> None:
        counts = self.bus.rejections.counts
        assert sum(counts.values()) > 0, f"{door.name}: nothing was rejected: the inputs are not malformed enough"
        for (src, reason), n in counts.items():
            assert metric(src, reason) - self.before.get((src, reason), 0.0) == n, (door.name, src, reason)
        door.outcome("counted-distinct", sum(counts.values()))


def run_door(door: Door, report: Callable[[Door], None], body: Callable[[int], None]) -> None:
    """``body(seed)`` once per hypothesis example; at least N inputs in all."""

    @FUZZ
    @given(seed=SEED)
    def examples(seed: int) -> None:
        with door.armed():
            body(seed)

    # What earlier doors left alive is not this door's to scan: each collection would walk it again
    # (the 2nd door ran 3x slower after the 1st, the 7th 30x).
    gc.collect()
    gc.freeze()
    examples()
    report(door)
    assert door.inputs >= N, door.report()
    assert door.max_seconds < door.bound


# ---------------------------------------------------------------- Docker: events + inspect (the adapter's live path)
DOCKER_INSPECTS = [_json("docker/container-inspect.api-v1.24-doc.json"),
                   _json("docker/container-inspect.compose-redis.spring-boot.json")]  # fmt: skip
DOCKER_NETWORKS = [_json("docker/network-inspect.api-v1.24-doc.json")]
DOCKER_EVENTS = _jsonl("docker/events.compose-project.deck-chores.jsonl")
for _i in DOCKER_INSPECTS:
    _i.setdefault("State", {}).update(Status="running", Running=True)


class _DockerError(Exception):
    pass


class FakeDocker:
    """What DockerAdapter asks aiodocker, answered with this input's (mutated) documents."""

    def __init__(self) -> None:
        self.inspect: Any = None
        self.network: Any = None
        self.listed: list[Any] = []
        self.containers = self
        self.networks = _Networks(self)

    def container(self, _cid: str) -> FakeDocker:
        return self

    async def show(self) -> Any:
        return self.inspect

    @contextlib.asynccontextmanager
    async def _query(self, path: str, **_kw: Any) -> AsyncIterator[_Body]:  # the inspect, as dockerd sends it
        assert path.startswith("containers/"), path
        yield _Body(self.inspect)

    async def _query_json(self, path: str, params: Any = None) -> Any:
        if path.startswith("networks"):
            return self.network
        return self.listed

    async def list(self, **_kw: Any) -> list[Any]:
        return self.listed


class _Body:
    def __init__(self, doc: Any) -> None:
        self.doc = doc

    async def read(self) -> bytes:
        try:
            return json.dumps(self.doc).encode("utf-8", "surrogatepass")
        except (RecursionError, ValueError):  # nested too deeply to encode: no daemon sends that
            return b"{}"


class _Networks:
    def __init__(self, docker: FakeDocker) -> None:
        self.docker = docker

    async def list(self) -> list[Any]:
        return [self.docker.network]


class _Listed(dict[str, Any]):
    def __init__(self, inspect: Any) -> None:
        super().__init__(State="running")
        self.id = str(inspect.get("Id", "")) if isinstance(inspect, dict) else ""
        self.inspect = inspect

    async def show(self) -> Any:
        return self.inspect


def test_fuzz_docker_adapter_events_and_inspect(report: Callable[[Door], None]) -> None:
    door = Door("docker-adapter", BOUND)
    bus = Bus(maxsize=10**6)
    sub = bus.subscribe("fuzz")
    spec = AdapterSpec(name="fzdocker", type="docker", cluster="fzdocker",
                       options={"networks": {"blue": {"subnet": "10.50.0.0/24", "gateway": "10.50.0.1"}}})  # fmt: skip
    sink = AdapterSink(bus, "fzdocker")
    counted = Counted(bus)
    docker = FakeDocker()

    def body(seed: int) -> None:
        adapter = DockerAdapter(spec)  # one per example: an example's outcome depends on nothing before it

        async def run() -> None:
            for _s, rng in batch_rngs(seed):
                m = Mutator(rng)
                ins = json.loads(json.dumps(m.pick(DOCKER_INSPECTS)))
                if rng.random() < 0.1:  # wrapper mode
                    ins["Config"]["Labels"] = {"ovn-hub.network": "blue", "ovn-hub.ip": "10.50.0.7"}
                    ins["HostConfig"] = {"NetworkMode": "none"}
                docker.inspect = m.mutate(ins, rng.choice((0, 1, 1, 2)))
                docker.network = m.mutate(m.pick(DOCKER_NETWORKS), rng.choice((0, 1, 2)))
                ev = m.mutate(m.pick(DOCKER_EVENTS), rng.choice((0, 0, 1, 2)))
                if isinstance(ev, dict) and rng.random() < 0.5:
                    ev["timeNano"] = rng.getrandbits(62)  # else the de-duplication drops most re-used fixture events
                line = m.bytes_of(m.dumps(ev)) if rng.random() < 0.9 else m.noise()
                line = m.damage(line).replace(b"\n", b" ")
                with door.bounded():
                    if rng.random() < 0.05:
                        docker.listed = [_Listed(m.mutate(m.pick(DOCKER_INSPECTS))) for _ in range(rng.randrange(4))]
                        await adapter.relist(docker, sink)  # type: ignore[arg-type]
                    else:
                        await adapter.handle_line(line, sink, docker)  # type: ignore[arg-type]
                drain(door, sub)

        asyncio.run(run())

    run_door(door, report, body)
    counted.check(door)


# ---------------------------------------------------------------- Kubernetes: watch lines of every resource
K8S_OBJECTS: dict[str, list[Any]] = {
    "Pod": [_yaml("kubernetes/pod.apimachinery-managedfields.yaml")],
    "Service": [_json("kubernetes/service.kubectl-edit-testdata.json")],
    "EndpointSlice": [_yaml("kubernetes/endpointslice-v1.k8s-docs-example.yaml")],
    "NetworkPolicy": [_yaml("kubernetes/networkpolicy.k8s-website-example.yaml")],
    "Namespace": [_json("kubernetes/namespace.doc-fixture.json")],
    "Node": [_yaml("kubernetes/node.apimachinery-managedfields.yaml")],
}
K8S_WATCH = [*_jsonl("kubernetes/watch-stream.retry-410.kubernetes-asyncio-test.jsonl"),
             _json("kubernetes/watch-event-error-410-gone.recorded.kubernetes-asyncio-test.json")]  # fmt: skip
_pod = K8S_OBJECTS["Pod"][0]
_pod.setdefault("status", {}).update(phase="Running", podIP="10.244.1.5", podIPs=[{"ip": "10.244.1.5"}])
_pod.setdefault("spec", {})["nodeName"] = "node1"


def test_fuzz_k8s_adapter_watch_lines(report: Callable[[Door], None]) -> None:
    door = Door("k8s-adapter", BOUND)
    bus = Bus(maxsize=10**6)
    sub = bus.subscribe("fuzz")
    spec = AdapterSpec(name="fzk8s", type="k8s", cluster="fzk8s", options={})
    sink = AdapterSink(bus, "fzk8s")
    counted = Counted(bus)
    by_kind = {r.kind: r for r in RESOURCES}

    def body(seed: int) -> None:
        adapter = K8sAdapter(spec)

        async def run() -> None:
            for _s, rng in batch_rngs(seed):
                m = Mutator(rng)
                kind = rng.choice(list(K8S_OBJECTS))
                if rng.random() < 0.08:
                    ev: Any = m.mutate(m.pick(K8S_WATCH), rng.choice((0, 1)))
                else:
                    obj = m.mutate(m.pick(K8S_OBJECTS[kind]), rng.choice((0, 1, 1, 2, 3)))
                    if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict) and rng.random() < 0.7:
                        obj["metadata"]["uid"] = f"u{rng.randrange(50)}"  # a few objects, updated and deleted
                        obj["metadata"]["name"] = f"n{rng.randrange(50)}"
                    typ = rng.choice(("ADDED", "MODIFIED", "DELETED", "ADDED", "MODIFIED", "BOOKMARK", "ERROR", "FROB"))
                    ev = {"type": typ, "object": obj}
                    if rng.random() < 0.1:
                        ev = m.mutate(ev, 1)
                line = m.bytes_of(m.dumps(ev)) if rng.random() < 0.95 else m.noise()
                line = m.damage(line)
                with door.bounded():
                    try:
                        await adapter._handle_line(by_kind[kind], line, sink)
                    except (_Expired, _ApiError):
                        door.outcome("reconnect")
                drain(door, sub)

        asyncio.run(run())

    run_door(door, report, body)
    counted.check(door)


# ---------------------------------------------------------------- static: JSON lines of canonical objects
def _canonical_seeds() -> list[Any]:
    """Canonical objects of several kinds (what the static file and remote ingest carry), as JSON."""
    out: list[Any] = []
    for name in ("docker", "k8s", "mesos", "cloudfoundry"):
        fn = normalizer(name)
        for f in sorted((FIX / {"k8s": "kubernetes"}.get(name, name)).iterdir()):
            if f.suffix not in (".json", ".yaml", ".jsonl", ".txt") or "SOURCES" in f.name:
                continue
            try:
                for obj in fn(f.read_text(), Source("static", "fz")):
                    if not isinstance(obj, (Invalid, Delete)):
                        out.append(json.loads(encode(obj)))
            except Exception:  # noqa: BLE001 - a seed file a normalizer does not read gives no seeds
                continue
    assert len({o["type"] for o in out}) >= 4, {o["type"] for o in out}
    return out


CANONICAL = _canonical_seeds()


def test_fuzz_static_lines(report: Callable[[Door], None], tmp_path: Path) -> None:
    door = Door("static-adapter", BOUND)
    bus = Bus(maxsize=10**6)
    sub = bus.subscribe("fuzz")
    spec = AdapterSpec(name="fzstatic", type="static", cluster="fz", options={"path": str(tmp_path / "objs.jsonl")})
    adapter = StaticAdapter(spec)
    sink = AdapterSink(bus, "fzstatic")
    counted = Counted(bus)
    path = tmp_path / "objs.jsonl"

    def body(seed: int) -> None:
        async def run() -> None:
            for _s, rng in batch_rngs(seed):
                m = Mutator(rng)
                doc = m.mutate(m.pick(CANONICAL), rng.choice((0, 1, 1, 2)))
                line = m.bytes_of(m.dumps(doc)) if rng.random() < 0.9 else m.noise()
                line = m.damage(line).replace(b"\n", b" ")
                path.write_bytes(line + b"\n")
                with door.bounded():
                    objects, rejected = adapter.read()
                    for r in rejected:
                        await sink.emit(r)
                    await sink.emit(Snapshot(source=spec.source, objects=tuple(objects)))  # as its run() does
                assert len(objects) + len(rejected) == (1 if line.strip() else 0)
                door.outcome("object", len(objects))
                drain(door, sub)

        asyncio.run(run())

    run_door(door, report, body)
    counted.check(door)


# ---------------------------------------------------------------- Mesos: RecordIO records of the operator API
MESOS_EVENTS = [_json(f"mesos/{n}") for n in (
    "operator-event-task-added.asgard.json", "operator-event-task-added.doc.json",
    "operator-event-task-updated-running.asgard.json", "operator-event-task-updated.doc.json",
    "operator-event-agent-removed.doc.json", "operator-event-framework-added.doc.json")] + [
    {"type": "HEARTBEAT"}, {"type": "AGENT_ADDED", "agent_added": {"agent": {"agent_info": {"hostname": "a1", "id": {"value": "S1"}}}}}]  # fmt: skip
_state = _json("mesos/operator-get-state-response.doc.json")
MESOS_SUBSCRIBED = {"type": "SUBSCRIBED", "subscribed": {"get_state": _state.get("get_state", _state), "heartbeat_interval_seconds": 15}}
MESOS_EVENTS.append(MESOS_SUBSCRIBED)
_framed = (FIX / "mesos/recordio-stream.framed-real-events.txt").read_bytes()
MESOS_EVENTS += [json.loads(r) for r in RecordIOReader().feed(_framed) if r.strip().startswith(b"{")]


def test_fuzz_mesos_adapter_records(report: Callable[[Door], None]) -> None:
    door = Door("mesos-adapter", BOUND)
    bus = Bus(maxsize=10**6)
    sub = bus.subscribe("fuzz")
    spec = AdapterSpec(name="fzmesos", type="mesos", cluster="fzmesos", options={
        "masters": ["http://m1:5050"], "networks": {"ovn": {"subnet": "10.60.0.0/16", "gateway": "10.60.0.1"}}})  # fmt: skip
    sink = AdapterSink(bus, "fzmesos")
    counted = Counted(bus)

    def body(seed: int) -> None:
        adapter = MesosAdapter(spec)
        adapter._sink = sink
        leader = adapter.masters[0]

        async def run() -> None:
            await adapter._first(encode_json(MESOS_SUBSCRIBED), leader)
            drain(door, sub)
            for _s, rng in batch_rngs(seed):
                m = Mutator(rng)
                records = [m.bytes_of(m.dumps(m.mutate(m.pick(MESOS_EVENTS), rng.choice((0, 1, 1, 2)))))
                           for _ in range(rng.choice((1, 1, 2)))]  # fmt: skip
                if rng.random() < 0.05:
                    records.append(m.noise())
                stream = b"".join(recordio_frame(rec) for rec in records)
                if rng.random() < 0.2:
                    stream = m.damage(stream)  # the framing itself
                reader = RecordIOReader(1 << 20)
                with door.bounded():
                    try:
                        pos = 0
                        while pos < len(stream):
                            step = rng.randrange(1, 4096)
                            for rec in reader.feed(stream[pos : pos + step]):
                                if rng.random() < 0.02:
                                    await adapter._first(rec, leader)
                                else:
                                    await adapter._record(rec)
                            pos += step
                    except (FramingError, _StreamError):
                        door.outcome("reconnect")
                drain(door, sub)

        asyncio.run(run())

    run_door(door, report, body)
    counted.check(door)


def encode_json(doc: Any) -> bytes:
    return json.dumps(doc).encode()


# ---------------------------------------------------------------- Cloud Foundry: SSE frames of base64 protobuf, CC and policy JSON
_PG = "9f83b8c1-4d3c-4d9a-a1c2-6b0e5d1f2a3b"
LRP_ARGS = [
    {"process_guid": _PG + "-5a8b8b1f", "index": 0, "instance_guid": "ia0b1c2d-0000-4000-8000-000000000001",
     "cell_id": "cell-1", "ip": "10.255.0.5", "ports": [8080], "ipv6": "", "state": "RUNNING", "presence": "ORDINARY",
     "tags": {"app_id": _PG, "app_name": "web", "space_name": "dev", "organization_name": "acme"}},
    {"process_guid": _PG + "-5a8b8b1f", "index": 1, "instance_guid": "ia0b1c2d-0000-4000-8000-000000000002",
     "cell_id": "cell-2", "ip": "10.255.0.6", "ports": [8080, 9090], "ipv6": "fd00::6", "state": "RUNNING",
     "presence": "EVACUATING", "tags": {}},
]  # fmt: skip
CF_EVENTS = ("actual_lrp_instance_created", "actual_lrp_instance_changed", "actual_lrp_instance_removed",
             "actual_lrp_crashed", "desired_lrp_created", "actual_lrp_created", "")  # fmt: skip
CC_DOCS = {k: _json(f"cloudfoundry/cc-v3-{k}.docs.json") for k in ("app", "space", "organization")}
CC_DOCS["process"] = _json("cloudfoundry/cc-v3-process-with-embedded-instances.docs.json")
C2C = _json("cloudfoundry/policy-server-external-policies-response.docs.json")
ASGS = {"next": 0, "security_groups": [{"guid": "g1", "name": "public", "running_default": True, "staging_default": False,
        "rules": json.dumps([{"protocol": "tcp", "destination": "0.0.0.0-9.255.255.255", "ports": "80,443"},
                             {"protocol": "icmp", "destination": "10.0.0.0/8", "type": 0, "code": 0}]),
        "running_space_guids": [], "staging_space_guids": []}]}  # fmt: skip


def _lrp_message(m: Mutator, args: dict[str, Any]) -> Any:
    a = m.mutate(args, m.rng.choice((0, 1, 1, 2)))
    try:
        return lrp(a["process_guid"], a["index"], a["instance_guid"], a["cell_id"], a["ip"], state=a["state"],
                   presence=a["presence"], ports=tuple(a["ports"]), ipv6=a["ipv6"], tags=a["tags"])  # fmt: skip
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError):  # protobuf's type checks: a value it cannot hold
        return lrp(**{k: v for k, v in args.items() if k != "ports"}, ports=tuple(args["ports"]))


def _cf_frame(m: Mutator) -> bytes:
    r = m.rng
    name = r.choice(CF_EVENTS)
    msg = _lrp_message(m, r.choice(LRP_ARGS))
    if name == "actual_lrp_instance_changed":
        ev = proto.ActualLRPInstanceChangedEvent()
        ev.actual_lrp_key.CopyFrom(msg.actual_lrp_key)
        ev.actual_lrp_instance_key.CopyFrom(msg.actual_lrp_instance_key)
        ev.after.actual_lrp_net_info.CopyFrom(msg.actual_lrp_net_info)
        ev.after.state = msg.state
        ev.after.presence = msg.presence
        if r.random() < 0.5:
            ev.before.state = "CLAIMED"
        data = ev.SerializeToString()
    elif name in ("actual_lrp_instance_created", "actual_lrp_instance_removed"):
        data = proto.EVENTS[name](actual_lrp=msg).SerializeToString()
    elif name == "actual_lrp_crashed":
        ev2 = proto.ActualLRPCrashedEvent(crash_count=1, crash_reason="exit 1")
        ev2.actual_lrp_key.CopyFrom(msg.actual_lrp_key)
        data = ev2.SerializeToString()
    else:
        data = r.randbytes(r.randrange(40))
    if r.random() < 0.3:
        data = m.damage(data)
    text = base64.b64encode(data).decode()
    if r.random() < 0.1:
        text = m.hostile_string(text)
    try:
        frame = encode_frame(r.randrange(1, 10**6), name, text)
    except UnicodeEncodeError:  # a lone surrogate: what a stream carries is its bytes
        frame = f"id: 1\nevent: {name}\ndata: ".encode() + m.bytes_of(text) + b"\n\n"
    if r.random() < 0.1:
        frame = m.damage(frame)
    return frame


class _Frames:
    """A FrameReader over bytes already read: the batches an SSE parser makes of them, then the end."""

    def __init__(self, batches: list[list[Any]]) -> None:
        self.batches = batches

    async def next(self) -> list[Any]:
        if not self.batches:
            raise BBSError("the BBS closed the event stream")
        return self.batches.pop(0)


def test_fuzz_cloudfoundry_adapter_events_and_platform(report: Callable[[Door], None]) -> None:
    door = Door("cloudfoundry-adapter", BOUND)
    bus = Bus(maxsize=10**6)
    sub = bus.subscribe("fuzz")
    spec = AdapterSpec(name="fzcf", type="cloudfoundry", cluster="fzcf", options={
        "bbs_url": "https://bbs:8889", "bbs_ca": "/ca", "bbs_cert": "/c", "bbs_key": "/k", "evacuation_grace": 0})  # fmt: skip
    sink = AdapterSink(bus, "fzcf")
    counted = Counted(bus)

    def body(seed: int) -> None:
        adapter = CFAdapter(spec)
        adapter.sink = sink

        async def run() -> None:
            for _s, rng in batch_rngs(seed):
                m = Mutator(rng)
                what = rng.random()
                with door.bounded():
                    if what < 0.7:  # the BBS event stream
                        parser = SSEParser()
                        batches = [parser.feed(_cf_frame(m)) for _ in range(rng.choice((1, 1, 2, 3)))]
                        if rng.random() < 0.05:
                            batches.append(parser.feed(m.noise() + b"\n\n"))
                        try:
                            await adapter._consume(_Frames([b for b in batches if b]))  # type: ignore[arg-type]
                        except BBSError:
                            door.outcome("stream-end")
                    elif what < 0.85:  # CC v3 resources
                        kind = rng.choice(list(CC_DOCS))
                        cat = Catalog()
                        bad = []
                        for res in [m.mutate(CC_DOCS[kind], rng.choice((0, 1, 2))), *(m.mutate(m.pick(list(CC_DOCS.values()))) for _ in range(rng.randrange(2)))]:  # fmt: skip
                            try:
                                cat.add(parse_cc_resource(res, kind if rng.random() < 0.7 else ""))
                            except Invalid as exc:
                                bad.append(exc)
                        await adapter._report("cc", bad, "cc")
                        adapter.catalog = cat
                        await adapter._sync_all_endpoints()
                        await adapter._sync_platform()
                    elif what < 0.93:  # the policy server's c2c policies
                        try:
                            policies, bad = parse_c2c(m.mutate(C2C, rng.choice((1, 1, 2, 3))))
                            await adapter._report("c2c", bad, "policy-server")
                            adapter.c2c = sorted(set(policies), key=lambda p: (p.destination, p.source, p.protocol, p.start, p.end))
                            await adapter._sync_platform()
                        except Invalid:
                            door.outcome("poll-failed")  # the adapter keeps the last state (HTTPFailed)
                    else:  # security groups
                        try:
                            groups, bad, _nxt = parse_security_groups(m.mutate(ASGS, rng.choice((1, 1, 2, 3))))
                            await adapter._report("asg", [*bad, *(b for g in groups for b in g.unsupported)], "policy-server")
                            adapter.asgs = sorted(groups, key=lambda g: g.guid)
                            await adapter._sync_platform()
                        except Invalid:
                            door.outcome("poll-failed")
                drain(door, sub)

        asyncio.run(run())

    run_door(door, report, body)
    counted.check(door)


# ---------------------------------------------------------------- hubctl normalize --from X (the offline normalizers)
def _texts(folder: str) -> list[str]:
    return [f.read_text() for f in sorted((FIX / folder).iterdir()) if f.name != "SOURCES.md"]


MARATHON_APPS = {"apps": [{"id": "/prod/web", "labels": {"VIP_0": "/web:80"}, "networks": [{"mode": "container", "name": "ovn"}],
                  "container": {"portMappings": [{"containerPort": 80, "name": "http", "labels": {"VIP_0": "/web:80"}}]},
                  "tasks": [{"id": "prod_web.1", "state": "TASK_RUNNING", "ipAddresses": [{"ipAddress": "10.60.0.5", "protocol": "IPv4"}],
                             "healthCheckResults": [{"alive": True}]}]}]}  # fmt: skip


def _offline_seeds(name: str) -> tuple[list[Any], list[str]]:
    folder = {"k8s": "kubernetes"}.get(name, name)
    docs: list[Any] = []
    for f in sorted((FIX / folder).iterdir()):
        try:
            docs.append(json.loads(f.read_text()))
        except ValueError:
            pass
        if f.suffix == ".yaml":
            docs.append(_yaml(f"{folder}/{f.name}"))
    if name == "mesos":
        docs.append(MARATHON_APPS)
        docs.append(MESOS_SUBSCRIBED)
    if name == "k8s":
        docs += [{"type": "ADDED", "object": o} for objs in K8S_OBJECTS.values() for o in objs]
        docs.append({"kind": "List", "items": [o for objs in K8S_OBJECTS.values() for o in objs]})
    return docs, _texts(folder)


@pytest.mark.parametrize("name", ["docker", "k8s", "mesos", "cloudfoundry"])
def test_fuzz_offline_normalizer(name: str, report: Callable[[Door], None]) -> None:
    door = Door(f"normalize-{name}", BOUND)
    fn = normalizer(name)
    docs, texts = _offline_seeds(name)
    src = Source(name, "fz")
    skips: list[tuple[str, str]] = []

    def on_skip(reason: str, message: str) -> None:
        skips.append((reason, message))

    def body(seed: int) -> None:
        for _s, rng in batch_rngs(seed):
            m = Mutator(rng)
            how = rng.random()
            if name == "k8s" and 0.6 <= how < 0.95 and rng.random() < 0.6:  # YAML texts: PyYAML is slow
                how = rng.random() * 0.6
            if how < 0.6:
                text = m.dumps(m.mutate(m.pick(docs), rng.choice((0, 1, 1, 2, 3))))
                if name == "k8s" and rng.random() < 0.1:
                    text = yaml.safe_dump(json.loads(text)) if text.count("[") < 500 else text
            elif how < 0.95:
                text = m.text_damage(m.pick(texts))
            else:
                text = m.noise().decode("utf-8", "replace")
            if rng.random() < 0.2:
                text = m.damage(text.encode("utf-8", "surrogatepass")).decode("utf-8", "surrogateescape")
            skips.clear()
            with door.bounded():
                out = list(fn(text, src, on_skip=on_skip))
            for o in out:
                if isinstance(o, Invalid):
                    assert TAG.fullmatch(o.reason) and str(o), (name, o.reason, str(o))
                    door.outcome(f"rejected:{o.reason}")
                else:
                    assert isinstance(o, (Object, Delete)), o
                    door.outcome(type(o).__name__.lower())
            for reason, message in skips:
                assert TAG.fullmatch(reason) and message, (reason, message)
            door.outcome("skipped", len(skips))

    run_door(door, report, body)
    assert any(k.startswith("rejected:") for k in door.outcomes)


# ---------------------------------------------------------------- remote ingest: MQTT payloads and POST /v1/ingest
def test_fuzz_remote_ingest(report: Callable[[Door], None]) -> None:
    door = Door("remote-ingest", BOUND)
    bus = Bus(maxsize=10**6)
    sub = bus.subscribe("fuzz")
    src = Source("static", "fzremote")
    ingest = RemoteIngest("hub1", MqttSection(), bus, {"fz": src})
    api = ApiIngest(bus)
    counted = Counted(bus)
    topic = ingest_topic("hub1", src)
    objs = [dict(o, source={"orchestrator": "static", "cluster": "fzremote"}) for o in CANONICAL]
    cni_objs = [dict(o, source={"orchestrator": "cni", "cluster": "node1"}) for o in CANONICAL]

    def event(m: Mutator, pool: list[Any], source: dict[str, str]) -> Any:
        r = m.rng
        how = r.randrange(4)
        if how == 0:
            return {"type": "snapshot", "source": source, "objects": [m.pick(pool) for _ in range(r.randrange(6))]}
        if how == 1:
            return {"type": "upsert", "obj": m.pick(pool)}
        if how == 2:
            o = m.pick(pool)
            return {"type": "delete", "source": source, "kind": o["type"], "key": o.get("name", "x")}
        return {"type": r.choice(("rejected", "programmed", "ready")), "source": source, "reason": "bad-ip", "message": "m"}

    def body(seed: int) -> None:
        async def run() -> None:
            for _s, rng in batch_rngs(seed):
                m = Mutator(rng)
                via_api = rng.random() < 0.3
                doc = event(m, cni_objs if via_api else objs,
                            {"orchestrator": "cni", "cluster": "node1"} if via_api else {"orchestrator": "static", "cluster": "fzremote"})
                doc = m.mutate(doc, rng.choice((0, 1, 1, 2, 3)))
                payload = m.damage(m.bytes_of(m.dumps(doc))) if rng.random() < 0.95 else m.noise()
                with door.bounded():
                    if via_api:
                        orch, cluster = ("cni", "node1") if rng.random() < 0.9 else (m.hostile_string("cni"), m.hostile_string())
                        status, answer = await api.ingest(orch, cluster, payload)
                        assert status in (200, 403, 422), status
                        assert status == 200 or answer["error"], answer
                        door.outcome(f"http-{status}")
                    else:
                        await ingest.handle(topic if rng.random() < 0.95 else m.hostile_string(topic), payload)
                drain(door, sub)

        asyncio.run(run())

    run_door(door, report, body)
    counted.check(door)


# ---------------------------------------------------------------- the config loader
def _config_seeds() -> list[dict[str, Any]]:
    seeds = [tomllib.loads((ROOT / "packaging" / f).read_text()) for f in ("hubd.toml.example", "hubd-node.toml.example")
             if (ROOT / "packaging" / f).exists()]  # fmt: skip
    seeds.append({
        "hub": {"id": "hub1", "state_dir": "/tmp/x"}, "ovn": {"nb": "tcp:127.0.0.1:6641"},
        "adapters": {"k": {"type": "k8s", "cluster": "prod", "pod_cidr": "10.244.0.0/16"},
                     "s": {"type": "static", "cluster": "lab", "path": "/etc/x.jsonl"}},
        "remote": {"r": {"orchestrator": "docker", "cluster": "edge"}}, "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "cni": {"enabled": True, "networks": {"blue": {"subnet": "10.9.0.0/24", "gateway": "10.9.0.1"}}},
        "routers": {"default": {"networks": ["*"]}},
    })  # fmt: skip
    return seeds


CONFIGS = _config_seeds()
CONFIG_TEXTS = [to_toml(c) for c in CONFIGS] + [(ROOT / "packaging" / "hubd.toml.example").read_text()]


def test_fuzz_config_loader(report: Callable[[Door], None], tmp_path: Path) -> None:
    door = Door("config", BOUND)
    path = tmp_path / "hubd.toml"

    def body(seed: int) -> None:
        for _s, rng in batch_rngs(seed):
            m = Mutator(rng)
            how = rng.random()
            if how < 0.6:
                text = to_toml(m.mutate(m.pick(CONFIGS), rng.choice((1, 1, 2, 3))))
            elif how < 0.95:
                text = m.text_damage(m.pick(CONFIG_TEXTS))
            else:
                text = m.noise().decode("utf-8", "replace")
            as_file = rng.random() < 0.2  # hubd reads a file: its bytes, not a str
            if as_file:
                path.write_bytes(m.damage(m.bytes_of(text)))
            with door.bounded():
                try:
                    load(path) if as_file else loads(text, "fuzz.toml")
                    door.outcome("config")
                except ConfigError as exc:
                    assert str(exc), text
                    door.outcome("config-error")

    run_door(door, report, body)
    assert door.outcomes["config-error"] > 0


# ---------------------------------------------------------------- the CNI agent's request handler
class _Writer:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        return None

    async def wait_closed(self) -> None:
        return None


class _Agent(CniAgent):
    async def _wait_plugged(self, e: Any, deadline: float, gen: int) -> Any:
        return await super()._wait_plugged(e, 0.0, gen)  # nothing plugs here: say what is missing at once


CNI_CONFS = [
    {"cniVersion": "1.0.0", "name": "hubnet", "type": "ovn-hub", "network": "blue", "timeout": 5},
    {"cniVersion": "1.1.0", "name": "hubnet", "type": "ovn-hub", "network": "blue", "runtimeConfig": {"ips": ["10.9.0.7/24"], "mac": "0a:58:0a:09:00:07", "labels": {"app": "web"}},
     "cni.dev/attachments": [{"containerID": "abc123", "ifname": "eth0"}]},
    {"cniVersion": "0.4.0", "name": "mesos", "type": "ovn-hub", "network": "blue",
     "args": {"org.apache.mesos": {"network_info": {"name": "blue", "labels": {"labels": [{"key": "app", "value": "w"}]}}}}},
    {"cniVersion": "1.0.0", "name": "garden", "type": "ovn-hub", "network": "blue",
     "metadata": {"app_id": "a1", "space_id": "s1", "org_id": "o1", "policy_group_id": "a1", "container_workload": "app"},
     "prevResult": {"interfaces": [{"name": "eth0", "sandbox": "/x"}], "ips": [{"address": "10.9.0.7/24", "interface": 0}]}},
]  # fmt: skip


def test_fuzz_cni_requests(report: Callable[[Door], None], tmp_path: Path) -> None:
    door = Door("cni-agent", BOUND)
    netns = tmp_path / "netns"
    netns.write_text("")
    cfg = CniSection(enabled=True, socket=str(tmp_path / "cni.sock"), hub_api="unix:/nonexistent",
                     networks={"blue": CniNetwork(subnet="10.9.0.0/24", gateway="10.9.0.1")})  # fmt: skip
    agent = _Agent(cfg, hub_id="hub1", nb_remote="unix:/nonexistent", chassis="node1", bridge=FakeBridge(),
                   links=FakeLinks(), state_dir=str(tmp_path))  # fmt: skip
    agent.source = Source("cni", "node1")
    env0 = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc123", "CNI_NETNS": str(netns), "CNI_IFNAME": "eth0",
            "CNI_PATH": "/opt/cni/bin", "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=web;K8S_POD_NAME=p1;IP=10.9.0.8"}  # fmt: skip

    def body(seed: int) -> None:
        async def run() -> None:
            for _s, rng in batch_rngs(seed):
                m = Mutator(rng)
                env = dict(env0, CNI_COMMAND=rng.choice(("ADD", "ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION")))
                if rng.random() < 0.2:
                    env["CNI_ARGS"] += f";K8S_POD_UID=u{rng.randrange(9)}"
                env = m.mutate(env, rng.choice((0, 1, 1, 2)))
                conf = m.mutate(m.pick(CNI_CONFS), rng.choice((0, 1, 1, 2, 3)))
                stdin = m.dumps(conf) if rng.random() < 0.9 else m.text_damage(m.dumps(conf))
                req: Any = {"env": env, "stdin": stdin}
                if rng.random() < 0.05:
                    req = m.mutate(req)
                raw = m.bytes_of(m.dumps(req)) if rng.random() < 0.95 else m.noise()
                if rng.random() < 0.05:
                    raw = m.damage(raw)
                reader = asyncio.StreamReader()
                reader.feed_data(raw)
                reader.feed_eof()
                writer = _Writer()
                with door.bounded():
                    await agent._serve(reader, writer)  # type: ignore[arg-type]
                answer = msgspec.json.decode(writer.data)
                if "error" in answer:
                    err = answer["error"]
                    assert err["code"] != P.AGENT_ERROR, f"the agent failed on {raw[:600]!r}: {err}"
                    assert isinstance(err["code"], int) and err["msg"], err
                    door.outcome(f"error-{err['code']}")
                else:
                    door.outcome("result")

        asyncio.run(run())

    run_door(door, report, body)


# ---------------------------------------------------------------- the Docker driver's libnetwork handlers
DRIVER_CALLS = [
    ("Plugin.Activate", {}), ("NetworkDriver.GetCapabilities", {}), ("IpamDriver.GetDefaultAddressSpaces", {}),
    ("IpamDriver.RequestPool", {"AddressSpace": "ovn-hub-local", "Pool": "10.70.0.0/24", "SubPool": "", "Options": {}, "V6": False}),
    ("IpamDriver.RequestAddress", {"PoolID": "ovn-hub-local/10.70.0.0/24", "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
    ("IpamDriver.RequestAddress", {"PoolID": "ovn-hub-local/10.70.0.0/24", "Address": "10.70.0.9", "Options": {}}),
    ("IpamDriver.ReleaseAddress", {"PoolID": "ovn-hub-local/10.70.0.0/24", "Address": "10.70.0.9"}),
    ("IpamDriver.ReleasePool", {"PoolID": "ovn-hub-local/10.70.0.0/24"}),
    ("NetworkDriver.CreateNetwork", {"NetworkID": "n1", "Options": {}, "IPv4Data": [{"AddressSpace": "ovn-hub-local", "Pool": "10.70.0.0/24", "Gateway": "10.70.0.1/24"}], "IPv6Data": []}),
    ("NetworkDriver.CreateEndpoint", {"NetworkID": "n1", "EndpointID": "e1", "Interface": {"Address": "10.70.0.9/24", "AddressIPv6": "", "MacAddress": ""}, "Options": {}}),
    ("NetworkDriver.EndpointOperInfo", {"NetworkID": "n1", "EndpointID": "e1"}),
    ("NetworkDriver.Join", {"NetworkID": "n1", "EndpointID": "e1", "SandboxKey": "/var/run/docker/netns/x", "Options": {}}),
    ("NetworkDriver.Leave", {"NetworkID": "n1", "EndpointID": "e1"}),
    ("NetworkDriver.DeleteEndpoint", {"NetworkID": "n1", "EndpointID": "e1"}),
    ("NetworkDriver.DeleteNetwork", {"NetworkID": "n1"}),
    ("NetworkDriver.DiscoverNew", {"DiscoveryType": 1, "DiscoveryData": {}}),
]  # fmt: skip


async def _body_reader(data: bytes) -> streams.StreamReader:
    class _Proto:
        _reading_paused = False

        def pause_reading(self, **_kw: Any) -> None: ...
        def resume_reading(self, **_kw: Any) -> None: ...

    r = streams.StreamReader(_Proto(), 1 << 16, loop=asyncio.get_running_loop())  # type: ignore[arg-type]
    r.feed_data(data)
    r.feed_eof()
    return r


def test_fuzz_docker_driver_requests(report: Callable[[Door], None]) -> None:
    door = Door("docker-driver", BOUND)
    app = plugin_app(Driver(DriverState(), FakeHandoff()))
    handler = next(r.handler for r in app.router.routes())

    def body(seed: int) -> None:
        async def run() -> None:
            for _s, rng in batch_rngs(seed):
                m = Mutator(rng)
                method, doc = m.pick(DRIVER_CALLS)
                doc = m.mutate(doc, rng.choice((0, 1, 1, 2, 3)))
                raw = m.bytes_of(m.dumps(doc)) if rng.random() < 0.93 else m.noise()
                if rng.random() < 0.05:
                    raw = m.damage(raw)
                if rng.random() < 0.02:
                    method = m.hostile_string(method)
                req = make_mocked_request("POST", "/" + method, match_info={"method": method}, app=app,
                                          payload=await _body_reader(raw))  # fmt: skip
                with door.bounded():
                    try:
                        resp = await handler(req)
                    except web.HTTPException as exc:  # aiohttp's own answer (413 past client_max_size)
                        door.outcome(f"http-{exc.status}")
                        continue
                assert isinstance(resp, web.Response)
                answer = json.loads(resp.body)  # type: ignore[arg-type]  # (json: a lone surrogate's escape is JSON)
                if resp.status != 200:
                    assert resp.status in (400, 404, 500) and answer["Err"], (resp.status, answer)
                    assert not answer["Err"].startswith("internal error"), f"{method} {raw[:600]!r}: {answer['Err']}"
                    door.outcome(f"err-{resp.status}")
                else:
                    door.outcome("ok")

        asyncio.run(run())

    run_door(door, report, body)
    assert door.outcomes["ok"] > 0 and door.outcomes["err-500"] > 0
