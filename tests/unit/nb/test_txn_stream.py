"""A transaction built as it is sent (``txn.Build.chunks``) holds the same
operations as ``txn.build``'s, in an order whose named-uuids NB resolves alike."""

from __future__ import annotations

from typing import Any

import msgspec

from core.model import Snapshot
from core.nb import Programmer, txn
from core.nb.tables import LS, LSP
from tests.unit.nb.test_plan import HUB, NET, SRC, ep, plan


def _prog(n: int) -> Programmer:
    p = Programmer("unix:/nonexistent", HUB)
    p.apply(Snapshot(source=SRC, objects=(NET, *(ep(f"e{i}", f"10.1.0.{i + 2}") for i in range(n)))))
    return p


def _canon(op: dict[str, Any]) -> str:
    return repr(sorted((k, v) for k, v in op.items() if k != "uuid-name"))


def test_streamed_chunks_hold_build_s_operations_with_the_switch_after_its_ports() -> None:
    p = _prog(7)
    units = plan(p)
    assert txn.streamable(units)
    ops, inserts = txn.build(p.view, units)
    b = txn.Build(p.view, units, stream=True)
    chunks = list(b.chunks(3))
    assert len(chunks) > 2 and all(chunks)
    sent = [op for c in chunks for op in c]
    assert len(sent) == len(b.ops)
    # once a chunk is sent its inserts are let go: the request is never held whole
    assert all(b.ops[i] is not op for i, op in enumerate(sent) if op["op"] == "insert")
    assert all(b.ops[i] is op for i, op in enumerate(sent) if op["op"] != "insert")
    assert sorted(map(_canon, sent)) == sorted(map(_canon, ops))  # (uuid-names: the same per unit)
    # the switch's insert goes after the ports it names; its guard still before it
    kinds = [(op["op"], op.get("table")) for op in sent]
    assert kinds[0] == ("wait", LS) and kinds[-1] == ("insert", LS) and kinds.count(("insert", LSP)) == 7
    ls = sent[-1]["row"]["ports"][1]
    assert sorted(r[1] for r in ls) == sorted(op["uuid-name"] for op in sent if op.get("table") == LSP)
    # every insert's index names its unit, as build's does
    for i, ui in b.inserts.items():
        assert sent[i]["op"] == "insert" and sent[i]["row"]["name"] == units[ui].name
    assert sorted(inserts.values()) == sorted(b.inserts.values())


def test_a_build_without_stream_is_in_plan_order() -> None:
    p = _prog(3)
    units = plan(p)
    ops, _ = txn.build(p.view, units)
    assert [(op["op"], op["table"]) for op in ops] == [("wait", LS), ("insert", LS)] + [("insert", LSP)] * 3


def test_a_batch_leaving_a_parent_is_not_streamed() -> None:
    from core.nb.kinds import PlanOp

    assert not txn.streamable([PlanOp("delete", LSP, "x")])
    assert not txn.streamable([PlanOp("update", "Load_Balancer", "x", detach=("u",))])


def test_sent_frees_the_rows_and_keeps_what_an_error_reads() -> None:
    p = _prog(2)
    units = plan(p)
    b = txn.Build(p.view, units)
    for _ in b.steps(len(units) + 1):
        pass
    first = b.ops[1]
    b.sent()
    assert all("row" not in op for op in b.ops if op["op"] == "insert")
    assert first["row"]["name"] == units[0].name  # (let go, not changed: a caller holding it sees it whole)
    assert b.ops[0]["op"] == "wait" and b.ops[0]["where"] == [["name", "==", units[0].name]]


def test_an_insert_is_encoded_short_and_means_the_same_row() -> None:
    """A set of one as its atom, an insert's empty set or map left out (its
    default), an update's kept (there it would mean "unchanged")."""
    from core.nb.txn import _json_row
    from core.ovsdb.values import to_ovsdb

    cols = {"name": "p", "type": "", "addresses": ("m 10.0.0.1",), "port_security": (), "options": {},
            "external_ids": {"a": "b"}, "tags": ("x", "y")}  # fmt: skip
    short = _json_row(cols, txn.OMIT_EMPTY[LSP])
    assert short == {"name": "p", "type": "", "addresses": "m 10.0.0.1", "external_ids": ("map", (("a", "b"),)),
                     "tags": ("set", ("x", "y"))}  # fmt: skip
    whole = _json_row(cols)
    assert whole["port_security"] == ("set", ()) and whole["options"] == ("map", ())
    assert msgspec.json.encode(whole) == msgspec.json.encode({**to_ovsdb(cols), "addresses": "m 10.0.0.1"})


def test_the_columns_an_insert_leaves_out_default_to_empty() -> None:
    import json
    from pathlib import Path

    import pytest

    schema = next((p for p in (Path("/usr/share/ovn/ovn-nb.ovsschema"), Path("/usr/local/share/ovn/ovn-nb.ovsschema"))
                   if p.exists()), None)  # fmt: skip
    if schema is None:
        pytest.skip("no ovn-nb.ovsschema")
    tables = json.loads(schema.read_text())["tables"]
    for table, cols in txn.OMIT_EMPTY.items():
        for c in cols:
            ty = tables[table]["columns"][c]["type"]
            assert isinstance(ty, dict) and ty.get("min", 1) == 0, (table, c, ty)
