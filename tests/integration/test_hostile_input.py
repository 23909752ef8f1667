"""Hostile input: the five poison inputs of issue 9 and the guards behind them.

Each reproduction runs against a real ovsdb-server (the programmer, or hubd as a
process with the static adapter on network ``net0``, subnet 10.100.0.0/16).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

import core.ovsdb
from adapters.static import StaticAdapter
from core.adapter import AdapterSpec, ObjectCache, unique
from core.model import LIMITS, Endpoint, Invalid, Network, Rejected, Snapshot, Source, encode, validate
from core.programmer import Programmer
from hub.bus import AdapterSink, Bus
from hub.config import ConfigError, loads
from hub.sandbox import OvnSandbox
from testkit.hubd import Hubd
from testkit.nb import nb_rows
from testkit.wait import sync_wait_until, wait_until

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


class Published:
    def __init__(self) -> None:
        self.events: list[Any] = []

    async def __call__(self, ev: Any) -> None:
        self.events.append(ev)

    def rejected(self, reason: str) -> list[Rejected]:
        return [e for e in self.events if isinstance(e, Rejected) and e.reason == reason]


@pytest.fixture
async def programmer(ovn: OvnSandbox) -> AsyncIterator[tuple[Programmer, Published]]:
    pub = Published()
    p = Programmer(ovn.nb_remote, "hub1", publish=pub, retry_interval=0.5, coalesce=0)
    await p.start()
    task = asyncio.create_task(p.run())
    try:
        yield p, pub
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await p.close()


def ports(ovn: OvnSandbox) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in nb_rows(ovn, "Logical_Switch_Port")}


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


async def test_nul_row_is_refused_alone_and_the_session_stays_up(ovn: OvnSandbox, programmer: Any) -> None:
    """Bypassing validation (the programmer takes what it is given): the NUL
    never reaches ovsdb-server, the row is quarantined, its neighbours commit."""
    p, pub = programmer
    client = p._client
    bad = ep("nul", "fe80::1%\x00")
    good = [ep(f"g{i}", f"10.100.0.{i + 2}") for i in range(20)]
    p.apply(Snapshot(source=SRC, objects=(NET, *good[:10], bad, *good[10:])))
    await wait_until(lambda: len(pub.rejected("nb-refused")) == 1, 10, "the NUL row refused")
    await p.flush(10)
    assert set(ports(ovn)) == {f"static/lab/net0/g{i}" for i in range(20)}
    assert p._client is client and not client.closed.is_set(), "the session was never dropped"
    assert p.session_drops == 0
    r = pub.rejected("nb-refused")[0]
    assert r.ref == "static/lab/net0/nul" and "NUL" in r.message
    assert "static/lab/net0/nul" in p.failed
    log = (ovn.dir / "nb.log").read_text()
    assert "null bytes" not in log


async def test_a_row_that_drops_the_session_is_bisected_out(
    ovn: OvnSandbox, programmer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The general guard: with the local check off, ovsdb-server itself drops
    the session on the NUL; the writer commits the batch apart until the row is
    alone, quarantines it, and everything else commits."""
    p, pub = programmer

    def unchecked(msg: dict[str, Any]) -> bytes:
        return core.ovsdb._enc.encode(msg)

    monkeypatch.setattr(core.ovsdb, "_encode", unchecked)
    good = [ep(f"g{i}", f"10.100.1.{i + 2}") for i in range(40)]
    p.apply(Snapshot(source=SRC, objects=(NET, *good[:25], ep("nul", "fe80::1%\x00"), *good[25:])))
    await wait_until(lambda: len(pub.rejected("nb-refused")) == 1, 60, "the session-dropping row quarantined")
    await p.flush(30)
    assert set(ports(ovn)) == {f"static/lab/net0/g{i}" for i in range(40)}
    assert "null bytes" in (ovn.dir / "nb.log").read_text()  # it really was the server that dropped us
    drops = p.session_drops
    assert 2 <= drops <= 2 * 6 + 2, f"{drops} dropped sessions to isolate one row of 42"
    r = pub.rejected("nb-refused")[0]
    assert r.ref == "static/lab/net0/nul" and "dropped" in r.message
    # quarantined: not retried before retry_interval, and then only alone
    await asyncio.sleep(0.2)
    assert p.session_drops == drops


# ---------------------------------------------------------------- 2. deep nesting
def test_a_deeply_nested_line_costs_only_that_line(tmpdir_short: Path) -> None:
    deep = b'{"type":"endpoint","zz":' + b"[" * 5000 + b"]" * 5000 + b"}"
    objs, rejected = read_static(tmpdir_short, [line(NET), deep, line(ep("a", "10.100.0.2")), b"\xff\xfe garbage"])
    assert [o.key for o in objs] == ["net0", "net0/a"]
    assert [r.reason for r in rejected] == ["bad-json", "bad-json"]
    assert "nested too deeply" in rejected[0].message


