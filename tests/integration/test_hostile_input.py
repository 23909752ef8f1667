"""Hostile input: the five poison inputs of issue 9 and the guards behind them.

Each reproduction runs against a real ovsdb-server (the programmer, or hubd as a
process with the static adapter on network ``net0``, subnet 10.100.0.0/16).
The guards that need no server are in tests/unit/test_hostile_input.py.
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

import pytest

import core.ovsdb.client
from core.model import LBRule, Rejected, Service, Snapshot
from core.nb import Programmer
from core.nb.tables.load_balancer import lb_rows
from hub.sandbox import OvnSandbox
from testkit.hubd import Hubd
from testkit.nb import nb_rows
from testkit.wait import sync_wait_until, wait_until
from tests.unit.test_hostile_input import NET, SRC, ep, line, raw_ep, read_static


class Published:
    def __init__(self) -> None:
        self.events: list[Any] = []

    async def __call__(self, ev: Any) -> None:
        self.events.append(ev)

    def rejected(self, reason: str) -> list[Rejected]:
        return [e for e in self.events if isinstance(e, Rejected) and e.reason == reason]


@contextlib.asynccontextmanager
async def running(ovn: OvnSandbox, stream_min: int | None = None) -> AsyncIterator[tuple[Programmer, Published]]:
    """A started programmer and its writer task, stopped after (``stream_min``: batches streamed from that size)."""
    pub = Published()
    p = Programmer(ovn.nb_remote, "hub1", publish=pub, retry_interval=0.5, coalesce=0)
    if stream_min is not None:
        p.stream_min = stream_min
    await p.start()
    task = asyncio.create_task(p.run())
    try:
        yield p, pub
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await p.close()


@pytest.fixture
async def programmer(ovn: OvnSandbox) -> AsyncIterator[tuple[Programmer, Published]]:
    async with running(ovn) as got:
        yield got


def ports(ovn: OvnSandbox) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in nb_rows(ovn, "Logical_Switch_Port")}


# ---------------------------------------------------------------- 1. NUL in an IPv6 scope id
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
        return core.ovsdb.client._enc.encode(msg)

    monkeypatch.setattr(core.ovsdb.client, "_encode", unchecked)
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
    # retried (every retry_interval, 0.5 s here) and refused again: still one switch of that name
    await wait_until(lambda: len([r for r in pub.rejected("nb-conflict") if r.ref == "static/lab/net0"]) >= 3, 10, "two retries")
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


# ---------------------------------------------------------------- counting and reconnect
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
    # seven refused attempts: an uncapped doubling backoff would now wait 6 s and more
    await wait_until(lambda: p.connect_failures >= 7, 20, "seven failed reconnects")
    back = time.monotonic()
    ovn.restart("nb")
    await wait_until(p.connected.is_set, 10, "reconnected", interval=0.01)
    took = time.monotonic() - back
    assert took < 1.5, f"reconnected {took:.2f}s after NB listened again"
    await p.flush(10)
    assert len(ports(ovn)) == 20  # a restarted server has new _versions: the replica was read, not trusted
