"""desired - actual, as an ordered list of row operations.  Pure: reads the
desired state and the replica, writes nothing.

:func:`diff` is one row; :func:`plan_batch` is a batch with the rules of
``core/nb/kinds.py`` applied once for every kind: the parents a batch needs
pulled in, deletes deferred while an owned row still refers to theirs, and
the write order.  :func:`plan_all` is everything the writer would do now
(``hubctl plan``).

Port groups hold hundreds to 50k members, and a churning cluster moves a few
of them in several groups per event, so a group's members are not diffed whole
while it is known in sync (:class:`InSync`): its column, by identity, held
exactly its wanted members; the deriver says what joined and left since
(:class:`~core.nb.kinds.Members`), and only those are looked up.  After a
commit, :func:`as_written` checks NB's echo of the row against what was written
(the column as it was with the change applied), which keeps the group in sync
and spares the echo a diff; anything else (someone else's change, a port
re-created, a member without a port) goes through the whole diff.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.nb.desired import DesiredState
from core.nb.kinds import KINDS, DesiredRow, Members, PlanOp, RowKind
from core.nb.replica import NbReplica
from core.nb.store import XRow
from core.nb.tables import port

log = logging.getLogger("ovn_hub.programmer")


@dataclass
class View:
    """What planning and commits read: the desired state and the replica."""

    desired: DesiredState
    replica: NbReplica
    hub_id: str
    warned: set[str] = field(default_factory=set)
    #: the members of large groups as last resolved, by (table, key) (see :func:`_member_change`)
    resolved: dict[tuple[str, str], Resolved] = field(default_factory=dict)
    #: groups whose members column is known to hold exactly their wanted members, and the
    #: member changes written and not yet seen committed, by (table, key) (:class:`InSync`)
    in_sync: dict[tuple[str, str], InSync] = field(default_factory=dict)
    pending: dict[tuple[str, str], InSync] = field(default_factory=dict)
    #: the desired ports' digests computed while NB loaded (``Programmer.digest_ahead``), for the
    #: first :func:`plan_batch` after it: the ports they show unchanged are not diffed one by one
    ahead: port.Ahead | None = None

    def synced(self, source: str) -> bool:
        return self.desired.synced(source)

    def ids(self, table: str, key: str) -> Mapping[str, str]:
        """The ``external_ids`` a row has (desired) or had (replica)."""
        if table in self.desired.rows:
            want = self.desired.rows[table].get(key)
            if want is not None:
                ids: Mapping[str, str] = want.columns.get("external_ids", {})
                return ids
        row = self.replica.stores[table].row(key)
        found: Mapping[str, str] = row.cols.get("external_ids", {}) if row is not None else {}
        return found


Inserted = Mapping[str, set[str]]  # table -> keys inserted by the same transaction
_NONE: frozenset[str] = frozenset()


def _norm(v: Any) -> Any:
    return tuple(sorted(v)) if isinstance(v, tuple | list) else v


def diff(view: View, table: str, key: str, new: Inserted | None = None) -> PlanOp | None:
    """desired - actual for one row (``new``: rows the same transaction
    inserts, which a members column may already hold)."""
    kind = KINDS[table]
    if kind.diff is not None:
        return kind.diff(view, key)
    want = view.desired.rows[table].get(key)
    store = view.replica.stores[table]
    cur = store.row(key)
    if want is None:
        if cur is None or not view.synced(store.source(key)) or _foreign_children(view, kind, key, cur):
            return None
        return PlanOp("delete", table, key)
    cols = want.columns
    if cur is None:
        return PlanOp("insert", table, key, cols, ref=want.parent, members=_members(view, kind, want, new), attach=want.attach)
    # the name is compared too: a renamed row is renamed back
    have = cur.cols
    changed = {k: v for k, v in cols.items() if (c := have.get(k)) != v and _norm(c) != _norm(v)}
    moved = bool(changed)
    members: tuple[str, ...] = ()
    joins: tuple[str, ...] = ()
    leaves: tuple[str, ...] = ()
    if kind.members is not None:
        row = (table, key)
        current = have.get(kind.members.column, ())
        view.pending.pop(row, None)
        fast = _in_sync_change(view, kind.members.table, want.members, current, new, row)
        if fast is not None:
            members, joins, leaves = fast
        else:
            members, joins, leaves = _member_change(view, kind.members.table, want.members, current, new, row)
        moved = moved or bool(joins or leaves)
        if isinstance(want.members, Members):
            want.members.base = None  # read: the older tuples may go
        complete = members is want.members or members == want.members
        if not complete:
            view.in_sync.pop(row, None)
        elif not (joins or leaves):
            view.in_sync[row] = InSync(want.members, current)
        elif 4 * (len(joins) + len(leaves)) < len(members):
            view.in_sync.pop(row, None)
            view.pending[row] = InSync(want.members, current, joins, leaves)
        else:
            view.in_sync.pop(row, None)
        if 4 * (len(joins) + len(leaves)) >= len(members):
            joins, leaves = (), ()  # a small column, or much of it changes: written whole
    detach: tuple[str, ...] = ()
    if kind.parent is not None and not kind.parent.strong:
        pstore = view.replica.stores[kind.parent.table]
        col = kind.parent.column
        wanted = set(want.parents)
        # rule 4 for attachments: a row stays on the parent of a source that has not listed yet
        detach = tuple(
            r.uuid for n in pstore.keys()
            if n not in wanted and (r := pstore.row(n)) is not None and cur.uuid in r.cols.get(col, ()) and view.synced(pstore.source(n))
        )  # fmt: skip
        attached = all((p := pstore.row(n)) is not None and cur.uuid in p.cols.get(col, ()) for n in want.parents)
        moved = moved or bool(detach) or not attached
    if not moved:
        return None
    return PlanOp("update", table, key, changed, ref=want.parent, members=members, detach=detach, attach=want.attach,
                  joins=joins, leaves=leaves)  # fmt: skip


@dataclass(slots=True)
class InSync:
    """A group's members column (``current``, the replica's tuple, by identity) held
    exactly its ``wanted`` members (the desired row's tuple, by identity), each by
    the uuid its port has.  The next diff of the group, while the column is still
    that tuple and the desired members are a :class:`~core.nb.kinds.Members` made
    from ``wanted``, is that change alone (:func:`_in_sync_change`): no member is
    looked up but those that joined or left.  Also, as ``View.pending``, a change
    written (``joins``: keys, ``leaves``: uuids) whose commit :func:`as_written`
    checks against the column NB echoed.

    Why the record stays true: a port's uuid changes only by its delete and a new
    insert, and NB takes a deleted port out of every group (a weak reference),
    so the group's column changes and is a new tuple; any other change of the
    column (someone else's, ours) is a new tuple too."""

    wanted: tuple[str, ...]
    current: tuple[str, ...]
    joins: tuple[str, ...] = ()
    leaves: tuple[str, ...] = ()


def _in_sync_change(
    view: View, mtable: str, wanted: tuple[str, ...], current: tuple[str, ...], new: Inserted | None, row: tuple[str, str]
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None:
    """:func:`_member_change` of a group in sync (:class:`InSync`) whose wanted members
    changed by what their :class:`~core.nb.kinds.Members` says; None: not known so
    (the whole diff decides)."""
    s = view.in_sync.get(row)
    if s is None or current is not s.current:
        return None
    if wanted is s.wanted:
        return wanted, (), ()
    chain: list[Members] = []  # the links from s.wanted to wanted (derived more than once since)
    link: tuple[str, ...] | None = wanted
    while isinstance(link, Members) and link is not s.wanted:
        chain.append(link)
        link = link.base
    if link is not s.wanted:
        return None
    joined: set[str] = set()
    left: set[str] = set()
    for m in reversed(chain):  # oldest first: net change (a key that came and went is neither)
        j, lv = set(m.joined), set(m.left)
        joined, left = (joined - lv) | (j - left), (left - j) | (lv - joined)
    mstore = view.replica.stores[mtable]
    fresh = new.get(mtable, _NONE) if new else _NONE
    for k in joined:
        if k not in mstore and k not in fresh:
            return None  # a member with no port yet: the whole diff leaves it out
    leaves = []
    for k in left:
        u = mstore.uuid(k)
        if u is None or not view.synced(mstore.source(k)):
            return None
        leaves.append(u)
    return wanted, tuple(sorted(joined)), tuple(sorted(leaves))


def as_written(view: View, unit: PlanOp) -> bool:
    """After the commit of ``unit`` (an update; NB's echo of it folded into the
    replica): is the row what the desired state wants, without a diff?  Columns
    are compared; a members column only through the change written
    (``View.pending``: the column as it was, the joins and leaves applied, must
    be the column NB echoed), which then puts the group in sync.  False: not
    known (the row is diffed again)."""
    kind = KINDS[unit.table]
    rk = (unit.table, unit.name)
    pending = view.pending.pop(rk, None)
    if kind.diff is not None or (kind.parent is not None and not kind.parent.strong):
        return False
    row = view.replica.stores[unit.table].row(unit.name)
    want = view.desired.rows[unit.table].get(unit.name)
    if row is None or want is None:
        return False
    if kind.members is not None:
        got = row.cols.get(kind.members.column, ())
        if pending is not None:
            if not _applied(view, kind.members.table, pending, got):
                view.in_sync.pop(rk, None)
                return False
            view.in_sync[rk] = InSync(pending.wanted, got)
        s = view.in_sync.get(rk)
        if s is None or s.current is not got or s.wanted is not want.members:
            return False
    have = row.cols
    return all((c := have.get(k)) == v or _norm(c) == _norm(v) for k, v in want.columns.items())


def inserted(view: View, unit: PlanOp) -> None:
    """``unit``, an insert, is recorded in the replica (NB does not echo our
    inserts): a group inserted with every member it wants is in sync."""
    kind = KINDS[unit.table]
    if kind.members is None:
        return
    want = view.desired.rows[unit.table].get(unit.name)
    row = view.replica.stores[unit.table].row(unit.name)
    if want is None or row is None:
        return
    got = row.cols.get(kind.members.column, ())
    if len(got) == len(want.members) == len(unit.members) and unit.members == want.members:
        view.in_sync[(unit.table, unit.name)] = InSync(want.members, got)


def _applied(view: View, mtable: str, p: InSync, got: tuple[str, ...]) -> bool:
    """``got`` is ``p.current`` with ``p.leaves`` taken out and ``p.joins`` put in."""
    mstore = view.replica.stores[mtable]
    out = list(p.current)
    for u in p.leaves:
        i = bisect.bisect_left(out, u)
        if i == len(out) or out[i] != u:
            return False
        del out[i]
    for k in p.joins:
        j = mstore.uuid(k)
        if j is None:
            return False
        i = bisect.bisect_left(out, j)
        if i < len(out) and out[i] == j:
            return False
        out.insert(i, j)
    return len(out) == len(got) and tuple(out) == got


#: a group with at least this many members keeps them resolved between diffs (``View.resolved``)
BIG_GROUP = 4096


@dataclass
class Resolved:
    """A large group's wanted members and their uuids as last resolved: the next
    diff looks up only the keys that joined or left the wanted ones, and those
    whose uuid disagrees with the group's current column (a re-created port,
    a member not inserted yet); a uuid that is in the current column is taken as
    its key's."""

    wanted: set[str]
    uuid: dict[str, str | None]
    key_of: dict[str, str]
    have: set[str]
    absent: set[str]

    def fix(self, key: str, uuid: str | None) -> None:
        old = self.uuid.get(key)
        if old is not None:
            self.have.discard(old)
            self.key_of.pop(old, None)
        self.uuid[key] = uuid
        if uuid is None:
            self.absent.add(key)
        else:
            self.absent.discard(key)
            self.have.add(uuid)
            self.key_of[uuid] = key

    def drop(self, key: str) -> None:
        old = self.uuid.pop(key, None)
        self.absent.discard(key)
        if old is not None:
            self.have.discard(old)
            self.key_of.pop(old, None)


def _member_change(
    view: View, mtable: str, wanted: tuple[str, ...], current: tuple[str, ...], new: Inserted | None,
    row: tuple[str, str] = ("", ""),
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:  # fmt: skip
    """A row's members: those to hold (the wanted ones that exist or are inserted
    with it, and the current ones whose source has not listed yet: rule 4 for
    memberships), the keys that join and the uuids that leave.  Set operations
    over whole columns, one store lookup per wanted member: a default-deny group
    holds every isolated port (50k), and one joins or leaves per event."""
    mstore = view.replica.stores[mtable]
    fresh = new.get(mtable, _NONE) if new else _NONE
    if len(wanted) >= BIG_GROUP and row[0]:
        return _large_member_change(view, mstore, wanted, current, fresh, row)
    view.resolved.pop(row, None)
    uuids = mstore.uuids(wanted)
    here = list(map(operator.is_not, uuids, itertools.repeat(None)))
    have: set[str] = set(itertools.compress(uuids, here))  # type: ignore[arg-type]
    absent = [m for m in itertools.compress(wanted, map(operator.not_, here)) if m in fresh] if fresh else []
    if absent:  # inserted in the same transaction: such a member stands for its uuid by its key
        have.update(absent)
        here = list(map(operator.or_, here, map(set(absent).__contains__, wanted)))
    members = tuple(itertools.compress(wanted, here))
    cur = set(current)
    gone = cur - have
    kept = [k for u in gone if (k := mstore.key_of(u)) is not None and not view.synced(mstore.source(k))]
    if kept:
        members += tuple(kept)
        gone -= {mstore.uuid(k) for k in kept}
    joins = tuple(sorted(x if x in fresh else (mstore.key_of(x) or x) for x in have - cur))
    return members, joins, tuple(sorted(gone))  # type: ignore[arg-type]


def _large_member_change(
    view: View, mstore: Any, wanted: tuple[str, ...], current: tuple[str, ...], fresh: Any, row: tuple[str, str]
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """:func:`_member_change` of a large group, from what its last diff resolved (:class:`Resolved`)."""
    want = set(wanted)
    r = view.resolved.get(row)
    if r is None:
        uuids = mstore.uuids(wanted)
        r = view.resolved[row] = Resolved(set(), {}, {}, set(), set())
        for k, u in zip(wanted, uuids, strict=True):
            r.fix(k, u)
    else:
        for k in r.wanted - want:
            r.drop(k)
        for k in want - r.wanted:
            r.fix(k, mstore.uuid(k))
    r.wanted = want
    cur = set(current)
    for u in r.have - cur:  # wanted, not in the group: is it still its key's uuid?
        k = r.key_of[u]
        if (t := mstore.uuid(k)) != u:
            r.fix(k, t)
    for u in cur - r.have:  # in the group, not wanted by this uuid: a wanted key's new port?
        k = mstore.key_of(u)
        if k is not None and k in want and r.uuid.get(k) != u:
            r.fix(k, mstore.uuid(k))
    for k in list(r.absent):
        if (t := mstore.uuid(k)) is not None:
            r.fix(k, t)
    inserted = [k for k in r.absent if k in fresh]
    out = r.absent.difference(inserted)
    members = tuple(itertools.filterfalse(out.__contains__, wanted)) if out else wanted
    gone = cur - r.have
    kept = [k for u in gone if (k := mstore.key_of(u)) is not None and not view.synced(mstore.source(k))]
    if kept:
        members += tuple(kept)
        gone -= {mstore.uuid(k) for k in kept}
    joins = tuple(sorted([*(r.key_of[u] for u in r.have - cur), *inserted]))
    return members, joins, tuple(sorted(gone))


def _members(view: View, kind: RowKind, want: DesiredRow, new: Inserted | None) -> tuple[str, ...]:
    """The members of a desired row that exist (or are inserted in this
    transaction).  The others join when their insert is recorded."""
    if kind.members is None:
        return ()
    mstore = view.replica.stores[kind.members.table]
    fresh = new.get(kind.members.table, _NONE) if new else _NONE
    return tuple(m for m in want.members if m in mstore or m in fresh)


def _foreign_children(view: View, kind: RowKind, key: str, cur: XRow) -> bool:
    """Rule 3: an owned row holding a strong child the hub does not own stays."""
    for child in KINDS.values():
        p = child.parent
        if p is None or not p.strong or p.table != kind.table:
            continue
        cstore = view.replica.stores[child.table]
        foreign = [u for u in cur.cols.get(p.column, ()) if cstore.key_of(u) is None]
        if foreign:
            if key not in view.warned:
                view.warned.add(key)
                log.warning("not deleting %s %s: it holds %d %s row(s) the hub does not own", kind.table, key, len(foreign), child.table)
            return True
    return False


def plan_batch(view: View, take: Mapping[str, Iterable[str]]) -> tuple[list[PlanOp], list[tuple[str, str]], set[tuple[str, str]]]:
    """The operations for the taken keys, ordered; the keys pulled in (parents
    a batch needs, balancers a re-created switch takes back), and the deletes
    deferred until what refers to them is gone (rule 2)."""
    ops: list[PlanOp] = []
    new: dict[str, set[str]] = {t: set() for t in KINDS}
    planned: dict[str, set[str]] = {t: set() for t in KINDS}  # table -> keys
    pulled: list[tuple[str, str]] = []

    def add(op: PlanOp | None) -> None:
        if op is not None:
            ops.append(op)
            if op.op == "insert":
                new[op.table].add(op.name)

    unchanged: set[str] = set()
    if view.ahead is not None and take.get(port.TABLE):
        unchanged = view.ahead.unchanged(view)  # (diff would leave each alone: not diffed one by one)
        view.ahead = None
    for table in KINDS:  # rank order: members (ports) are known before their holders
        keys = take.get(table, ())
        planned[table].update(keys)
        for k in keys if table != port.TABLE or not unchanged else set(keys) - unchanged:
            add(diff(view, table, k, new))
    # Rule 1: an insert or update needs its parent; pull a missing parent's insert in.
    present: dict[str, set[str]] = {t: set() for t in KINDS}  # parents found (ports share a few switches)
    for op in list(ops):
        kind = KINDS[op.table]
        if op.op == "delete" or kind.parent is None:
            continue
        ptable = kind.parent.table
        found = present[ptable]
        for ref in (op.ref, *op.attach) if op.attach else (op.ref,) if op.ref else ():  # (op.parents)
            if ref in found:
                continue
            if ref in view.replica.stores[ptable] or ref in new[ptable] or ref in planned[ptable]:
                found.add(ref)
                continue
            extra = diff(view, ptable, ref, new)
            planned[ptable].add(ref)
            if extra is not None and extra.op == "insert":
                add(extra)
                pulled.append((ptable, ref))
    # A (re)created parent takes back the rows attached to it (weak children).
    holders = {k.parent.table for k in KINDS.values() if k.parent is not None and not k.parent.strong}
    children_of = view.desired.children_of
    for op in list(ops):
        if op.op != "insert" or op.table not in holders:
            continue
        for ct, ck in children_of.get((op.table, op.name), ()):
            child = KINDS[ct]
            if child.parent is not None and not child.parent.strong and ck not in planned[ct]:
                planned[ct].add(ck)
                pulled.append((ct, ck))
                add(diff(view, ct, ck, new))
    ready, deferred = _referrers_first(view, ops)
    # a stable sort by rank (deletes: reversed), run by run: the ops come in runs of one table
    rank = {t: i for i, t in enumerate(KINDS)}
    runs = [(t_op, list(run)) for t_op, run in itertools.groupby(ready, key=_TABLE_OP)]
    ups = [o for _, run in sorted((r for r in runs if r[0][1] != "delete"), key=lambda r: rank[r[0][0]]) for o in run]
    dels = [o for _, run in sorted((r for r in runs if r[0][1] == "delete"), key=lambda r: -rank[r[0][0]]) for o in run]
    return ups + dels, pulled, deferred


_TABLE_OP = operator.attrgetter("table", "op")


def _referrers_first(view: View, ops: list[PlanOp]) -> tuple[list[PlanOp], set[tuple[str, str]]]:
    """Rule 2: a delete waits while an owned row still refers to its row (a
    strong child, or a name in a ``names_used`` text) and is not deleted here."""
    deletes = [o for o in ops if o.op == "delete"]
    if not deletes:
        return ops, set()
    deleting: dict[str, set[str]] = {}
    for o in deletes:
        deleting.setdefault(o.table, set()).add(o.name)
    named: set[str] | None = None
    deferred: set[tuple[str, str]] = set()
    ready: list[PlanOp] = []
    for o in ops:
        if o.op == "delete":
            kind = KINDS[o.table]
            if _has_owned_children(view, kind, o.name, deleting):
                deferred.add((o.table, o.name))
                continue
            if kind.named:
                if named is None:
                    named = _names_in_use(view, deleting)
                if o.name in named:
                    deferred.add((o.table, o.name))
                    continue
        ready.append(o)
    return ready, deferred


def _has_owned_children(view: View, kind: RowKind, key: str, deleting: Mapping[str, set[str]]) -> bool:
    cur = view.replica.stores[kind.table].row(key)
    if cur is None:
        return False
    for child in KINDS.values():
        p = child.parent
        if p is None or not p.strong or p.table != kind.table:
            continue
        cstore = view.replica.stores[child.table]
        gone = deleting.get(child.table, _NONE)
        for u in cur.cols.get(p.column, ()):
            ck = cstore.key_of(u)
            if ck is not None and ck not in gone:
                return True
    return False


def _names_in_use(view: View, deleting: Mapping[str, set[str]]) -> set[str]:
    out: set[str] = set()
    for kind in KINDS.values():
        if kind.names_used is None:
            continue
        store = view.replica.stores[kind.table]
        gone = deleting.get(kind.table, _NONE)
        for k in store.keys():
            if k not in gone and (row := store.row(k)) is not None:
                out |= kind.names_used(row.cols)
    return out


def plan_all(view: View) -> list[PlanOp]:
    """Everything the writer would do now (all rows, not just dirty ones)."""
    out: list[PlanOp] = []
    for table, kind in KINDS.items():
        wanted = kind.desired_keys(view) if kind.desired_keys is not None else view.desired.rows[table]
        for k in sorted(set(wanted) | set(view.replica.stores[table].keys())):
            op = diff(view, table, k)
            if op is not None:
                out.append(op)
    return out