def test_every_decoder_survives_depth(tmpdir_short: Path) -> None:
    from adapters.docker.adapter import load_policies
    from core.model import decode_event

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


def static_config(ovn: OvnSandbox, workdir: Path, path: Path, **ovn_opts: Any) -> str:
    text = f'[hub]\nid = "hubt"\nstate_dir = "{workdir}"\n[ovn]\nnb = "{ovn.nb_remote}"\n'
    for k, v in ovn_opts.items():
        text += f"{k} = {json.dumps(v)}\n"
    text += f'[api]\nlisten = "unix:{workdir}/api.sock"\n'
    text += f'[adapters.lab]\ntype = "static"\ncluster = "lab"\npath = "{path}"\npoll_interval = 0.2\n'
    return text


def test_hubd_reaches_ready_past_poison_lines_and_shows_them(ovn: OvnSandbox, tmpdir_short: Path, hubd_factory: Any) -> None:
    """A fresh hubd reaches READY with every valid line programmed; `hubctl
    status` shows the rejections by reason, each message short, and a re-read
    of the file does not count them again."""
    data = tmpdir_short / "objs.jsonl"
    huge = "x" * (1 << 20)
    lines = [
        line(NET),
        b'{"type":"endpoint","zz":' + b"[" * 3000 + b"]" * 3000 + b"}",
        raw_ep("nul", ips=["fe80::1%\u0000"]),
        raw_ep("nl", ips=["10.100.0.9\n"]),
        raw_ep("big", state=huge),
        *[line(ep(f"v{i}", f"10.100.2.{i + 2}")) for i in range(30)],
        line(ep("v0", "10.100.3.3")),  # a duplicate uid: the first is kept
    ]
    data.write_bytes(b"\n".join(lines) + b"\n")
    h: Hubd = hubd_factory(static_config(ovn, tmpdir_short, data))
    h.wait_ready(60)
    names = {n for n in ports(ovn) if n.startswith("static/lab/net0/")}
    assert names == {f"static/lab/net0/v{i}" for i in range(30)}
    assert ports(ovn)["static/lab/net0/v0"]["addresses"] != "[]"
    st = json.loads(h.ctl("status", "--json").stdout)
    rej = st["rejections"]
    assert rej["by_reason"] == {"bad-ip": 2, "bad-json": 1, "duplicate": 1, "too-long": 1}, rej
    assert all(len(r["message"]) <= 250 for r in rej["recent"]), rej["recent"]
    out = h.ctl("status").stdout
    assert "rejected: 5 distinct" in out and "[duplicate]" in out
    assert len(out) < 5000
    # the file is re-read (touched): the same bad lines are not counted again
    data.write_bytes(b"\n".join(lines) + b"\n\n")
    sync_wait_until(lambda: json.loads(h.ctl("status", "--json").stdout)["rejections"]["total"] >= 10, 20, "a re-read")
    again = json.loads(h.ctl("status", "--json").stdout)["rejections"]
    assert again["distinct"] == 5 and again["by_reason"] == rej["by_reason"]
    h.signal(signal.SIGTERM)
    assert h.wait(30) == 0


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


async def test_only_declared_addresses_reach_nb(ovn: OvnSandbox, programmer: Any, tmpdir_short: Path) -> None:
    p, _pub = programmer
    objs, rejected = read_static(tmpdir_short, [
        line(NET), raw_ep("a", ips=["10.100.0.9\n"]), raw_ep("b", ips=["fe80::1%x 10.100.0.99"]),
        raw_ep("c", ips=["10.100.0.7", "10.100.0.7\n"]), raw_ep("d", ips=["10.100.0.8", "fd00::8"]),
    ])
    assert len(rejected) == 3
    p.apply(Snapshot(source=SRC, objects=tuple(objs)))
    await p.flush(10)
    rows = ports(ovn)
    assert set(rows) == {"static/lab/net0/d"}
    addr = rows["static/lab/net0/d"]["addresses"]
    assert addr.split()[1:] == ["10.100.0.8", "fd00::8"], addr


