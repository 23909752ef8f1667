"""OVSDB values <-> plain Python, and the one ``update2`` applier.

Plain forms: a map is a ``dict``, a set a sorted ``tuple`` (uuids unwrapped to
their strings), an optional (a set of at most one value) the value or None, a
scalar itself.  Every replica in the hub (the programmer's tables, the node's
NB view) decodes rows and folds ``update2`` diffs through these functions, by
the column's :class:`Col` — never by guessing from the current value.
"""

from __future__ import annotations

import bisect
import enum
import re
from collections.abc import Callable, Container, Mapping
from typing import Any

import msgspec


class Col(enum.Enum):
    """How a column is shaped, which decides how update2 diffs it
    (ovsdb-server(7), "update2 notification")."""

    SCALAR = 1  #: exactly one value: a modify carries the new value
    OPTIONAL = 2  #: a set of at most one value: a modify carries the new value (["set", []] = cleared)
    SET = 3  #: a set of atoms: a modify lists the members to toggle
    MAP = 4  #: a map: a modify lists pairs to toggle (same value: removed; else set)
    UUIDS = 5  #: a set of references: like SET, members are uuids


_DEFAULTS: dict[Col, Any] = {Col.OPTIONAL: None, Col.SET: (), Col.MAP: {}, Col.UUIDS: ()}


def to_ovsdb(cols: Mapping[str, Any]) -> dict[str, Any]:
    """Plain Python column values → OVSDB JSON values (dict → map, tuple → set)."""
    out: dict[str, Any] = {}
    for k, v in cols.items():
        if isinstance(v, dict):
            out[k] = ["map", list(v.items())]
        elif isinstance(v, tuple):
            out[k] = ["set", list(v)]
        else:
            out[k] = v
    return out


def omap(d: dict[str, str]) -> Any:
    return ["map", sorted(d.items())]


def py_set(value: Any) -> tuple[Any, ...]:
    """OVSDB set (or a single atom) → tuple of atoms (uuids as plain strings)."""
    if isinstance(value, list) and value and value[0] == "set":
        return tuple(_atom(v) for v in value[1])
    return (_atom(value),)


def py_map(value: Any) -> dict[str, str]:
    if isinstance(value, list) and value and value[0] == "map":
        return {k: v for k, v in value[1]}
    return {}


def _atom(v: Any) -> Any:
    if isinstance(v, list) and len(v) == 2 and v[0] in ("uuid", "named-uuid"):
        return v[1]
    return v


def decode(col: Col, value: Any) -> Any:
    """One column of an update2 ``initial``/``insert`` row (or a select) → plain."""
    if col is Col.MAP:
        return py_map(value)
    if col is Col.SET or col is Col.UUIDS:
        if isinstance(value, tuple):  # plain already (:func:`updates_decoder`); JSON arrays decode as lists
            return value
        return tuple(sorted(py_set(value))) if value != ["set", []] else ()
    if col is Col.OPTIONAL:
        vals = py_set(value) if value != ["set", []] else ()
        return vals[0] if vals else None
    return _atom(value)


def decode_row(columns: Mapping[str, Col], row: Mapping[str, Any]) -> dict[str, Any]:
    """A row → plain columns; columns update2 omitted (at their default) are
    filled in, scalars excepted (their default depends on their type)."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        col = columns.get(k)
        out[k] = decode(col, v) if col is not None else v
    for k, col in columns.items():
        if k not in out and col in _DEFAULTS:
            out[k] = _DEFAULTS[col]
    return out


def apply_update2(col: Col, cur: Any, diff: Any) -> Any:
    """Fold one update2 ``modify`` column into its plain current value."""
    if col is Col.MAP:
        d = dict(cur or {})
        for k, v in diff[1] if isinstance(diff, list) and diff and diff[0] == "map" else ():
            if d.get(k) == v:
                del d[k]
            else:
                d[k] = v
        return d
    if col is Col.SET or col is Col.UUIDS:
        members = py_set(diff) if diff != ["set", []] else ()
        if cur and len(members) * 16 < len(cur):
            # a few toggles of a large set (a port joins a group of 50k): in place in its order
            out = list(cur)
            for m in set(members):
                i = bisect.bisect_left(out, m)
                if i < len(out) and out[i] == m:
                    del out[i]
                else:
                    out.insert(i, m)
            return tuple(out)
        return tuple(sorted(set(cur or ()) ^ set(members)))
    return decode(col, diff)


_UUID_ATOM = re.compile(rb'\[\s*"uuid"\s*,\s*"([0-9a-fA-F-]{36})"\s*\]')
_changes = msgspec.json.Decoder(dict[str, dict[str, dict[str, msgspec.Raw]]])
_row = msgspec.json.Decoder(dict[str, msgspec.Raw])


def uuid_set(raw: Any, canonical: Mapping[str, str]) -> tuple[str, ...] | None:
    """A set-of-uuids column's raw JSON (bytes-like) → its plain form, each
    uuid the string ``canonical`` holds for it (the one decoded is dropped at
    once); None if it is not only uuid atoms."""
    get = canonical.get
    out: list[str] = []
    for m in _UUID_ATOM.finditer(raw):
        u = m.group(1).decode()
        out.append(get(u, u))
    # what is left without the atoms (commas, the set's brackets) must be a set's frame or nothing
    rest = _UUID_ATOM.sub(b"", raw).translate(None, b" \t\n\r,")
    if rest != b'["set"[]]' and not (rest == b"" and len(out) == 1):
        return None
    out.sort()
    return tuple(out)


def updates_decoder(uuid_cols: Mapping[str, Container[str]], canonical: Mapping[str, str]) -> Callable[[Any], Any]:
    """A decoder of ``table-updates2`` (a monitor's reply or notification)
    whose ``uuid_cols`` (table → columns) come plain already (:func:`uuid_set`),
    every other value as :func:`msgspec.json.decode` gives it.  A switch's 100k
    port uuids then cost their tuple, not ~28 MB of decoded JSON (a list, an
    ``"uuid"`` and a string per member) before the replica shares them."""

    def decode_updates(raw: Any) -> Any:
        out: dict[str, Any] = {}
        for table, rows in _changes.decode(raw).items():
            plain = uuid_cols.get(table, ())
            t: dict[str, Any] = {}
            for uuid, change in rows.items():
                c: dict[str, Any] = {}
                for how, body in change.items():
                    if how not in ("initial", "insert") or not plain:
                        c[how] = msgspec.json.decode(body)
                        continue
                    row: dict[str, Any] = {}
                    for col, value in _row.decode(body).items():
                        got = uuid_set(value, canonical) if col in plain else None
                        row[col] = got if got is not None else msgspec.json.decode(value)
                    c[how] = row
                t[uuid] = c
            out[table] = t
        return out

    return decode_updates
