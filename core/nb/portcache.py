"""Loading the port replica: the restart cache, in-memory revalidation, sharded reads.

OVSDB gives every row a ``_version`` that changes with every modification, so
a row whose ``_uuid`` and ``_version`` equal a remembered entry is exactly the
row the hub saw.  A start (from ``<state_dir>/nb-ports-<hub id>.cache``,
written at a clean stop) or a reconnect (from the replica in memory) then reads
only ``_uuid``/``_version`` of its ports and the full columns of the few that
changed, instead of every column of every port.  Anything odd (missing,
unreadable, another hub or NB, too many changes; a restarted ovsdb-server
renumbers every ``_version``) falls back to the full read (one select whose
rows are decoded one at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Collection, Container, Iterable
from operator import itemgetter
from typing import Any

import msgspec

from core.gcpause import gc_paused
from core.names import SHARD, owned
from core.nb.store import Events
from core.nb.tables.port import READ_COLUMNS, TABLE, PortRow, PortStore, version_bytes
from core.ovsdb import OvsdbClient, OvsdbError

log = logging.getLogger("ovn_hub.programmer")


class _Version(msgspec.Struct, gc=False, rename={"uuid": "_uuid", "version": "_version"}):
    """A row of the ``_uuid``/``_version`` select."""

    uuid: tuple[str, str]
    version: tuple[str, str]


_version_decoder = msgspec.json.Decoder(_Version)


class CachedPort(PortRow, array_like=True, gc=False):
    """One port of the restart cache: what the replica knew of a row at a given
    ``_version`` (``version``).  A :class:`PortRow` itself, not a field more, so
    a port the cache vouches for goes into the replica as it was decoded (no
    second copy of 50k rows while the cache is loaded).  Its name and source
    are kept apart (:class:`PortCache`), so neither is decoded once a port."""


class Remembered(list[CachedPort]):
    """Ports a reconnect revalidates (:func:`memory_entries`), ``names[i]`` the i-th's name;
    ``unsure``: uuids of the replica's rows it cannot vouch for (rewritten under it: read again)."""

    names: list[str]
    unsure: list[str]


class _CacheHead(msgspec.Struct):
    """The restart cache's header (its ports unread): a foreign or old cache is not decoded."""

    format: int
    hub_id: str
    nb: str


class PortCache(msgspec.Struct):
    """The restart cache file."""

    format: int
    hub_id: str
    nb: str
    #: each source and how many ports in a row are its (``ports`` are grouped by source; theirs is "")
    sources: list[tuple[str, int]]
    #: the ports' names, in the order of ``ports`` (decoded before them: see :func:`read_cache`)
    names: list[str]
    ports: list[CachedPort]
    #: Consecutive starts that used a cache (a safety net: see CACHE_MAX_GENERATIONS).
    generation: int = 0
    #: NB's last transaction when the cache was taken ("": NB keeps no history, a standalone server)
    txn: str = ""


class _CacheNames(msgspec.Struct):
    """The restart cache, its ports left undecoded."""

    format: int
    hub_id: str
    nb: str
    sources: list[tuple[str, int]]
    names: list[str]
    ports: msgspec.Raw
    generation: int = 0
    txn: str = ""


#: Bump when lsp_digest or CachedPort changes (old caches are then ignored).
#: 3: digests of 60 bits, versions as their 16 bytes; 4: names and sources apart from the entries;
#: 5: NB's last transaction id (a clustered NB's history answers what changed since).
PORT_CACHE_FORMAT = 5
#: Every this many cache-based starts, one full read: a replica error (say, a
#: foreign change hidden by a clustered NB's reply order) cannot outlive it.
CACHE_MAX_GENERATIONS = 8
#: Above this many changed ports (or this share of all), a load reads everything instead.
CACHE_MAX_CHANGED = 5000


def memory_entries(store: PortStore, unversioned: bool = False) -> Remembered:
    """The port replica in memory, as cache entries: what a reconnect can
    revalidate (rows rewritten under us are left out: read; so are rows of
    unknown version, the ones this process inserted, unless ``unversioned``:
    NB's history vouches for rows, not their versions)."""
    out = Remembered()
    out.names = []
    out.unsure = []
    for name, r in store.rows.items():
        if r.digest is None:
            out.unsure.append(r.uuid)
        elif r.version or unversioned:
            out.append(CachedPort(r.uuid, r.source, r.digest, r.up, r.dyn, r.version))
            out.names.append(name)
    return out


