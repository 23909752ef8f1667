"""The OVN programmer: one level-triggered NB writer.

Events never write.  :meth:`Programmer.apply` updates the desired state and
marks keys dirty; the writer task wakes, waits a short coalescing window, and
for a batch of dirty keys plans ``desired - actual`` against its replica of the
hub's own rows (``plan.py``) and commits it in one transaction (``txn.py``).
Replaying, duplicating or reordering events therefore cannot change the
result, and a restart is one list per adapter plus one diff.  The rules every
kind obeys are in ``kinds.py``; this module is the loop around them:

* **Bisection** - a batch failing on one row (a name taken by a foreign row,
  anything NB refuses) is split until the bad row is isolated; that row is
  reported as Rejected and retried after ``retry_interval``, every other row
  commits.  A request ovsdb-server would drop the session on is refused by the
  client before it is sent, so it bisects the same way.
* **Quarantine** - a session lost *inside* a transaction commits that batch
  apart, half by half, on the next sessions (:meth:`_suspect`); a row that
  drops the session twice alone is ``nb-refused``.
* **Batches** - dirty ports go ``batch_size`` at a time, their switches along
  (up to as many again: ``DirtyRows.take``); derived
  rows (load balancers, policy rows) all at once, so a policy change is one
  transaction in which the new allows come before the removal of the old.
  A batch is derived after the coalescing window, so the derived rows of its
  events go with their ports.
* **Echoes** - NB sends a transaction's changes before its reply: the rows a
  transaction in flight updates are held (``DirtyRows.watch``) and, once the
  reply is recorded, diffed again only if they are not what was written and
  wanted (``plan.as_written``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from core import metrics
from core.backoff import Backoff
from core.gcpause import gc_paused
from core.model import Endpoint, InputEvent, Policy, Rejected, Service, Snapshot, Source, StatusEvent
from core.model.fabric import FABRIC_SOURCE, Fabric
from core.names import OWNER, SOURCE, derived_mac, lsp_name, owner_prefix, stable_mac
from core.nb import portcache, txn
from core.nb.desired import DesiredState
from core.nb.dirty import DirtyRows
from core.nb.failures import Failures
from core.nb.kinds import KINDS, PlanOp
from core.nb.plan import View, as_written, inserted, plan_all, plan_batch
from core.nb.replica import NbReplica
from core.nb.status import FabricStatus, NbRow, NbStatus, PortStatus, RouterPort, RouterStatus
from core.nb.store import RowStore, XRow
from core.nb.tables import policy, router, router_port, switch
from core.nb.tables.fabric import FabricIndex
from core.nb.tables.port import TABLE as PORTS
from core.nb.tables.port import Ahead, PortRow, PortStore, with_dynamic_ips
from core.ovsdb import ConnectionLost, NoUsableServer, OvsdbClient, OvsdbError, Tls, py_map

log = logging.getLogger("ovn_hub.programmer")

#: the monitor of a standby: the inserts of the active writer of the same hub id
STANDBY_MONITOR = "standby"
#: seconds between two notes of NB's last transaction (each costs a query of two round trips)
HISTORY_MARK_INTERVAL = 1.0
#: a batch of at least this many rows is built as it is sent, STREAM_CHUNK rows at a time
#: (NB parses the first while the last are built)
STREAM_MIN = 1000
STREAM_CHUNK = 250

Publish = Callable[[StatusEvent | Rejected], Awaitable[None]]
PublishMany = Callable[[list[StatusEvent]], Awaitable[None]]


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
        publish_many: PublishMany | None = None,
        batch_size: int = 50000,
        coalesce: float = 0.01,
        retry_interval: float = 30.0,
        cache_path: str | os.PathLike[str] | None = None,
        tls: Tls | None = None,
        lock: bool = True,
    ) -> None:
        #: one remote, or a clustered NB's members (comma-separated): the writer uses the leader only
        self.nb_remote = nb_remote
        self.tls = tls
        self.hub_id = hub_id
        self.publish = publish
        #: ``publish`` of a committed batch's events at once (the bus's ``publish_many``); None: one by one
        self.publish_many = publish_many
        self.batch_size = batch_size
        self.coalesce = coalesce
        self.retry_interval = retry_interval
        #: a batch of at least this many rows is sent as it is built (``txn.Build.chunks``)
        self.stream_min = STREAM_MIN
        #: Restart cache of the port replica (core/nb/portcache.py); None: always read everything.
        self.cache_path = cache_path
        #: How the last (re)connect loaded the ports: ports taken from the cache (or memory), ports read.
        self.ports_from_cache = 0
        #: NB's last transaction the replica is known to reflect (a clustered NB: see _mark_history)
        self._txn_mark: str | None = None
        self._marked_at = -HISTORY_MARK_INTERVAL
        self._history: bool | None = None  # None: not asked yet; False: NB keeps none (standalone)
        self._unmarked = False  # a transaction committed since the last note
        self.ports_load = ""
        self.ports_read = 0
        self._cache_generation = 0  # starts in a row that used the cache (0: the last was a full read)
        #: reconnects whose port replica was revalidated in memory / read whole
        self.reconnect_loads: Counter[str] = Counter()
        #: status events to publish (a committed batch's Programmed events: one list)
        self._status_q: asyncio.Queue[StatusEvent | Rejected | list[StatusEvent]] = asyncio.Queue()
        #: bumped by every change of the desired state (events made ahead are then made again)
        self._desired_gen = 0
        #: (units, _desired_gen, {id(unit): its Programmed event}) made while NB works on units
        self._events_ahead: tuple[list[PlanOp], int, dict[int, StatusEvent]] | None = None
        #: the recording of the reply of the transaction in flight, made while NB works (txn.Recording)
        self._recording: txn.Recording | None = None
        self.desired = DesiredState(hub_id, self._mark)
        self.replica = NbReplica(hub_id)
        self.changes = DirtyRows(self.desired, self.replica, self._status_q.put_nowait)
        self.dirty = self.changes.keys
        self.replica.events = self.changes
        self.ports.desired_names = self.desired.ports.keys  # a full read keys ports by these strings
        self.view = View(self.desired, self.replica, hub_id)
        self.failures = Failures()
        #: display name -> NB's refusal, retried after retry_interval (core/nb/failures.py)
        self.failed = self.failures.failed
        self._since = self.changes.since
        self._committed_at = self.changes.committed_at
        self._wake = self.changes.wake
        self._idle = asyncio.Event()
        self._idle.set()
        self._client: OvsdbClient | None = None
        self.connected = asyncio.Event()
        self.connect_failures = 0  # reconnect attempts failed in a row (0 while connected)
        self.writes = 0  # row operations committed (bench/tests read this)
        self.transactions = 0
        #: Active/standby: hubds of one hub id contend for this NB lock; only the holder
        #: writes, and each of its transactions asserts the lock (a deposed writer is
        #: fenced by the server).  None: no lock (always active).
        #: (an OVSDB <id>: ``ovn_hub_`` + the hub id, its dashes as underscores)
        self.lock_name: str | None = "ovn_hub_" + hub_id.replace("-", "_") if lock else None
        #: "active" (holds the lock: writes), "standby" (queued for it: replica and desired
        #: state kept warm, nothing written) or "paused" (out of the queue: ``pause``)
        self.role = "standby" if lock else "active"
        self._paused = False
        #: called with the new role on every change (the hub publishes it)
        self.on_role: Callable[[str], None] | None = None
        #: times this writer became active after the first time (takeovers)
        self.takeovers = 0
        self._was_active = False
        self._background: set[asyncio.Future[None]] = set()

    # ------------------------------------------------------------ views of the parts
    @property
    def session_drops(self) -> int:
        """Sessions lost inside a transaction (their rows were committed apart)."""
        return self.failures.session_drops

    @property
    def ports(self) -> PortStore:
        store = self.replica.stores[PORTS]
        assert isinstance(store, PortStore)
        return store

    @property
    def lsp(self) -> dict[str, PortRow]:
        return self.ports.rows

    @property
    def want_lsp(self) -> dict[str, Endpoint]:
        return self.desired.ports

    def rows(self, table: str) -> dict[str, XRow]:
        """The replica's rows of a kind kept whole (tests and tools read them)."""
        store = self.replica.stores[table]
        assert isinstance(store, RowStore)
        return store.rows

    # ------------------------------------------------------------ desired state
    def _mark(self, table: str, key: str, now: float | None) -> None:
        self._desired_gen += 1
        self.changes.mark(table, key, now)
        if now is not None:
            self.failed.pop(key, None)  # its object changed: try it again now

    def apply(self, event: InputEvent) -> None:
        """Fold one input event into the desired state (never writes)."""
        self._desired_gen += 1
        first = isinstance(event, Snapshot) and not self.desired.synced(str(event.source))
        if not self.desired.apply(event):
            return
        if first:
            assert isinstance(event, Snapshot)
            src = str(event.source)
            self.desired.state(event.source).synced = True
            # GC is now licensed for this source: look at every row it owns.
            with gc_paused():
                for table, store in self.replica.stores.items():
                    self.dirty[table].update(k for k in store.keys() if store.source(k) == src)
        metrics.DESIRED_ENDPOINTS.set(len(self.desired.ports))
        if self.desired.rejections:  # shared networks declared differently by two sources
            for rej in self.desired.rejections:
                log.warning("%s (%s)", rej.message, rej.reason)
                if self.publish is None:
                    metrics.REJECTED.labels(str(rej.source), rej.reason).inc()  # with a bus, the bus counts
                self._status_q.put_nowait(rej)
            self.desired.rejections.clear()
        if isinstance(event, Snapshot) and not self.connected.is_set():
            self.digest_ahead()
        self._wake.set()
        self._idle.clear()

    def digest_ahead(self) -> None:
        """While NB loads (no replica yet: nothing can be diffed), digest every
        desired port's columns (``port.Ahead``): the first batch after the load
        then leaves the ports they show unchanged without a diff each, instead
        of digesting 50k ports after NB answered, on the way to READY."""
        self.view.ahead = None
        with gc_paused():  # (temporaries only: the collector would walk the whole desired state for nothing)
            self.view.ahead = Ahead(self.desired.ports, self.hub_id)

    def remove_source(self, source: Source) -> None:
        """The source is gone from the config: its rows are collected."""
        self.apply(Snapshot(source=source, objects=()))

    def set_fabric(self, fabric: Fabric) -> None:
        """The fabric spec (at start and on every reload): routers, external
        networks, DNS, hub-level policies.  Written by the next batch."""
        self._desired_gen += 1
        self.desired.set_fabric(fabric)
        self._wake.set()
        self._idle.clear()

    def expect(self, sources: Iterable[Source | str]) -> None:
        """The sources whose snapshots the fabric waits for (the configured adapters)."""
        self._desired_gen += 1
        self.desired.expect({str(s) for s in sources})
        self._wake.set()

    def switch_of(self, source: Source | str, network: str) -> str:
        """The switch ``source``'s objects on ``network`` hang from (shared networks: the hub-wide one)."""
        return self.desired.switch_of(source, network)

    @property
    def fabric(self) -> FabricIndex:
        return self.desired.fabric

    def _derive(self) -> None:
        if self.view.ahead is not None and not self.dirty[PORTS]:
            self.view.ahead = None  # (no diff came to take it: a standby's, say)
        self._desired_gen += 1
        was_open = self.desired.fabric_open
        self.desired.derive(lambda ep: with_dynamic_ips(ep, self.ports))
        if self.desired.fabric_open and not was_open:
            # GC of the fabric's rows is now licensed: look at every one it owns
            fab = str(FABRIC_SOURCE)
            for table, store in self.replica.stores.items():
                self.dirty[table].update(k for k in store.keys() if store.source(k) == fab)

    def plan(self) -> list[PlanOp]:
        """Everything the writer would do now (all rows, not just dirty ones)."""
        self._derive()
        return plan_all(self.view)

    # ------------------------------------------------------------ connection
    async def start(self, timeout: float | None = 30.0) -> None:
        """Connect and load the replica; returns when NB is synced."""
        backoff = Backoff(0.05, 1.0)  # probing a socket is cheap: NB is found within a second of listening
        async with asyncio.timeout(timeout):
            while True:
                try:
                    await self._connect()
                    return
                except (OSError, OvsdbError, TimeoutError) as exc:
                    log.info("waiting for OVN NB at %s: %s", self.nb_remote, exc)
                    await asyncio.sleep(backoff.next())

    async def _connect(self) -> None:
        client = OvsdbClient(self.nb_remote, tls=self.tls, leader_only=True)
        await client.connect()
        reconnect = len(self.ports) > 0
        mark = self._txn_mark if reconnect else None
        remembered = portcache.memory_entries(self.ports, unversioned=mark is not None) if reconnect else []
        self.replica.clear()
        self.view.in_sync.clear()  # (records of the old replica's tuples)
        self.view.pending.clear()
        client.on_update = self.replica.on_update
        try:
            if self.lock_name is not None:
                # Before anything is read: the inserts of another writer of this hub id (the
                # writer's own monitor leaves inserts out: it records its own from the replies)
                await client.monitor_cond(self.replica.monitor_requests(inserts_only=True), STANDBY_MONITOR)
            await client.monitor_cond(self.replica.monitor_requests(), decode=self.replica.decoder())
            await self._load_ports(client, reconnect, remembered, mark)
            self.replica.share_uuids()
            self._client = client
            if self.lock_name is not None:
                client.on_lock = self._on_lock
                if self._paused:
                    self._set_role("paused")
                elif await client.lock(self.lock_name):
                    await client.call("monitor_cancel", [STANDBY_MONITOR], timeout=30.0)
                    self._set_role("active")
                else:
                    self._set_role("standby")
        except BaseException:
            self._client = None
            await client.close()
            raise
        # Level-triggered restart: everything we know of is a candidate.
        for table, kind in KINDS.items():
            wanted = kind.desired_keys(self.view) if kind.desired_keys is not None else self.desired.rows[table]
            self.dirty[table].update(wanted)
            self.dirty[table].update(self.replica.stores[table].keys())
        self.connected.set()
        self._wake.set()
        counts = ", ".join(f"{len(s)} {t}" for t, s in self.replica.stores.items())
        log.info("NB synced: %s rows owned by %s", counts, self.hub_id)

    async def _load_ports(
        self, client: OvsdbClient, reconnect: bool, remembered: list[portcache.CachedPort], mark: str | None
    ) -> None:
        got = await portcache.load(client, self.ports, self.changes, self.hub_id, self.nb_remote,
                                   None if reconnect else self.cache_path, remembered if reconnect else None, mark)  # fmt: skip
        self.ports_from_cache, self.ports_read, self.ports_load = got.fresh, got.read, got.how
        if not reconnect:  # (consecutive cache-based *starts*: a reconnect does not count)
            self._cache_generation = got.generation
        else:
            how = {"in memory": "revalidated", "in memory, NB history": "history"}
            self.reconnect_loads[how.get(got.how, "read")] += 1

    async def _mark_history(self, client: OvsdbClient) -> None:
        """Note NB's last transaction (at most every HISTORY_MARK_INTERVAL, with
        nothing in flight): the replica reflects every transaction up to it, so a
        reconnect, even to another member of a cluster, asks NB's history what
        changed since instead of reading every port (``_version`` is each
        member's own).  A standalone NB keeps no history: not asked again."""
        now = time.monotonic()
        if self._history is False or now - self._marked_at < HISTORY_MARK_INTERVAL or client.closed.is_set():
            return
        self._marked_at = now
        try:
            mark = await client.last_txn_id(timeout=10.0)
        except (OvsdbError, TimeoutError) as exc:
            log.debug("NB's last transaction not known (%s)", exc)
            return
        if mark is None:
            self._history = False
        else:
            self._history = True
            self._txn_mark = mark
            self._unmarked = False

    # ------------------------------------------------------------ active / standby
    @property
    def active(self) -> bool:
        return self.role == "active"

    def _set_role(self, role: str) -> None:
        if role == self.role:
            return
        log.warning("NB writer %s: %s -> %s (lock %s)", self.hub_id, self.role, role, self.lock_name)
        client = self._client
        if role != "active" and self.role == "active" and client is not None and not client.closed.is_set():
            # active -> standby: the standby's monitor of the other writer's inserts starts at
            # connect, before the read, or rows inserted in between would be missed: reconnect
            client.drop("this writer stands by: its replica is read again with the standby's monitor")
        if role == "active" and client is not None and not client.closed.is_set():
            task = asyncio.ensure_future(self._cancel_standby_monitor(client))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if role == "active":
            if self._was_active:
                self.takeovers += 1
            self._was_active = True
            # level-triggered takeover: every row is a candidate; the warm replica makes it a diff
            for table, kind in KINDS.items():
                wanted = kind.desired_keys(self.view) if kind.desired_keys is not None else self.desired.rows[table]
                self.dirty[table].update(wanted)
                self.dirty[table].update(self.replica.stores[table].keys())
        self.role = role
        metrics.NB_ACTIVE.set(1 if role == "active" else 0)
        self._wake.set()
        if self.on_role is not None:
            self.on_role(role)

    async def _cancel_standby_monitor(self, client: OvsdbClient) -> None:
        """The writer's own inserts need no echo (recorded from its replies)."""
        with contextlib.suppress(OvsdbError, TimeoutError):
            await client.call("monitor_cancel", [STANDBY_MONITOR], timeout=30.0)

    def _on_lock(self, name: str, held: bool) -> None:
        if name != self.lock_name:
            return
        if held and not self._paused:
            self._set_role("active")
        elif not held:
            log.warning("NB lock %s was stolen: standing by", name)
            self._set_role("paused" if self._paused else "standby")

    async def pause(self) -> None:
        """Stop writing and leave the lock's queue (``hubctl pause``): a standby
        takes over.  A paused writer keeps its replica and desired state warm."""
        self._paused = True
        client = self._client
        if self.lock_name is not None and client is not None and not client.closed.is_set():
            await client.unlock(self.lock_name)
        self._set_role("paused")

    async def resume(self) -> None:
        """Contend for the lock again (``hubctl resume``): active at once if free."""
        self._paused = False
        client = self._client
        if self.lock_name is None:
            self._set_role("active")
        elif client is not None and not client.closed.is_set():
            self._set_role("active" if await client.lock(self.lock_name) else "standby")
        else:
            self._set_role("standby")  # the next connect asks for the lock

    async def save_port_cache(self) -> bool:
        """Write the restart cache (call at a clean stop, after the last write)."""
        client = self._client
        if self.cache_path is None or client is None or client.closed.is_set():
            return False
        return await portcache.save(client, self.ports, self.cache_path, self.hub_id, self.nb_remote, self._cache_generation)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    # ------------------------------------------------------------ writer
    def _is_dirty(self) -> bool:
        return bool(self.changes)

    async def run(self) -> None:
        """The single NB writer.  Reconnects (and resyncs) when NB goes away.

        A session that dies inside one of our transactions is retried at once
        (the writer is isolating the row, see _suspect); one that was healthy
        for a while too; otherwise back off, capped at 1 s while the server
        refuses connections (a probe is cheap, so the first retry comes within
        1 s of it listening again) and at 30 s when it accepts but the sync
        fails (that costs the server a read)."""
        publisher = asyncio.create_task(self._publisher(), name="status-publisher")
        retry_at = time.monotonic() + self.retry_interval
        backoff = Backoff(0.1, 30.0)
        session_start = time.monotonic()
        wrote = False  # the last turn wrote a batch: what is dirty now gathered while it was in flight
        try:
            while True:
                if self._client is None or self._client.closed.is_set():
                    self.connected.clear()
                    if self._client is not None and (self.failures.dropped_in_txn or time.monotonic() - session_start > 10):
                        backoff.reset()
                    self.failures.dropped_in_txn = False
                    if self._client is not None:
                        await self._client.close()  # the lost session's transport, before a new one
                    try:
                        await self._connect()
                        session_start = time.monotonic()
                        self.connect_failures = 0
                    except (OSError, OvsdbError, TimeoutError) as exc:
                        self.connect_failures += 1
                        refused = isinstance(exc, ConnectionRefusedError | FileNotFoundError | NoUsableServer)
                        delay = backoff.next(cap=1.0 if refused else None)
                        log.warning("NB %s unreachable (%s); retrying in %.1fs", self.nb_remote, exc, delay)
                        await asyncio.sleep(delay)
                        continue
                if not (self._is_dirty() and self.active):  # (one about to write derives in _write_batch, after coalescing)
                    self._derive()
                if not self._is_dirty() or not self.active:
                    client = self._client
                    assert client is not None
                    with contextlib.suppress(ConnectionLost):
                        await self._mark_history(client)
                    if self._is_dirty() and self.active:
                        continue  # (events came while NB answered)
                    self._idle.set()
                    metrics.DIRTY.set(0)
                    self._wake.clear()
                    timeout = max(0.0, retry_at - time.monotonic()) if self.failed else None
                    if self._unmarked and self._history is not False:  # wake to note the last write's transaction
                        mark_in = max(0.0, self._marked_at + HISTORY_MARK_INTERVAL - time.monotonic())
                        timeout = mark_in if timeout is None else min(timeout, mark_in)
                    closed = asyncio.ensure_future(client.closed.wait())
                    waker = asyncio.ensure_future(self._wake.wait())
                    try:
                        await asyncio.wait({closed, waker}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        closed.cancel()
                        waker.cancel()
                    if self.failed and time.monotonic() >= retry_at:
                        retry_at = time.monotonic() + self.retry_interval
                        self._retry_failed()
                    wrote = False
                    continue
                self._idle.clear()
                # (after a batch, its transaction's time was the window; a full batch waiting gains nothing by one)
                if self.coalesce and not wrote and self.changes.count() < self.batch_size:
                    await asyncio.sleep(self.coalesce)
                wrote = True
                try:
                    with gc_paused():  # one collector pause per batch, not one per step
                        await self._write_batch()
                    if self._client is not None:
                        await self._mark_history(self._client)  # (under steady churn the writer is never idle)
                except ConnectionLost:
                    wrote = False
                    continue
        finally:
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher

    def _retry_failed(self) -> None:
        for table, key in self.failures.retry():
            self.dirty[table].add(key)

    async def _publisher(self) -> None:
        q = self._status_q
        while True:
            item = await q.get()
            while True:  # (what a batch queued: taken without a get() a status event)
                if self.publish_many is not None and isinstance(item, list):
                    try:
                        await self.publish_many(item)
                    except Exception:
                        log.exception("publishing status events failed")
                elif self.publish is not None:
                    for ev in item if isinstance(item, list) else (item,):
                        try:
                            await self.publish(ev)
                        except Exception:
                            log.exception("publishing a status event failed")
                if q.empty():
                    break
                item = q.get_nowait()

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until no row is dirty and no transaction is in flight."""
        async with asyncio.timeout(timeout):
            while True:
                await self._idle.wait()
                await asyncio.sleep(0)
                done = not self._is_dirty() or not self.active  # a standby has nothing to write
                if self._idle.is_set() and done and not self.desired.stale and self.connected.is_set():
                    return
                await asyncio.sleep(0.01)

    async def _write_batch(self) -> None:
        self._derive()  # events of the coalescing window: their derived rows go with their ports
        take = self.changes.take(self.failures, self.batch_size)
        metrics.DIRTY.set(self.changes.count())
        with gc_paused():
            units, pulled, deferred = plan_batch(self.view, take)
        for t, k in pulled:
            self.dirty[t].discard(k)
        self.changes.deferred |= deferred
        if not units:
            for k in take.get(PORTS, ()):
                self._since.pop(k, None)
            if not self._since:
                self._since.clear()  # a dict keeps its table when emptied by pops
            return
        await self._commit(units)

    async def _commit(self, units: list[PlanOp]) -> None:
        assert self._client is not None
        units, held = txn.with_parents(self.view, units)
        for u in held:
            self.failures.hold(u)
            self._since.pop(u.name, None)
        if not units:
            return
        # fenced: the server refuses it unless we hold the lock
        tail = [{"op": "assert", "lock": self.lock_name}] if self.lock_name is not None else []
        built = txn.Build(self.view, units, stream=len(units) >= self.stream_min and txn.streamable(units))
        if not built.stream:
            with gc_paused():
                for _ in built.steps(len(units) + 1):
                    pass
            built.ops.extend(tail)
        ops = built.ops  # (a streamed build fills it as it is sent)
        t0 = time.monotonic()
        self.changes.watch({(u.table, u.name) for u in units if u.op == "update"})
        try:
            try:
                result = await self._transact(built, tail, units)
            except BaseException:
                self.changes.settle()
                raise
        except (OvsdbError, TimeoutError) as exc:
            if isinstance(exc, ConnectionLost | TimeoutError):
                if isinstance(exc, TimeoutError):  # a hung server: this session is over
                    await self._client.close()
                self._redirty(units)
                bad = self.failures.suspect(units, exc)
                if bad is not None:
                    self.dirty[bad.table].discard(bad.name)
                    self._reject(bad, f"the NB session dropped each time it was committed alone ({exc})", "nb-refused")
                raise ConnectionLost(str(exc)) from None
            metrics.TXNS.labels("error").inc()
            if isinstance(exc.details, dict) and exc.details.get("error") == "not owner":
                self._redirty(units)  # deposed: the lock is someone else's; nothing of ours was written
                self._set_role("paused" if self._paused else "standby")
                return
            if await self._own_twin(ops, exc, _clashing(units, exc)):
                self._redirty(units)  # the twin is in the replica now: the next plan diffs it
                return
            if len(units) == 1:
                self._reject(units[0], str(exc))
                return
            mid = len(units) // 2
            # parents first, so the second half finds what the first inserted
            await self._commit(units[:mid])
            await self._commit(units[mid:])
            return
        try:
            self._committed(units, built.inserts, result, t0)
        finally:
            self.changes.settle()  # (when _committed failed: its echoes are diffed again)
            self.ports.unprepare()

    async def _transact(self, built: txn.Build, tail: list[dict[str, Any]], units: list[PlanOp]) -> list[Any]:
        """Commit the operations ``built`` (then ``tail``); once they are sent,
        while NB works on them, digest the ports they write (recording the
        reply then costs no digest).  A streamed build is built as it is sent
        (``txn.Build.chunks``): NB parses the first rows while the last are built."""
        client = self._client
        assert client is not None
        if built.stream:
            written = asyncio.Event()

            def chunks() -> Iterator[list[dict[str, Any]]]:
                yield from built.chunks(STREAM_CHUNK)
                built.ops.extend(tail)
                yield tail

            sent = asyncio.ensure_future(client.transact_stream(chunks(), on_sent=written.set))
        else:
            sent = asyncio.ensure_future(client.transact(built.ops))
        try:
            if built.stream:
                waiting = asyncio.ensure_future(written.wait())
                try:
                    await asyncio.wait({sent, waiting}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiting.cancel()
            await asyncio.sleep(0)  # the request is written ...
            await client.drained()  # ... and with the server
            if not sent.done():
                if built.stream:  # (nothing else holds its operations)
                    built.sent()
                self.ports.prepare(units)
                self._recording = txn.Recording(self.view, units, built.inserts)
                self._events_for(units)
            return await sent
        except BaseException:
            self.ports.unprepare()
            self._recording = None  # (a failed batch's: not kept until the next commit)
            self._events_ahead = None
            if not sent.done():
                sent.cancel()
            with contextlib.suppress(BaseException):
                await sent
            raise

    async def _own_twin(self, ops: list[dict[str, Any]], exc: OvsdbError, unit: PlanOp | None = None) -> bool:
        """An insert failed on its guard (a ``wait`` that no such row exists)
        or on NB's unique name index: is the row there ours?  Then an earlier
        transaction of this hub committed it although its reply was lost (a
        clustered NB commits at least once, and may commit it only after the
        writer has reconnected and read the new leader), so the writer's
        replica never saw it: the monitor does not echo inserts.  The row is
        read and installed in the replica, and the insert is dropped (the next
        diff updates the row if it differs).  A foreign row is a conflict."""
        op = ops[exc.index] if exc.index is not None and 0 <= exc.index < len(ops) else None
        if self._client is None:
            return False
        if op is not None and op.get("op") == "wait":
            table, where = str(op["table"]), op["where"]
        elif unit is not None:  # (the insert NB's unique name index refused: :func:`_clashing`)
            table, where = unit.table, [["name", "==", unit.name]]
        else:
            return False
        kind = KINDS[table]
        columns = ["_uuid", *kind.columns, *kind.extra_columns]
        try:
            reply = await self._client.transact([{"op": "select", "table": table, "where": where, "columns": columns}],
                                                timeout=30.0)  # fmt: skip
        except (OvsdbError, TimeoutError):
            return False
        rows = reply[0].get("rows", []) if reply else []
        if kind.owner_in_name:  # (the name carries the owner)
            ours = [r for r in rows if str(r.get("name", "")).startswith(owner_prefix(self.hub_id))]
        else:
            ours = [r for r in rows if py_map(r.get("external_ids", ["map", []])).get(OWNER) == self.hub_id]
        for r in ours:
            self.replica.on_update({table: {r.pop("_uuid")[1]: {"initial": r}}})
        if ours:
            log.info("%s insert already committed by an earlier transaction whose reply was lost: "
                     "the row is taken into the replica, not inserted twice", table)  # fmt: skip
            metrics.TWINS_AVERTED.inc()
        return bool(ours)

    def _committed(self, units: list[PlanOp], inserts: dict[int, int], result: list[Any], t0: float) -> None:
        now = time.monotonic()
        stores = self.replica.stores
        with gc_paused():
            rec, self._recording = self._recording, None
            if rec is None or rec.units is not units or rec.inserts is not inserts:
                rec = txn.Recording(self.view, units, inserts)  # (not made while NB worked)
            joined = rec.finish(result, self.changes)
            for t, k in joined:
                self.dirty[t].add(k)
            if self.changes.echoed:  # our own updates' echoes: no diff of a row NB holds as written
                updates = {(u.table, u.name): u for u in units if u.op == "update"}
                self.changes.settle(lambda t, k: as_written(self.view, updates[(t, k)]))
            pending = self.view.pending
            holding = {t for t, k in KINDS.items() if k.members is not None}
            if pending or holding.intersection(u.table for u in units if u.op == "insert"):
                for u in units:  # (a write NB did not echo: its record goes, the next diff decides)
                    if pending:
                        pending.pop((u.table, u.name), None)
                    if u.op == "insert" and u.table in holding:
                        inserted(self.view, u)
            metrics.TXN_SECONDS.observe(now - t0)
            metrics.TXNS.labels("ok").inc()
            self.transactions += 1
            self.writes += len(units)
            self._unmarked = True
            waited: list[float] = []
            seen: set[tuple[str, str, str]] = set()
            events: list[StatusEvent] = []
            self.failures.committed(units)
            view, since_pop, committed_at = self.view, self._since.pop, self._committed_at
            ahead = self._events_ahead
            self._events_ahead = None
            if ahead is not None and (ahead[0] is not units or ahead[1] != self._desired_gen):
                ahead = None  # (the desired state changed since they were made: made again)
            # units come in runs of one table and operation (rank order): each run at once
            for (table, op), run in itertools.groupby(units, key=_table_op):
                kind = KINDS[table]
                run_units = list(run)
                metrics.NB_OPS.labels(table, op).inc(len(run_units))
                if op == "update" or not isinstance(stores[table], PortStore):
                    committed = stores[table].committed
                    for u in run_units:
                        committed(u)
                for u in run_units:
                    since = since_pop(u.name, None)
                    if since is not None:
                        waited.append(now - since)
                if kind.reports_up:
                    if op == "insert":
                        committed_at.update(dict.fromkeys([u.name for u in run_units], now))
                    elif op == "delete":
                        for u in run_units:
                            committed_at.pop(u.name, None)  # never came up: nothing to time
                programmed = kind.programmed
                if programmed is None:
                    continue
                if ahead is not None and not kind.whole_batch:
                    got = ahead[2]
                    events.extend(ev for u in run_units if (ev := got.get(id(u))) is not None)
                    continue
                for u in run_units:
                    ev = programmed(view, u)
                    if ev is None:
                        continue
                    if kind.whole_batch:  # derived rows: one event per service or policy, not per row
                        seen_key = (str(ev.source), ev.kind, ev.key)
                        if seen_key in seen:
                            continue
                        seen.add(seen_key)
                    events.append(ev)
            if events:
                self._status_q.put_nowait(events)  # (one item: the publisher hands them over one by one)
            if not self._since:
                self._since.clear()
            metrics.observe_many(metrics.EVENT_TO_COMMIT, waited)

    def _events_for(self, units: list[PlanOp]) -> None:
        """The Programmed events of ``units`` (kinds not whole_batch), made
        while NB works on their transaction: recording its reply then hands
        them over as they are, unless the desired state changed meanwhile."""
        gen = self._desired_gen
        view = self.view
        got: dict[int, StatusEvent] = {}
        for (table, _op), run in itertools.groupby(units, key=_table_op):
            kind = KINDS[table]
            programmed = kind.programmed
            if programmed is None or kind.whole_batch:
                continue
            for u in run:
                ev = programmed(view, u)
                if ev is not None:
                    got[id(u)] = ev
        self._events_ahead = (units, gen, got)

    def _redirty(self, units: Iterable[PlanOp]) -> None:
        for u in units:
            self.dirty[u.table].add(u.name)

    def _reject(self, unit: PlanOp, why: str, reason: str = "") -> None:
        """NB refused ``unit`` (alone): it is failed (retried after
        ``retry_interval`` or when its desired state changes) and a Rejected
        names the row and NB's error."""
        name, reason, message = self.failures.refuse(unit, why, reason)
        self._since.pop(unit.name, None)
        src = self._source_of(unit)
        log.warning("%s (%s; retrying every %.0fs)", message, reason, self.retry_interval)
        if self.publish is None:
            metrics.REJECTED.labels(str(src), reason).inc()  # with a bus, the bus counts (once per distinct row)
        self._status_q.put_nowait(Rejected(source=src, reason=reason, message=message, ref=name))

    def _source_of(self, unit: PlanOp) -> Source:
        ep = self.desired.ports.get(unit.name)
        if ep is not None:
            return ep.source
        src = self.view.ids(unit.table, unit.name).get(SOURCE) or self.replica.stores[unit.table].source(unit.name)
        if not src:
            parts = unit.name.split("/", 2)
            src = f"{parts[0]}/{parts[1]}" if len(parts) > 1 else ""
        try:
            return Source.parse(src)
        except ValueError:
            return Source("unknown", "unknown")

    # ------------------------------------------------------------ queries
    def status(self) -> NbStatus:
        return NbStatus(
            remote=self.nb_remote,
            connected=self.connected.is_set(),
            switches=len(self.replica.stores[switch.TABLE]),
            ports=len(self.ports),
            endpoints=len(self.desired.ports),
            dirty=self.changes.count(),
            failed=dict(itertools.islice(self.failed.items(), 50)),
            failed_count=len(self.failed),
            transactions=self.transactions,
            ports_from_cache=self.ports_from_cache,
            ports_read=self.ports_read,
            session_drops=self.session_drops,
            reconnect_loads=dict(self.reconnect_loads),
            role=self.role,
            takeovers=self.takeovers,
            member=self._client.remote if self._client is not None else "",
            ports_load=self.ports_load,
        )

    def port_status(self, name: str) -> PortStatus:
        """``programmed``: the port row is committed, equal to desired and not
        waiting to be rewritten (the one predicate the API and MQTT share)."""
        row = self.ports.rows.get(name)
        return PortStatus(
            programmed=row is not None and row.digest is not None and name not in self.dirty[PORTS],
            up=row.up if row is not None else None,
            error=self.failed.get(name),
        )

    def endpoints(self) -> Iterable[tuple[Endpoint, PortRow | None]]:
        rows = self.ports.rows
        for name, ep in self.desired.ports.items():
            yield ep, rows.get(name)

    def fabric_status(self) -> FabricStatus:
        fab = self.desired.fabric
        ext = {e.router: e.name for e in fab.spec.externals}
        tables = ("Logical_Router", "Logical_Router_Port", "NAT", "Logical_Router_Static_Route", "Load_Balancer_Group",
                  "DNS", "HA_Chassis_Group")  # fmt: skip
        return FabricStatus(
            routers=[RouterStatus(r.name, list(fab.switches(r.name)), ext.get(r.name, "")) for r in fab.spec.routers],
            problems=list(fab.problems),
            collecting=self.desired.fabric_open,
            rows={t: len(self.replica.stores[t]) for t in tables if t in self.replica.stores},
        )

    def synced_sources(self) -> list[str]:
        return sorted(s for s, st in self.desired.sources.items() if st.synced)


    # ------------------------------------------------------------ lookups (hubctl trace)
    def sources(self) -> list[str]:
        """Every source the desired state knows (listed or not)."""
        return sorted(self.desired.sources)

    def find_endpoints(self, source: str, namespace: str, name: str) -> list[Endpoint]:
        """One workload's endpoints (one per network it is attached to), in
        network order, with the addresses OVN allocated filled in."""
        st = self.desired.sources.get(source)
        if st is None:
            return []
        found = sorted((ep for ep in st.endpoints.values() if ep.namespace == namespace and ep.name == name),
                       key=lambda e: (e.network, e.uid))  # fmt: skip
        return [with_dynamic_ips(ep, self.ports) for ep in found]

    def endpoints_with_ip(self, ip: str) -> list[Endpoint]:
        """The endpoints holding ``ip`` (their own or OVN-allocated), by port name."""
        want = ipaddress.ip_address(ip)
        out = []
        for ep in self.desired.ports.values():
            ep = with_dynamic_ips(ep, self.ports)
            if any(_same_ip(a, want) for a in ep.ips):
                out.append(ep)
        return sorted(out, key=lsp_name)

    def endpoint_of_port(self, port: str) -> Endpoint | None:
        """The endpoint whose Logical_Switch_Port is ``port`` (None: not an endpoint's port)."""
        ep = self.desired.ports.get(port)
        return with_dynamic_ips(ep, self.ports) if ep is not None else None

    def port_addresses(self, port: str) -> tuple[str, tuple[str, ...]] | None:
        """The MAC and IPs of an endpoint's port: the endpoint's own (a derived
        MAC when it has none), or what OVN allocated to a ``dynamic`` port.
        None while the port is not in NB, or OVN has not allocated yet."""
        ep = self.desired.ports.get(port)
        row = self.ports.rows.get(port)
        if ep is None or row is None:
            return None
        if ep.ips:
            return ep.mac or derived_mac(ep), ep.ips
        if not row.dyn:
            return None
        mac, *ips = row.dyn.split()
        return mac, tuple(ips)

    def find_services(self, source: str, namespace: str, name: str) -> list[Service]:
        st = self.desired.sources.get(source)
        if st is None:
            return []
        return sorted((s for s in st.services.values() if s.namespace == namespace and s.name == name), key=lambda s: s.uid)

    def services_with_vip(self, ip: str) -> list[Service]:
        """The Services with a rule on VIP ``ip``."""
        want = ipaddress.ip_address(ip)
        found = [svc for st in self.desired.sources.values() for svc in st.services.values()
                 if any(_same_ip(r.vip, want) for r in svc.rules)]  # fmt: skip
        return sorted(found, key=lambda s: (str(s.source), s.namespace, s.name, s.uid))

    def router_port(self, switch_name: str) -> RouterPort | None:
        """The router port of the network whose switch is ``switch_name`` (None: on no router)."""
        fab = self.desired.fabric
        r = fab.router_of.get(switch_name)
        rn = next((n for n in fab.nets.get(r, ()) if n.switch == switch_name), None) if r else None
        if r is None or rn is None:
            return None
        name = router_port.lrp_name_for(switch_name)
        return RouterPort(router=router.router_name(r), name=name, mac=stable_mac(name), networks=rn.cidrs)

    def nb_rows(self, table: str, uuid_prefix: str) -> list[NbRow]:
        """The hub's rows of ``table`` whose uuid starts with ``uuid_prefix``
        (a whole uuid, or a logical flow's ``stage-hint``: its first 8 hex digits)."""
        store = self.replica.stores.get(table)
        if not isinstance(store, RowStore) or not uuid_prefix:
            return []
        return [NbRow(table=table, key=k, uuid=r.uuid, columns=dict(r.cols))
                for k, r in store.rows.items() if r.uuid.startswith(uuid_prefix)]  # fmt: skip

    def isolating_policies(self, port: str, direction: str) -> list[Policy]:
        """The policies isolating an endpoint in ``direction`` (``ingress`` or
        ``egress``): they select it and have that direction in effect, so only
        their rules' allows pass (the default deny drops the rest)."""
        ep = self.desired.ports.get(port)
        st = self.desired.sources.get(str(ep.source)) if ep is not None else None
        if ep is None or st is None or direction not in ("ingress", "egress"):
            return []
        pols = sorted(st.policies.values(), key=lambda p: (p.namespace, p.name, p.uid))
        cands = policy.candidates([ep], st.namespaces)
        return [p for p in pols if getattr(p, direction) is not None and policy.selected(p, cands)]


def _table_op(u: PlanOp) -> tuple[str, str]:
    return u.table, u.op


def _same_ip(text: str, want: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(text) == want
    except ValueError:
        return False


_CLASH = re.compile(r'multiple rows in "([^"]+)" table to have identical values \((.*)\) for index on column "name"')


def _clashing(units: list[PlanOp], exc: OvsdbError) -> PlanOp | None:
    """The insert of ``units`` whose name NB's unique index found taken (its
    error names the table and the value), so that a twin costs one read, not
    a bisection down to its row."""
    details = exc.details.get("details", "") if isinstance(exc.details, dict) else ""
    m = _CLASH.search(str(details))
    if m is None:
        return None
    name = m.group(2)
    if name.startswith('"'):  # (ovsdb-server quotes a string only when it is not a bare identifier)
        try:
            name = json.loads(name)
        except ValueError:
            return None
    return next((u for u in units if u.op == "insert" and u.table == m.group(1) and u.name == name), None)

