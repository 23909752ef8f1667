"""adapters.docker.normalize against the Docker fixtures (tests/fixtures/docker) and malformed input."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from adapters.docker.normalize import (
    event_action,
    event_container_id,
    event_key,
    event_time_nano,
    is_host_network,
    normalize_container,
    normalize_network,
    parse_event_line,
    parse_stream,
)
from core.model import LABEL_WORKLOAD, Endpoint, Invalid, Network, PortSpec, Source, validate
from tests.conftest import FIXTURES_DIR

FIX = FIXTURES_DIR / "docker"
if not any(FIX.glob("container-inspect.*.json")):  # a missing fixture dir is an error, never a silent skip
    raise RuntimeError(f"{FIX}: Docker fixtures missing")
SRC = Source("docker", "test")

REDIS_ID = "f5af31dae7f665bd194ec7261bdc84e5df9c64753abb4a6cec6c33f7cf64c3fc"
DOC_ID = "ba033ac4401106a3b513bc9d639eee123ad78ca3616b921167cd74b20e25ed39"
DOC_EVENT_CID = "ede54ee1afda366ab42f824e8a5ffd195155d853ceaec74a927f249ea270c743"
DECK_C1 = "278ed6f4ebac945e50fda4266d3d6bafef47a09fd874127902a20684e9c57b91"
DECK_C2 = "cbac46d62ceec9e1d920ed4eb2dcb18f7426ab7ae8e5e8f7b7b0a01cacdce5ed"
DECK_NET = "3d13b12a6dcc35de76a2d6a799e383984142ec6e8b3678d36eed32cb92241583"


def load(name: str) -> Any:
    return json.loads((FIX / name).read_text())


@pytest.fixture
def redis() -> dict[str, Any]:
    data: dict[str, Any] = load("container-inspect.compose-redis.spring-boot.json")
    return data


@pytest.fixture
def doc() -> dict[str, Any]:
    data: dict[str, Any] = load("container-inspect.api-v1.24-doc.json")
    return data


# ---------------------------------------------------------------- every fixture file
def test_every_fixture_file_is_covered() -> None:
    names = {p.name for p in FIX.iterdir() if p.name != "SOURCES.md"}
    assert names == {
        "container-inspect.api-v1.24-doc.json",
        "container-inspect.compose-redis.spring-boot.json",
        "events-stream.api-v1.24-doc.txt",
        "events.compose-project.deck-chores.jsonl",
        "network-inspect.api-v1.24-doc.json",
    }


# ---------------------------------------------------------------- containers
def test_compose_redis(redis: dict[str, Any]) -> None:
    eps = normalize_container(redis, SRC, node="host-a")
    assert len(eps) == 1
    ep = eps[0]
    validate(ep)
    assert ep.uid == REDIS_ID
    assert ep.name == "redis-docker-redis-1"
    assert ep.namespace == "redis-docker"
    assert ep.network == "redis-docker_default"
    assert ep.key == f"redis-docker_default/{REDIS_ID}"
    assert ep.ips == ("192.168.32.2",)
    assert ep.mac == "02:42:c0:a8:20:02"
    assert ep.kind == "container"
    assert ep.node == "host-a"
    assert ep.state == "running"
    assert ep.ports == (PortSpec(port=6379, protocol="tcp"),)
    assert ep.labels["com.docker.compose.service"] == "redis"
    assert len(ep.labels) == 10
    assert ep.source == SRC


def test_v124_doc_uses_networks_not_legacy_top_level(doc: dict[str, Any]) -> None:
    assert doc["NetworkSettings"]["IPAddress"] == ""  # the fixture's point
    eps = normalize_container(doc, SRC)
    assert len(eps) == 1
    ep = eps[0]
    assert ep.uid == DOC_ID
    assert ep.name == "boring_euclid"
    assert ep.namespace == "default"
    assert ep.network == "bridge"
    assert ep.ips == ("172.17.0.2",)
    assert ep.mac == "02:42:ac:12:00:02"
    assert ep.labels == {"com.example.vendor": "Acme", "com.example.license": "GPL", "com.example.version": "1.0"}
    assert ep.ports == ()  # ExposedPorts: null
    assert ep.node == ""


def test_default_namespace_and_stack_label(doc: dict[str, Any]) -> None:
    assert normalize_container(doc, SRC, default_namespace="plain")[0].namespace == "plain"
    doc["Config"]["Labels"]["com.docker.stack.namespace"] = "stk"
    assert normalize_container(doc, SRC)[0].namespace == "stk"
    doc["Config"]["Labels"]["com.docker.compose.project"] = "proj"
    assert normalize_container(doc, SRC)[0].namespace == "proj"


def test_labels_none_and_ports(redis: dict[str, Any]) -> None:
    redis["Config"]["Labels"] = None
    redis["Config"]["ExposedPorts"] = {"53/udp": {}, "80": {}, "6379/tcp": {}, "132/SCTP": {}}
    ep = normalize_container(redis, SRC)[0]
    assert ep.labels == {}
    assert ep.namespace == "default"
    assert ep.ports == (
        PortSpec(53, "udp"),
        PortSpec(80, "tcp"),
        PortSpec(132, "sctp"),
        PortSpec(6379, "tcp"),
    )


def test_two_networks_and_ipv6(redis: dict[str, Any]) -> None:
    nets = redis["NetworkSettings"]["Networks"]
    second = copy.deepcopy(nets["redis-docker_default"])
    second.update(IPAddress="10.1.2.3", GlobalIPv6Address="2001:DB8:0::5", MacAddress="02:42:0A:01:02:03")
    nets["backend"] = second
    eps = normalize_container(redis, SRC)
    assert [e.network for e in eps] == ["redis-docker_default", "backend"]
    assert {e.uid for e in eps} == {REDIS_ID}
    assert eps[1].ips == ("10.1.2.3", "2001:db8::5")  # canonical form
    assert eps[1].mac == "02:42:0a:01:02:03"  # lower-cased
    for ep in eps:
        validate(ep)


def test_attachment_without_ip_is_skipped(redis: dict[str, Any]) -> None:
    nets = redis["NetworkSettings"]["Networks"]
    nets["pending"] = {"IPAddress": "", "GlobalIPv6Address": "", "MacAddress": ""}
    nets["nulled"] = None
    assert [e.network for e in normalize_container(redis, SRC)] == ["redis-docker_default"]


def test_empty_mac_is_none(redis: dict[str, Any]) -> None:
    redis["NetworkSettings"]["Networks"]["redis-docker_default"]["MacAddress"] = ""
    assert normalize_container(redis, SRC)[0].mac is None


@pytest.mark.parametrize(
    "state",
    [
        {"Status": "exited", "Running": False},
        {"Status": "created", "Running": False},
        {"Status": "dead", "Running": False, "Dead": True},
        {"Status": "exited"},
        None,
    ],
)
def test_not_running_gives_nothing(redis: dict[str, Any], state: Any) -> None:
    redis["State"] = state
    assert normalize_container(redis, SRC) == []


def test_paused_keeps_endpoints_with_state(redis: dict[str, Any]) -> None:
    redis["State"].update(Status="paused", Paused=True)
    (ep,) = normalize_container(redis, SRC)
    assert ep.state == "paused"


def test_old_api_without_status(redis: dict[str, Any]) -> None:
    del redis["State"]["Status"]
    assert normalize_container(redis, SRC)[0].state == "running"


def test_host_network_gives_nothing(redis: dict[str, Any]) -> None:
    redis["HostConfig"]["NetworkMode"] = "host"
    redis["NetworkSettings"]["Networks"] = {"host": {"IPAddress": "", "MacAddress": ""}}
    assert is_host_network(redis)
    assert normalize_container(redis, SRC) == []
    # only network is "host" even if the mode says otherwise
    redis["HostConfig"]["NetworkMode"] = "default"
    assert is_host_network(redis)
    assert normalize_container(redis, SRC) == []


def test_none_network_gives_nothing(redis: dict[str, Any]) -> None:
    redis["HostConfig"]["NetworkMode"] = "none"
    redis["NetworkSettings"]["Networks"] = {"none": {"IPAddress": "", "MacAddress": ""}}
    assert not is_host_network(redis)
    assert normalize_container(redis, SRC) == []


def test_legacy_top_level_fallback_only_without_networks(doc: dict[str, Any]) -> None:
    doc["NetworkSettings"]["IPAddress"] = "172.17.0.9"
    doc["NetworkSettings"]["MacAddress"] = "02:42:ac:11:00:09"
    # Networks present → legacy fields are ignored
    assert normalize_container(doc, SRC)[0].ips == ("172.17.0.2",)
    del doc["NetworkSettings"]["Networks"]
    (ep,) = normalize_container(doc, SRC)
    assert (ep.network, ep.ips, ep.mac) == ("bridge", ("172.17.0.9",), "02:42:ac:11:00:09")
    doc["HostConfig"]["NetworkMode"] = "mynet"
    assert normalize_container(doc, SRC)[0].network == "mynet"
    doc["NetworkSettings"]["IPAddress"] = ""
    assert normalize_container(doc, SRC) == []


def test_name_missing_falls_back_to_short_id(redis: dict[str, Any]) -> None:
    del redis["Name"]
    assert normalize_container(redis, SRC)[0].name == REDIS_ID[:12]


# ---------------------------------------------------------------- malformed containers
def _mutate(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(base)
    *parents, last = path.split(".")
    cur = data
    for p in parents:
        cur = cur[p]
    if value is _DELETE:
        del cur[last]
    else:
        cur[last] = value
    return data


_DELETE = object()
_NET = "NetworkSettings.Networks.redis-docker_default"


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("Id", _DELETE, "missing-field"),
        ("Id", "", "missing-field"),
        ("Id", 42, "bad-type"),
        ("Id", "has space", "bad-uid"),
        ("Name", ["x"], "bad-type"),
        ("State", "running", "bad-type"),
        ("State.Running", "yes", "bad-type"),
        ("State.Status", 1, "bad-type"),
        ("Config", [], "bad-type"),
        ("Config.Labels", ["a=b"], "bad-type"),
        ("Config.Labels", {"a": 1}, "bad-label"),
        ("Config.Labels", {"": "x"}, "empty-field"),
        ("Config.ExposedPorts", {"http/tcp": {}}, "bad-port"),
        ("Config.ExposedPorts", {"70000/tcp": {}}, "bad-port"),
        ("Config.ExposedPorts", {"80/icmp": {}}, "bad-port"),
        ("Config.ExposedPorts", "80/tcp", "bad-type"),
        ("HostConfig", "bridge", "bad-type"),
        ("HostConfig.NetworkMode", 7, "bad-type"),
        ("NetworkSettings", "x", "bad-type"),
        ("NetworkSettings.Networks", ["redis-docker_default"], "bad-type"),
        (_NET, "192.168.32.2", "bad-type"),
        (f"{_NET}.IPAddress", "192.168.32.300", "bad-ip"),
        (f"{_NET}.IPAddress", "not-an-ip", "bad-ip"),
        (f"{_NET}.IPAddress", "224.0.0.1", "bad-ip"),
        (f"{_NET}.IPAddress", 3232243714, "bad-type"),
        (f"{_NET}.GlobalIPv6Address", "2001:db8::zz", "bad-ip"),
        (f"{_NET}.MacAddress", "02:42:c0:a8:20", "bad-mac"),
        (f"{_NET}.MacAddress", "zz:42:c0:a8:20:02", "bad-mac"),
        (f"{_NET}.MacAddress", "01:00:5e:00:00:01", "bad-mac"),
        (f"{_NET}.MacAddress", 12, "bad-type"),
    ],
)
def test_malformed_container(redis: dict[str, Any], path: str, value: Any, reason: str) -> None:
    with pytest.raises(Invalid) as ei:
        normalize_container(_mutate(redis, path, value), SRC)
    assert ei.value.reason == reason
    msg = str(ei.value)
    assert msg and "\n" not in msg


def test_bad_network_name(redis: dict[str, Any]) -> None:
    nets = redis["NetworkSettings"]["Networks"]
    nets["bad name!"] = nets.pop("redis-docker_default")
    with pytest.raises(Invalid) as ei:
        normalize_container(redis, SRC)
    assert ei.value.reason == "bad-network"
    assert REDIS_ID[:12] in str(ei.value)


@pytest.mark.parametrize("payload", [None, [], "x", 3, [{"Id": "abc"}], b"{}"])
def test_container_not_a_dict(payload: Any) -> None:
    with pytest.raises(Invalid) as ei:
        normalize_container(payload, SRC)
    assert ei.value.reason == "not-object"


def test_minimal_container() -> None:
    data = {
        "Id": "abc123",
        "Name": "/x",
        "State": {"Running": True},
        "NetworkSettings": {"Networks": {"n1": {"IPAddress": "10.0.0.2"}}},
    }
    (ep,) = normalize_container(data, SRC)
    assert (ep.uid, ep.name, ep.network, ep.ips, ep.mac, ep.labels, ep.state) == (
        "abc123",
        "x",
        "n1",
        ("10.0.0.2",),
        None,
        {},
        "running",
    )


# ---------------------------------------------------------------- networks
def test_network_inspect_fixture() -> None:
    net = normalize_network(load("network-inspect.api-v1.24-doc.json"), SRC)
    assert isinstance(net, Network)
    validate(net)
    assert net.name == "net01"
    assert net.subnets == ("172.19.0.0/16",)
    assert net.gateway == "172.19.0.1"
    assert net.labels == {
        "com.example.some-label": "some-value",
        "com.example.some-other-label": "some-other-value",
    }
    assert net.key == "net01"


def test_network_list_item_dual_stack() -> None:
    item = {
        "Name": "dual",
        "Id": "x",
        "Driver": "bridge",
        "IPAM": {
            "Config": [
                {"Subnet": "10.5.0.0/24", "Gateway": "10.5.0.1"},
                {"Subnet": "2001:db8:1::/64", "Gateway": "2001:db8:1::1"},
            ]
        },
        "Labels": None,
    }
    net = normalize_network(item, SRC)
    assert net is not None
    assert net.subnets == ("10.5.0.0/24", "2001:db8:1::/64")
    assert net.gateway == "10.5.0.1"
    assert net.labels == {}


def test_network_without_ipam_config() -> None:
    net = normalize_network({"Name": "n", "IPAM": {"Driver": "default", "Config": None}}, SRC)
    assert net == Network(source=SRC, name="n")


@pytest.mark.parametrize(("name", "driver"), [("host", "host"), ("none", "null"), ("hostish", "host")])
def test_host_and_none_networks_are_skipped(name: str, driver: str) -> None:
    assert normalize_network({"Name": name, "Driver": driver, "IPAM": {"Config": []}}, SRC) is None


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([], "not-object"),
        ({}, "missing-field"),
        ({"Name": 5}, "bad-type"),
        ({"Name": "n", "IPAM": "x"}, "bad-type"),
        ({"Name": "n", "IPAM": {"Config": {"Subnet": "10.0.0.0/8"}}}, "bad-type"),
        ({"Name": "n", "IPAM": {"Config": [{"Subnet": "10.0.0.0/33"}]}}, "bad-subnet"),
        ({"Name": "n", "IPAM": {"Config": [{"Subnet": "10.0.0.0/8", "Gateway": "nope"}]}}, "bad-ip"),
        ({"Name": "n", "Labels": {"a": None}}, "bad-label"),
        ({"Name": "bad/name"}, "bad-network"),
    ],
)
def test_malformed_network(payload: Any, reason: str) -> None:
    with pytest.raises(Invalid) as ei:
        normalize_network(payload, SRC)
    assert ei.value.reason == reason


# ---------------------------------------------------------------- events
def test_deck_chores_events_every_line_parses() -> None:
    lines = (FIX / "events.compose-project.deck-chores.jsonl").read_bytes().splitlines()
    assert len(lines) == 31
    events = [parse_event_line(line) for line in lines]
    types = [e["Type"] for e in events]
    assert types.count("network") == 10 and types.count("container") == 21
    cids = {event_container_id(e) for e in events}
    assert cids == {DECK_C1, DECK_C2, None}  # None: the network "create"
    first = events[0]
    assert (first["Type"], first["Action"], event_container_id(first)) == ("network", "create", None)
    assert first["Actor"]["ID"] == DECK_NET
    # network connect/disconnect concern the container in Attributes.container
    disc = events[3]
    assert (disc["Type"], disc["Action"], event_container_id(disc)) == ("network", "disconnect", DECK_C1)
    # legacy fields present on container events
    assert events[1]["id"] == DECK_C1 and events[1]["status"] == "create"
    assert event_container_id(events[1]) == DECK_C1
    actions = [e["Action"] for e in events if e["Type"] == "container"]
    assert {"create", "start", "pause", "unpause", "kill", "die", "stop"} == set(actions)
    # keys are unique (no false de-duplication) and times are nanoseconds
    assert len({event_key(e) for e in events}) == 31
    assert event_key(events[0]) == (1570389773478291242, "network", "create", DECK_NET)
    assert event_time_nano(events[0]) == 1570389773478291242
    # the same stream through parse_stream gives the same thing
    streamed = list(parse_stream((FIX / "events.compose-project.deck-chores.jsonl").read_text()))
    assert streamed == events


def test_v124_doc_pretty_concatenated_stream() -> None:
    events = list(parse_stream((FIX / "events-stream.api-v1.24-doc.txt").read_text()))
    assert not [e for e in events if isinstance(e, Invalid)]
    assert len(events) == 9
    summary = [(e["Type"], e["Action"], event_container_id(e)) for e in events if isinstance(e, dict)]
    assert summary == [
        ("image", "pull", None),
        ("container", "create", DOC_EVENT_CID),
        ("container", "attach", DOC_EVENT_CID),
        ("network", "connect", DOC_EVENT_CID),
        ("container", "start", DOC_EVENT_CID),
        ("container", "resize", DOC_EVENT_CID),
        ("container", "die", DOC_EVENT_CID),
        ("network", "disconnect", DOC_EVENT_CID),
        ("container", "destroy", DOC_EVENT_CID),
    ]
    assert isinstance(events[6], dict) and events[6]["Actor"]["Attributes"]["exitCode"] == "0"
    # bytes input works too
    assert list(parse_stream((FIX / "events-stream.api-v1.24-doc.txt").read_bytes())) == events


def test_action_suffixes_are_normalized() -> None:
    ev = parse_event_line(b'{"Type":"container","Action":"health_status: healthy","Actor":{"ID":"c1"},"time":5}')
    assert ev["Action"] == "health_status"
    assert ev["ActionDetail"] == "healthy"
    assert event_action(ev) == "health_status"
    assert event_key(ev) == (5_000_000_000, "container", "health_status", "c1")
    ev = parse_event_line('{"Type":"container","Action":"exec_start: sh -c echo a:b","Actor":{"ID":"c1"}}')
    assert (ev["Action"], ev["ActionDetail"]) == ("exec_start", "sh -c echo a:b")
    assert event_action({"Action": "exec_die"}) == "exec_die"


def test_legacy_id_and_record_separator() -> None:
    ev = parse_event_line(b'\x1e{"Type":"container","Action":"die","id":"c9","time":1}\n')
    assert event_container_id(ev) == "c9"
    assert event_key(ev) == (1_000_000_000, "container", "die", "c9")


def test_event_container_id_other_types() -> None:
    assert event_container_id({"Type": "network", "Action": "create", "Actor": {"ID": "n"}}) is None
    assert event_container_id({"Type": "image", "Action": "pull", "Actor": {"ID": "alpine"}}) is None
    assert event_container_id({"Type": "network", "Action": "connect", "Actor": {"ID": "n"}}) is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"garbage", "bad-json"),
        (b'{"Type":"container","Action":"start","Actor":{"ID":"abc"', "bad-json"),  # truncated
        (b'{"Type":"container",}', "bad-json"),
        (b"\xff\xfe{}", "bad-encoding"),
        (b"[1,2,3]", "not-object"),
        (b'"a string"', "not-object"),
        (b"null", "not-object"),
        (b"{}", "missing-field"),
        (b'{"Action":"start"}', "missing-field"),
        (b'{"Type":"container"}', "missing-field"),
        (b'{"Type":"container","Action":""}', "missing-field"),
        (b'{"Type":1,"Action":"start"}', "bad-type"),
        (b'{"Type":"container","Action":["start"]}', "bad-type"),
        (b'{"Type":"container","Action":"start","Actor":"abc"}', "bad-type"),
        (b'{"Type":"container","Action":"start","Actor":{"ID":7}}', "bad-type"),
        (b'{"Type":"container","Action":"start","Actor":{"ID":"a","Attributes":[]}}', "bad-type"),
        (b'{"Type":"container","Action":"start","timeNano":"123"}', "bad-type"),
        (b'{"Type":"container","Action":"start","time":-1}', "bad-type"),
        (b'{"Type":"container","Action":"start","id":5}', "bad-type"),
        (b'{"Type":"container","Action":": x"}', "missing-field"),
        (b"[" * 100_000, "bad-json"),
    ],
)
def test_malformed_event_lines(line: bytes, reason: str) -> None:
    with pytest.raises(Invalid) as ei:
        parse_event_line(line)
    assert ei.value.reason == reason
    assert "\n" not in str(ei.value)


def test_event_line_wrong_python_type() -> None:
    with pytest.raises(Invalid) as ei:
        parse_event_line(123)  # type: ignore[arg-type]
    assert ei.value.reason == "bad-type"


def test_too_long_event_line() -> None:
    with pytest.raises(Invalid) as ei:
        parse_event_line(b'{"Type":"' + b"x" * (2 << 20) + b'"}')
    assert ei.value.reason == "too-long"


def test_parse_stream_goes_on_after_bad_chunks() -> None:
    good = '{"Type":"container","Action":"start","Actor":{"ID":"c1"},"timeNano":1}'
    text = "\n".join(
        [
            good,
            "{garbage",
            "[1]",
            '{"Action":"start"}',
            '{\n  "Type": oops,\n  "Action": "x"\n}',
            '{"Type":"network","Action":"connect","Actor":{"ID":"n","Attributes":{"container":"c2"}}}',
            '{"Type":"container","Action":"die"',  # truncated last chunk
        ]
    )
    out = list(parse_stream(text))
    kinds = [e.reason if isinstance(e, Invalid) else e["Action"] for e in out]
    assert kinds == ["start", "bad-json", "not-object", "missing-field", "bad-json", "connect", "bad-json"]
    assert event_container_id(out[5]) == "c2"  # type: ignore[arg-type]


def test_parse_stream_empty() -> None:
    assert list(parse_stream("")) == []
    assert list(parse_stream(" \n\n ")) == []


def test_endpoints_are_frozen_structs(redis: dict[str, Any]) -> None:
    (ep,) = normalize_container(redis, SRC)
    assert isinstance(ep, Endpoint)
    assert ep == normalize_container(copy.deepcopy(redis), SRC)[0]  # deterministic → no-op filtering works


# ---------------------------------------------------------------- wrapper mode (--network none + label)
BLUE = Network(source=SRC, name="blue", subnets=("10.70.0.0/24",), gateway="10.70.0.1")


def _wrapped(redis: dict[str, Any], **labels: str) -> dict[str, Any]:
    redis["HostConfig"]["NetworkMode"] = "none"
    redis["NetworkSettings"]["Networks"] = {"none": {"IPAddress": "", "MacAddress": ""}}
    redis["Config"]["Labels"] = {k.replace("ovn_hub_", "ovn-hub."): v for k, v in labels.items()}
    return redis


def test_wrapped_container_without_address_gets_a_dynamic_endpoint(redis: dict[str, Any]) -> None:
    doc = _wrapped(redis, ovn_hub_network="blue")
    (ep,) = normalize_container(doc, SRC, node="n1", hub_networks={"blue": BLUE})
    assert (ep.uid, ep.network, ep.ips, ep.mac, ep.node, ep.kind) == (REDIS_ID, "blue", (), None, "n1", "container")
    assert ep.labels == {"ovn-hub.network": "blue"}


def test_wrapped_container_with_labeled_address(redis: dict[str, Any]) -> None:
    doc = _wrapped(redis, ovn_hub_network="blue", ovn_hub_ip="10.70.0.9/24", ovn_hub_mac="0A:00:00:00:00:09")
    (ep,) = normalize_container(doc, SRC, hub_networks={"blue": BLUE})
    assert (ep.ips, ep.mac) == (("10.70.0.9",), "0a:00:00:00:00:09")


def test_none_network_label_only_counts_with_network_none(redis: dict[str, Any]) -> None:
    redis["Config"]["Labels"] = {"ovn-hub.network": "blue"}  # on a Docker bridge network: Docker plumbs it
    eps = normalize_container(redis, SRC, hub_networks={"blue": BLUE})
    assert eps and {ep.network for ep in eps} == set(redis["NetworkSettings"]["Networks"]) - {"blue"}
    # a Docker network named like an OVN Hub network is shadowed: its attachments are not mapped
    docker_nets = set(redis["NetworkSettings"]["Networks"])
    shadow = next(iter(docker_nets))
    eps = normalize_container(redis, SRC, hub_networks={shadow: BLUE})
    assert {ep.network for ep in eps} == docker_nets - {shadow}
    assert normalize_container(_wrapped(redis), SRC, hub_networks={"blue": BLUE}) == []  # none, no label


@pytest.mark.parametrize(
    ("labels", "reason", "text"),
    [
        ({"ovn_hub_network": "green"}, "unknown-network", "names no OVN Hub network"),
        ({"ovn_hub_network": "blue", "ovn_hub_ip": "10.99.0.1"}, "bad-ip", "outside network 'blue'"),
        ({"ovn_hub_network": "blue", "ovn_hub_ip": "not-an-ip"}, "bad-ip", "not an IPv4"),
        ({"ovn_hub_network": "blue", "ovn_hub_mac": "01:00:5e:00:00:01"}, "bad-mac", "multicast"),
        ({"ovn_hub_network": "blue", "ovn_hub_ip": "10.70.0.1"}, "bad-ip", "the gateway, network or broadcast"),
        ({"ovn_hub_network": "blue", "ovn_hub_ip": "10.70.0.255"}, "bad-ip", "the gateway, network or broadcast"),
        ({"ovn_hub_network": "blue", "ovn_hub_ip": "10.70.0.0"}, "bad-ip", "the gateway, network or broadcast"),
    ],
)
def test_wrapped_container_bad_labels(redis: dict[str, Any], labels: dict[str, str], reason: str, text: str) -> None:
    with pytest.raises(Invalid) as info:
        normalize_container(_wrapped(redis, **labels), SRC, hub_networks={"blue": BLUE})
    assert info.value.reason == reason and text in str(info.value) and REDIS_ID[:12] in str(info.value)


# ---------------------------------------------------------------- a Mesos task seen by Docker
MESOS_CID = "3b4d62e0-e955-4483-b1de-d48f127491ce"


@pytest.mark.parametrize(
    ("name", "workload"),
    [
        (f"/mesos-{MESOS_CID}", f"mesos:{MESOS_CID}"),  # Mesos >= 1.4
        (f"/mesos-79ad3a13-b567-4273-ac8c-30378d35a439-S14522.{MESOS_CID}", f"mesos:{MESOS_CID}"),  # before 1.4
        (f"/mesos-{MESOS_CID}.executor", None),  # the Docker executor's own container is not the task
        ("/mesos-web", None),
        ("/redis", None),
    ],
)
def test_a_mesos_containerizer_container_declares_its_task(redis: dict[str, Any], name: str, workload: str | None) -> None:
    redis["Name"] = name
    eps = normalize_container(redis, SRC)
    assert eps and all(e.labels.get(LABEL_WORKLOAD) == workload for e in eps)
    redis["Config"]["Labels"] = {LABEL_WORKLOAD: "k8s:pod-1"}  # a container's own label is kept
    assert all(e.labels[LABEL_WORKLOAD] == "k8s:pod-1" for e in normalize_container(redis, SRC))
