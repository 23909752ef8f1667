"""The OVN programmer: desired state per source, one level-triggered NB writer.

Events never write.  :meth:`Programmer.apply` updates the desired state and
marks row names dirty; the writer task wakes, waits a short coalescing window,
and for a batch of dirty names computes ``desired - actual`` against its
replica of the hub's own rows and commits it in one transaction.  Replaying,
duplicating or reordering events therefore cannot change the result, and a
restart is one list per adapter plus one diff.

Rules this module enforces:

* **Ownership** - the replica is a ``monitor_cond`` on ``external_ids`` including
  ``ovn-hub:owner=<hub id>``; updates and deletes carry the same condition in
  their ``where``.  A row without the tag is never seen, changed or deleted.
  A switch holding a port the hub does not own is never deleted.
* **Snapshot-bounded GC** - a row that is not desired is deleted only once its
  source delivered a complete Snapshot in this process (Calico #5044).
* **Referrers first** - a port leaves its switch's ``ports`` in the same
  transaction that deletes it; a switch goes only when no port of it remains.
* **Bisection** - a batch failing on one row (a name taken by a foreign row) is
  split until the bad row is isolated; that row is reported as Rejected and
  retried later, every other row commits.

Services and policies ("derived" rows: Load_Balancer, Port_Group, Address_Set,
ACL) follow the same rules through a second, generic path, kept apart so the
port path stays as lean as it is measured to be:

* Events only mark the *source* stale.  Before each batch the writer
  recomputes the source's derived rows with pure functions
  (:func:`core.nbmodel.lb_rows`, :func:`core.policy.policy_rows`), compares
  them with the previous result and marks the changed keys dirty; a source
  without services or policies costs nothing.
* All dirty derived rows go into *one* transaction (they are few next to
  ports), and inside it every insert/update comes before every delete:
  Address_Sets, Port_Groups, load balancers and new ACLs first, then old ACLs,
  then what only they referenced.  A policy change is thus atomic for
  ovn-northd, and even a bisected batch commits the new allows before it
  removes the old ones.  An Address_Set or Port_Group still named by an owned
  ACL's match is not deleted before that ACL (ovn-kubernetes PR #1068).
* ACLs are identified by ``ovn-hub:acl`` (a digest of their behaviour), hang
  from their Port_Group's ``acls`` (non-root table), and a new pod's port joins
  the default-deny group in the transaction that creates the port, when both
  are in one batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import msgspec

from core import metrics
from core.backoff import Backoff
from core.gcpause import gc_paused
from core.model import (
    Delete,
    Endpoint,
    InputEvent,
    Namespace,
    Network,
    ObjectKind,
    Policy,
    Programmed,
    Ready,
    Rejected,
    Service,
    Snapshot,
    Source,
    StatusEvent,
    Upsert,
)
from core.nbmodel import (
    ACL,
    ACL_KEY,
    AS,
    KIND,
    LB,
    LS,
    LS_COLUMNS,
    LSP,
    LSP_COLUMNS,
    OWNER,
    PG,
    SHARD,
    SHARDS,
    SOURCE,
    UID,
    X_COLUMNS,
    X_KINDS,
    DesiredRow,
    lb_rows,
    ls_columns,
    ls_name,
    lsp_columns,
    lsp_name,
    to_ovsdb,
)
from core.ovsdb import ConnectionLost, OvsdbClient, OvsdbError, py_map, py_set
from core.policy import names_in_match, policy_rows

log = logging.getLogger("ovn_hub.programmer")

Publish = Callable[[StatusEvent | Rejected], Awaitable[None]]


class Row(msgspec.Struct, gc=False):
    """A hub-owned Logical_Switch in the replica (plain Python column values)."""

    uuid: str
    cols: dict[str, Any]


class PortRow(msgspec.Struct, gc=False):
    """A hub-owned Logical_Switch_Port in the replica, kept compact: at 50k
    ports the full columns cost ~1.5 KB a row; a digest of them is enough to
    tell whether the row equals the desired one.  ``digest`` is None when
    someone else modified the row: it is then rewritten whole."""

    uuid: str
    source: str
    digest: int | None
    up: bool | None = None
    #: northd's ``dynamic_addresses`` ("MAC IP…") of a port the hub left to OVN's IPAM:
    #: once known, the hub writes it as the port's ``port_security``.
    dyn: str = ""
    #: the row's ``_version`` as last seen ("" for a row this process inserted and
    #: NB has not modified since): a reconnect re-reads only rows whose version moved.
    version: str = ""


_digest_enc = msgspec.msgpack.Encoder()


def lsp_digest(cols: dict[str, Any]) -> int:
    """Order-insensitive digest of the columns the hub writes on a port.
    Stable across processes (the port cache keeps it): 64 bits of BLAKE2b."""
    canon = (
        sorted(cols.get("addresses", ())),
        sorted(cols.get("port_security", ())),
        sorted(cols.get("options", {}).items()),
        sorted(cols.get("external_ids", {}).items()),
    )
    return int.from_bytes(hashlib.blake2b(_digest_enc.encode(canon), digest_size=8).digest(), "little")


class CachedPort(msgspec.Struct, array_like=True, gc=False):
    """One port of the restart cache: what the replica knew of a row at a given ``_version``."""

    uuid: str
    version: str
    name: str
    source: str
    digest: int
    up: bool | None
    dyn: str


class PortCache(msgspec.Struct):
    """``<state_dir>/nb-ports-<hub id>.cache``, written at a clean stop.

    OVSDB gives every row a ``_version`` that changes with every modification,
    so a row whose ``_uuid`` and ``_version`` equal a cached entry is exactly
    the row the hub saw when it wrote the entry.  A restart then reads only
    ``_uuid``/``_version`` of its ports and the full columns of the few that
    changed (or were created) while it was down, instead of every column of
    every port.  Anything odd (missing, unreadable, another hub or NB, too many
    changes) falls back to the full read."""

    format: int
    hub_id: str
    nb: str
    ports: list[CachedPort]
    #: Consecutive starts that used a cache (a safety net: see CACHE_MAX_GENERATIONS).
    generation: int = 0


#: Bump when :func:`lsp_digest` or CachedPort changes (old caches are then ignored).
PORT_CACHE_FORMAT = 1
#: Every this many cache-based starts, one full read: a replica error (say, a
#: foreign change hidden by a clustered NB's reply order) cannot outlive it.
CACHE_MAX_GENERATIONS = 8
#: Above this many changed ports (or this share of all), a restart reads everything instead.
CACHE_MAX_CHANGED = 5000


class XRow(msgspec.Struct, gc=False):
    """A hub-owned row of a derived table (LB, PG, AS, ACL) in the replica."""

    uuid: str
    cols: dict[str, Any]


#: Derived tables in the order their inserts/updates are written (what is
#: referenced by name or uuid before what references it); deletes go reversed.
X_ORDER = (AS, PG, LB, ACL)


class SourceState:
    def __init__(self) -> None:
        self.networks: dict[str, Network] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.namespaces: dict[str, Namespace] = {}
        self.services: dict[str, Service] = {}
        self.policies: dict[str, Policy] = {}
        self.derived: dict[tuple[str, str], DesiredRow] = {}
        self.synced = False


class PlanOp(msgspec.Struct, frozen=True):
    op: str  # insert | update | delete
    table: str
    name: str
    columns: dict[str, Any] = {}
    ref: str = ""  # derived rows: parent switch (LB) or port group (ACL) name
    members: tuple[str, ...] = ()  # Port_Group: port names
    detach: tuple[str, ...] = ()  # Load_Balancer: uuids of owned switches to leave


class PortStatus(msgspec.Struct, frozen=True):
    """One port as the hub sees it: committed and equal to desired, OVN's
    ``up``, and NB's refusal (None when it was not refused)."""

    programmed: bool
    up: bool | None
    error: str | None


class NbStatus(msgspec.Struct, frozen=True):
    """The writer's state for ``/v1/status`` and ``hubctl status``."""

    remote: str
    connected: bool
    switches: int
    ports: int
    endpoints: int
    dirty: int
    #: rows NB refused, retried every retry_interval: the first 50 (failed_count has them all)
    failed: dict[str, str]
    failed_count: int
    transactions: int
    #: how the last (re)connect loaded the ports: from the restart cache, or read whole
    ports_from_cache: int
    ports_read: int
    #: sessions lost inside a transaction (the batch was committed apart)
    session_drops: int
    #: reconnects whose port replica was revalidated by _uuid/_version, or read whole
    reconnect_loads: dict[str, int]


