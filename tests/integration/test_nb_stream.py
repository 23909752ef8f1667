"""A transaction sent as it is built (``OvsdbClient.transact_stream``, the
programmer's big batches) against a real ovsdb-server: the rows are those of
one request, a chunk that cannot be sent aborts the whole transaction without
ending the session, and messages written meanwhile follow the request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import core.nb.programmer
from core.model import Snapshot
from core.nb import Programmer
from core.ovsdb import OvsdbClient, OvsdbError
from core.ovsdb.client import Refused
from hub.sandbox import OvnSandbox
from testkit.nb import nb_rows
from testkit.wait import wait_until
from tests.integration.test_hostile_input import Published, running
from tests.unit.test_hostile_input import NET, SRC, ep


def _ls(name: str) -> dict[str, Any]:
    return {"op": "insert", "table": "Logical_Switch", "row": {"name": name}}


@pytest.fixture
async def streaming(ovn: OvnSandbox, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Programmer, Published]]:
    monkeypatch.setattr(core.nb.programmer, "STREAM_CHUNK", 4)
    async with running(ovn, stream_min=1) as got:  # every batch is streamed
        yield got


async def test_a_streamed_batch_writes_every_port_into_its_switch(ovn: OvnSandbox, streaming: Any) -> None:
    p, pub = streaming
    good = [ep(f"g{i}", f"10.100.0.{i + 2}") for i in range(30)]
    p.apply(Snapshot(source=SRC, objects=(NET, *good)))
    await p.flush(10)
    ports = {r["_uuid"][1]: r["name"] for r in nb_rows(ovn, "Logical_Switch_Port")}
    assert sorted(ports.values()) == sorted(f"static/lab/net0/g{i}" for i in range(30))
    (ls,) = nb_rows(ovn, "Logical_Switch")
    assert {x[1] for x in ls["ports"][1]} == set(ports)
    # the replica knows every uuid NB gave, and each port is reported programmed
    assert {r.uuid for r in p.lsp.values()} == set(ports)
    assert sum(1 for e in pub.events if type(e).__name__ == "Programmed" and e.kind == "endpoint") == 30
    assert p.transactions == 1


async def test_a_nul_row_aborts_the_streamed_transaction_and_is_bisected_out(ovn: OvnSandbox, streaming: Any) -> None:
    p, pub = streaming
    client = p._client
    good = [ep(f"g{i}", f"10.100.0.{i + 2}") for i in range(20)]
    p.apply(Snapshot(source=SRC, objects=(NET, *good[:13], ep("nul", "fe80::1%\x00"), *good[13:])))
    await wait_until(lambda: len(pub.rejected("nb-refused")) == 1, 10, "the NUL row refused")
    await p.flush(10)
    assert {r["name"] for r in nb_rows(ovn, "Logical_Switch_Port")} == {f"static/lab/net0/g{i}" for i in range(20)}
    assert p._client is client and not client.closed.is_set(), "the session was never dropped"
    assert p.session_drops == 0
    assert "null bytes" not in (ovn.dir / "nb.log").read_text()


async def test_transact_stream_refused_chunk_commits_nothing_and_the_session_goes_on(ovn: OvnSandbox) -> None:
    client = OvsdbClient(ovn.nb_remote)
    await client.connect()
    try:
        def chunks() -> Iterator[list[dict[str, Any]]]:
            yield [_ls("s1"), _ls("s2")]
            yield [_ls("bad\x00")]
            yield [_ls("s3")]

        with pytest.raises(Refused):
            await client.transact_stream(chunks())
        assert not client.closed.is_set()
        got = await client.transact([{"op": "select", "table": "Logical_Switch", "where": [], "columns": ["name"]}])
        assert got[0]["rows"] == []  # the aborted transaction committed nothing
    finally:
        await client.close()


async def test_a_call_made_while_a_request_streams_goes_after_it(ovn: OvnSandbox) -> None:
    client = OvsdbClient(ovn.nb_remote)
    await client.connect()
    other: list[asyncio.Task[Any]] = []
    try:
        def chunks() -> Iterator[list[dict[str, Any]]]:
            for i in range(6):
                if i == 2:  # another request while this one is half sent
                    other.append(asyncio.ensure_future(client.call("list_dbs", [])))
                yield [_ls(f"s{i}")]

        result = await client.transact_stream(chunks())
        assert len(result) == 6 and all("uuid" in r for r in result)
        assert "OVN_Northbound" in await asyncio.wait_for(other[0], 10)
        assert sorted(r["name"] for r in nb_rows(ovn, "Logical_Switch")) == [f"s{i}" for i in range(6)]
    finally:
        await client.close()


async def test_a_failing_operation_of_a_streamed_transaction_is_named_by_its_index(ovn: OvnSandbox) -> None:
    client = OvsdbClient(ovn.nb_remote)
    await client.connect()
    try:
        never = {"op": "wait", "table": "Logical_Switch", "where": [], "columns": ["name"], "until": "==",
                 "rows": [{"name": "nope"}], "timeout": 0}  # fmt: skip
        with pytest.raises(OvsdbError) as err:
            await client.transact_stream(iter([[_ls("s1"), _ls("s2")], [never], [_ls("s3")]]))
        assert err.value.index == 2 and "timed out" in str(err.value)
        assert not client.closed.is_set()
        assert nb_rows(ovn, "Logical_Switch") == []
    finally:
        await client.close()


async def test_two_streams_at_once_take_turns_on_one_session(ovn: OvnSandbox) -> None:
    """A second streamed request waits for the first (a lock), not refused as
    a lost session: both commit, each a request of its own."""
    client = OvsdbClient(ovn.nb_remote)
    await client.connect()
    try:

        def chunks(prefix: str) -> Iterator[list[dict[str, Any]]]:
            for i in range(5):
                yield [_ls(f"{prefix}{i}-{j}") for j in range(3)]

        got = await asyncio.gather(client.transact_stream(chunks("a")), client.transact_stream(chunks("b")))
        assert [len(r) for r in got] == [15, 15]
        names = {r["name"] for r in nb_rows(ovn, "Logical_Switch")}
        assert {f"{p}{i}-{j}" for p in "ab" for i in range(5) for j in range(3)} <= names
    finally:
        await client.close()