def read_cache(
    path: str | os.PathLike[str] | None, hub_id: str, nb: str,
    canonical: Callable[[], dict[str, str] | None] | None = None,
) -> PortCache | None:  # fmt: skip
    """The restart cache, once: it is removed as it is read (a later crash
    must not find it; versions would reject it anyway).

    The names are decoded first and each replaced by the desired state's
    equal string (``canonical``: :meth:`PortStore.canonical_names`), so the
    ones decoded are freed before the ports are: the ports' objects then take
    their place instead of the heap keeping ~3.6 MB of holes (at 50k).  (A
    start may read the cache before any adapter's snapshot is applied: then
    :func:`load_from` takes the desired names once the versions are in.)"""
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("port cache %s unreadable (%s): reading every port", path, exc)
        return None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    try:
        head = msgspec.msgpack.decode(data, type=_CacheHead)
        if head.format != PORT_CACHE_FORMAT or head.hub_id != hub_id or head.nb != nb:
            log.info("port cache %s is for another hub, NB or format: reading every port", path)
            return None
        with gc_paused():
            part = msgspec.msgpack.decode(data, type=_CacheNames)
            names = part.names
            canon = canonical() if canonical is not None else None
            if canon:
                for i, n in enumerate(names):
                    names[i] = canon.get(n, n)
            del canon
            ports = msgspec.msgpack.decode(part.ports, type=list[CachedPort])
    except msgspec.DecodeError as exc:
        log.warning("port cache %s is damaged (%s): reading every port", path, exc)
        return None
    del data
    sources, generation, txn = part.sources, part.generation, part.txn
    del part  # (its ports' raw bytes)
    if sum(count for _, count in sources) != len(ports) or len(names) != len(ports):
        log.warning("port cache %s is damaged (%d ports, %d names): reading every port", path, len(ports), len(names))
        return None
    at = 0
    for source, count in sources:  # one copy of each source name
        shared = sys.intern(source)
        for j in range(at, at + count):
            ports[j].source = shared
        at += count
    if not all(names) or any(c.digest is None or not c.version for c in ports):
        log.warning("port cache %s is damaged (an entry without digest, version or name): reading every port", path)
        return None
    return PortCache(format=head.format, hub_id=hub_id, nb=nb, sources=sources, names=names, ports=ports,
                     generation=generation, txn=txn)  # fmt: skip


#: A read of at least this many rows keys them by the desired state's name strings
#: (``PortStore.canonical_names``: a dict of every desired port, worth it for a full read).
CANON_MIN_ROWS = 1000


def install_rows(store: PortStore, ev: Events, result: list[Any], canon: dict[str, str] | None = None) -> int:
    """Reply hook of port selects: install every returned row (in stream order).
    Rows come raw (``transact_rows``): each is decoded, digested and
    dropped before the next, and a row's bytes are let go once it is installed.
    ``canon``: the names to key rows by (default: the desired ones, for many rows)."""
    n = 0
    if canon is None and sum(len(r.get("rows", ())) for r in result if isinstance(r, dict)) >= CANON_MIN_ROWS:
        canon = store.canonical_names()
    with gc_paused():
        for r in result:
            rows = r.get("rows", []) if isinstance(r, dict) else []
            for i, row in enumerate(rows):
                if isinstance(row, msgspec.Raw):
                    store.install_raw(row, ev, canon)
                else:
                    store.install(row.pop("_uuid")[1], row, ev)
                rows[i] = None
                n += 1
            rows.clear()
    return n