# ---------------------------------------------------------------- 4. a foreign switch with the hub's name
async def test_a_foreign_switch_with_the_hub_name_is_reported_not_twinned(ovn: OvnSandbox, programmer: Any) -> None:
    p, pub = programmer
    ovn.nbctl("ls-add", "static/lab/net0")
    p.apply(Snapshot(source=SRC, objects=(NET, ep("a", "10.100.0.2"), ep("b", "10.100.0.3"))))
    await wait_until(lambda: pub.rejected("nb-conflict"), 10, "a conflict reported")
    await asyncio.sleep(1.2)  # two retry intervals: still one switch of that name
    switches = [r for r in nb_rows(ovn, "Logical_Switch") if r["name"] == "static/lab/net0"]
    assert len(switches) == 1, "twinned"
    assert ovn.nbctl("lsp-list", "static/lab/net0").strip() == ""  # unambiguous for ovn-nbctl
    r = pub.rejected("nb-conflict")[0]
    assert r.ref == "static/lab/net0" and "does not own" in r.message
    assert "static/lab/net0" in p.failed and "static/lab/net0/a" in p.failed
    # the operator removes the foreign switch: the next retry creates the hub's and its ports
    ovn.nbctl("ls-del", "static/lab/net0")
    await wait_until(lambda: len(ports(ovn)) == 2, 10, "the hub's switch and ports after the foreign one left")
    assert len([r for r in nb_rows(ovn, "Logical_Switch") if r["name"] == "static/lab/net0"]) == 1


async def test_a_foreign_load_balancer_with_the_hub_name_is_not_twinned(ovn: OvnSandbox, programmer: Any) -> None:
    from core.model import LBRule, Service
    from core.nbmodel import lb_rows

    p, pub = programmer
    svc = Service(source=SRC, uid="s1", namespace="lab", name="web", network="net0",
                  rules=(LBRule(vip="10.96.0.10", port=80, backends=("10.100.0.2:8080",)),))
    name = lb_rows(svc, "hub1")[0].key
    ovn.nbctl("lb-add", name, "10.96.0.99:80", "10.1.1.1:80")
    p.apply(Snapshot(source=SRC, objects=(NET, ep("a", "10.100.0.2"), svc)))
    await wait_until(lambda: pub.rejected("nb-conflict"), 10, "a load balancer conflict reported")
    await p.flush(10)
    assert len([r for r in nb_rows(ovn, "Load_Balancer") if r["name"] == name]) == 1
    assert "static/lab/net0/a" in ports(ovn)  # everything else committed


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
    from prometheus_client import REGISTRY

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


def drop_sessions(ovn: OvnSandbox) -> None:
    """ovsdb-server drops every client session and keeps running (rows and their _version kept)."""
    subprocess.run(["ovs-appctl", "-t", str(ovn.dir / "nb.ctl"), "ovsdb-server/reconnect"], check=True, timeout=10)


async def test_reconnect_revalidates_the_replica_in_memory(ovn: OvnSandbox, programmer: Any) -> None:
    p, _pub = programmer
    p.apply(Snapshot(source=SRC, objects=(NET, *[ep(f"g{i}", f"10.100.4.{i + 2}") for i in range(200)])))
    await p.flush(20)
    drop_sessions(ovn)  # the replica knows no _version of rows it inserted itself: read once
    await wait_until(lambda: p.connected.is_set() and p.reconnect_loads["read"] == 1, 20, "reconnected (read)")
    await p.flush(20)
    ovn.nbctl("set", "Logical_Switch_Port", "static/lab/net0/g7", "options:x=y")  # drift, repaired by an update
    await wait_until(lambda: "x" not in ports(ovn)["static/lab/net0/g7"]["options"], 10, "drift repaired")
    await p.flush(10)
    drop_sessions(ovn)
    await wait_until(lambda: p.connected.is_set() and p.reconnect_loads["revalidated"] == 1, 20, "reconnected")
    # (the row rewritten after the foreign edit may be read again)
    assert p.ports_from_cache >= 199 and p.ports_read <= 1, (p.ports_from_cache, p.ports_read)
    await p.flush(10)
    assert len(ports(ovn)) == 200


async def test_first_retry_within_a_second_of_nb_listening_again(ovn: OvnSandbox, programmer: Any) -> None:
    p, _pub = programmer
    p.apply(Snapshot(source=SRC, objects=(NET, *[ep(f"g{i}", f"10.100.5.{i + 2}") for i in range(20)])))
    await p.flush(20)
    ovn.kill("nb", signal.SIGTERM)
    await wait_until(lambda: not p.connected.is_set(), 10, "disconnected")
    await asyncio.sleep(4)  # long enough for an uncapped backoff to have grown past seconds
    back = time.monotonic()
    ovn.restart("nb")
    await wait_until(p.connected.is_set, 10, "reconnected", interval=0.01)
    took = time.monotonic() - back
    assert took < 1.5, f"reconnected {took:.2f}s after NB listened again"
    await p.flush(10)
    assert len(ports(ovn)) == 20  # a restarted server has new _versions: the replica was read, not trusted
