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

from collections.abc import Callable
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

    def monitor_requests(self, *, inserts_only: bool = False) -> dict[str, Any]:
        """The writer's monitor: its rows' initial contents (kinds not read
        apart), modifications and deletions; inserts are left out (the writer
        records its own from the replies).  ``inserts_only``: the standby's,
        the rows another writer of this hub id inserts."""
        cond = owned(self.hub_id)
        out: dict[str, Any] = {}
        for table, kind in KINDS.items():
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

    def decoder(self) -> Callable[[Any], Any]:
        """The decoder of the writer's monitor reply: the parents' child
        columns (a switch's 100k port uuids) come as the plain tuples the
        stores keep (:func:`core.ovsdb.values.updates_decoder`), not as ~28 MB of
        decoded JSON (a list, an ``"uuid"`` and a string each) until the store
        converts them; :meth:`share_uuids` then swaps them for the children's own."""
        cols: dict[str, set[str]] = {}
        for kind in KINDS.values():
            p = kind.parent
            if p is not None and p.strong:
                cols.setdefault(p.table, set()).add(p.column)
        return updates_decoder(cols, {})

    def share_uuids(self) -> None:
        """After a load: parents' child columns hold their children's own uuid
        strings (:meth:`RowStore.share_children`)."""
        for table, kind in KINDS.items():
            p = kind.parent
            if p is None or not p.strong:
                continue
            parent, child = self.stores[p.table], self.stores[table]
            if not isinstance(parent, RowStore) or not len(child):
                continue
            canonical: dict[str, str] = {}
            for key in child.keys():
                u = child.uuid(key)
                if u is not None:
                    canonical[u] = u
            with gc_paused():
                parent.share_children(canonical)

    def uuid(self, table: str, key: str) -> str | None:
        return self.stores[table].uuid(key)

    def has(self, table: str, key: str) -> bool:
        return key in self.stores[table]

    def kind(self, table: str) -> RowKind:
        return self.stores[table].kind
