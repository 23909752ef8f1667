"""Dirty keys: what the writer must look at, and the next batch of them.

Everything that may make NB differ from desired marks a key here: the desired
state (an event changed a row), the replica (a row changed or went away under
us) and the writer itself (a failed commit, a member that joined).  The
writer takes batches of keys and plans them; a key that turns out equal costs
one compare.  This object is also the replica's :class:`core.nb.store.Events`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

from core import metrics
from core.model import Ready, StatusEvent
from core.nb.desired import DesiredState
from core.nb.failures import Failures
from core.nb.kinds import KINDS, RowKind
from core.nb.replica import NbReplica

log = logging.getLogger("ovn_hub.programmer")


class DirtyRows:
    def __init__(self, desired: DesiredState, replica: NbReplica, status: Callable[[StatusEvent], None]) -> None:
        self.desired = desired
        self.replica = replica
        self.status = status
        self.keys: dict[str, set[str]] = {t: set() for t in KINDS}
        self.deferred: set[tuple[str, str]] = set()  # deletes waiting for their referrers
        self.wake = asyncio.Event()
        self.since: dict[str, float] = {}  # port name -> when an event first marked it (event-to-commit)
        self.committed_at: dict[str, float] = {}  # port name -> its insert's commit (commit-to-up)
        #: rows a transaction in flight updates, and those of them NB's monitor changed meanwhile:
        #: NB sends a transaction's changes before its reply, so our own echo is held here and
        #: checked when the reply is recorded (:meth:`settle`), not diffed again
        self.inflight: set[tuple[str, str]] = set()
        self.echoed: set[tuple[str, str]] = set()

    def __bool__(self) -> bool:
        return any(self.keys.values())

    def count(self) -> int:
        """Dirty rows of the batched kinds (derived rows are few and go at once)."""
        return sum(len(v) for t, v in self.keys.items() if not KINDS[t].whole_batch)

    # ------------------------------------------------------------ from the desired state
    def mark(self, table: str, key: str, now: float | None) -> None:
        self.keys[table].add(key)
        if now is not None:
            self.since.setdefault(key, now)

    # ------------------------------------------------------------ from the replica (Events)
    def mark_dirty(self, table: str, key: str) -> None:
        if self.inflight and (table, key) in self.inflight:
            self.echoed.add((table, key))
        else:
            self.keys[table].add(key)
        self.wake.set()

    def watch(self, rows: set[tuple[str, str]]) -> None:
        """A transaction updating ``rows`` is being sent."""
        self.inflight = rows
        self.echoed = set()

    def settle(self, as_written: Callable[[str, str], bool] | None = None) -> None:
        """The transaction is over: a row changed meanwhile is dirty unless
        ``as_written`` (the transaction committed) says it is what was written and
        wanted (core.nb.plan.as_written); a failed one passes None."""
        for table, key in self.echoed:
            if as_written is None or not as_written(table, key):
                self.keys[table].add(key)
        self.inflight = set()
        self.echoed = set()

    def deleted(self, kind: RowKind, cols: dict[str, Any]) -> None:
        if kind.names_used is not None:  # what it named may now be deletable (referrers first)
            for name in kind.names_used(cols):
                for named in KINDS.values():
                    if named.named and name in self.replica.stores[named.table]:
                        self.keys[named.table].add(name)
        if self.deferred:  # a deferred delete may go now
            for t, k in self.deferred:
                self.keys[t].add(k)
            self.deferred.clear()
        self.wake.set()

    def parent_changed(self, table: str, key: str) -> None:
        """(Maybe someone) detached a row attached here: re-check ours."""
        for ct, ck in self.desired.children_of.get((table, key), ()):
            p = KINDS[ct].parent
            if p is not None and not p.strong:
                self.keys[ct].add(ck)

    def up(self, key: str) -> None:
        t = self.committed_at.pop(key, None)
        if t is not None:
            metrics.COMMIT_TO_UP.observe(time.monotonic() - t)
        ep = self.desired.ports.get(key)
        if ep is not None:
            self.status(Ready(source=ep.source, key=ep.key, port=key))

    def allocated(self, port: str) -> None:
        self.desired.allocated(port)  # policy address sets, DNS records and NAT hold the port's IPs
        self.wake.set()

    def warn(self, message: str) -> None:
        log.warning("%s", message)

    # ------------------------------------------------------------ batches
    def take(self, failures: Failures, batch_size: int) -> dict[str, list[str]]:
        """The dirty keys of the next batch.  Rows NB refused wait for
        ``retry_interval`` (or a change of their own); while a dropped session
        is being bisected, only the front probe group goes; otherwise up to
        ``batch_size`` of the batched kinds and every dirty derived row (a
        policy change is then one transaction).  The kinds other rows hang
        from (switches, routers) take up to ``batch_size`` of their own: 50k
        ports and their switch are one transaction, not 49,999 and then one
        more whose ``mutate`` of the switch's ``ports`` NB writes whole."""
        if failures.failed:
            for table, keys in self.keys.items():
                keys.difference_update(failures.held(table, keys))
        probe = failures.probe
        while probe:
            group = probe.pop(0)
            take: dict[str, list[str]] = {}
            for t, k in group:
                if k in self.keys[t]:
                    take.setdefault(t, []).append(k)
            if take:
                for t, group_keys in take.items():
                    self.keys[t].difference_update(group_keys)
                return take
        take = {}
        room = batch_size
        parents = {k.parent.table for k in KINDS.values() if k.parent is not None}  # (their room is their own)
        for table, kind in KINDS.items():
            keys = self.keys[table]
            if not keys:
                continue
            if kind.whole_batch:
                take[table] = list(keys)
                keys.clear()
            elif (n := batch_size if table in parents else room) > 0:
                chunk = list(itertools.islice(keys, n))
                if len(chunk) == len(keys):
                    keys.clear()  # (clear gives a 50k set's table back; removing every key would not)
                else:
                    keys.difference_update(chunk)
                if table not in parents:
                    room -= len(chunk)
                take[table] = chunk
        return take
