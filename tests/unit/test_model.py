"""Canonical model validation, codecs and schema."""

from __future__ import annotations

import json
import subprocess

import pytest

from core.model import (
    Delete,
    Endpoint,
    Invalid,
    Network,
    Snapshot,
    Source,
    Upsert,
    decode_event,
    encode,
    json_schema,
    validate,
)
from testkit.hubd import BIN

SRC = Source("docker", "local")


def ep(**kw: object) -> Endpoint:
    base: dict[str, object] = dict(source=SRC, uid="abc", namespace="default", name="web", kind="container", network="blue")
    base.update(kw)
    return Endpoint(**base)  # type: ignore[arg-type]


def test_valid_endpoint_v4_v6_mac() -> None:
    validate(ep(ips=("10.0.0.5", "fd00::5"), mac="02:42:0a:00:00:05", labels={"app": "web"}))
    validate(ep())  # no IP: OVN allocates


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"ips": ("10.0.0.300",)}, "bad-ip"),
        ({"ips": ("fd00::0:5",)}, "bad-ip"),  # not canonical
        ({"ips": ("224.0.0.1",)}, "bad-ip"),
        ({"ips": ("10.0.0.1", "10.0.0.1")}, "bad-ip"),
        ({"mac": "02:42:0a:00:00"}, "bad-mac"),
        ({"mac": "01:00:5e:00:00:01"}, "bad-mac"),
        ({"mac": "02:42:0A:00:00:05"}, "bad-mac"),
        ({"uid": ""}, "empty-field"),
        ({"uid": "a b"}, "bad-uid"),
        ({"name": "x\n"}, "bad-characters"),
        ({"network": "a/b"}, "bad-network"),
        ({"source": Source("Docker", "local")}, "bad-source"),
        ({"labels": {"k": "v\x00"}}, "bad-label"),
    ],
)
def test_rejected_with_reason(kw: dict[str, object], reason: str) -> None:
    with pytest.raises(Invalid) as exc:
        validate(ep(**kw))
    assert exc.value.reason == reason
    assert str(exc.value)


def test_network_validation() -> None:
    validate(Network(source=SRC, name="blue", subnets=("10.0.0.0/24", "fd00::/64"), gateway="10.0.0.1"))
    with pytest.raises(Invalid, match="not a CIDR"):
        validate(Network(source=SRC, name="blue", subnets=("10.0.0/33",)))


def test_event_roundtrip_and_bad_input() -> None:
    events = [
        Snapshot(source=SRC, objects=(ep(ips=("10.0.0.5",)), Network(source=SRC, name="blue"))),
        Upsert(obj=ep()),
        Delete(source=SRC, kind="endpoint", key="blue/abc"),
    ]
    for e in events:
        assert decode_event(encode(e)) == e
    with pytest.raises(Invalid) as exc:
        decode_event(b'{"type":"upsert","obj":{"type":"endpoint"}}')
    assert exc.value.reason == "schema"
    with pytest.raises(Invalid) as exc:
        decode_event(b"{nope")
    assert exc.value.reason == "bad-json"


def test_key_is_per_attachment() -> None:
    assert ep(network="a").key != ep(network="b").key


def test_schema_is_versioned_and_validates() -> None:
    schema = json_schema()
    assert schema["version"] == "1.0" and schema["$id"].endswith("/v1")
    defs = schema["$defs"]
    assert {"Endpoint", "Network", "Snapshot", "Upsert", "Delete", "Ready"} <= set(defs)
    import jsonschema
    jsonschema.validate(json.loads(encode(Upsert(obj=ep(ips=("10.0.0.5",))))), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"type": "upsert", "obj": {"type": "endpoint", "uid": 5}}, schema)


def test_hubctl_schema_prints_it() -> None:
    out = subprocess.run([str(BIN / "hubctl"), "schema"], capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["$id"] == json_schema()["$id"]
