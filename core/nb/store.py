"""Replica stores: the hub's own rows of one table, folded from update2.

:class:`RowStore` keeps whole rows (plain columns) keyed by their kind's key;
it serves every kind but ports, whose store (``tables/port.py``) keeps a
compact digest per row because there are 50k of them.  Both implement
:class:`Store`, which is all the generic rooms see.  A store never writes: it
reports what changed through :class:`Events`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from core.names import SOURCE
from core.nb.kinds import PlanOp, RowKind
from core.ovsdb.values import Col, apply_update2, decode_row, py_set

FABRIC = "ovn-hub/fabric"  # core.model.fabric.FABRIC_SOURCE
_DEFAULTS: dict[Col, Any] = {Col.OPTIONAL: None, Col.SET: (), Col.MAP: {}, Col.UUIDS: ()}


class XRow(msgspec.Struct, gc=False):
    """A hub-owned row in the replica (plain column values)."""

    uuid: str
    cols: dict[str, Any]


class Events(Protocol):
    """What a store tells the programmer (the replica's callbacks)."""

    def mark_dirty(self, table: str, key: str) -> None: ...
    def deleted(self, kind: RowKind, cols: dict[str, Any]) -> None: ...
    def parent_changed(self, table: str, key: str) -> None: ...
    def up(self, key: str) -> None: ...
    def allocated(self, port: str) -> None: ...
    def warn(self, message: str) -> None: ...


class Store(Protocol):
    kind: RowKind

    def clear(self) -> None: ...
    def __contains__(self, key: object) -> bool: ...
    def __len__(self) -> int: ...
    def keys(self) -> Iterable[str]: ...
    def uuid(self, key: str) -> str | None: ...
    def uuids(self, keys: Iterable[str]) -> list[str | None]:
        """:meth:`uuid` of each key, in order (a default-deny group holds every isolated port)."""
        ...
    def key_of(self, uuid: str) -> str | None: ...
    def source(self, key: str) -> str: ...
    def row(self, key: str) -> XRow | None: ...
    def apply(self, uuid: str, change: dict[str, Any], ev: Events) -> None: ...
    def record_insert(self, key: str, uuid: str, cols: dict[str, Any], ev: Events) -> None:
        """A row this process inserted (inserts are not echoed by the monitor)."""
    def prepared_rows(self, units: list[PlanOp]) -> list[Any] | None:
        """The rows made for ``units``' inserts while NB works on them (None: none made)."""
        ...
    def record_inserts(self, units: list[PlanOp], names: list[str], uuids: list[str], made: list[Any] | None,
                       ev: Events) -> None:
        """:meth:`record_insert` of each insert (its name, the uuid NB gave its
        row; ``made``: :meth:`prepared_rows` of them)."""
    def committed(self, unit: PlanOp) -> None: ...


class _HasUuid(Protocol):
    uuid: str


R = TypeVar("R", bound=_HasUuid)


class KeyedRows(Generic[R]):
    """Rows by key, and keys by uuid: what every store answers the same way."""

    def __init__(self, kind: RowKind) -> None:
        self.kind = kind
        self.rows: dict[str, R] = {}
        self.by_uuid: dict[str, str] = {}

    def clear(self) -> None:
        self.rows.clear()
        self.by_uuid.clear()

    def __contains__(self, key: object) -> bool:
        return key in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def keys(self) -> Iterable[str]:
        return self.rows.keys()

    def uuid(self, key: str) -> str | None:
        r = self.rows.get(key)
        return r.uuid if r is not None else None

    def uuids(self, keys: Iterable[str]) -> list[str | None]:
        get = self.rows.get
        return [r.uuid if (r := get(k)) is not None else None for k in keys]

    def key_of(self, uuid: str) -> str | None:
        return self.by_uuid.get(uuid)


class RowStore(KeyedRows[XRow]):
    def __init__(self, kind: RowKind) -> None:
        super().__init__(kind)
        # columns whose change means "re-check the rows attached here" (a weak child's parent column)
        self._attach_cols = frozenset(
            k.parent.column for k in _kinds() if k.parent is not None and k.parent.table == kind.table and not k.parent.strong
        )
        # columns holding strong children (a switch's ports, a port group's ACLs), and which row holds each child:
        # a child's delete leaves its parent by one lookup, even with 50k ports on one switch
        self._child_cols = frozenset(
            k.parent.column for k in _kinds() if k.parent is not None and k.parent.table == kind.table and k.parent.strong
        )
        self.parent_of: dict[str, str] = {}  # child uuid -> parent uuid
        #: a kind owned by name: only rows whose name starts with this are the hub's
        self.name_prefix = ""

    def clear(self) -> None:
        super().clear()
        self.parent_of.clear()

    def _hold(self, uuid: str, children: Iterable[str]) -> None:
        for c in children:
            self.parent_of[c] = uuid

    def _release(self, uuid: str, children: Iterable[str]) -> None:
        for c in children:
            if self.parent_of.get(c) == uuid:
                del self.parent_of[c]

    def add_children(self, key: str, column: str, uuids: Iterable[str]) -> None:
        """Children inserted into (or attached to) a row this same transaction
        inserted: the monitor does not echo the insert."""
        row = self.rows.get(key)
        if row is None:
            return
        new = tuple(uuids)
        row.cols[column] = tuple(sorted({*row.cols.get(column, ()), *new}))
        if column in self._child_cols:
            self._hold(row.uuid, new)

    def share_children(self, canonical: dict[str, str]) -> None:
        """Hold the children's own uuid strings (``canonical``: uuid -> the
        child store's copy) in the child columns and the parent index: a
        switch's 50k port uuids are then not a second copy of the port
        replica's (~4 MB at 50k).  Equal values: nothing else changes."""
        if not self._child_cols:
            return
        for row in self.rows.values():
            for col in self._child_cols:
                vals = row.cols.get(col)
                if vals:
                    row.cols[col] = tuple(canonical.get(u, u) for u in vals)
        self.parent_of.clear()  # rebuilt from the rows (a dict keeps the key object it first got)
        for row in self.rows.values():
            for col in self._child_cols:
                self._hold(row.uuid, row.cols.get(col, ()))

    def source(self, key: str) -> str:
        r = self.rows.get(key)
        if r is None:
            return ""
        if self.name_prefix:
            return FABRIC  # rows owned by name are the fabric's
        return str(r.cols.get("external_ids", {}).get(SOURCE, ""))

    def row(self, key: str) -> XRow | None:
        return self.rows.get(key)

    def put(self, uuid: str, cols: dict[str, Any]) -> str:
        """Index a row by its key.  A second owned row with the same key
        (someone copied it) gets a key nothing desires, so it is collected."""
        key = self.kind.key(cols)
        if not key or (key in self.rows and self.rows[key].uuid != uuid):
            key = f"?{uuid}"
        self.rows[key] = XRow(uuid, cols)
        self.by_uuid[uuid] = key
        for col in self._child_cols:
            self._hold(uuid, cols.get(col, ()))
        return key

    def apply(self, uuid: str, change: dict[str, Any], ev: Events) -> None:
        """Fold one update2 change.  Every modify marks the row dirty: the
        diff then decides whether it differs from desired (our own updates'
        echoes come back equal)."""
        table = self.kind.table
        if "delete" in change:
            key = self.by_uuid.pop(uuid, None)
            if key is not None and key in self.rows and self.rows[key].uuid == uuid:
                old = self.rows.pop(key)
                for col in self._child_cols:
                    self._release(uuid, old.cols.get(col, ()))
                ev.mark_dirty(table, key)
                ev.deleted(self.kind, old.cols)
            return
        row = change.get("initial") or change.get("insert")
        if row is not None:
            cols = decode_row(self.kind.columns, row)
            if not self.name_prefix or str(cols.get("name", "")).startswith(self.name_prefix):
                self.put(uuid, cols)
            return
        diff = change.get("modify")
        key = self.by_uuid.get(uuid)
        if diff is None or key is None:
            return
        cur = self.rows[key]
        for col, val in diff.items():
            kind = self.kind.columns.get(col)
            if kind is not None:
                before = cur.cols.get(col)
                cur.cols[col] = apply_update2(kind, before, val)
                if col in self._child_cols:  # the diff lists the children toggled (a switch holds 50k)
                    now = cur.cols[col]
                    toggled = py_set(val) if val != ["set", []] else ()
                    came = [c for c in toggled if _holds(now, c)]
                    self._release(uuid, [c for c in toggled if not _holds(now, c)])
                    self._hold(uuid, came)
        if self._attach_cols.intersection(diff):  # (maybe someone) detached a row attached here
            ev.parent_changed(table, key)
        ev.mark_dirty(table, key)

    def record_insert(self, key: str, uuid: str, cols: dict[str, Any], ev: Events) -> None:
        full = dict(cols)
        for col, c in self.kind.columns.items():  # as a decoded row has them
            if col not in full and c in _DEFAULTS:
                full[col] = _DEFAULTS[c]
        self.put(uuid, full)

    def prepared_rows(self, units: list[PlanOp]) -> list[Any] | None:
        return None

    def record_inserts(self, units: list[PlanOp], names: list[str], uuids: list[str], made: list[Any] | None,
                       ev: Events) -> None:
        for u, uuid in zip(units, uuids, strict=True):
            self.record_insert(u.name, uuid, u.columns, ev)

    def committed(self, unit: PlanOp) -> None:
        return None


def _holds(column: tuple[str, ...], value: str) -> bool:
    """``value`` is in ``column`` (a plain set: a sorted tuple)."""
    i = bisect.bisect_left(column, value)
    return i < len(column) and column[i] == value


def _kinds() -> Iterable[RowKind]:
    from core.nb.kinds import KINDS

    return KINDS.values()