async def load_from(
    client: OvsdbClient, store: PortStore, ev: Events, hub_id: str, entries: list[CachedPort], names: list[str],
    what: str, share: bool = False,
) -> tuple[int, int] | None:  # fmt: skip
    """Install ``entries`` (``names[i]`` the i-th's name) whose ``_uuid``/``_version``
    NB still has, read the full columns of every other owned port; (fresh, read),
    or None (nothing installed) when too many changed: the caller reads everything.
    ``share``: key them by the desired state's name strings (the cache was read
    before the desired state had any: it may have them by the reply)."""
    store.rows.clear()
    store.by_uuid.clear()
    cond = owned(hub_id)
    outcome: dict[str, Any] = {}

    #: the entries not vouched for yet: what is left once every row is checked changed or went
    by_uuid = {c.uuid: c for c in entries}
    if len(by_uuid) != len(entries) or len(names) != len(entries):
        log.warning("%s: %d entries, %d uuids, %d names: reading every port", what, len(entries), len(by_uuid), len(names))
        return None
    fresh = [0]
    changed: list[str] = []

    def check(raw: msgspec.Raw) -> None:  # each row as the reply arrives (the rest in versions())
        row = _version_decoder.decode(raw)
        uuid = row.uuid[1]
        c = by_uuid.get(uuid)
        if c is not None and c.version == version_bytes(row.version[1]):
            del by_uuid[uuid]
            fresh[0] += 1
        else:
            changed.append(uuid)

    def versions(result: list[Any]) -> None:
        with gc_paused():
            for raw in result[0]["rows"]:
                check(raw)
        outcome.update(fresh=fresh[0], changed=changed, total=fresh[0] + len(changed))
        if too_many(len(changed), fresh[0] + len(changed)):
            by_uuid.clear()
            return  # too stale: the caller reads everything
        vouch(store, ev, entries, names, by_uuid, share)
        by_uuid.clear()
        outcome["installed"] = True

    await client.transact_rows(
        [{"op": "select", "table": TABLE, "where": cond, "columns": ["_uuid", "_version"]}],
        on_reply=versions, on_row=check,
    )  # fmt: skip
    if not outcome.get("installed"):
        log.info("%s: %d of %d ports changed since: reading every port", what, len(outcome.get("changed", ())), outcome.get("total", 0))
        return None
    await read_again(client, store, ev, hub_id, changed)
    log.info("%s: %d ports unchanged, %d read again", what, outcome["fresh"], len(changed))
    return outcome["fresh"], len(changed)


