"""``core.ovsdb.values``: the typed reader of a parents' monitor reply equals the plain decode."""

from __future__ import annotations

import json
import uuid as uuidlib

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from core.ovsdb.values import Col, decode, updates_decoder, uuid_set

_uuids = st.lists(st.uuids().map(str), max_size=40, unique=True)


def _json(value: object, spaced: bool) -> bytes:
    return json.dumps(value, separators=(", ", ": ") if spaced else (",", ":")).encode()


@settings(max_examples=300, deadline=None)
@given(_uuids, st.booleans(), st.booleans())
def test_a_uuid_set_read_raw_equals_the_plain_decode(members: list[str], single: bool, spaced: bool) -> None:
    if single and len(members) == 1:
        value: object = ["uuid", members[0]]
    else:
        value = ["set", [["uuid", u] for u in members]]
    canonical = {u: "".join(u) for u in members[::2]}
    got = uuid_set(msgspec.Raw(_json(value, spaced)), canonical)
    assert got == decode(Col.UUIDS, value)
    assert got is not None and all(u is canonical[u] for u in got if u in canonical)


def test_what_is_not_only_uuid_atoms_is_left_to_the_plain_decode() -> None:
    u = str(uuidlib.uuid4())
    for value in (["set", [["named-uuid", "row1"]]], ["set", [["uuid", u], "x"]], "text", 3, ["set", [["uuid", "short"]]]):
        assert uuid_set(msgspec.Raw(_json(value, False)), {}) is None, value
    reader = updates_decoder({"Logical_Switch": {"ports"}}, {})
    body = {"Logical_Switch": {"s": {"initial": {"name": "n", "ports": ["set", [["named-uuid", "row1"]]]}}},
            "ACL": {"a": {"delete": None}, "b": {"modify": {"priority": 3}}}}  # fmt: skip
    assert reader(msgspec.Raw(_json(body, False))) == body
