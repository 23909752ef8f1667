"""Row operations → one OVSDB transaction, and its reply → the replica.

References are written once for every kind (ovn-kubernetes' ``DoAfter`` +
``OnModelMutations``, in one place): a child inserted with its parent goes into
the parent's new row by ``named-uuid``, into an existing parent by one
``mutate … insert`` per parent and column; a deleted child leaves its parent
by a ``mutate … delete`` before the delete.  Members (a port group's ports)
are resolved the same way; a member known nowhere is left out (it joins when
its insert is recorded).  An updated row whose members change by less than a
quarter gets only the members that join and leave, as one ``mutate`` (a
default-deny group holds every isolated port); otherwise the whole column.  Every update, delete and mutate names the row's uuid
*and* the owner tag.  A kind without a unique name index is inserted behind a
``wait`` that no row of that name exists (a foreign row is then a conflict,
never a twin).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Container, Iterator
from typing import Any

from core.names import OWNER, owned
from core.nb.kinds import KINDS, ByExternalId, PlanOp, Ref
from core.nb.plan import View
from core.nb.store import Events, RowStore
from core.ovsdb.values import to_ovsdb


def absent(table: str, name: str) -> dict[str, Any]:
    """A ``wait`` failing the transaction if any row of ``table`` is named
    ``name``.  The hub inserts a named row only when its replica has none of
    that name, so a row found here is one it does not own."""
    return {"op": "wait", "table": table, "where": [["name", "==", name]], "columns": ["name"],
            "until": "==", "rows": [], "timeout": 0}  # fmt: skip


def absent_key(table: str, hub_id: str, key: str, value: str) -> dict[str, Any]:
    """A ``wait`` failing the transaction if a row of this hub in ``table``
    already carries ``external_ids:key=value`` (see ``kinds.ByExternalId``)."""
    return {"op": "wait", "table": table, "columns": ["external_ids"], "until": "==", "rows": [], "timeout": 0,
            "where": [["external_ids", "includes", ["map", [[OWNER, hub_id], [key, value]]]]]}  # fmt: skip


def with_parents(view: View, units: list[PlanOp]) -> tuple[list[PlanOp], list[PlanOp]]:
    """Rule 1 at commit time: split off inserts whose parent neither exists nor
    is inserted by ``units`` (its insert was refused, or a bisection split them)."""
    inserted: dict[str, set[str]] | None = None
    held: list[PlanOp] = []
    for u in units:
        kind = KINDS[u.table]
        if u.op != "insert" or kind.parent is None or not u.ref or u.ref in view.replica.stores[kind.parent.table]:
            continue
        if inserted is None:
            inserted = {}
            for o in units:
                if o.op == "insert":
                    inserted.setdefault(o.table, set()).add(o.name)
        if u.ref not in inserted.get(kind.parent.table, ()):
            held.append(u)
    if not held:
        return units, []
    drop = {id(u) for u in held}
    return [u for u in units if id(u) not in drop], held


def build(view: View, units: list[PlanOp]) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """Operations for ``units``, and {op index: unit index} of the inserts."""
    b = Build(view, units)
    for _ in b.steps(len(units) + 1):
        pass
    return b.ops, b.inserts


_dict, _tuple, _str = dict, tuple, str
#: columns an insert leaves out when empty: sets and maps whose schema minimum is 0, so that
#: empty is their default (ovn-nb.ovsschema; tests/unit/nb/test_txn_stream.py checks it)
OMIT_EMPTY: dict[str, frozenset[str]] = {"Logical_Switch_Port": frozenset({"addresses", "port_security", "options"})}


def _json_row(cols: dict[str, Any], defaults: Container[str] = ()) -> dict[str, Any]:
    """:func:`core.ovsdb.values.to_ovsdb` for the encoder only, in OVSDB's
    shortest forms: a set of one value is that value (RFC 7047 5.1: an
    ``<atom>`` is a set of exactly that element), a set ``("set", <the plain
    tuple itself>)``, a map ``("map", <its items>)``, and an empty set or map
    of a column in ``defaults`` (:data:`OMIT_EMPTY`: an insert's, whose
    default it is) is left out.  The same row, ~10% fewer bytes for NB to parse at
    50k ports, and no list copied per value."""
    out: dict[str, Any] = {}
    for k, v in cols.items():
        t = type(v)
        if t is _str:
            out[k] = v
        elif t is _tuple:
            n = len(v)
            if n == 1 and type(v[0]) is _str:
                out[k] = v[0]
            elif n or k not in defaults:
                out[k] = ("set", v)
        elif t is _dict:
            if v or k not in defaults:
                out[k] = ("map", tuple(v.items()))
        elif isinstance(v, dict | tuple):  # (a subclass: as to_ovsdb has it)
            out[k] = to_ovsdb({k: v})[k]
        else:
            out[k] = v
    return out


#: an insert of a request already written (``Build.sent``)
_SENT_INSERT: dict[str, Any] = {"op": "insert"}


def streamable(units: list[PlanOp]) -> bool:
    """Whether :meth:`Build.chunks` can send ``units``' operations as they are
    built: nothing leaves a parent (those ``mutate … delete`` must come
    first, and are known only at the end)."""
    return not any(u.op == "delete" or u.detach for u in units)


class Build:
    """:func:`build`, one step at a time.  ``ops`` and ``inserts`` are complete
    once :meth:`steps` (or :meth:`chunks`) is exhausted."""

    def __init__(self, view: View, units: list[PlanOp], *, stream: bool = False) -> None:
        self.view = view
        self.units = units
        #: in the order they are sent
        self.ops: list[dict[str, Any]] = []
        self.inserts: dict[int, int] = {}
        self.stream = stream
        self._sent = 0

    def sent(self) -> None:
        """The request is written: its inserts are not needed any more (an
        error names its operation by index; the ``wait`` ops it may read are
        kept), so they are let go while NB works rather than after its reply."""
        ops = self.ops
        for i in self.inserts:
            ops[i] = _SENT_INSERT

    def chunks(self, size: int) -> Iterator[list[dict[str, Any]]]:
        """The operations in sending order, about ``size`` units' worth at a
        time, each chunk final when it is yielded (``stream``: a transaction
        is sent while the rest of it is built).  An insert that children of
        this transaction attach to (a switch's ``ports``) is held back to the
        end, after them; a named-uuid may be referred to before or after its
        insert, so the rows are the same as :func:`build`'s."""
        assert self.stream and streamable(self.units)
        for _ in self.steps(size):
            if len(self.ops) > self._sent:
                yield self.ops[self._sent:]
                self._let_go(self._sent, len(self.ops))  # (encoded and written by now)
                self._sent = len(self.ops)
        if len(self.ops) > self._sent:
            yield self.ops[self._sent:]
            self._let_go(self._sent, len(self.ops))
            self._sent = len(self.ops)

    def _let_go(self, start: int, end: int) -> None:
        """The inserts of ``ops[start:end]`` are sent: not held any more (a
        batch's request is then never in memory whole, only its chunk)."""
        ops, inserts = self.ops, self.inserts
        for i in range(start, end):
            if i in inserts:
                ops[i] = _SENT_INSERT

    def steps(self, every: int) -> Iterator[None]:
        """Build, pausing every ``every`` units."""
        view, units = self.view, self.units
        stores = view.replica.stores
        owner = owned(view.hub_id)[0]
        ops = self.ops
        inserts = self.inserts
        refs: dict[tuple[str, str], str] = {}
        new_rows: dict[tuple[str, str], dict[str, Any]] = {}
        adds: dict[tuple[str, str, str], list[Any]] = {}  # (table, uuid, column) -> refs to insert, at the end
        removes: dict[tuple[str, str, str], list[Any]] = {}  # ... to delete, first
        counter = itertools.count()
        # streaming: the inserts children may still attach to go last (unit index, op)
        held: list[tuple[int, dict[str, Any]]] = []
        parents = {k.parent.table for k in KINDS.values() if k.parent is not None}  # (what may be attached to)
        hold = parents if self.stream else set()

        def where(uuid: str, table: str = "", name: str = "") -> list[Any]:
            if table and KINDS[table].owner_in_name:
                return [["_uuid", "==", ["uuid", uuid]], ["name", "==", name]]
            return [["_uuid", "==", ["uuid", uuid]], owner]

        def attach(p: Ref, parent: str, ref: list[str]) -> None:
            op = new_rows.get((p.table, parent))
            if op is not None:
                row = op["row"]
                cur = row.get(p.column)
                if type(cur) is not list or len(cur) != 2 or cur[0] != "set" or type(cur[1]) is not list:
                    # (absent, or one of _json_row's forms: a set's tuple, a set of one as its atom)
                    had = [] if cur is None else [*cur[1]] if type(cur) is _tuple and cur[:1] == ("set",) else [cur]
                    cur = row[p.column] = ["set", had]
                cur[1].append(ref)
                return
            puuid = stores[p.table].uuid(parent)
            if puuid is not None:
                adds.setdefault((p.table, puuid, p.column), []).append(ref)

        def parent_of(child: str, p: Ref) -> dict[str, str]:
            pstore = stores[p.table]
            return pstore.parent_of if isinstance(pstore, RowStore) else {}

        pause = every
        for ui, u in enumerate(units):
            if ui == pause:
                pause += every
                yield
            kind = KINDS[u.table]
            store = stores[u.table]
            p = kind.parent
            if u.op == "delete":
                uuid = store.uuid(u.name)
                if uuid is None:
                    continue
                if p is not None and p.strong:
                    puuid = parent_of(u.table, p).get(uuid)
                    if puuid is not None:
                        removes.setdefault((p.table, puuid, p.column), []).append(["uuid", uuid])
                elif p is not None:
                    pstore = stores[p.table]
                    for k in pstore.keys():
                        r = pstore.row(k)
                        if r is not None and uuid in r.cols.get(p.column, ()):
                            removes.setdefault((p.table, r.uuid, p.column), []).append(["uuid", uuid])
                ops.append({"op": "delete", "table": u.table, "where": where(uuid, u.table, u.name)})
                continue
            row = _json_row(u.columns, OMIT_EMPTY.get(u.table, ()) if u.op == "insert" else ())
            m = kind.members
            if m is not None and (u.op == "insert" or not (u.joins or u.leaves)):
                mstore = stores[m.table]
                row[m.column] = ["set", [
                    ["named-uuid", refs[(m.table, x)]] if (m.table, x) in refs else ["uuid", mstore.uuid(x)]
                    for x in u.members if (m.table, x) in refs or x in mstore
                ]]  # fmt: skip
            if u.op == "insert":
                if kind.guard_name:
                    ops.append(absent(u.table, u.name))
                elif isinstance(kind.key, ByExternalId):
                    ops.append(absent_key(u.table, view.hub_id, kind.key.external_id, kind.key(u.columns)))
                ref = f"r{next(counter)}"
                op = {"op": "insert", "table": u.table, "row": row, "uuid-name": ref}
                if u.table in hold:
                    held.append((ui, op))
                else:
                    inserts[len(ops)] = ui
                    ops.append(op)
                refs[(u.table, u.name)] = ref
                if u.table in parents:
                    new_rows[(u.table, u.name)] = op
                if p is not None:
                    for parent in u.parents:
                        attach(p, parent, ["named-uuid", ref])
                continue
            uuid = store.uuid(u.name)
            if uuid is None:  # deleted under us since it was planned (between two halves of a bisection):
                continue  # its delete notification marked it dirty again
            if row:
                ops.append({"op": "update", "table": u.table, "where": where(uuid, u.table, u.name), "row": row})
            if m is not None and (u.joins or u.leaves):  # members: only what changed
                mstore = stores[m.table]
                joins: list[list[str]] = []
                for x in u.joins:
                    named = refs.get((m.table, x))
                    if named is not None:
                        joins.append(["named-uuid", named])
                    elif (j := mstore.uuid(x)) is not None:
                        joins.append(["uuid", j])
                mutations: list[list[Any]] = [[m.column, "delete", ["set", [["uuid", x] for x in u.leaves]]]] if u.leaves else []
                if joins:
                    mutations.append([m.column, "insert", ["set", joins]])
                if mutations:
                    ops.append({"op": "mutate", "table": u.table, "where": where(uuid, u.table, u.name), "mutations": mutations})
            if p is not None and not p.strong:
                for parent in u.parents:
                    attach(p, parent, ["uuid", uuid])  # inserting a present member is a no-op
                for puuid in u.detach:
                    removes.setdefault((p.table, puuid, p.column), []).append(["uuid", uuid])
        for ui, op in held:
            inserts[len(ops)] = ui
            ops.append(op)
        if removes:
            assert not self.stream, "a streamed transaction leaves no parent (streamable)"
            first = [
                {"op": "mutate", "table": t, "where": where(uuid), "mutations": [[col, "delete", ["set", vals]]]}
                for (t, uuid, col), vals in removes.items()
            ]
            self.inserts = {i + len(first): ui for i, ui in inserts.items()}
            ops[:0] = first
        ops.extend(
            {"op": "mutate", "table": t, "where": where(uuid), "mutations": [[col, "insert", ["set", vals]]]}
            for (t, uuid, col), vals in adds.items()
        )


def record(view: View, units: list[PlanOp], inserts: dict[int, int], result: list[Any], ev: Events) -> list[tuple[str, str]]:
    """Put the rows this transaction inserted into the replica (the monitor
    does not echo inserts); returns the (table, key) of rows that hold one of
    them as a member and must now join it."""
    return Recording(view, units, inserts).finish(result, ev)


class Recording:
    """:func:`record` in two parts: what needs no reply is made here (the
    writer makes it while NB works on the transaction), :meth:`finish` puts
    the uuids of the reply in."""

    def __init__(self, view: View, units: list[PlanOp], inserts: dict[int, int]) -> None:
        self.view = view
        self.units = units
        self.inserts = inserts
        stores = view.replica.stores
        #: op index of each insert, in order, and its unit
        self.indexes = list(inserts)
        order = [units[ui] for ui in inserts.values()]
        #: runs of one table: (table, first position, end, units, names, the rows the store prepared or None)
        self.runs: list[tuple[str, int, int, list[PlanOp], list[str], list[Any] | None]] = []
        at: dict[str, dict[str, int]] = {}  # table -> key -> its position among the inserts
        pos = 0
        for table, run in itertools.groupby(order, key=_TABLE):
            us = list(run)
            names = [u.name for u in us]
            made = stores[table].prepared_rows(us) if KINDS[table].members is None else None
            self.runs.append((table, pos, pos + len(us), us, names, made))
            at.setdefault(table, {}).update(zip(names, range(pos, pos + len(us)), strict=True))
            pos += len(us)
        # children inserted into (or attached to) a parent inserted here: not echoed either.
        # Each child is its position among the inserts, or (table, key) of a row that exists.
        into: dict[tuple[str, str, str], list[int | tuple[str, str]]] = {}
        for (table, op), run in itertools.groupby(units, key=_table_op):
            p = KINDS[table].parent
            if p is None or op == "delete" or (op == "update" and p.strong):
                continue
            parents_new = at.get(p.table)
            if not parents_new:
                continue
            mine = at.get(table, {})
            last, children = "", []  # (a run's children mostly share their parent: its list is kept at hand)
            for u in run:
                for ref in (u.ref, *u.attach) if u.attach else (u.ref,) if u.ref else ():  # (u.parents)
                    if ref not in parents_new:
                        continue
                    if ref != last:
                        last, children = ref, into.setdefault((p.table, ref, p.column), [])
                    x = mine.get(u.name)
                    children.append(x if x is not None else (table, u.name))
        #: (parent table, key, column) -> its children: a range of the inserts, or each one
        self.into: list[tuple[tuple[str, str, str], range | list[int | tuple[str, str]]]] = []
        for k, xs in into.items():
            first = xs[0]
            span = range(first, first + len(xs)) if isinstance(first, int) else None
            self.into.append((k, span if span is not None and xs == list(span) else xs))

    def finish(self, result: list[Any], ev: Events) -> list[tuple[str, str]]:
        view = self.view
        stores = view.replica.stores
        uuids: list[str] = [result[i]["uuid"][1] for i in self.indexes]
        new_uuid: dict[str, dict[str, str]] = {}  # table -> key -> the uuid NB gave it
        for table, a, b, _us, names, _made in self.runs:
            new_uuid.setdefault(table, {}).update(zip(names, uuids[a:b], strict=True))
        for table, a, b, us, names, made in self.runs:
            kind = KINDS[table]
            store = stores[table]
            if kind.members is None:
                store.record_inserts(us, names, uuids[a:b], made, ev)
                continue
            mt, mstore = kind.members.table, stores[kind.members.table]
            fresh = new_uuid.get(mt, {})
            for u, uuid in zip(us, uuids[a:b], strict=True):
                cols = dict(u.columns)
                cols[kind.members.column] = tuple(sorted(
                    v for x in u.members if (v := fresh.get(x) or mstore.uuid(x)) is not None
                ))  # fmt: skip
                store.record_insert(u.name, uuid, cols, ev)
        for (t, k, col), xs in self.into:
            pstore = stores[t]
            if not isinstance(pstore, RowStore):
                continue
            if isinstance(xs, range):
                kids = uuids[xs.start:xs.stop]
            else:
                kids = []
                for x in xs:
                    child = uuids[x] if isinstance(x, int) else stores[x[0]].uuid(x[1])
                    if child is not None:
                        kids.append(child)
            pstore.add_children(k, col, kids)
        joined: list[tuple[str, str]] = []
        holders = view.desired.holders
        if holders:  # (no row holds members: nothing joins)
            for table, keys in new_uuid.items():
                for key in keys:
                    joined.extend(holders.get((table, key), ()))
        return joined


_TABLE = operator.attrgetter("table")


def _table_op(u: PlanOp) -> tuple[str, str]:
    return u.table, u.op