def too_many(changed: int, total: int) -> bool:
    """So many ports changed that reading them one by one costs more than reading all."""
    return changed > min(CACHE_MAX_CHANGED, max(100, total // 10))


def vouch(store: PortStore, ev: Events, entries: list[CachedPort], names: list[str], unsure: Container[str],
          share: bool) -> None:  # fmt: skip
    """Install every entry (``names[i]`` the i-th's name) whose uuid is not ``unsure``
    (changed since, or gone).  ``share``: key them by the desired state's name strings."""
    canon = store.canonical_names() if share else None
    if canon:
        for i, n in enumerate(names):
            names[i] = canon.get(n, n)
    del canon
    with gc_paused():
        for name, c in zip(names, entries, strict=True):
            if c.uuid in unsure:
                continue
            store.rows[name] = c  # a PortRow: the cache's entry is the replica's row
            store.by_uuid[c.uuid] = name
            store.early.pop(c.uuid, None)
            if c.up is True:
                ev.up(name)


async def read_again(client: OvsdbClient, store: PortStore, ev: Events, hub_id: str, uuids: Iterable[str]) -> None:
    """Read the full columns of these ports (rows gone or no longer the hub's return nothing)."""
    cond = owned(hub_id)
    ops = [
        # the owner condition again: a row that lost its tag in between is not ours
        {"op": "select", "table": TABLE, "where": [*cond, ["_uuid", "==", ["uuid", u]]], "columns": READ_COLUMNS}
        for u in uuids
    ]
    if not ops:
        return

    def install(result: list[Any]) -> None:
        install_rows(store, ev, result)

    await client.transact_rows(ops, on_reply=install)


class _Stale(Exception):
    """Too many ports changed since the cache was written: read them all."""


async def load_since(
    client: OvsdbClient, store: PortStore, ev: Events, hub_id: str, entries: list[CachedPort], names: list[str],
    txn: str, share: bool, unsure: Collection[str] = (),
) -> tuple[int, int] | None:  # fmt: skip
    """Install the cache's ``entries`` NB's transaction history shows unchanged
    since ``txn`` (the last transaction when the cache was written), read the
    full columns of every port inserted, modified or deleted since: one
    ``monitor_cond_since`` query instead of a select of every port's version.
    (fresh, read); None, nothing installed, when NB's history no longer holds
    ``txn`` (over 100 transactions since, or a member whose log was compacted
    past it): the versions decide then (:func:`load_from`).  Raises
    :class:`_Stale` when too many changed.

    The writer's monitor runs already: a port changed after it started is in
    the query's answer (read again here), one changed after that answer comes
    as an update after the rows installed in the answer's hook.  ``unsure``:
    uuids of rows to read again whatever the history says."""
    store.rows.clear()
    store.by_uuid.clear()
    outcome: dict[str, Any] = {}

    def answer(got: tuple[bool, str, dict[str, Any]]) -> None:  # in the reader, in stream order
        found, _, updates = got
        if not found:
            return
        changes: dict[str, Any] = updates.get(TABLE, {})
        if too_many(len(changes) + len(unsure), len(entries)):
            outcome["stale"] = len(changes) + len(unsure)
            return
        skip = changes.keys() | unsure if unsure else changes
        vouch(store, ev, entries, names, skip, share)
        read = {u for u, change in changes.items() if "delete" not in change}
        read.update(u for u in unsure if "delete" not in changes.get(u, ()))
        outcome["read"] = sorted(read)
        outcome["fresh"] = len(store.rows)

    kind = store.kind
    since = {TABLE: [{"columns": [*kind.columns, *kind.extra_columns], "where": owned(hub_id),
                      "select": {"initial": False, "insert": True, "delete": True, "modify": True}}]}  # fmt: skip
    await client.changes_since(since, txn, on_reply=answer)
    if "stale" in outcome:
        raise _Stale(outcome["stale"])
    if "read" not in outcome:
        return None
    await read_again(client, store, ev, hub_id, outcome["read"])
    log.info("NB's history since transaction %s shows %d of %d ports unchanged, %d read again",
             txn, outcome["fresh"], len(entries), len(outcome["read"]))  # fmt: skip
    return outcome["fresh"], len(outcome["read"])


#: The full read's selects, each leaving out these ``ovn-hub:shard`` values;
#: sent at once (the next reply waits in the socket while one is installed).
#: One select (the default) is the fastest: measured at 50k ports under load,
#: halves ``((4, 5, 6, 7), (0, 1, 2, 3))`` took ~20 % longer (each map clause
#: costs ovsdb-server a pass: the 8 slices this replaced cost ~1.3 s) for a
#: peak of 1.17x the RSS at READY instead of 1.28x.  A port without a valid
#: shard key (edited by someone) is in every split; installing it twice is harmless.
READ_SPLIT: tuple[tuple[int, ...], ...] = ((),)


async def load_all(client: OvsdbClient, store: PortStore, ev: Events, hub_id: str) -> int:
    """Read every port the hub owns (in the selects of READ_SPLIT).

    Rows are decoded, digested and installed one at a time as the reply
    arrives (``transact_rows``'s ``on_row``), so a reply costs what the socket
    buffers hold, not its ~0.5 KB a port at once (~23 MB at 50k ports, the
    peak of a start without the cache), nor the ~150 MB of objects one 50k-row
    reply decodes into.  The monitor is already running (without
    initial contents), so a change racing with these reads arrives after the
    reply that returns the row."""
    store.rows.clear()
    store.by_uuid.clear()
    cond = owned(hub_id)

    canon: list[dict[str, str] | None] = []  # at the first row: the desired state is complete by then

    def on_row(raw: msgspec.Raw) -> None:  # in the reader, as the reply arrives: before any later update
        if not canon:
            canon.append(store.canonical_names())
        store.install_raw(raw, ev, canon[0])

    def install(result: list[Any]) -> None:
        install_rows(store, ev, result, canon[0] if canon else None)  # the rows not streamed

    def where(leave_out: tuple[int, ...]) -> list[Any]:
        return cond + [["external_ids", "excludes", ["map", [[SHARD, str(k)]]]] for k in leave_out]

    reads = [
        client.transact_rows([{"op": "select", "table": TABLE, "where": where(x), "columns": READ_COLUMNS}],
                             on_reply=install, on_row=on_row)
        for x in READ_SPLIT
    ]
    await asyncio.gather(*reads)
    return len(store.rows)  # (a port read twice counts once)


class Loaded(msgspec.Struct, frozen=True):
    """How a (re)connect loaded the ports: ``how`` "in memory", "port cache" or
    "read"; ports taken from it, ports read; the cache generation to write next."""

    how: str
    fresh: int
    read: int
    generation: int


async def load(
    client: OvsdbClient, store: PortStore, ev: Events, hub_id: str, nb: str,
    cache_path: str | os.PathLike[str] | None, remembered: list[CachedPort] | None, txn: str | None = None,
) -> Loaded:  # fmt: skip
    """Load the port replica the cheapest way that is safe: a reconnect
    revalidates what it ``remembered`` (by NB's history since ``txn``, the
    last transaction it is known to reflect, else by versions); a start uses
    the restart cache at ``cache_path`` (at most CACHE_MAX_GENERATIONS starts
    in a row); else every port is read."""
    if remembered:
        names: list[str] | None = getattr(remembered, "names", None)  # (memory_entries: a Remembered)
        if names is not None and txn:
            try:
                got = await load_since(client, store, ev, hub_id, remembered, names, txn, False,
                                       getattr(remembered, "unsure", ()))  # fmt: skip
                if got is not None:
                    return Loaded("in memory, NB history", got[0], got[1], 0)
            except _Stale as exc:
                log.info("in memory: %s ports changed since: reading every port", exc)
                return Loaded("read", 0, await load_all(client, store, ev, hub_id), 0)
        got = await load_from(client, store, ev, hub_id, remembered, names, "in memory") if names is not None else None
        if got is not None:
            return Loaded("in memory", got[0], got[1], 0)
    elif remembered is None:
        shared: list[bool] = []

        def canonical() -> dict[str, str] | None:
            canon = store.canonical_names()
            shared.append(canon is not None)
            return canon

        cache = read_cache(cache_path, hub_id, nb, canonical)
        if cache is not None and cache.generation >= CACHE_MAX_GENERATIONS:
            log.info("port cache: %d restarts in a row used it: reading every port this time", cache.generation)
        elif cache is not None:
            share = not any(shared)
            try:
                got = await load_since(client, store, ev, hub_id, cache.ports, cache.names, cache.txn, share) if cache.txn else None
                if got is not None:
                    return Loaded("port cache, NB history", got[0], got[1], cache.generation + 1)
                got = await load_from(client, store, ev, hub_id, cache.ports, cache.names, "port cache", share)
                if got is not None:
                    return Loaded("port cache", got[0], got[1], cache.generation + 1)
            except _Stale as exc:
                log.info("port cache: %s ports changed since: reading every port", exc)
    return Loaded("read", 0, await load_all(client, store, ev, hub_id), 0)


async def save(
    client: OvsdbClient, store: PortStore, path: str | os.PathLike[str], hub_id: str, nb: str, generation: int
) -> bool:
    """Write the restart cache (at a clean stop, after the last write).  Each
    entry pairs a row's current ``_version`` with what the replica holds for
    it; update notifications precede this select's reply, so the replica
    already reflects every version returned.  Rows the replica would rewrite
    whole (changed under it) are left out.

    With the cache goes NB's last transaction id, asked before the select
    (:meth:`OvsdbClient.last_txn_id`): every change after it is in NB's
    history, so a start can ask what changed since instead of every version
    (:func:`load_since`).  Not when a port NB has is left out: only versions
    would show it."""
    try:
        txn = await client.last_txn_id() or ""
    except OvsdbError as exc:  # (an ovsdb-server without monitor_cond_since)
        log.info("port cache: NB's last transaction unknown (%s): the next start checks versions", exc)
        txn = ""
    except (TimeoutError, OSError) as exc:
        log.warning("port cache not written: %s", exc)
        return False
    try:
        reply = await client.transact(
            [{"op": "select", "table": TABLE, "where": owned(hub_id), "columns": ["_uuid", "_version"]}], timeout=30
        )
    except (OvsdbError, TimeoutError, OSError) as exc:
        log.warning("port cache not written: %s", exc)
        return False
    rows: list[tuple[str, str, CachedPort]] = []  # (source, name, entry)
    for row in reply[0]["rows"]:
        uuid = row["_uuid"][1]
        name = store.by_uuid.get(uuid)
        cur = store.rows.get(name) if name is not None else None
        if name is None or cur is None or cur.uuid != uuid or cur.digest is None:
            txn = ""
            continue
        rows.append((cur.source, name, CachedPort(uuid, "", cur.digest, cur.up, cur.dyn, version_bytes(row["_version"][1]))))
    del reply
    rows.sort(key=itemgetter(0))  # grouped by source (a stable sort)
    sources = [(source, len(list(group))) for source, group in itertools.groupby(rows, key=itemgetter(0))]
    cache = PortCache(format=PORT_CACHE_FORMAT, hub_id=hub_id, nb=nb, sources=sources, names=[t[1] for t in rows],
                      ports=[t[2] for t in rows], generation=generation, txn=txn)  # fmt: skip
    del rows
    data = msgspec.msgpack.encode(cache)
    ports = cache.ports
    try:
        await asyncio.to_thread(write_private, path, data)
    except OSError as exc:
        log.warning("port cache %s not written: %s", path, exc)
        return False
    log.info("port cache: %d ports written to %s", len(ports), path)
    return True


def write_private(path: str | os.PathLike[str], data: bytes) -> None:
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
