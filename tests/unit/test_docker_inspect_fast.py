"""The typed inspect path (``decode_inspect`` + ``normalize_inspect``) against the dict path.

``DockerAdapter.sync_container`` reads the inspect body itself: typed msgspec
first, and whatever that declines (``None``) takes the dict path (``json.loads``
as aiohttp did it for aiodocker's ``show()``, then ``normalize_container``).  So
the typed path may decline anything, but whatever it answers must be exactly
the dict path's answer: the same endpoints, and never an answer where the dict
path rejects (or fails).  Inputs: both inspect fixtures, and mutations of them
at the fields the endpoints are made of (types, hostile strings, wrapper mode,
Mesos names, workload labels, addresses, ports), encoded as a daemon would and
sometimes damaged; each is normalized twice (the second time the label memo
answers) under three option sets.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.docker import normalize as dn
from adapters.docker.normalize import decode_inspect, normalize_container, normalize_inspect
from core.model import LABEL_WORKLOAD, Invalid, Network, Source
from testkit.fuzz import HOSTILE_STRINGS, HOSTILE_VALUES, Mutator
from tests.conftest import FIXTURES_DIR

SRC = Source("docker", "test")
FIX = FIXTURES_DIR / "docker"
INSPECTS = [json.loads((FIX / n).read_text()) for n in ("container-inspect.compose-redis.spring-boot.json",
                                                         "container-inspect.api-v1.24-doc.json")]  # fmt: skip
for _i in INSPECTS:
    _i.setdefault("State", {}).update(Status="running", Running=True)
BLUE = Network(source=SRC, name="blue", subnets=("10.50.0.0/24",), gateway="10.50.0.1")
OPTIONS: list[dict[str, Any]] = [
    {},
    {"node": "n1", "default_namespace": "ns", "hub_networks": {"blue": BLUE}},
    {"node": "n1", "skip_networks": {"redis-docker_default", "bridge"}},
]
#: (path, values) the targeted mutations set
_FIELDS: list[tuple[tuple[str, ...], list[Any]]] = [
    (("State", "Running"), [True, False, None, 1, "true"]),
    (("State", "Status"), ["running", "paused", "exited", "", None, 3]),
    (("State", "Paused"), [True, False, None, "no"]),
    (("State",), [None, [], "running", {}]),
    (("HostConfig", "NetworkMode"), ["host", "none", "default", "bridge", "", None, 5]),
    (("HostConfig",), [None, {}, []]),
    (("Config", "Labels"), [None, {}, [], {"a": None}, {"a": 1}, {"ovn-hub.network": "blue"},
                            {"ovn-hub.network": "blue", "ovn-hub.ip": "10.50.0.7", "ovn-hub.mac": "02:00:00:00:00:07"},
                            {LABEL_WORKLOAD: "x"}, {LABEL_WORKLOAD: "mesos:abc"}, {"com.docker.compose.project": ""},
                            {"com.docker.stack.namespace": "st"}, {"": "v"}, {"k": "v\x00"}, {"k\u202e": "v"}]),
    (("Config", "ExposedPorts"), [None, {}, [], ["80/tcp"], {"80/tcp": {}, "53/udp": None}, {"x/tcp": {}},
                                  {"70000": {}}, {"80/icmp": {}}, 7]),
    (("Config",), [None, {}, "x"]),
    (("Name",), [None, "", "/", "/mesos-0a1b2c3d-0000-4000-8000-00000000abcd", "/a b", 5, "/x" * 200]),
    (("Id",), [None, "", 5, "abc def", "x" * 300]),
    (("NetworkSettings", "Networks"), [None, {}, [], {"host": {}}, {"n": None}, {"n": {"IPAddress": 5}},
                                       {"n": {"IPAddress": "10.1.2.3", "GlobalIPv6Address": "10.1.2.3"}},
                                       {"n": {"GlobalIPv6Address": "fd00::5"}}, {"blue": {"IPAddress": "10.50.0.9"}},
                                       {"a": {"IPAddress": "10.1.2.3"}, "b": {"IPAddress": "10.1.2.4", "MacAddress": ""}}]),
    (("NetworkSettings",), [None, {}, {"IPAddress": "172.17.0.2", "MacAddress": "02:42:ac:11:00:02"}]),
]  # fmt: skip
_ATTACHMENT_FIELDS = ("IPAddress", "GlobalIPv6Address", "MacAddress", "NetworkID")


def _set(doc: Any, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        if not isinstance(doc, dict):
            return
        doc = doc.setdefault(key, {})
    if isinstance(doc, dict):
        doc[path[-1]] = value


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def _inputs(seed: int, n: int) -> list[bytes]:
    rng = random.Random(seed)
    m = Mutator(rng)
    out: list[bytes] = [json.dumps(d).encode() for d in INSPECTS]
    for _ in range(n):
        doc = json.loads(json.dumps(rng.choice(INSPECTS)))
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            how = rng.random()
            if how < 0.5:
                path, values = rng.choice(_FIELDS)
                _set(doc, path, json.loads(json.dumps(rng.choice(values))))
            elif how < 0.75:
                nets = _get(doc, "NetworkSettings", "Networks")
                if isinstance(nets, dict) and nets:
                    att = nets[rng.choice(list(nets))]
                    if isinstance(att, dict):
                        att[rng.choice(_ATTACHMENT_FIELDS)] = rng.choice((*HOSTILE_STRINGS, *HOSTILE_VALUES))
            elif how < 0.9:
                labels = _get(doc, "Config", "Labels")
                if isinstance(labels, dict):
                    key = rng.choice([*labels, "k", LABEL_WORKLOAD, "com.docker.compose.project"])
                    labels[rng.choice((key, m.hostile_string(key)))] = rng.choice((*HOSTILE_STRINGS, "v", None, 1))
            else:
                doc = m.mutate(doc, 1)
        try:
            text = m.dumps(doc)
        except (RecursionError, ValueError):
            continue
        body = m.bytes_of(text)
        out.append(m.damage(body) if rng.random() < 0.1 else body)
    return out


def _dict_path(body: bytes, kw: dict[str, Any], source: Source = SRC) -> Any:
    """What the adapter did with the body before (aiohttp's json(), then normalize_container)."""
    try:
        text = body.strip()
        data = json.loads(text.decode("utf-8")) if text else None
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, JSONDecodeError
        return ("error", type(exc).__name__)
    if data is None:
        return ("gone",)
    try:
        return ("ok", normalize_container(data, source, **kw))
    except Invalid as exc:
        return ("invalid", exc.reason, str(exc))


@pytest.mark.parametrize("seed", range(6))
def test_typed_inspect_answers_as_the_dict_path(seed: int) -> None:
    answered = 0
    dn._LABELS_OK.clear()
    for body in _inputs(seed, 700):
        for kw in OPTIONS:
            for _ in range(2):  # the second time, the label memo knows what passed
                typed = decode_inspect(body)
                fast = normalize_inspect(typed, SRC, **kw) if typed is not None else None
                if fast is None:
                    continue
                answered += 1
                assert _dict_path(body, kw) == ("ok", fast), (body[:300], kw)
    assert answered > 1000  # the typed path answers most inputs (and the differential test means something)


def test_typed_inspect_takes_the_fixtures() -> None:
    for doc in INSPECTS:
        body = json.dumps(doc).encode()
        typed = decode_inspect(body)
        assert typed is not None
        eps = normalize_inspect(typed, SRC)
        assert eps and eps == normalize_container(doc, SRC)
        assert normalize_inspect(typed, SRC) == eps  # with the label memo


def test_typed_inspect_declines_what_it_cannot_be_sure_of() -> None:
    base = INSPECTS[0]

    def with_(path: tuple[str, ...], value: Any) -> bytes:
        doc = json.loads(json.dumps(base))
        _set(doc, path, value)
        return json.dumps(doc, ensure_ascii=False).encode()

    assert decode_inspect(with_(("Config", "Labels", "x"), "caf\u00e9")) is None  # not ASCII: the dict path decodes
    assert decode_inspect(with_(("State", "Running"), 1)) is None  # a type the dict path rejects
    assert decode_inspect(b"") is None and decode_inspect(b"null") is None
    for path, value in [(("HostConfig", "NetworkMode"), "none"), (("NetworkSettings", "Networks"), None),
                        (("Config", "Labels", "k"), None), (("Name",), "/mesos-0a1b2c3d-0000-4000-8000-00000000abcd"),
                        (("Id",), ""), (("Config", "Labels", "k"), "v\x00")]:  # fmt: skip
        typed = decode_inspect(with_(path, value))
        assert typed is not None and normalize_inspect(typed, SRC) is None, (path, value)
    bad = with_(("Config", "Labels", "k"), "v\x07")  # rejected labels are never remembered
    for _ in range(2):
        typed = decode_inspect(bad)
        assert typed is not None and normalize_inspect(typed, SRC) is None
    assert all("v\x07" not in labels.values() for labels, _ in dn._LABELS_OK.values())


# ---------------------------------------------------------------- the context memo: endpoints checked by their varying fields
_TEXTS = st.one_of(
    st.text(min_size=1, max_size=12),
    st.sampled_from(["a b", "a\tb", "a\u00a0b", "a\u200bb", "a\u202eb", "x\x00", "x" * 253, "x" * 254, "x" * 300,
                     "é", "mesos-x", "/", "//x", "host", "none", "-x", "a.b_c-d", "a" * 128, "a" * 129]),
)  # fmt: skip
_IPS = st.one_of(
    st.builds("10.{}.{}.{}".format, st.integers(0, 255), st.integers(0, 255), st.integers(0, 256)),
    st.sampled_from(["127.0.0.1", "224.0.0.1", "0.1.2.3", "255.255.255.255", "010.1.2.3", "fd00::1", "FD00::1", "",
                     "10.1.2.3\n", " 10.1.2.3", "10.1.2.03", "1.2.3.4.5", "10.1.2.3/24", "::ffff:10.1.2.3", "fe80::1%eth0",
                     "0.0.0.0", "240.0.0.1", "239.255.255.255"]),
)  # fmt: skip
_MACS = st.one_of(
    st.builds("02:42:{:02x}:{:02x}:{:02x}:{:02x}".format, *(st.integers(0, 255) for _ in range(4))),
    st.sampled_from(["01:00:5e:00:00:01", "02:42:AC:11:00:02", "02-42-ac-11-00-02", "", "02:42:ac:11:00",
                     "03:42:ac:11:00:02", "ff:ff:ff:ff:ff:ff", "02:42:ac:11:00:02\n", "02:42:ac:11:00:0g", "02:42:ac:11:00:02:03"]),
)  # fmt: skip


#: what each field of the checked endpoint is drawn from, besides its usual value
_VARIED: dict[str, Any] = {
    "cid": st.one_of(st.builds("{:064x}".format, st.integers(0, 2**256 - 1)), _TEXTS), "name": _TEXTS, "net": _TEXTS,
    "ip": _IPS, "mac": _MACS, "status": _TEXTS, "namespace": _TEXTS, "node": _TEXTS, "no_project": st.booleans(),
    "src": st.sampled_from([Source("docker", "other"), Source("Docker", "test"), Source("ovn-hub", "x")]),
    "ports": st.sampled_from([2, 1025]),
}  # fmt: skip


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), kw=st.sampled_from(OPTIONS[:2]), no_project=st.booleans(), n=st.integers(0, 2**24),
       varied=st.lists(st.sampled_from(sorted(_VARIED)), min_size=0, max_size=2, unique=True))  # fmt: skip
