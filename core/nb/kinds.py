"""The row-kind registry: what the generic programmer knows of each NB table.

A table the hub writes is one file in ``core/nb/tables/`` that registers a
:class:`RowKind` (and, for rows derived from a source's whole desired state, a
deriver).  The generic rooms (``desired``, ``replica``, ``plan``, ``txn``, the
programmer loop) name no table: they apply five rules to every kind, read off
these declarations (ovsdbapp keeps per-table facts as data in a
``lookup_table``; ovn-kubernetes writes them as five type switches per table):

1. **parents first** - a row with a ``parent`` is inserted only once its parent
   exists or is inserted in the same transaction (a missing parent's insert is
   pulled into the batch); a row whose parent NB refused waits with it;
2. **referrers first** - a row is deleted only after every owned row that
   points at it (a strong child, or a ``names_used`` reference from a match)
   is gone or goes in the same transaction (ovn-kubernetes PR #1068);
3. **foreign children** - an owned row whose strong-child column holds a row
   the hub does not own is never deleted;
4. **snapshot-bounded GC** - a row is deleted only once its source delivered a
   complete snapshot in this process (Calico #5044);
5. **order** - inserts and updates by ascending ``rank``, deletes by
   descending rank, all in one transaction per batch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from core.ovsdb.values import Col

if TYPE_CHECKING:
    from core.model import Programmed


class DesiredRow(msgspec.Struct, frozen=True, gc=False):
    """A row as the desired state wants it.  ``columns`` hold plain values
    (maps as dicts, sets as sorted tuples, so equality is the diff); what is
    known only at write time is symbolic: ``parent`` names the row this one
    hangs from or is attached to, ``members`` the rows its members column
    holds (by their keys)."""

    table: str
    key: str
    source: str
    columns: dict[str, Any]
    parent: str = ""
    members: tuple[str, ...] = ()
    #: more parents of a weakly attached row (a DNS row or a load-balancer group is on every
    #: switch of its router): the row is attached to ``parent`` and to each of these
    attach: tuple[str, ...] = ()

    @property
    def parents(self) -> tuple[str, ...]:
        return (self.parent, *self.attach) if self.parent else self.attach


class Members(tuple[str, ...]):
    """A desired row's members (sorted keys) that know what they replace: the tuple
    ``base`` (the one the same deriver gave the row before, by identity) with
    ``joined`` added and ``left`` removed.  Equal to the plain tuple (rows still
    compare as values, the oracle's too); a reader that kept something of ``base``
    (the desired state's member index, the plan's in-sync record of a group) moves
    it by the change instead of comparing whole columns (a default-deny group holds
    every isolated port: 50k).  A reader that missed a link (derived twice between
    two diffs) follows the chain; it is cut at :data:`MEMBER_LINKS` links, so a row
    never holds more than that many older tuples."""

    base: tuple[str, ...] | None
    joined: tuple[str, ...]
    left: tuple[str, ...]

    @staticmethod
    def of(items: Iterable[str], base: tuple[str, ...] | None, joined: Iterable[str], left: Iterable[str]) -> Members:
        m = Members(items)
        m.base = base
        m.joined = tuple(joined)
        m.left = tuple(left)
        link, depth = base, 1
        while isinstance(link, Members) and link.base is not None:
            if depth >= MEMBER_LINKS:
                link.base = None
                break
            link, depth = link.base, depth + 1
        return m


#: how many older member tuples a :class:`Members` chain keeps
MEMBER_LINKS = 3


class PlanOp(msgspec.Struct, frozen=True):
    """One row operation of a plan.  ``ref``: the parent's key; ``members``:
    member keys to hold (those that exist or are inserted with it);
    ``detach``: uuids of other parents a weakly attached row must leave.
    An update of a row whose members change by less than a quarter writes
    only that change: ``joins`` (member keys) and ``leaves`` (member uuids); a
    group of 50k ports whose one port leaves is one small mutation, not 50k
    references (both empty: ``members`` is written whole)."""

    op: str  # insert | update | delete
    table: str
    name: str
    columns: dict[str, Any] = {}
    ref: str = ""
    members: tuple[str, ...] = ()
    detach: tuple[str, ...] = ()
    attach: tuple[str, ...] = ()
    joins: tuple[str, ...] = ()
    leaves: tuple[str, ...] = ()

    @property
    def parents(self) -> tuple[str, ...]:
        return (self.ref, *self.attach) if self.ref else self.attach


@dataclass(frozen=True)
class Ref:
    """"This row lives in / is attached to ``<table>.<column>``" (or, as
    ``members``, "my ``column`` holds rows of ``table``").  Strong: the
    child exists only inside its parent (LSP in LS.ports, ACL in PG.acls);
    weak: attached and detached (Load_Balancer in Logical_Switch.load_balancer)."""

    table: str
    column: str
    strong: bool = True


def by_name(cols: Mapping[str, Any]) -> str:
    name = cols.get("name", "")
    return name if isinstance(name, str) else ""


@dataclass(frozen=True)
class ByExternalId:
    """A row key read from one ``external_ids`` entry (tables without a name).
    Such tables have no unique index in NB: an insert of a kind keyed so is
    guarded by a ``wait`` that no row of this hub carries the key yet
    (``core.nb.txn``), so an insert committed twice (a clustered NB's
    transactions are at-least-once: a reply lost in a leader change, then the
    retry) fails the second time instead of making a twin."""

    external_id: str

    def __call__(self, cols: Mapping[str, Any]) -> str:
        return str(cols.get("external_ids", {}).get(self.external_id, ""))


def by_external_id(key: str) -> ByExternalId:
    return ByExternalId(key)


View = Any  # core.nb.plan.View (kept loose here: kinds sit below plan)


@dataclass(frozen=True)
class RowKind:
    """Everything generic code needs to know of one table."""

    table: str
    #: monitored, decoded, compared and written columns, per table
    columns: Mapping[str, Col]
    #: write order: inserts/updates ascending, deletes descending
    rank: int
    #: how a replica row is keyed (a second owned row with the same key is collected)
    key: Callable[[Mapping[str, Any]], str] = by_name
    parent: Ref | None = None
    members: Ref | None = None
    #: names of other rows (of kinds ``named`` True) this row's text references
    names_used: Callable[[Mapping[str, Any]], set[str]] | None = None
    #: rows of this kind are referenced by name from ``names_used``
    named: bool = False
    #: no unique index on ``name``: inserts are guarded by a ``wait`` that no row has the name
    guard_name: bool = False
    #: all dirty rows of the kind go in one transaction (a policy change is atomic for northd)
    whole_batch: bool = False
    #: the kind's own diff (the port path keeps its measured digest compare); None: the generic one
    diff: Callable[[View, str], PlanOp | None] | None = None
    #: the Programmed event a committed unit gives (None: none)
    programmed: Callable[[View, PlanOp], Programmed | None] | None = None
    #: the monitor's select: False for a kind loaded by its own reads (ports)
    initial: bool = True
    #: more monitored columns, not compared (the port's ``_version``)
    extra_columns: tuple[str, ...] = field(default=())
    #: the replica store's class (None: core.nb.store.RowStore, rows kept whole)
    store: Callable[[RowKind], Any] | None = None
    #: the keys a kind with its own ``diff`` desires (None: ``DesiredState.rows[table]``)
    desired_keys: Callable[[View], Any] | None = None
    #: committed inserts are timed until the row reports ``up`` (ports)
    reports_up: bool = False
    #: the table has no ``external_ids`` (Load_Balancer_Group in NB 7.0): the hub's rows are
    #: those named ``ovn-hub/<hub id>/...`` (``core.names.owner_prefix``), all the fabric's;
    #: monitored whole (such tables are small) and fenced by name in every ``where``
    owner_in_name: bool = False


KINDS: dict[str, RowKind] = {}


class SourceView:
    """One source's desired state as derivers read it (see ``DERIVERS``)."""

    def __init__(self, source: Any, state: Any, hub_id: str, endpoints: Callable[[], list[Any]], fabric: Any = None) -> None:
        self.source = source
        self.state = state
        self.hub_id = hub_id
        #: the fabric's index (``core.nb.fabric.FabricIndex``): which router each network is on
        self.fabric = fabric
        self._endpoints = endpoints
        self._eps: list[Any] | None = None

    @property
    def endpoints(self) -> list[Any]:
        """The source's endpoints, OVN-allocated addresses filled in (computed once, on demand)."""
        if self._eps is None:
            self._eps = self._endpoints()
        return self._eps


Deriver = Callable[[SourceView], list[DesiredRow]]
#: Pure functions of one source's desired state → its derived rows (services → load
#: balancers, policies → port groups, address sets and ACLs).  They are the *oracle*:
#: the desired state keeps the same rows incrementally (``INCREMENTAL``), and
#: ``tests/unit/nb/test_incremental.py`` checks after every step of random change
#: sequences that both agree.
DERIVERS: list[Deriver] = []

#: A unit of derived rows: the rows one object (a policy, a service, a namespace's DNS
#: records, a default-deny group) derives, recomputed together.  Units of one deriver
#: never share a row key.
Unit = Hashable


class Incremental(Protocol):
    """One deriver kept incrementally for one source: told every change of the
    source's objects (endpoints programmed and with their OVN-allocated addresses
    filled in: what ``SourceView.endpoints`` holds), it answers the rows of the
    units those changes touch, equal to what its pure deriver would derive for
    them.  A fabric change (routers, DNS zone, hairpin address) builds a new one
    (:meth:`load`), so it may keep what it reads of ``view.fabric``."""

    def load(self, view: SourceView) -> None:
        """Start from the source's whole state; every unit is then to be answered."""

    def endpoint(self, old: Any, new: Any) -> None:
        """An endpoint changed (``old``/``new`` None: it appeared / went; same key)."""

    def service(self, old: Any, new: Any) -> None: ...
    def policy(self, old: Any, new: Any) -> None: ...
    def namespace(self, name: str, old: Any, new: Any) -> None: ...

    def rows(self, view: SourceView) -> dict[Unit, list[DesiredRow]]:
        """The rows of every unit touched since the last call (``[]``: it has none now)."""
        ...


class WholeSource:
    """A deriver without an incremental form: any change recomputes its rows as a whole."""

    def __init__(self, deriver: Deriver) -> None:
        self.deriver = deriver
        self.dirty = False

    def load(self, view: SourceView) -> None:
        self.dirty = True

    def endpoint(self, old: Any, new: Any) -> None:
        self.dirty = True

    def service(self, old: Any, new: Any) -> None:
        self.dirty = True

    def policy(self, old: Any, new: Any) -> None:
        self.dirty = True

    def namespace(self, name: str, old: Any, new: Any) -> None:
        self.dirty = True

    def rows(self, view: SourceView) -> dict[Unit, list[DesiredRow]]:
        if not self.dirty:
            return {}
        self.dirty = False
        return {None: self.deriver(view)}


#: The incremental form of each deriver of ``DERIVERS`` (same order): a factory of one
#: per source.  A deriver registered without one is kept by :class:`WholeSource`.
INCREMENTAL: list[Callable[[], Incremental]] = []


class FabricView:
    """Every source's desired state and the fabric, as fabric derivers read it."""

    def __init__(self, index: Any, sources: Mapping[str, Any], hub_id: str, endpoints: Callable[[str], list[Any]],
                 floating: list[Any], synced: bool = True) -> None:  # fmt: skip
        #: ``core.nb.tables.fabric.FabricIndex``: the spec, and the routed networks by router
        self.index = index
        #: every source's ``SourceState`` by ``str(source)``
        self.sources = sources
        self.hub_id = hub_id
        #: a source's endpoints, OVN-allocated addresses filled in
        self.endpoints = endpoints
        #: the endpoints that carry a floating-IP label (addresses filled in)
        self.floating = floating
        #: every expected source has listed (the fabric's rows may be collected); before, a
        #: deriver whose rows read every source's objects may derive none (NB keeps its rows)
        self.synced = synced


FabricDeriver = Callable[[FabricView], list[DesiredRow]]
#: Pure functions of the fabric and every source → rows that span sources (routers,
#: their ports, NAT, load-balancer groups).  Their rows carry the fabric's pseudo-source.
FABRIC_DERIVERS: list[FabricDeriver] = []


def register(kind: RowKind, deriver: Deriver | None = None, fabric: FabricDeriver | None = None,
             incremental: Callable[[], Incremental] | None = None) -> RowKind:  # fmt: skip
    """``incremental``: the deriver's incremental form (see :class:`Incremental`)."""
    KINDS[kind.table] = kind
    ordered = sorted(KINDS.values(), key=lambda k: k.rank)
    KINDS.clear()
    KINDS.update((k.table, k) for k in ordered)
    if deriver is not None and deriver not in DERIVERS:
        DERIVERS.append(deriver)
        INCREMENTAL.append(incremental or functools.partial(WholeSource, deriver))
    if fabric is not None and fabric not in FABRIC_DERIVERS:
        FABRIC_DERIVERS.append(fabric)
    return kind


def children(table: str) -> Iterator[RowKind]:
    """Kinds whose rows hang from (or are attached to) rows of ``table``."""
    return (k for k in KINDS.values() if k.parent is not None and k.parent.table == table)


def member_holders(table: str) -> Iterator[RowKind]:
    """Kinds whose members column holds rows of ``table``."""
    return (k for k in KINDS.values() if k.members is not None and k.members.table == table)
