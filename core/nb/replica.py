"""The NB replica: the hub's own rows, one store per kind; never writes.

The monitor is a ``monitor_cond`` on ``external_ids`` including
``ovn-hub:owner=<hub id>``, with only the columns each kind declares, so rows
the hub does not own never reach the process.  Inserts are not echoed (only
this hub inserts rows with its owner tag, and it records them from the
transaction reply): that halves the server's and this process's work on bulk
programming.  Kinds loaded by their own reads (ports: sharded or from the
restart cache, ``portcache.py``) are monitored without initial contents; the
reads are installed by reply hooks in stream order, so a change notified
after a read's reply always finds its row.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from typing import Any

from core.gcpause import gc_paused
from core.names import owned, owner_prefix
from core.nb.kinds import KINDS, RowKind
from core.nb.store import Events, RowStore, Store
from core.ovsdb.values import updates_decoder


class NbReplica:
    def __init__(self, hub_id: str) -> None:
        self.hub_id = hub_id
        self.stores: dict[str, Store] = {}
        for table, kind in KINDS.items():
            store = self.stores[table] = kind.store(kind) if kind.store is not None else RowStore(kind)
            if kind.owner_in_name and isinstance(store, RowStore):
                store.name_prefix = owner_prefix(hub_id)
        self.events: Events | None = None

    def store(self, table: str) -> Store:
        return self.stores[table]

    def clear(self) -> None:
        for s in self.stores.values():
            s.clear()

    def parent_tables(self) -> frozenset[str]:
        """Tables whose rows hold children's uuids (a switch's ports): their
        monitor starts after the children are loaded (:meth:`share_uuids`)."""
        return frozenset(k.parent.table for k in KINDS.values() if k.parent is not None and k.parent.strong)

    def monitor_requests(self, *, inserts_only: bool = False, tables: Container[str] | None = None) -> dict[str, Any]:
        """The writer's monitor: its rows' initial contents (kinds not read
        apart), modifications and deletions; inserts are left out (the writer
        records its own from the replies).  ``inserts_only``: the standby's,
        the rows another writer of this hub id inserts.  ``tables``: only these."""
        cond = owned(self.hub_id)
        out: dict[str, Any] = {}
        for table, kind in KINDS.items():
            if tables is not None and table not in tables:
                continue
            select = {"initial": kind.initial, "insert": False, "delete": True, "modify": True}
            if inserts_only:
                select = {"initial": False, "insert": True, "delete": False, "modify": False}
            where = [] if kind.owner_in_name else cond  # the store keeps only the hub's names
            out[table] = [{"columns": [*kind.columns, *kind.extra_columns], "where": where, "select": select}]
        return out

    def on_update(self, updates: dict[str, Any]) -> None:
        ev = self.events
        assert ev is not None
        with gc_paused():
            for table, store in self.stores.items():
                for uuid, change in updates.get(table, {}).items():
                    store.apply(uuid, change, ev)

    def child_uuids(self) -> dict[str, str]:
        """``{uuid: uuid}`` of every strongly held child row, the child store's own strings."""
        canonical: dict[str, str] = {}
        for table, kind in KINDS.items():
            if kind.parent is None or not kind.parent.strong:
                continue
            child = self.stores[table]
            for key in child.keys():
                u = child.uuid(key)
                if u is not None:
                    canonical[u] = u
        return canonical

    def parents_decoder(self, canonical: Mapping[str, str]) -> Callable[[Any], Any]:
        """The decoder of the parents' monitor reply: their child columns come
        plain, holding the children's own uuid strings (``canonical``)."""
        cols: dict[str, set[str]] = {}
        for kind in KINDS.values():
            p = kind.parent
            if p is not None and p.strong:
                cols.setdefault(p.table, set()).add(p.column)
        return updates_decoder(cols, canonical)

    def share_uuids(self, canonical: Mapping[str, str] | None = None) -> None:
        """After a load: parents' child columns hold their children's own uuid
        strings (:meth:`RowStore.share_children`; ``canonical``: :meth:`child_uuids`)."""
        if canonical is None:
            canonical = self.child_uuids()
        for table in self.parent_tables():
            parent = self.stores[table]
            if isinstance(parent, RowStore) and canonical:
                with gc_paused():
                    parent.share_children(canonical)

    def uuid(self, table: str, key: str) -> str | None:
        return self.stores[table].uuid(key)

    def has(self, table: str, key: str) -> bool:
        return key in self.stores[table]

    def kind(self, table: str) -> RowKind:
        return self.stores[table].kind