def test_context_memo_answers_as_the_dict_path(
    data: st.DataObject, kw: dict[str, Any], no_project: bool, n: int, varied: list[str]
) -> None:
    """An endpoint of a container whose labels, namespace, node, state and ports passed before is
    checked by its id, name, network, address and MAC only: the answers stay the dict path's, with
    one or two of its fields (or of what the memo compares: the source, node, default namespace,
    state, ports) varied (as when another adapter, with other options, sees the same labels)."""
    v: dict[str, Any] = {"cid": f"{n:064x}", "name": f"redis-{n}", "net": "redis-docker_default",
                         "ip": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255 or 1}",
                         "mac": f"02:42:0a:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}", "status": "running",
                         "namespace": None, "node": None, "no_project": no_project, "src": SRC, "ports": 1}  # fmt: skip
    for field in varied:
        v[field] = data.draw(_VARIED[field], label=field)
    doc = json.loads(json.dumps(INSPECTS[0]))
    if v["no_project"] or no_project:  # (the labels of the warm container and this one alike)
        del doc["Config"]["Labels"]["com.docker.compose.project"]
    warm = decode_inspect(json.dumps(doc).encode())
    assert warm is not None and normalize_inspect(warm, SRC, **kw) is not None  # the labels and the context known
    if v["namespace"] is not None:
        kw = {**kw, "default_namespace": v["namespace"]}
    if v["node"] is not None:
        kw = {**kw, "node": v["node"]}
    doc["Id"], doc["Name"], doc["State"]["Status"] = v["cid"], "/" + v["name"], v["status"]
    doc["NetworkSettings"]["Networks"] = {v["net"]: {"IPAddress": v["ip"], "MacAddress": v["mac"], "NetworkID": "n" * 64}}
    doc["Config"]["ExposedPorts"] = {f"{p}/tcp": {} for p in range(6379, 6379 + v["ports"])}
    body = json.dumps(doc).encode()
    typed = decode_inspect(body)
    fast = normalize_inspect(typed, v["src"], **kw) if typed is not None else None
    if fast is not None:
        assert _dict_path(body, kw, v["src"]) == ("ok", fast), v


def test_context_memo_is_taken_for_the_usual_container(monkeypatch: pytest.MonkeyPatch) -> None:
    """The usual container (compose labels, running, one network) after one like it: no validate() call."""
    calls: list[int] = []
    real = dn.validate
    dn._LABELS_OK.clear()
    doc = json.loads(json.dumps(INSPECTS[0]))
    for i in range(5):
        doc["Id"], doc["Name"] = f"{i:064x}", f"/redis-{i}"
        doc["NetworkSettings"]["Networks"]["redis-docker_default"].update(
            IPAddress=f"10.0.0.{i + 2}", MacAddress=f"02:42:0a:00:00:{i + 2:02x}")  # fmt: skip
        typed = decode_inspect(json.dumps(doc).encode())
        assert typed is not None
        monkeypatch.setattr(dn, "validate", lambda obj, i=i: (calls.append(i), real(obj))[1])
        eps = normalize_inspect(typed, SRC)
        monkeypatch.setattr(dn, "validate", real)
        assert eps is not None and eps == normalize_container(json.loads(json.dumps(doc)), SRC)
    assert all(i == 0 for i in calls)  # only the first container's endpoint (its labels new): then none