class Programmer:
    """Keeps NB equal to the desired state.  Use::

        prog = Programmer("unix:/run/ovn/ovnnb_db.sock", hub_id="hub1", publish=bus.publish)
        await prog.start()          # connect + initial replica
        task = asyncio.create_task(prog.run())
        prog.apply(snapshot_event)  # from the bus
        await prog.flush()          # wait until NB equals desired
    """

    def __init__(
        self,
        nb_remote: str,
        hub_id: str,
        publish: Publish | None = None,
        *,
        batch_size: int = 50000,
        coalesce: float = 0.01,
        retry_interval: float = 30.0,
        cache_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.nb_remote = nb_remote
        #: Restart cache of the port replica (see :class:`PortCache`); None: always read everything.
        self.cache_path = cache_path
        #: How the last (re)connect loaded the ports: ports taken from the cache, ports read whole.
        self.ports_from_cache = 0
        self.ports_read = 0
        #: reconnects whose port replica was revalidated in memory / read whole
        self.reconnect_loads: Counter[str] = Counter()
        self._cache_generation = 0  # starts in a row that used the cache (0: the last was a full read)
        self.hub_id = hub_id
        self.publish = publish
        self.batch_size = batch_size
        self.coalesce = coalesce
        self.retry_interval = retry_interval
        self.sources: dict[str, SourceState] = {}
        # desired indexes by row name
        self.want_ls: dict[str, tuple[str, str]] = {}  # ls name -> (source, network)
        self.want_lsp: dict[str, Endpoint] = {}
        self.ls_refs: Counter[str] = Counter()
        # replica of owned rows
        self.ls: dict[str, Row] = {}  # by name
        self.lsp: dict[str, PortRow] = {}  # by name
        self._uuid_ls: dict[str, str] = {}  # uuid -> name
        self._uuid_lsp: dict[str, str] = {}
        # modifications of ports whose insert reply is not recorded yet (northd
        # fills dynamic_addresses within milliseconds of our commit)
        self._early_mods: dict[str, list[dict[str, Any]]] = {}
        self._early_full_warned = False
        self._lsp_parent: dict[str, str] = {}  # lsp uuid -> ls uuid
        self.dirty_ls: set[str] = set()
        self.dirty_lsp: set[str] = set()
        # derived tables: desired rows, replica, dirty (table, key)
        self.want_x: dict[str, dict[str, DesiredRow]] = {t: {} for t in X_ORDER}
        self.x: dict[str, dict[str, XRow]] = {t: {} for t in X_ORDER}
        self._x_uuid: dict[str, dict[str, str]] = {t: {} for t in X_ORDER}
        self.dirty_x: set[tuple[str, str]] = set()
        self._stale: set[str] = set()  # sources whose derived rows must be recomputed
        self._pg_of_lsp: dict[str, set[str]] = {}  # port name -> desired port groups holding it
        self._acls_of_pg: dict[str, set[str]] = {}  # port group name -> desired ACL keys
        self._lbs_of_ls: dict[str, set[str]] = {}  # switch name -> desired load balancer names
        self._failed_x: dict[str, tuple[str, str]] = {}  # failed name -> (table, key)
        self._since: dict[str, float] = {}
        self._committed_at: dict[str, float] = {}
        self.failed: dict[str, str] = {}
        #: Quarantine after a dropped session: groups of (table, name) still to be
        #: committed apart, the front one next (see :meth:`_suspect`).
        self._probe: list[set[tuple[str, str]]] = []
        self._strikes: Counter[tuple[str, str]] = Counter()  # lone commits of a row that dropped the session
        self._dropped_in_txn = False  # the last session ended inside one of our transactions
        self.session_drops = 0  # sessions lost inside a transaction (bisected, see _suspect)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._client: OvsdbClient | None = None
        self.connected = asyncio.Event()
        self._status_q: asyncio.Queue[StatusEvent | Rejected] = asyncio.Queue()
        self._warned: set[str] = set()
        self.writes = 0  # row operations committed (bench/tests read this)
        self.transactions = 0

    # ------------------------------------------------------------ replica
    def _cond(self) -> list[Any]:
        return [["external_ids", "includes", ["map", [[OWNER, self.hub_id]]]]]

    async def start(self, timeout: float | None = 30.0) -> None:
        """Connect and load the replica; returns when NB is synced."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    await self._connect()
                    return
                except (OSError, OvsdbError, TimeoutError) as exc:
                    log.info("waiting for OVN NB at %s: %s", self.nb_remote, exc)
                    await asyncio.sleep(0.5)

    def _memory_cache(self) -> list[CachedPort]:
        """The port replica in memory, as cache entries: what a reconnect can
        revalidate by ``_uuid``/``_version`` instead of reading every column
        (rows of unknown version or rewritten under us are left out: read)."""
        return [
            CachedPort(r.uuid, r.version, name, r.source, r.digest, r.up, r.dyn)
            for name, r in self.lsp.items()
            if r.version and r.digest is not None
        ]

    async def _connect(self) -> None:
        client = OvsdbClient(self.nb_remote)
        await client.connect()
        reconnect = bool(self.lsp)
        remembered = self._memory_cache() if reconnect else []
        self.ls.clear()
        self.lsp.clear()
        self._uuid_ls.clear()
        self._uuid_lsp.clear()
        self._early_mods.clear()
        self._lsp_parent.clear()
        for t in X_ORDER:
            self.x[t].clear()
            self._x_uuid[t].clear()
        client.on_update = self._on_update
        cond = self._cond()
        try:
            # Inserts are not echoed: only this hub inserts rows with its owner
            # tag, and it records them from the transaction reply.  That halves
            # the server's and this process's work on bulk programming.
            select = {"initial": True, "insert": False, "delete": True, "modify": True}
            port_select = dict(select, initial=False)
            tables: dict[str, Any] = {
                LS: [{"columns": LS_COLUMNS, "where": cond, "select": select}],
                LSP: [{"columns": [*LSP_COLUMNS, "_version"], "where": cond, "select": port_select}],
            }
            for t in X_ORDER:
                tables[t] = [{"columns": X_COLUMNS[t], "where": cond, "select": select}]
            await client.monitor_cond(tables)
            loaded = False
            if reconnect:  # revalidate what this process already holds, when it knows versions
                loaded = bool(remembered) and await self._load_ports_from(client, cond, remembered, "in memory")
                self.reconnect_loads["revalidated" if loaded else "read"] += 1
            if not loaded and not await self._load_ports_cached(client, cond):
                await self._load_ports(client, cond)
        except BaseException:
            await client.close()
            raise
        self._client = client
        # Level-triggered restart: everything we know of is a candidate.
        self.dirty_ls.update(self.want_ls, self.ls)
        self.dirty_lsp.update(self.want_lsp, self.lsp)
        for t in X_ORDER:
            self.dirty_x.update((t, k) for k in self.want_x[t])
            self.dirty_x.update((t, k) for k in self.x[t])
        self.connected.set()
        self._wake.set()
        log.info("NB synced: %d switches, %d ports owned by %s", len(self.ls), len(self.lsp), self.hub_id)

    def _read_cache(self) -> PortCache | None:
        """The restart cache, once: it is removed as it is read (a later crash
        must not find it; versions would reject it anyway)."""
        if self.cache_path is None:
            return None
        try:
            with open(self.cache_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("port cache %s unreadable (%s): reading every port", self.cache_path, exc)
            return None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(self.cache_path)
        try:
            cache = msgspec.msgpack.decode(data, type=PortCache)
        except msgspec.DecodeError as exc:
            log.warning("port cache %s is damaged (%s): reading every port", self.cache_path, exc)
            return None
        if cache.format != PORT_CACHE_FORMAT or cache.hub_id != self.hub_id or cache.nb != self.nb_remote:
            log.info("port cache %s is for another hub, NB or format: reading every port", self.cache_path)
            return None
        return cache

    async def _load_ports_cached(self, client: OvsdbClient, cond: list[Any]) -> bool:
        """Load the port replica from the cache plus the rows that changed since
        it was written; False (nothing loaded) if there is no usable cache.

        Rows are installed by reply hooks, in stream order: a change committed
        after a select is notified after its reply and so finds its row; one
        committed before is already in what the select returned (a change that
        reached :attr:`_early_mods` before the reply is dropped with the row's
        install, not replayed over it)."""
        cache = self._read_cache()
        if cache is None:
            return False
        if cache.generation >= CACHE_MAX_GENERATIONS:
            log.info("port cache: %d restarts in a row used it: reading every port this time", cache.generation)
            return False
        if not await self._load_ports_from(client, cond, cache.ports, "port cache"):
            return False
        self._cache_generation = cache.generation + 1
        return True

    async def _load_ports_from(self, client: OvsdbClient, cond: list[Any], entries: list[CachedPort], what: str) -> bool:
        """Install ``entries`` whose ``_uuid``/``_version`` NB still has, and
        read the full columns of every other owned port; False (nothing
        installed) when too many changed (the caller reads everything)."""
        self.lsp.clear()
        self._uuid_lsp.clear()
        outcome: dict[str, Any] = {}

        def versions(result: list[Any]) -> None:
            by_uuid = {c.uuid: c for c in entries}
            fresh: list[CachedPort] = []
            changed: list[str] = []
            for row in result[0]["rows"]:
                uuid, version = row["_uuid"][1], row["_version"][1]
                c = by_uuid.get(uuid)
                if c is not None and c.version == version:
                    fresh.append(c)
                else:
                    changed.append(uuid)
            outcome.update(fresh=len(fresh), changed=changed, total=len(fresh) + len(changed))
            if len(changed) > min(CACHE_MAX_CHANGED, max(100, (len(fresh) + len(changed)) // 10)):
                return  # too stale: the caller reads everything
            with gc_paused():
                for c in fresh:
                    self.lsp[c.name] = PortRow(c.uuid, sys.intern(c.source), c.digest, c.up, c.dyn, c.version)
                    self._uuid_lsp[c.uuid] = c.name
                    self._early_mods.pop(c.uuid, None)
                    if c.up is True:
                        self._port_up(c.name)
            outcome["installed"] = True

        await client.transact(
            [{"op": "select", "table": LSP, "where": cond, "columns": ["_uuid", "_version"]}], on_reply=versions
        )
        if not outcome.get("installed"):
            log.info(
                "%s: %d of %d ports changed since: reading every port",
                what, len(outcome.get("changed", ())), outcome.get("total", 0),
            )  # fmt: skip
            return False
        changed: list[str] = outcome["changed"]
        if changed:
            ops = [
                # the owner condition again: a row that lost its tag in between is not ours
                {"op": "select", "table": LSP, "where": [*cond, ["_uuid", "==", ["uuid", u]]], "columns": [*LSP_COLUMNS, "_uuid", "_version"]}
                for u in changed
            ]
            await client.transact(ops, on_reply=self._install_ports)
        self.ports_from_cache, self.ports_read = outcome["fresh"], len(changed)
        log.info("%s: %d ports unchanged, %d read again", what, outcome["fresh"], len(changed))
        return True

    def _install_ports(self, result: list[Any]) -> None:
        """Reply hook of port selects: install every returned row (in stream order)."""
        with gc_paused():
            for r in result:
                rows = r.get("rows", ()) if isinstance(r, dict) else ()
                for row in rows:
                    self._apply_port(row.pop("_uuid")[1], {"initial": row})
    async def save_port_cache(self) -> bool:
        """Write the restart cache (call at a clean stop, after the last write).
        Each entry pairs a row's current ``_version`` with what the replica holds
        for it; update notifications precede this select's reply, so the replica
        already reflects every version returned.  Rows the replica would rewrite
        whole (changed under it) are left out."""
        client = self._client
        if self.cache_path is None or client is None or client.closed.is_set():
            return False
        try:
            reply = await client.transact(
                [{"op": "select", "table": LSP, "where": self._cond(), "columns": ["_uuid", "_version"]}], timeout=30
            )
        except (OvsdbError, TimeoutError, OSError) as exc:
            log.warning("port cache not written: %s", exc)
            return False
        ports: list[CachedPort] = []
        for row in reply[0]["rows"]:
            uuid = row["_uuid"][1]
            name = self._uuid_lsp.get(uuid)
            cur = self.lsp.get(name) if name is not None else None
            if name is None or cur is None or cur.uuid != uuid or cur.digest is None:
                continue
            ports.append(CachedPort(uuid, row["_version"][1], name, cur.source, cur.digest, cur.up, cur.dyn))
        data = msgspec.msgpack.encode(
            PortCache(
                format=PORT_CACHE_FORMAT, hub_id=self.hub_id, nb=self.nb_remote, ports=ports,
                generation=self._cache_generation,
            )
        )  # fmt: skip
        try:
            await asyncio.to_thread(_write_private, self.cache_path, data)
        except OSError as exc:
            log.warning("port cache %s not written: %s", self.cache_path, exc)
            return False
        log.info("port cache: %d ports written to %s", len(ports), self.cache_path)
        return True

    async def _load_ports(self, client: OvsdbClient, cond: list[Any]) -> None:
        """Read the hub's ports shard by shard (``ovn-hub:shard`` in external_ids).

        One 50k-row reply decodes into ~150 MB of short-lived Python objects,
        and the process keeps that memory; SHARDS replies of a few thousand rows do not.  The
        monitor is already running (without initial contents), so a change
        racing with these reads arrives after the read that returns the row.
        A port the hub owns without a valid shard key (edited by someone) is
        read last and rewritten whole."""
        self.ports_from_cache = self.ports_read = 0
        self._cache_generation = 0
        self.lsp.clear()
        self._uuid_lsp.clear()
        columns = [*LSP_COLUMNS, "_uuid", "_version"]
        owned_shard = [
            [["external_ids", "includes", ["map", sorted([[OWNER, self.hub_id], [SHARD, str(k)]])]]] for k in range(SHARDS)
        ]
        unsharded = cond + [["external_ids", "excludes", ["map", [[SHARD, str(k)]]]] for k in range(SHARDS)]
        def install(result: list[Any]) -> None:
            self.ports_read += len(result[0]["rows"])
            self._install_ports(result)  # in the reader: before any later update (stream order)

        def read(where: list[Any]) -> asyncio.Future[list[Any]]:
            return asyncio.ensure_future(
                client.transact([{"op": "select", "table": LSP, "where": where, "columns": columns}], on_reply=install)
            )

        wheres = [*owned_shard, unsharded]
        # Two reads in flight: the server serializes slice k+1 while this
        # process digests slice k; memory stays at two slices.
        pending = read(wheres[0])
        try:
            for i in range(len(wheres)):
                await pending  # its rows were installed by the reply hook
                if i + 1 < len(wheres):
                    pending = read(wheres[i + 1])
        finally:
            pending.cancel()

    def _on_update(self, updates: dict[str, Any]) -> None:
        with gc_paused():
            for uuid, change in updates.get(LS, {}).items():
                self._apply_row(LS, uuid, change)
            for uuid, change in updates.get(LSP, {}).items():
                self._apply_row(LSP, uuid, change)
            for t in X_ORDER:
                for uuid, change in updates.get(t, {}).items():
                    self._apply_x(t, uuid, change)

    def _apply_row(self, table: str, uuid: str, change: dict[str, Any]) -> None:
        if table == LSP:
            self._apply_port(uuid, change)
            return
        if "delete" in change:
            name = self._uuid_ls.pop(uuid, None)
            if name is not None and name in self.ls and self.ls[name].uuid == uuid:
                del self.ls[name]
                self.dirty_ls.add(name)
                self._wake.set()
            for p in [p for p, parent in self._lsp_parent.items() if parent == uuid]:
                del self._lsp_parent[p]
            return
        row = change.get("initial") or change.get("insert")
        if row is not None:
            cols = _decode_cols(row)
            name = cols["name"]
            self.ls[name] = Row(uuid, cols)
            self._uuid_ls[uuid] = name
            for p in cols["ports"]:
                self._lsp_parent[p] = uuid
            return
        diff = change.get("modify")
        name = self._uuid_ls.get(uuid)
        if diff is None or name is None:
            return
        cur = self.ls[name]
        for col, val in diff.items():
            cur.cols[col] = _apply_diff(cur.cols.get(col), val)
        if "ports" in diff:
            for p in py_set(diff["ports"]):
                if p in cur.cols["ports"]:
                    self._lsp_parent[p] = uuid
                elif self._lsp_parent.get(p) == uuid:
                    del self._lsp_parent[p]
        if "load_balancer" in diff:  # (maybe someone) detached a balancer: re-check ours
            self.dirty_x.update((LB, k) for k in self._lbs_of_ls.get(name, ()))
        self.dirty_ls.add(name)  # someone (maybe us) changed a switch we own: re-check it
        self._wake.set()

    def _apply_port(self, uuid: str, change: dict[str, Any]) -> None:
        if "delete" in change:
            self._early_mods.pop(uuid, None)
            name = self._uuid_lsp.pop(uuid, None)
            if name is not None and name in self.lsp and self.lsp[name].uuid == uuid:
                del self.lsp[name]
                self.dirty_lsp.add(name)
                self._wake.set()
            return
        row = change.get("initial") or change.get("insert")
        if row is not None:
            cols = _decode_cols(row)
            name = cols["name"]
            source = sys.intern(cols["external_ids"].get(SOURCE, ""))
            version = row.get("_version")
            self.lsp[name] = PortRow(
                uuid, source, lsp_digest(cols), cols["up"], cols.get("dynamic_addresses", ""),
                version[1] if isinstance(version, list) else "",
            )  # fmt: skip
            self._uuid_lsp[uuid] = name
            self._early_mods.pop(uuid, None)  # a restart read returns the row after any racing change
            if cols["up"] is True:
                self._port_up(name)
            return
        diff = change.get("modify")
        name = self._uuid_lsp.get(uuid)
        if diff is None:
            return
        if name is None:
            if len(self._early_mods) < 100_000:  # bounded: only our own fresh inserts end up here
                self._early_mods.setdefault(uuid, []).append(diff)
            elif not self._early_full_warned:
                self._early_full_warned = True
                log.warning("100000 port changes arrived for ports not yet recorded; dropping more (a resync repairs)")
            return
        cur = self.lsp[name]
        version = diff.get("_version")
        if isinstance(version, list):
            cur.version = version[1]
        if "dynamic_addresses" in diff:
            old_dyn = cur.dyn
            # a column of at most one value: update2 carries its new value, not a diff
            new_dyn = diff["dynamic_addresses"] if isinstance(diff["dynamic_addresses"], str) else ""
            # an allocation that goes away (the switch lost its subnet) keeps the last lock
            if new_dyn and new_dyn != old_dyn:
                cur.dyn = new_dyn
                self.dirty_lsp.add(name)  # its port_security follows the allocation
                st = self.sources.get(cur.source)
                if st is not None and st.policies:
                    self._stale.add(cur.source)  # policy address sets hold the port's IPs
                self._wake.set()
        if "up" in diff:
            old_up = cur.up
            # at most one value: the new value (["set", []] when cleared)
            cur.up = diff["up"] if isinstance(diff["up"], bool) else None
            if cur.up is True and old_up is not True:
                self._port_up(name)
        if set(diff) - {"up", "dynamic_addresses", "_version"}:
            # the row changed under us (maybe our own update's echo): rewrite it whole
            cur.digest = None
            self.dirty_lsp.add(name)
            self._wake.set()

    def _apply_x(self, table: str, uuid: str, change: dict[str, Any]) -> None:
        """Fold one update2 change of a derived table into the replica.  Every
        change marks the row dirty: the diff then decides whether it differs
        from desired (our own updates' echoes come back equal)."""
        rows = self.x[table]
        by_uuid = self._x_uuid[table]
        if "delete" in change:
            key = by_uuid.pop(uuid, None)
            if key is not None and key in rows and rows[key].uuid == uuid:
                old = rows.pop(key)
                self.dirty_x.add((table, key))
                if table == ACL:
                    # what this ACL named may now be deletable (referrers first)
                    for ref in names_in_match(old.cols.get("match", "")):
                        for t in (PG, AS):
                            if ref in self.x[t]:
                                self.dirty_x.add((t, ref))
                self._wake.set()
            return
        row = change.get("initial") or change.get("insert")
        if row is not None:
            self._put_x(table, uuid, _decode_x(row))
            return
        diff = change.get("modify")
        key = by_uuid.get(uuid)
        if diff is None or key is None:
            return
        cur = rows[key]
        for col, val in diff.items():
            cur.cols[col] = _apply_x_diff(X_KINDS.get(col, ""), cur.cols.get(col), val)
        self.dirty_x.add((table, key))
        self._wake.set()

    def _put_x(self, table: str, uuid: str, cols: dict[str, Any]) -> None:
        """Index a derived row by its key.  A second owned row with the same key
        (someone copied it) gets a key nothing desires, so it is collected."""
        rows = self.x[table]
        key = cols["external_ids"].get(ACL_KEY, "") if table == ACL else cols.get("name", "")
        if not key or (key in rows and rows[key].uuid != uuid):
            key = f"?{uuid}"
        rows[key] = XRow(uuid, cols)
        self._x_uuid[table][uuid] = key

    def _port_up(self, name: str) -> None:
        t = self._committed_at.pop(name, None)
        if t is not None:
            metrics.COMMIT_TO_UP.observe(time.monotonic() - t)
        ep = self.want_lsp.get(name)
        if ep is not None:
            self._status_q.put_nowait(Ready(source=ep.source, key=ep.key, port=name))

    # ------------------------------------------------------------ desired state
    def _state(self, source: Source) -> SourceState:
        st = self.sources.get(str(source))
        if st is None:
            st = self.sources[str(source)] = SourceState()
        return st

    def _mark_lsp(self, name: str, now: float) -> None:
        self.dirty_lsp.add(name)
        self._since.setdefault(name, now)
        self.failed.pop(name, None)

    def _set_endpoint(self, st: SourceState, ep: Endpoint, now: float) -> None:
        old = st.endpoints.get(ep.key)
        if old == ep:
            return
        if old is None:
            self.ls_refs[ls_name(ep.source, ep.network)] += 1
        st.endpoints[ep.key] = ep
        if st.policies:
            self._stale.add(str(ep.source))
        name = lsp_name(ep)
        self.want_lsp[name] = ep
        self._mark_lsp(name, now)
        self._refresh_ls(ep.source, ep.network)

    def _del_endpoint(self, st: SourceState, source: Source, key: str, now: float) -> None:
        ep = st.endpoints.pop(key, None)
        if ep is None:
            return
        if st.policies:
            self._stale.add(str(source))
        name = lsp_name(ep)
        self.want_lsp.pop(name, None)
        self._mark_lsp(name, now)
        lsn = ls_name(source, ep.network)
        self.ls_refs[lsn] -= 1
        if self.ls_refs[lsn] <= 0:
            del self.ls_refs[lsn]
        self._refresh_ls(source, ep.network)

    def _set_service(self, st: SourceState, svc: Service | None, source: Source, uid: str) -> None:
        """Services hold their switch in the desired state like endpoints do:
        a load balancer needs a switch to hang from."""
        old = st.services.get(uid)
        if old == svc:
            return
        if svc is None:
            del st.services[uid]
        else:
            st.services[uid] = svc
        old_net = old.network if old is not None else None
        new_net = svc.network if svc is not None else None
        if old_net != new_net:
            if new_net is not None:
                self.ls_refs[ls_name(source, new_net)] += 1
                self._refresh_ls(source, new_net)
            if old_net is not None:
                lsn = ls_name(source, old_net)
                self.ls_refs[lsn] -= 1
                if self.ls_refs[lsn] <= 0:
                    del self.ls_refs[lsn]
                self._refresh_ls(source, old_net)
        self._stale.add(str(source))

    def _set_other(self, st: SourceState, source: Source, kind: ObjectKind, key: str, obj: Namespace | Policy | None) -> None:
        """Namespaces and policies only feed the derived rows."""
        table: dict[str, Any] = st.namespaces if kind == "namespace" else st.policies
        if table.get(key) == obj:
            return
        if obj is None:
            del table[key]
        else:
            table[key] = obj
        if kind == "policy" or st.policies:
            self._stale.add(str(source))

    def _refresh_ls(self, source: Source, network: str) -> None:
        name = ls_name(source, network)
        st = self.sources.get(str(source))
        wanted = self.ls_refs.get(name, 0) > 0 or (st is not None and network in st.networks)
        if wanted:
            self.want_ls[name] = (str(source), network)
        else:
            self.want_ls.pop(name, None)
        self.dirty_ls.add(name)

    def apply(self, event: InputEvent) -> None:
        """Fold one input event into the desired state (never writes)."""
        now = time.monotonic()
        if isinstance(event, Upsert):
            obj = event.obj
            st = self._state(obj.source)
            if isinstance(obj, Endpoint):
                self._set_endpoint(st, obj, now)
            elif isinstance(obj, Network):
                if st.networks.get(obj.name) != obj:
                    st.networks[obj.name] = obj
                    self._refresh_ls(obj.source, obj.name)
            elif isinstance(obj, Service):
                self._set_service(st, obj, obj.source, obj.uid)
            elif isinstance(obj, Namespace):
                self._set_other(st, obj.source, "namespace", obj.name, obj)
            else:
                self._set_other(st, obj.source, "policy", obj.uid, obj)
        elif isinstance(event, Delete):
            st = self._state(event.source)
            if event.kind == "endpoint":
                self._del_endpoint(st, event.source, event.key, now)
            elif event.kind == "network":
                if st.networks.pop(event.key, None) is not None:
                    self._refresh_ls(event.source, event.key)
            elif event.kind == "service":
                if event.key in st.services:
                    self._set_service(st, None, event.source, event.key)
            elif event.kind in ("namespace", "policy"):
                if event.key in (st.namespaces if event.kind == "namespace" else st.policies):
                    self._set_other(st, event.source, event.kind, event.key, None)
        elif isinstance(event, Snapshot):
            with gc_paused():
                self._apply_snapshot(event, now)
        else:
            return
        metrics.DESIRED_ENDPOINTS.set(len(self.want_lsp))
        self._wake.set()
        self._idle.clear()

    def _apply_snapshot(self, snap: Snapshot, now: float) -> None:
        st = self._state(snap.source)
        new_eps: dict[str, Endpoint] = {}
        new_nets: dict[str, Network] = {}
        others: list[Namespace | Service | Policy] = []
        for o in snap.objects:
            if isinstance(o, Endpoint):
                new_eps[o.key] = o
            elif isinstance(o, Network):
                new_nets[o.name] = o
            else:
                others.append(o)
        new_svcs = {o.uid: o for o in others if isinstance(o, Service)}
        for uid in [u for u in st.services if u not in new_svcs]:
            self._set_service(st, None, snap.source, uid)
        for svc in new_svcs.values():
            self._set_service(st, svc, snap.source, svc.uid)
        new_ns = {o.name: o for o in others if isinstance(o, Namespace)}
        new_pols = {o.uid: o for o in others if isinstance(o, Policy)}
        if new_ns != st.namespaces or new_pols != st.policies:
            st.namespaces = new_ns
            st.policies = new_pols
            self._stale.add(str(snap.source))
        for key in [k for k in st.endpoints if k not in new_eps]:
            self._del_endpoint(st, snap.source, key, now)
        old_nets = st.networks
        st.networks = new_nets
        for name in set(old_nets) | set(new_nets):
            if old_nets.get(name) != new_nets.get(name):
                self._refresh_ls(snap.source, name)
        for ep in new_eps.values():
            self._set_endpoint(st, ep, now)
        if not st.synced:
            st.synced = True
            src = str(snap.source)
            # GC is now licensed for this source: look at every row it owns.
            self.dirty_ls.update(n for n, r in self.ls.items() if r.cols["external_ids"].get(SOURCE) == src)
            self.dirty_lsp.update(n for n, r in self.lsp.items() if r.source == src)
            for t in X_ORDER:
                self.dirty_x.update((t, k) for k, r in self.x[t].items() if r.cols["external_ids"].get(SOURCE) == src)

    def remove_source(self, source: Source) -> None:
        """The source is gone from the config: its rows are collected."""
        self.apply(Snapshot(source=source, objects=()))

    # ------------------------------------------------------------ diff
    def _synced(self, row: Row | PortRow) -> bool:
        src = row.source if isinstance(row, PortRow) else row.cols["external_ids"].get(SOURCE, "")
        st = self.sources.get(src)
        return st is not None and st.synced

    def _lsp_op(self, name: str) -> PlanOp | None:
        ep = self.want_lsp.get(name)
        cur = self.lsp.get(name)
        if ep is not None:
            want = lsp_columns(ep, self.hub_id)
            if not ep.ips and cur is not None and cur.dyn:
                # OVN allocated the address: hold the port to it (no spoofing another's IP or MAC)
                want["port_security"] = (cur.dyn,)
            if cur is None:
                return PlanOp("insert", LSP, name, want)
            if cur.digest == lsp_digest(want):
                return None
            return PlanOp("update", LSP, name, {k: v for k, v in want.items() if k != "name"})
        if cur is not None and self._synced(cur):
            return PlanOp("delete", LSP, name)
        return None

    def _ls_op(self, name: str) -> PlanOp | None:
        want = self.want_ls.get(name)
        cur = self.ls.get(name)
        if want is not None:
            src, net = want
            st = self.sources.get(src)
            cols = ls_columns(src, net, st.networks.get(net) if st else None, self.hub_id)
            if cur is None:
                return PlanOp("insert", LS, name, cols)
            changed = {k: v for k, v in cols.items() if k != "name" and _norm(cur.cols.get(k)) != _norm(v)}
            return PlanOp("update", LS, name, changed) if changed else None
        if cur is not None and self._synced(cur):
            foreign = [p for p in cur.cols.get("ports", ()) if p not in self._uuid_lsp]
            if foreign:
                if name not in self._warned:
                    self._warned.add(name)
                    log.warning("not deleting switch %s: it holds %d port(s) the hub does not own", name, len(foreign))
                return None
            return PlanOp("delete", LS, name)
        return None

    def _with_dynamic_ips(self, ep: Endpoint) -> Endpoint:
        """``ep`` with the IPs OVN allocated to its port, when it has none of its
        own: peers of a policy are matched by address (Address_Sets)."""
        if ep.ips:
            return ep
        cur = self.lsp.get(lsp_name(ep))
        if cur is None or not cur.dyn:
            return ep
        return msgspec.structs.replace(ep, ips=tuple(cur.dyn.split()[1:]))

    def _derive(self) -> None:
        """Recompute the derived rows of every stale source (pure functions of
        its desired state) and mark the keys whose desired row changed."""
        while self._stale:
            src = self._stale.pop()
            st = self.sources.get(src)
            if st is None:
                continue
            rows: list[DesiredRow] = []
            if st.services or st.policies or st.derived:
                for svc in st.services.values():
                    rows += lb_rows(svc, self.hub_id)
                if st.policies:
                    source = Source.parse(src)
                    endpoints = [self._with_dynamic_ips(ep) for ep in st.endpoints.values()]
                    rows += policy_rows(source, endpoints, st.namespaces, st.policies.values(), self.hub_id)
            new = {(r.table, r.key): r for r in rows}
            old = st.derived
            if new == old:
                continue
            st.derived = new
            for tk in old.keys() - new.keys():
                r = old[tk]
                self.want_x[r.table].pop(r.key, None)  # names embed the source: the key is this source's
                self._unindex(r)
                self.dirty_x.add(tk)
            for tk, r in new.items():
                prev = old.get(tk)
                if prev == r:
                    continue
                if prev is not None:
                    self._unindex(prev)
                self.want_x[r.table][r.key] = r
                self._index(r)
                self.dirty_x.add(tk)

    def _index(self, r: DesiredRow) -> None:
        if r.table == PG:
            for m in r.members:
                self._pg_of_lsp.setdefault(m, set()).add(r.key)
        elif r.table == ACL:
            self._acls_of_pg.setdefault(r.parent, set()).add(r.key)
        elif r.table == LB:
            self._lbs_of_ls.setdefault(r.parent, set()).add(r.key)

    def _unindex(self, r: DesiredRow) -> None:
        def drop(index: dict[str, set[str]], k: str, v: str) -> None:
            vals = index.get(k)
            if vals is not None:
                vals.discard(v)
                if not vals:
                    del index[k]

        if r.table == PG:
            for m in r.members:
                drop(self._pg_of_lsp, m, r.key)
        elif r.table == ACL:
            drop(self._acls_of_pg, r.parent, r.key)
        elif r.table == LB:
            drop(self._lbs_of_ls, r.parent, r.key)

    def _x_synced(self, row: XRow) -> bool:
        st = self.sources.get(row.cols["external_ids"].get(SOURCE, ""))
        return st is not None and st.synced

    def _x_op(self, table: str, key: str, new_lsp: frozenset[str] = frozenset()) -> PlanOp | None:
        """desired - actual for one derived row (``new_lsp``: ports the same
        transaction inserts, which a Port_Group may already reference)."""
        want = self.want_x[table].get(key)
        cur = self.x[table].get(key)
        if want is None:
            if cur is None or not self._x_synced(cur):
                return None
            if table == PG:
                foreign = [a for a in cur.cols.get("acls", ()) if a not in self._x_uuid[ACL]]
                if foreign:
                    if key not in self._warned:
                        self._warned.add(key)
                        log.warning("not deleting port group %s: it holds %d ACL(s) the hub does not own", key, len(foreign))
                    return None
            return PlanOp("delete", table, key)
        cols = want.columns
        if cur is None:
            return PlanOp("insert", table, key, cols, ref=want.parent, members=self._members(want, new_lsp))
        # the name is compared too: a renamed row is renamed back
        changed = {k: v for k, v in cols.items() if _xnorm(cur.cols.get(k)) != _xnorm(v)}
        if table == PG:
            members = self._members(want, new_lsp)
            have = {self.lsp[m].uuid if m in self.lsp else m for m in members}
            if changed or have != set(cur.cols.get("ports", ())):
                return PlanOp("update", table, key, changed, ref=want.parent, members=members)
            return None
        if table == LB:
            parent = self.ls.get(want.parent)
            detach = tuple(
                r.uuid for n, r in self.ls.items() if n != want.parent and cur.uuid in r.cols.get("load_balancer", ())
            )
            attached = parent is not None and cur.uuid in parent.cols.get("load_balancer", ())
            if changed or detach or not attached:
                return PlanOp("update", table, key, changed, ref=want.parent, detach=detach)
            return None
        return PlanOp("update", table, key, changed, ref=want.parent) if changed else None

    def _members(self, want: DesiredRow, new_lsp: frozenset[str]) -> tuple[str, ...]:
        """The ports of a desired Port_Group that exist (or are inserted in this
        transaction).  The others join when their insert is recorded."""
        return tuple(m for m in want.members if m in self.lsp or m in new_lsp)

    def plan(self) -> list[PlanOp]:
        """Everything the writer would do now (all rows, not just dirty ones)."""
        self._derive()
        ops = [self._ls_op(n) for n in sorted(set(self.want_ls) | set(self.ls))]
        ops += [self._lsp_op(n) for n in sorted(set(self.want_lsp) | set(self.lsp))]
        for t in X_ORDER:
            ops += [self._x_op(t, k) for k in sorted(set(self.want_x[t]) | set(self.x[t]))]
        return [o for o in ops if o is not None]

    # ------------------------------------------------------------ writer
    async def run(self) -> None:
        """The single NB writer.  Reconnects (and resyncs) when NB goes away."""
        publisher = asyncio.create_task(self._publisher(), name="status-publisher")
        retry_at = time.monotonic() + self.retry_interval
        # Reconnects: a session that dies inside one of our transactions is
        # retried at once (the writer is isolating the row, see _suspect); one
        # that was healthy for a while too; otherwise back off, capped at 1 s
        # while the server refuses connections (a probe is cheap, so the first
        # retry comes within 1 s of it listening again) and at 30 s when it
        # accepts but the sync fails (that costs the server a read).
        backoff = Backoff(0.1, 30.0)
        session_start = time.monotonic()
        try:
            while True:
                if self._client is None or self._client.closed.is_set():
                    self.connected.clear()
                    if self._client is not None and (self._dropped_in_txn or time.monotonic() - session_start > 10):
                        backoff.reset()
                    self._dropped_in_txn = False
                    try:
                        await self._connect()
                        session_start = time.monotonic()
                    except (OSError, OvsdbError, TimeoutError) as exc:
                        refused = isinstance(exc, ConnectionRefusedError | FileNotFoundError)
                        delay = backoff.next(cap=1.0 if refused else None)
                        log.warning("NB %s unreachable (%s); retrying in %.1fs", self.nb_remote, exc, delay)
                        await asyncio.sleep(delay)
                        continue
                self._derive()
                if not self.dirty_ls and not self.dirty_lsp and not self.dirty_x:
                    self._idle.set()
                    metrics.DIRTY.set(0)
                    self._wake.clear()
                    timeout = max(0.0, retry_at - time.monotonic()) if self.failed else None
                    client = self._client
                    assert client is not None
                    closed = asyncio.ensure_future(client.closed.wait())
                    waker = asyncio.ensure_future(self._wake.wait())
                    try:
                        await asyncio.wait({closed, waker}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        closed.cancel()
                        waker.cancel()
                    if self.failed and time.monotonic() >= retry_at:
                        retry_at = time.monotonic() + self.retry_interval
                        self.dirty_lsp.update(n for n in self.failed if n in self.want_lsp or n in self.lsp)
                        self.dirty_ls.update(n for n in self.failed if n in self.want_ls or n in self.ls)
                        self.dirty_x.update(self._failed_x.values())
                        self._failed_x.clear()
                        self.failed.clear()
                    continue
                self._idle.clear()
                if self.coalesce:
                    await asyncio.sleep(self.coalesce)
                try:
                    with gc_paused():  # one collector pause per batch, not one per step
                        await self._write_batch()
                except ConnectionLost:
                    continue
        finally:
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher

    async def _publisher(self) -> None:
        while True:
            ev = await self._status_q.get()
            if self.publish is not None:
                try:
                    await self.publish(ev)
                except Exception:
                    log.exception("publishing a status event failed")

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until no row is dirty and no transaction is in flight."""
        async with asyncio.timeout(timeout):
            while True:
                await self._idle.wait()
                await asyncio.sleep(0)
                if (
                    self._idle.is_set()
                    and not self.dirty_ls
                    and not self.dirty_lsp
                    and not self.dirty_x
                    and not self._stale
                    and self.connected.is_set()
                ):
                    return
                await asyncio.sleep(0.01)

    def _take(self) -> tuple[list[str], list[str], set[tuple[str, str]]]:
        """The dirty names of the next batch.  Rows NB refused wait for
        ``retry_interval`` (or a change of their own); while a dropped session
        is being bisected, only the front probe group goes."""
        if self.failed:
            held_ls = [n for n in self.dirty_ls if n in self.failed]
            held_lsp = [n for n in self.dirty_lsp if n in self.failed]
            held_x = {tk for tk in self.dirty_x if f"{tk[0]}:{tk[1]}" in self.failed}
            self.dirty_ls.difference_update(held_ls)
            self.dirty_lsp.difference_update(held_lsp)
            self.dirty_x -= held_x
        while self._probe:
            group = self._probe.pop(0)
            take_ls = [n for t, n in group if t == LS and n in self.dirty_ls]
            take_lsp = [n for t, n in group if t == LSP and n in self.dirty_lsp]
            take_x = {(t, n) for t, n in group if t not in (LS, LSP) and (t, n) in self.dirty_x}
            if take_ls or take_lsp or take_x:
                self.dirty_ls.difference_update(take_ls)
                self.dirty_lsp.difference_update(take_lsp)
                self.dirty_x -= take_x
                return take_ls, take_lsp, take_x
        take_ls = list(itertools.islice(self.dirty_ls, self.batch_size))
        self.dirty_ls.difference_update(take_ls)
        room = max(0, self.batch_size - len(take_ls))
        take_lsp = list(itertools.islice(self.dirty_lsp, room))
        self.dirty_lsp.difference_update(take_lsp)
        # Derived rows all go at once: a policy change is then one transaction.
        take_x = self.dirty_x
        self.dirty_x = set()
        return take_ls, take_lsp, take_x

    async def _write_batch(self) -> None:
        take_ls, take_lsp, take_x = self._take()
        metrics.DIRTY.set(len(self.dirty_ls) + len(self.dirty_lsp))
        with gc_paused():
            ls_ops = [op for op in map(self._ls_op, take_ls) if op is not None]
            lsp_ops = [op for op in map(self._lsp_op, take_lsp) if op is not None]
        # A port whose switch does not exist yet needs that switch in this batch.
        new_ls = {o.name for o in ls_ops if o.op == "insert"}
        for op in lsp_ops:
            if op.op == "insert":
                parent = ls_name(self.want_lsp[op.name].source, self.want_lsp[op.name].network)
                if parent not in self.ls and parent not in new_ls:
                    extra = self._ls_op(parent)
                    if extra is not None:
                        ls_ops.append(extra)
                        new_ls.add(parent)
                    self.dirty_ls.discard(parent)
        # (a re-created switch must take its balancers back even if nothing else changed)
        relink = bool(self._lbs_of_ls) and any(o.op == "insert" and o.name in self._lbs_of_ls for o in ls_ops)
        x_ops = self._x_batch(take_x, ls_ops, lsp_ops, new_ls) if take_x or relink else []
        # A switch delete must wait until its ports are gone (referrers first).
        ready_ls: list[PlanOp] = []
        for op in ls_ops:
            if op.op == "delete" and self._has_owned_ports(op.name, lsp_ops):
                self.dirty_ls.add(op.name)
            else:
                ready_ls.append(op)
        units = ready_ls + lsp_ops + x_ops
        if not units:
            for n in take_lsp:
                self._since.pop(n, None)
            return
        await self._commit(units)

    def _x_batch(self, take: set[tuple[str, str]], ls_ops: list[PlanOp], lsp_ops: list[PlanOp], new_ls: set[str]) -> list[PlanOp]:
        """The derived-row operations of a batch, ordered: inserts/updates
        (AS, PG, LB, ACL) then deletes (ACL, LB, PG, AS)."""
        for op in ls_ops:  # a (re)created switch takes its balancers along
            if op.op == "insert":
                take.update((LB, k) for k in self._lbs_of_ls.get(op.name, ()))
        new_lsp = frozenset(o.name for o in lsp_ops if o.op == "insert")
        ops = [op for op in (self._x_op(t, k, new_lsp) for t, k in take) if op is not None]
        for op in ops:  # a balancer needs its switch
            if op.table == LB and op.op != "delete" and op.ref not in self.ls and op.ref not in new_ls:
                extra = self._ls_op(op.ref)
                if extra is not None and extra.op == "insert":
                    ls_ops.append(extra)
                    new_ls.add(op.ref)
                    self.dirty_ls.discard(op.ref)
        deleting_acls = {o.name for o in ops if o.table == ACL and o.op == "delete"}
        named: set[str] | None = None
        ready: list[PlanOp] = []
        for op in ops:
            if op.op == "delete" and op.table in (PG, AS):
                if named is None:
                    named = set()
                    for k, r in self.x[ACL].items():
                        if k not in deleting_acls:
                            named |= names_in_match(r.cols.get("match", ""))
                if op.name in named:
                    continue  # an owned ACL still names it; re-dirtied when that ACL goes
            ready.append(op)
        rank = {t: i for i, t in enumerate(X_ORDER)}
        ups = sorted((o for o in ready if o.op != "delete"), key=lambda o: rank[o.table])
        dels = sorted((o for o in ready if o.op == "delete"), key=lambda o: -rank[o.table])
        return ups + dels

    def _has_owned_ports(self, ls: str, lsp_ops: list[PlanOp]) -> bool:
        row = self.ls.get(ls)
        if row is None:
            return False
        deleting = {self.lsp[o.name].uuid for o in lsp_ops if o.op == "delete" and o.name in self.lsp}
        return any(p in self._uuid_lsp and p not in deleting for p in row.cols.get("ports", ()))

    async def _commit(self, units: list[PlanOp]) -> None:
        assert self._client is not None
        if units and units[-1].table not in (LS, LSP):
            units = self._x_ready(units)
        units = self._with_parents(units)
        if not units:
            return
        with gc_paused():
            ops, inserts = self._build(units)
        t0 = time.monotonic()
        try:
            result = await self._client.transact(ops)
        except (OvsdbError, TimeoutError) as exc:
            if isinstance(exc, ConnectionLost | TimeoutError):
                if isinstance(exc, TimeoutError):  # a hung server: this session is over
                    await self._client.close()
                self._redirty(units)
                self._suspect(units, exc)
                raise ConnectionLost(str(exc)) from None
            metrics.TXNS.labels("error").inc()
            if len(units) == 1:
                self._reject(units[0], str(exc))
                return
            mid = len(units) // 2
            # switches first so the ports' parents exist in the second half
            await self._commit(units[:mid])
            await self._commit(units[mid:])
            return
        now = time.monotonic()
        for u in units:
            self._strikes.pop((u.table, u.name), None)
        with gc_paused():
            self._record_inserts(units, inserts, result)
            metrics.TXN_SECONDS.observe(now - t0)
            metrics.TXNS.labels("ok").inc()
            self.transactions += 1
            self.writes += len(units)
            op_counts: Counter[tuple[str, str]] = Counter()
            waited: list[float] = []
            seen: set[tuple[str, str]] = set()
            for u in units:
                if u.table not in (LS, LSP):
                    op_counts[(u.table, u.op)] += 1
                    ev = self._x_programmed(u, seen)
                    if ev is not None:
                        self._status_q.put_nowait(ev)
                    continue
                if u.table == LSP and u.op == "update" and u.name in self.lsp:
                    self.lsp[u.name].digest = lsp_digest(u.columns)  # written whole: equal to desired now
                op_counts[(u.table, u.op)] += 1
                since = self._since.pop(u.name, None)
                if since is not None:
                    waited.append(now - since)
                if u.table == LSP and u.op == "insert":
                    self._committed_at[u.name] = now
                elif u.table == LSP and u.op == "delete":
                    self._committed_at.pop(u.name, None)  # never came up: nothing to time
                self._status_q.put_nowait(self._programmed(u))
            for (table, op), n in op_counts.items():
                metrics.NB_OPS.labels(table, op).inc(n)
            for w in waited:
                metrics.EVENT_TO_COMMIT.observe(w)

    def _redirty(self, units: list[PlanOp]) -> None:
        for u in units:
            if u.table == LS:
                self.dirty_ls.add(u.name)
            elif u.table == LSP:
                self.dirty_lsp.add(u.name)
            else:
                self.dirty_x.add((u.table, u.name))

    def _suspect(self, units: list[PlanOp], exc: BaseException) -> None:
        """The session died inside a transaction of ``units``: maybe because of
        one of them (a value ovsdb-server cannot take, that no local check
        knew of).  Commit them apart, half by half, on the next sessions; a row
        that drops the session twice alone is quarantined as ``nb-refused``
        (retried after ``retry_interval``), so any NB-fatal input costs one row
        and about 2·log2(batch) reconnects, never the hub."""
        self._dropped_in_txn = True
        self.session_drops += 1
        keys = [(u.table, u.name) for u in units]
        if len(keys) > 1:
            mid = len(keys) // 2
            self._probe[0:0] = [set(keys[:mid]), set(keys[mid:])]
            log.warning("NB session lost inside a transaction of %d rows (%s): committing them apart", len(keys), exc)
            return
        key = keys[0]
        self._strikes[key] += 1
        if self._strikes[key] < 2:  # once may be a coincidence (the server restarted): try it alone again
            self._probe.insert(0, {key})
            return
        del self._strikes[key]
        self._redirty_drop(units[0])
        self._reject(units[0], f"the NB session dropped each time it was committed alone ({exc})", reason="nb-refused")

    def _redirty_drop(self, u: PlanOp) -> None:
        if u.table == LS:
            self.dirty_ls.discard(u.name)
        elif u.table == LSP:
            self.dirty_lsp.discard(u.name)
        else:
            self.dirty_x.discard((u.table, u.name))

    def _with_parents(self, units: list[PlanOp]) -> list[PlanOp]:
        """Hold back port inserts whose switch neither exists nor is inserted by
        ``units`` (its insert was refused, or a bisection split them): they
        wait with the switch for ``retry_interval``."""
        new_ls: set[str] | None = None
        held: list[PlanOp] = []
        for u in units:
            if u.table != LSP or u.op != "insert":
                continue
            ep = self.want_lsp.get(u.name)
            parent = ls_name(ep.source, ep.network) if ep is not None else ""
            if parent in self.ls:
                continue
            if new_ls is None:
                new_ls = {o.name for o in units if o.table == LS and o.op == "insert"}
            if parent not in new_ls:
                held.append(u)
        if not held:
            return units
        for u in held:
            ep = self.want_lsp[u.name]
            parent = ls_name(ep.source, ep.network)
            why = self.failed.get(parent, "not in NB")
            self.failed[u.name] = f"waits for its switch {parent} ({why})"
        log.warning("%d port(s) wait for a switch that is not in NB, e.g. %s", len(held), held[0].name)
        drop = {id(u) for u in held}
        return [u for u in units if id(u) not in drop]

    def _x_ready(self, units: list[PlanOp]) -> list[PlanOp]:
        """Drop ACL inserts whose Port_Group neither exists nor is inserted by
        these units (its insert failed, or a bisection split them): they are
        marked dirty again when the group's insert is recorded."""
        new_pg = {u.name for u in units if u.table == PG and u.op == "insert"}
        return [
            u for u in units if not (u.table == ACL and u.op == "insert" and u.ref not in self.x[PG] and u.ref not in new_pg)
        ]

    def _x_ids(self, u: PlanOp) -> dict[str, str]:
        ids: dict[str, str] = u.columns.get("external_ids", {})
        if not ids:
            want = self.want_x[u.table].get(u.name)
            cur = self.x[u.table].get(u.name)
            ids = want.columns["external_ids"] if want else cur.cols["external_ids"] if cur else {}
        return ids

    def _x_programmed(self, u: PlanOp, seen: set[tuple[str, str]]) -> Programmed | None:
        """One Programmed per service/policy touched by a transaction (not per
        row); ``deleted`` when the object is gone from the desired state."""
        ids = self._x_ids(u)
        kind, uid = ids.get(KIND, ""), ids.get(UID, "")
        if kind not in ("service", "policy") or not uid or (kind, uid) in seen:
            return None
        seen.add((kind, uid))
        src = ids.get(SOURCE, "")
        st = self.sources.get(src)
        alive = st is not None and uid in (st.services if kind == "service" else st.policies)
        try:
            source = Source.parse(src)
        except ValueError:
            return None
        return Programmed(source=source, kind="service" if kind == "service" else "policy", key=uid, row=u.name, deleted=not alive)

    def _programmed(self, u: PlanOp) -> Programmed:
        if u.table == LSP:
            ep = self.want_lsp.get(u.name)
            if ep is not None:
                return Programmed(source=ep.source, kind="endpoint", key=ep.key, row=u.name, deleted=u.op == "delete")
            src, _, rest = u.name.partition("/")
            cluster, _, key = rest.partition("/")
            return Programmed(source=Source(src, cluster), kind="endpoint", key=key, row=u.name, deleted=True)
        src, _, rest = u.name.partition("/")
        cluster, _, net = rest.partition("/")
        return Programmed(source=Source(src, cluster), kind="network", key=net, row=u.name, deleted=u.op == "delete")

    def _reject(self, unit: PlanOp, why: str, reason: str = "") -> None:
        """NB refused ``unit`` (alone): remember it as failed (retried after
        ``retry_interval`` or when its desired state changes) and publish a
        Rejected naming the row and NB's error.  ``nb-conflict``: a row the hub
        does not own holds the name; ``nb-refused``: anything else."""
        if not reason:
            conflict = "constraint" in why or "duplicate" in why.lower() or "clause test failed" in why
            reason = "nb-conflict" if conflict else "nb-refused"
        if reason == "nb-conflict" and "clause test failed" in why:
            why = f"a {unit.table} named {unit.name!r} exists that the hub does not own ({why})"
        why = why if len(why) <= 500 else f"{why[:500]}..."
        if unit.table not in (LS, LSP):
            name = f"{unit.table}:{unit.name}"
            self.failed[name] = why
            self._failed_x[name] = (unit.table, unit.name)
            try:
                src = Source.parse(self._x_ids(unit).get(SOURCE, "unknown/unknown"))
            except ValueError:
                src = Source("unknown", "unknown")
            message = f"NB refused {unit.op} of {unit.table} {unit.name}: {why}"
        else:
            name = unit.name
            self.failed[name] = why
            self._since.pop(name, None)
            ep = self.want_lsp.get(name) if unit.table == LSP else None
            parts = name.split("/", 2)
            src = ep.source if ep else Source(parts[0], parts[1] if len(parts) > 1 else "unknown")
            message = f"NB refused {unit.op} of {unit.table} {name}: {why}"
        log.warning("%s (%s; retrying every %.0fs)", message, reason, self.retry_interval)
        if self.publish is None:
            metrics.REJECTED.labels(str(src), reason).inc()  # with a bus, the bus counts (once per distinct row)
        self._status_q.put_nowait(Rejected(source=src, reason=reason, message=message, ref=name))

    def _record_inserts(self, units: list[PlanOp], inserts: dict[int, int], result: list[Any]) -> None:
        """Put the rows this transaction inserted into the replica (the monitor
        does not echo inserts)."""
        new_ls_uuid: dict[str, str] = {}
        for op_index, unit_index in inserts.items():
            u = units[unit_index]
            uuid = result[op_index]["uuid"][1]
            if u.table == LS:
                self.ls[u.name] = Row(uuid, _plain_cols(u.columns))
                self._uuid_ls[uuid] = u.name
                new_ls_uuid[u.name] = uuid
            elif u.table == LSP:
                source = sys.intern(u.columns["external_ids"].get(SOURCE, ""))
                self.lsp[u.name] = PortRow(uuid, source, lsp_digest(u.columns))
                self._uuid_lsp[uuid] = u.name
                for diff in self._early_mods.pop(uuid, ()):
                    self._apply_port(uuid, {"modify": diff})
        new_ports: dict[str, list[str]] = {}
        for op_index, unit_index in inserts.items():
            u = units[unit_index]
            if u.table != LSP:
                continue
            ep = self.want_lsp.get(u.name)
            if ep is None:
                continue
            parent = ls_name(ep.source, ep.network)
            uuid = result[op_index]["uuid"][1]
            if parent in new_ls_uuid:
                new_ports.setdefault(parent, []).append(uuid)
                self._lsp_parent[uuid] = new_ls_uuid[parent]
            elif parent in self.ls:
                self._lsp_parent[uuid] = self.ls[parent].uuid
        for parent, uuids in new_ports.items():
            self.ls[parent].cols["ports"] = tuple(uuids)
        if units[-1].table not in (LS, LSP):
            self._record_x_inserts(units, inserts, result, new_ls_uuid)
        elif self._pg_of_lsp:
            self._lsp_joined(units, inserts)

    def _lsp_joined(self, units: list[PlanOp], inserts: dict[int, int]) -> None:
        """New ports the desired port groups wanted but could not reference yet."""
        for unit_index in inserts.values():
            u = units[unit_index]
            if u.table == LSP:
                self.dirty_x.update((PG, k) for k in self._pg_of_lsp.get(u.name, ()))

    def _record_x_inserts(
        self, units: list[PlanOp], inserts: dict[int, int], result: list[Any], new_ls_uuid: dict[str, str]
    ) -> None:
        new_pg: dict[str, XRow] = {}
        joined: set[str] = set()
        for op_index, unit_index in inserts.items():
            u = units[unit_index]
            if u.table in (LS, LSP):
                if u.table == LSP:
                    joined.add(u.name)
                continue
            uuid = result[op_index]["uuid"][1]
            cols = dict(u.columns)
            if u.table == PG:
                cols["ports"] = tuple(sorted(self.lsp[m].uuid for m in u.members if m in self.lsp))
                cols["acls"] = ()
            self._put_x(u.table, uuid, cols)
            if u.table == PG:
                new_pg[u.name] = self.x[PG][u.name]
                # ACLs left out of this transaction (bisection) can join now
                self.dirty_x.update((ACL, k) for k in self._acls_of_pg.get(u.name, ()) if k not in self.x[ACL])
            elif u.table == ACL and u.ref in new_pg:
                new_pg[u.ref].cols["acls"] = (*new_pg[u.ref].cols["acls"], uuid)
            elif u.table == LB and u.ref in new_ls_uuid:
                ls = self.ls[u.ref]
                ls.cols["load_balancer"] = (*ls.cols.get("load_balancer", ()), uuid)
        for u in units:  # existing balancers attached to a switch created here
            if u.table == LB and u.op == "update" and u.ref in new_ls_uuid and u.name in self.x[LB]:
                ls = self.ls[u.ref]
                ls.cols["load_balancer"] = (*ls.cols.get("load_balancer", ()), self.x[LB][u.name].uuid)
        for name in joined:
            self.dirty_x.update((PG, k) for k in self._pg_of_lsp.get(name, ()))

    def _build(self, units: list[PlanOp]) -> tuple[list[dict[str, Any]], dict[int, int]]:
        """Operations for ``units``, and {op index: unit index} of the inserts."""
        ops: list[dict[str, Any]] = []
        inserts: dict[int, int] = {}
        owner = ["external_ids", "includes", ["map", [[OWNER, self.hub_id]]]]
        new_ls: dict[str, dict[str, Any]] = {}
        add_ports: dict[str, list[Any]] = {}
        del_ports: dict[str, list[Any]] = {}
        counter = itertools.count()
        x_units: list[int] = []
        lsp_refs: dict[str, str] = {}
        has_x = bool(units) and units[-1].table not in (LS, LSP)
        for ui, u in enumerate(units):
            if u.table not in (LS, LSP):
                x_units.append(ui)
                continue
            if u.table == LS:
                if u.op == "insert":
                    ops.append(_absent(LS, u.name))  # no unique index on names: never twin a foreign switch
                    inserts[len(ops)] = ui
                    row = to_ovsdb(u.columns)
                    op = {"op": "insert", "table": LS, "row": row, "uuid-name": f"s{next(counter)}"}
                    new_ls[u.name] = op
                    ops.append(op)
                elif u.op == "update":
                    ops.append({"op": "update", "table": LS, "where": [["_uuid", "==", ["uuid", self.ls[u.name].uuid]], owner], "row": to_ovsdb(u.columns)})
                else:
                    ops.append({"op": "delete", "table": LS, "where": [["_uuid", "==", ["uuid", self.ls[u.name].uuid]], owner]})
                continue
            if u.op == "insert":
                ep = self.want_lsp[u.name]
                parent = ls_name(ep.source, ep.network)
                ref = f"p{next(counter)}"
                if has_x:
                    lsp_refs[u.name] = ref
                inserts[len(ops)] = ui
                ops.append({"op": "insert", "table": LSP, "row": to_ovsdb(u.columns), "uuid-name": ref})
                add_ports.setdefault(parent, []).append(["named-uuid", ref])
            elif u.op == "update":
                ops.append({"op": "update", "table": LSP, "where": [["_uuid", "==", ["uuid", self.lsp[u.name].uuid]], owner], "row": to_ovsdb(u.columns)})
            else:
                uuid = self.lsp[u.name].uuid
                ops.append({"op": "delete", "table": LSP, "where": [["_uuid", "==", ["uuid", uuid]], owner]})
                parent_uuid = self._lsp_parent.get(uuid)
                if parent_uuid is not None:
                    del_ports.setdefault(parent_uuid, []).append(["uuid", uuid])
        for parent, refs in add_ports.items():
            if parent in new_ls:
                new_ls[parent]["row"]["ports"] = ["set", refs]
            else:
                ops.append({"op": "mutate", "table": LS, "where": [["_uuid", "==", ["uuid", self.ls[parent].uuid]]], "mutations": [["ports", "insert", ["set", refs]]]})
        for parent_uuid, refs in del_ports.items():
            ops.append({"op": "mutate", "table": LS, "where": [["_uuid", "==", ["uuid", parent_uuid]]], "mutations": [["ports", "delete", ["set", refs]]]})
        if x_units:
            self._build_x(units, x_units, ops, inserts, new_ls, lsp_refs, counter)
        return ops, inserts

    def _build_x(
        self,
        units: list[PlanOp],
        x_units: list[int],
        ops: list[dict[str, Any]],
        inserts: dict[int, int],
        new_ls: dict[str, dict[str, Any]],
        lsp_refs: dict[str, str],
        counter: Iterator[int],
    ) -> None:
        """Operations for derived rows.  References are resolved here: ports
        and switches inserted by this same transaction by ``named-uuid``, the
        rest by uuid; a port known nowhere is left out (it joins when its insert
        is recorded).  Every update, delete and mutate names the row's uuid
        *and* the owner tag."""
        owner = ["external_ids", "includes", ["map", [[OWNER, self.hub_id]]]]

        def where(uuid: str) -> list[Any]:
            return [["_uuid", "==", ["uuid", uuid]], owner]

        def mutate(table: str, uuid: str, column: str, how: str, ref: list[str]) -> None:
            ops.append({"op": "mutate", "table": table, "where": where(uuid), "mutations": [[column, how, ["set", [ref]]]]})

        def attach(ls: str, ref: list[str]) -> None:
            if ls in new_ls:
                row = new_ls[ls]["row"]
                row.setdefault("load_balancer", ["set", []])[1].append(ref)
            elif ls in self.ls:
                mutate(LS, self.ls[ls].uuid, "load_balancer", "insert", ref)

        new_pg: dict[str, dict[str, Any]] = {}
        acl_parent: dict[str, str] | None = None
        for ui in x_units:
            u = units[ui]
            t = u.table
            cur = self.x[t].get(u.name)
            if u.op == "delete":
                if cur is None:
                    continue
                if t == ACL:
                    if acl_parent is None:
                        acl_parent = {a: pg.uuid for pg in self.x[PG].values() for a in pg.cols.get("acls", ())}
                    pg_uuid = acl_parent.get(cur.uuid)
                    if pg_uuid is not None:
                        mutate(PG, pg_uuid, "acls", "delete", ["uuid", cur.uuid])
                elif t == LB:
                    for ls in self.ls.values():
                        if cur.uuid in ls.cols.get("load_balancer", ()):
                            mutate(LS, ls.uuid, "load_balancer", "delete", ["uuid", cur.uuid])
                ops.append({"op": "delete", "table": t, "where": where(cur.uuid)})
                continue
            row = to_ovsdb(u.columns)
            if t == PG:
                row["ports"] = [
                    "set",
                    [
                        ["named-uuid", lsp_refs[m]] if m in lsp_refs else ["uuid", self.lsp[m].uuid]
                        for m in u.members
                        if m in lsp_refs or m in self.lsp
                    ],
                ]
            if u.op == "insert":
                ref = f"x{next(counter)}"
                if t == LB:
                    ops.append(_absent(LB, u.name))  # no unique index on names either
                inserts[len(ops)] = ui
                op = {"op": "insert", "table": t, "row": row, "uuid-name": ref}
                ops.append(op)
                if t == PG:
                    row["acls"] = ["set", []]
                    new_pg[u.name] = op
                elif t == LB:
                    attach(u.ref, ["named-uuid", ref])
                elif t == ACL:
                    if u.ref in new_pg:
                        new_pg[u.ref]["row"]["acls"][1].append(["named-uuid", ref])
                    elif u.ref in self.x[PG]:
                        mutate(PG, self.x[PG][u.ref].uuid, "acls", "insert", ["named-uuid", ref])
                continue
            assert cur is not None
            if row:
                ops.append({"op": "update", "table": t, "where": where(cur.uuid), "row": row})
            if t == LB:
                attach(u.ref, ["uuid", cur.uuid])  # inserting a present member is a no-op
                for ls_uuid in u.detach:
                    mutate(LS, ls_uuid, "load_balancer", "delete", ["uuid", cur.uuid])

    # ------------------------------------------------------------ views
    def endpoints(self) -> Iterable[tuple[Endpoint, PortRow | None]]:
        for name, ep in self.want_lsp.items():
            yield ep, self.lsp.get(name)

    def status(self) -> NbStatus:
        return NbStatus(
            remote=self.nb_remote,
            connected=self.connected.is_set(),
            switches=len(self.ls),
            ports=len(self.lsp),
            endpoints=len(self.want_lsp),
            dirty=len(self.dirty_ls) + len(self.dirty_lsp),
            failed=dict(itertools.islice(self.failed.items(), 50)),
            failed_count=len(self.failed),
            transactions=self.transactions,
            ports_from_cache=self.ports_from_cache,
            ports_read=self.ports_read,
            session_drops=self.session_drops,
            reconnect_loads=dict(self.reconnect_loads),
        )

    def port_status(self, name: str) -> PortStatus:
        """``programmed``: the port row is committed, equal to desired and not
        waiting to be rewritten (the one predicate the API and MQTT share)."""
        row = self.lsp.get(name)
        return PortStatus(
            programmed=row is not None and row.digest is not None and name not in self.dirty_lsp,
            up=row.up if row is not None else None,
            error=self.failed.get(name),
        )

    def synced_sources(self) -> list[str]:
        return sorted(s for s, st in self.sources.items() if st.synced)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


def _absent(table: str, name: str) -> dict[str, Any]:
    """A ``wait`` that fails the transaction if any row of ``table`` is named
    ``name``.  The hub inserts a named row only when its replica has none of
    that name, so a row found here is one it does not own: reported as a name
    conflict (``nb-conflict``) instead of silently created twice."""
    return {"op": "wait", "table": table, "where": [["name", "==", name]], "columns": ["name"],
            "until": "==", "rows": [], "timeout": 0}  # fmt: skip


def _write_private(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600 (its directory 0700 if created)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".nb-ports-", dir=directory)  # 0600, O_EXCL
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_DEFAULTS: dict[str, Any] = {
    "other_config": {},
    "external_ids": {},
    "options": {},
    "addresses": (),
    "port_security": (),
    "ports": (),
    "load_balancer": (),
    "up": None,
}


def _decode_cols(row: dict[str, Any]) -> dict[str, Any]:
    """update2 rows omit columns at their default value: fill them in."""
    out: dict[str, Any] = dict(_DEFAULTS)
    for k, v in row.items():
        if k in ("other_config", "external_ids", "options"):
            out[k] = py_map(v)
        elif k in ("addresses", "port_security", "ports", "load_balancer"):
            out[k] = tuple(py_set(v)) if v != ["set", []] else ()
        elif k == "up":
            vals = py_set(v) if v != ["set", []] else ()
            out[k] = vals[0] if vals else None
        elif k == "dynamic_addresses":  # optional string: read, never written
            out[k] = v if isinstance(v, str) else ""
        else:
            out[k] = v
    return out


def _plain_cols(cols: dict[str, Any]) -> dict[str, Any]:
    out = dict(_DEFAULTS)
    out.update(cols)
    return out


def _apply_diff(cur: Any, diff: Any) -> Any:
    """Apply an ``update2`` column diff (RFC 7047 extension, ovsdb-server(7))."""
    if isinstance(diff, list) and diff and diff[0] == "map":
        d = dict(cur or {})
        for k, v in diff[1]:
            if d.get(k) == v:
                del d[k]
            else:
                d[k] = v
        return d
    if isinstance(diff, list) and diff and diff[0] == "set":
        vals = [v[1] if isinstance(v, list) else v for v in diff[1]]
        if cur is None or isinstance(cur, bool):  # optional scalar ("up")
            s = set([] if cur is None else [cur]) ^ set(vals)
            return next(iter(s)) if s else None
        s2 = set(cur) ^ set(vals)
        return tuple(sorted(s2))
    if isinstance(diff, list) and len(diff) == 2 and diff[0] == "uuid":
        # a one-element diff of a set of references is the atom itself: toggle it
        return tuple(sorted(set(cur) ^ {diff[1]})) if isinstance(cur, tuple) else diff[1]
    if isinstance(cur, tuple):  # a one-element set diff sent as an atom
        return tuple(sorted(set(cur) ^ {diff}))
    if cur is None and isinstance(diff, bool):
        return diff
    if isinstance(cur, bool) and isinstance(diff, bool):
        return None if cur == diff else diff
    return diff


def _norm(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return tuple(sorted(v))
    if v is None:
        return ()
    return v



_X_DEFAULTS: dict[str, Any] = {"map": {}, "set": (), "uuids": ()}


def _decode_x(row: dict[str, Any]) -> dict[str, Any]:
    """A derived-table row (update2 initial) → plain canonical columns: maps
    as dicts, sets as sorted tuples (uuids unwrapped), scalars as they are;
    columns omitted at their default value are filled in."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        kind = X_KINDS.get(k, "")
        if kind == "map":
            out[k] = py_map(v)
        elif kind:
            out[k] = tuple(sorted(py_set(v))) if v != ["set", []] else ()
        else:
            out[k] = v
    for k, kind in X_KINDS.items():
        out.setdefault(k, _X_DEFAULTS[kind])
    return out


def _apply_x_diff(kind: str, cur: Any, diff: Any) -> Any:
    """Apply an update2 column diff to a derived-table column whose type is
    known: sets toggle the listed members (a single member may come as a bare
    atom), maps follow ovsdb-server(7), scalars are replaced."""
    if kind == "map":
        return _apply_diff(cur or {}, diff)
    if kind:
        members = py_set(diff) if diff != ["set", []] else ()
        return tuple(sorted(set(cur or ()) ^ set(members)))
    return diff


def _xnorm(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return tuple(sorted(v))
    return v
