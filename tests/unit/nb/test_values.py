"""Replica folding without a server: the reply hook's stream order, and the one
update2 applier by column kind (core/ovsdb/values.py)."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from core.nb import Programmer
from core.ovsdb.values import Col, apply_update2, decode, decode_row


def test_reply_hook_runs_before_later_updates_and_one_value_columns_take_new_values() -> None:
    """A select's rows are installed before an update that follows its reply in
    the same read (else the update is lost); ``up`` and ``dynamic_addresses``
    (at most one value) carry their new value in update2, including the empty set."""
    from core.nb.tables.port import PortRow
    from core.ovsdb import OvsdbClient

    client = OvsdbClient("unix:/nonexistent")
    order: list[str] = []
    loop = asyncio.new_event_loop()
    try:
        fut: asyncio.Future[object] = loop.create_future()
        client._pending[1] = fut
        client._reply_hooks[1] = lambda result: order.append("reply")
        client.on_update = lambda updates: order.append("update")
        client._dispatch_all([{"id": 1, "result": [{"rows": []}], "error": None},
                              {"method": "update2", "id": None, "params": [None, {"Logical_Switch_Port": {}}]}])  # fmt: skip
        assert order == ["reply", "update"] and fut.done()
    finally:
        loop.close()

    p = Programmer("unix:/nonexistent", "hub1")
    p.lsp["x"] = PortRow("u-1", "docker/local", 1, True, "02:00:00:00:00:01 10.0.0.2")
    p.ports.by_uuid["u-1"] = "x"
    p.ports.apply("u-1", {"modify": {"dynamic_addresses": "02:00:00:00:00:01 10.0.1.2"}}, p.changes)
    assert p.lsp["x"].dyn == "02:00:00:00:00:01 10.0.1.2"  # A -> B, not A xor B
    p.ports.apply("u-1", {"modify": {"dynamic_addresses": ["set", []]}}, p.changes)
    assert p.lsp["x"].dyn == "02:00:00:00:00:01 10.0.1.2"  # an allocation that goes away keeps the last lock
    p.ports.apply("u-1", {"modify": {"up": ["set", []]}}, p.changes)
    assert p.lsp["x"].up is None
    p.ports.apply("u-1", {"modify": {"up": False}}, p.changes)
    assert p.lsp["x"].up is False



def test_update2_by_column_kind() -> None:
    assert apply_update2(Col.MAP, {"a": "1", "b": "2"}, ["map", [["a", "1"], ["c", "3"], ["b", "9"]]]) == {"b": "9", "c": "3"}
    assert apply_update2(Col.SET, ("x", "y"), ["set", ["y", "z"]]) == ("x", "z")
    assert apply_update2(Col.SET, ("x",), "y") == ("x", "y")  # a one-element diff comes as a bare atom
    assert apply_update2(Col.UUIDS, ("u1",), ["uuid", "u1"]) == ()
    assert apply_update2(Col.OPTIONAL, "tcp", "udp") == "udp"  # at most one value: the new value, not a toggle
    assert apply_update2(Col.OPTIONAL, True, ["set", []]) is None
    assert apply_update2(Col.SCALAR, 1000, 1001) == 1001
    assert decode(Col.UUIDS, ["set", [["uuid", "b"], ["uuid", "a"]]]) == ("a", "b")
    row = decode_row({"name": Col.SCALAR, "ports": Col.UUIDS, "other_config": Col.MAP, "up": Col.OPTIONAL}, {"name": "s"})
    assert row == {"name": "s", "ports": (), "other_config": {}, "up": None}  # update2 omits defaults


async def test_a_send_the_server_cuts_is_a_lost_connection() -> None:
    """A socket error while sending (the server closed mid-request) ends the
    session as ConnectionLost, which the writer handles, not as an OSError
    that would end the writer."""
    import pytest

    from core.ovsdb import ConnectionLost, OvsdbClient

    class CutWriter:
        def write(self, data: bytes) -> None:
            pass

        async def drain(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    client = OvsdbClient("unix:/nonexistent")
    client._writer = CutWriter()  # type: ignore[assignment]
    with pytest.raises(ConnectionLost, match="Broken pipe"):
        await client.transact([{"op": "comment", "comment": "x"}])
    assert not client._pending and not client._reply_hooks


def test_the_switch_store_knows_which_switch_holds_each_port() -> None:
    """A port's delete leaves its switch by one lookup (50k ports on one switch)."""
    from core.nb.tables import LS

    p = Programmer("unix:/nonexistent", "hub1")
    store = p.replica.stores[LS]
    row = {"name": "s/a", "ports": ["set", [["uuid", "p1"], ["uuid", "p2"]]], "external_ids": ["map", []]}
    p.replica.on_update({LS: {"ls-1": {"initial": row}}})
    assert store.parent_of == {"p1": "ls-1", "p2": "ls-1"}  # type: ignore[attr-defined]
    p.replica.on_update({LS: {"ls-1": {"modify": {"ports": ["set", [["uuid", "p2"], ["uuid", "p3"]]]}}}})
    assert store.parent_of == {"p1": "ls-1", "p3": "ls-1"}  # type: ignore[attr-defined]
    p.replica.on_update({LS: {"ls-1": {"delete": None}}})
    assert store.parent_of == {}  # type: ignore[attr-defined]


@given(st.sets(st.integers(0, 400), max_size=300), st.lists(st.integers(0, 400), max_size=30))
@settings(max_examples=200, derandomize=True)
def test_a_few_toggles_of_a_large_set_fold_like_any_other(cur: set[int], toggles: list[int]) -> None:
    """A set's update2 toggles members; a few toggles of a large set are folded in
    place in its order (a port joining a group of 50k), with the same result."""
    plain = tuple(sorted(f"u{x:03d}" for x in cur))
    diff = ["set", [["uuid", f"u{x:03d}"] for x in dict.fromkeys(toggles)]]
    assert apply_update2(Col.UUIDS, plain, diff) == tuple(sorted(set(plain) ^ {f"u{x:03d}" for x in toggles}))
