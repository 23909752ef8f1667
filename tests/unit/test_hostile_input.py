"""Hostile input without a server: the guards behind the five poison inputs of
issue 9 (validation, decoder depth, limits, duplicates, rejection counting).
The reproductions against a real ovsdb-server and hubd, which share this
module's helpers, are in tests/integration/test_hostile_input.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client import REGISTRY

from adapters.docker.adapter import load_policies
from adapters.static import StaticAdapter
from core.adapter import AdapterSpec, ObjectCache, unique
from core.model import LIMITS, Endpoint, Invalid, Network, Rejected, Source, decode_event, encode, validate
from hub.bus import AdapterSink, Bus
from hub.config import ConfigError, loads

SRC = Source("static", "lab")
NET = Network(source=SRC, name="net0", subnets=("10.100.0.0/16",))


def ep(uid: str, *ips: str, **kw: Any) -> Endpoint:
    return Endpoint(source=SRC, uid=uid, namespace="lab", name=uid, kind="vm", network="net0", ips=ips, **kw)


def line(obj: Any) -> bytes:
    return encode(obj)


def raw_ep(uid: str, **fields: Any) -> bytes:
    d: dict[str, Any] = {"type": "endpoint", "source": {"orchestrator": "static", "cluster": "lab"}, "uid": uid,
                         "namespace": "lab", "name": uid, "kind": "vm", "network": "net0"}
    d.update(fields)
    return json.dumps(d).encode()


def read_static(tmp: Path, lines: list[bytes]) -> tuple[list[Any], list[Rejected]]:
    path = tmp / "objs.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    adapter = StaticAdapter(AdapterSpec(name="lab", type="static", cluster="lab", options={"path": str(path)}))
    return adapter.read()


# ---------------------------------------------------------------- 1. NUL in an IPv6 scope id
def test_scope_ids_and_nul_are_rejected_by_validation(tmpdir_short: Path) -> None:
    objs, rejected = read_static(tmpdir_short, [
        line(NET),
        raw_ep("nul", ips=["fe80::1%\u0000"]),
        raw_ep("good", ips=["10.100.0.5"]),
        json.dumps({"type": "network", "source": {"orchestrator": "static", "cluster": "lab"}, "name": "n6",
                    "subnets": ["fe80::%\u0000/64"], "gateway": "fe80::1%\u0000"}).encode(),
    ])
    assert [o.key for o in objs] == ["net0", "net0/good"]
    assert [r.reason for r in rejected] == ["bad-ip", "bad-subnet"]
    assert "scope id" in rejected[0].message and rejected[0].ref.endswith(":2")


# ---------------------------------------------------------------- 2. deep nesting
def test_a_deeply_nested_line_costs_only_that_line(tmpdir_short: Path) -> None:
    deep = b'{"type":"endpoint","zz":' + b"[" * 5000 + b"]" * 5000 + b"}"
    objs, rejected = read_static(tmpdir_short, [line(NET), deep, line(ep("a", "10.100.0.2")), b"\xff\xfe garbage"])
    assert [o.key for o in objs] == ["net0", "net0/a"]
    assert [r.reason for r in rejected] == ["bad-json", "bad-json"]
    assert "nested too deeply" in rejected[0].message


def test_every_decoder_survives_depth(tmpdir_short: Path) -> None:
    with pytest.raises(Invalid) as e1:
        decode_event(b'{"type":"upsert","zz":' + b"[" * 100000 + b"]" * 100000 + b"}")
    assert e1.value.reason == "bad-json"
    with pytest.raises(ConfigError, match="nested too deeply"):
        loads("a = " + "[" * 5000 + "]" * 5000 + "\n")
    pol = tmpdir_short / "p.json"
    pol.write_bytes(b"[" * 5000 + b"]" * 5000)
    with pytest.raises(Invalid) as e2:
        load_policies(str(pol), Source("docker", "local"))
    assert e2.value.reason == "bad-json"


# ---------------------------------------------------------------- 3. malformed addresses
@pytest.mark.parametrize(
    ("ips", "why"),
    [
        (["10.100.0.9\n"], "not an IPv4"),
        (["fe80::1%x 10.100.0.99"], "scope id"),
        (["fe80::1%\t"], "scope id"),
        (["10.100.0.7", "10.100.0.7"], "duplicates"),
        ([" 10.100.0.7"], "not an IPv4"),
        (["127.0.0.1"], "unicast host"),
        (["::1"], "unicast host"),
        (["255.255.255.255"], "unicast host"),
        (["224.0.0.1"], "unicast host"),
        (["0.0.0.0"], "unicast host"),
        (["0.1.2.3"], "unicast host"),
        (["ff02::1"], "unicast host"),
        ([f"10.100.{i // 250}.{i % 250 + 2}" for i in range(LIMITS["ips"] + 1)], "more than"),
    ],
)
def test_malformed_addresses_are_rejected(ips: list[str], why: str) -> None:
    obj = msgspec.json.decode(raw_ep("x", ips=ips), type=Endpoint)
    with pytest.raises(Invalid, match=why):
        validate(obj)


@pytest.mark.parametrize(
    "fields",
    [
        {"uid": "a\u202eb"},  # bidi override
        {"uid": "a\u200bb"},  # zero-width space
        {"name": "x\u2066y"},
        {"namespace": "ns\u0007"},
        {"labels": {"app": "we\u202eb"}},
        {"labels": {"a\u200d": "b"}},
        {"network": "net0\n"},
        {"mac": "02:00:00:00:00:01\n"},
        {"state": "x" * 100},
        {"labels": {f"k{i}": "v" for i in range(LIMITS["labels"] + 1)}},
        {"ports": [{"port": 80 + i} for i in range(LIMITS["ports"] + 1)]},
        {"uid": "u" * 300},
    ],
)
def test_bad_characters_and_limits_are_rejected(fields: dict[str, Any]) -> None:
    obj = msgspec.json.decode(raw_ep(fields.pop("uid", "x"), **fields), type=Endpoint)
    with pytest.raises(Invalid) as exc:
        validate(obj)
    assert len(str(exc.value)) < 400


def test_a_huge_bad_value_is_quoted_short() -> None:
    obj = msgspec.json.decode(raw_ep("x", ips=["1" * (1 << 20)]), type=Endpoint)
    with pytest.raises(Invalid) as exc:
        validate(obj)
    assert len(str(exc.value)) < 400 and "characters" in str(exc.value)


# ---------------------------------------------------------------- 5. duplicates inside one snapshot
def test_duplicates_in_one_snapshot_are_rejected_naming_both(tmpdir_short: Path) -> None:
    objs, rejected = read_static(tmpdir_short, [
        line(NET), line(ep("u1", "10.100.0.2")), line(ep("u2", "10.100.0.3")), line(ep("u1", "10.100.0.4")),
    ])
    assert [o.key for o in objs] == ["net0", "net0/u1", "net0/u2"]
    assert objs[1].ips == ("10.100.0.2",)  # the first one wins
    assert [r.reason for r in rejected] == ["duplicate"]
    assert ":4" in rejected[0].message and ":2" in rejected[0].message


def test_unique_and_object_cache_agree() -> None:
    a, b = ep("u1", "10.100.0.2"), ep("u1", "10.100.0.4")
    kept, rej = unique([a, b], SRC)
    assert kept == [a] and len(rej) == 1
    assert ObjectCache(SRC).snapshot([a, b]).objects == (a,)


# ---------------------------------------------------------------- counting and reconnect
async def test_rejections_are_counted_once_per_distinct_object() -> None:
    def counted() -> float:
        return REGISTRY.get_sample_value("ovn_hub_rejected_total", {"source": "static/lab", "reason": "bad-ip"}) or 0.0

    before = counted()
    bus = Bus()
    sink = AdapterSink(bus, "lab")
    for _ in range(3):  # three re-reads of the same file
        await sink.emit(Rejected(source=SRC, reason="bad-ip", message="line 2: ip 'x' is bad", ref="f:2"))
        await sink.emit(Rejected(source=SRC, reason="bad-json", message="line 3: not JSON", ref="f:3"))
    await sink.emit(Rejected(source=SRC, reason="bad-ip", message="line 9: ip 'y' is bad", ref="f:9"))
    st = bus.rejections.status()
    assert st["distinct"] == 3 and st["total"] == 7
    assert st["by_reason"] == {"bad-ip": 2, "bad-json": 1}
    assert counted() - before == 2
    # remote input cannot invent metric labels or huge entries
    await sink.emit(Rejected(source=SRC, reason="Bad Reason!" * 10, message="m" * 100000, ref="r" * 100000))
    st = bus.rejections.status()
    assert "invalid-reason" in st["by_reason"]
    assert all(len(r["message"]) < 300 and len(r["ref"]) < 200 for r in st["recent"])
