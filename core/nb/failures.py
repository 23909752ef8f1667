"""What NB refused, what waits for it, and the quarantine of a dropped session.

* A row NB refused alone is *failed*: kept out of batches until
  ``retry_interval`` passes or its own desired state changes, and reported
  once as a Rejected (``nb-conflict``: a row the hub does not own holds the
  name; ``nb-refused``: anything else).
* A row whose parent is failed *waits* with it (rule 1 of ``kinds.py``).
* A session lost inside a transaction puts that transaction's rows into
  *probe groups*, committed apart half by half on the next sessions; a row that
  drops the session twice alone is refused.  So any NB-fatal input costs one
  row and about 2·log2(batch) reconnects, never the hub.
"""

from __future__ import annotations

import logging
from collections import Counter

from core.nb.kinds import KINDS, PlanOp, RowKind

log = logging.getLogger("ovn_hub.programmer")


def display(kind: RowKind, key: str) -> str:
    """How ``failed`` and rejections name a row: derived rows by table and key
    (their keys are digests and hashes), the others by their name."""
    return f"{kind.table}:{key}" if kind.whole_batch else key


class Failures:
    def __init__(self) -> None:
        self.failed: dict[str, str] = {}  # display name -> why
        self.rows: dict[str, tuple[str, str]] = {}  # display name -> (table, key)
        self.probe: list[set[tuple[str, str]]] = []  # groups still to commit apart, the front one next
        self.strikes: Counter[tuple[str, str]] = Counter()  # lone commits of a row that dropped the session
        self.session_drops = 0
        self.dropped_in_txn = False

    def refuse(self, unit: PlanOp, why: str, reason: str = "") -> tuple[str, str, str]:
        """Mark ``unit`` failed; returns (display name, reason, message) for the Rejected."""
        if not reason:
            conflict = "constraint" in why or "duplicate" in why.lower() or "clause test failed" in why
            reason = "nb-conflict" if conflict else "nb-refused"
        if reason == "nb-conflict" and "clause test failed" in why:
            why = f"a {unit.table} named {unit.name!r} exists that the hub does not own ({why})"
        why = why if len(why) <= 500 else f"{why[:500]}..."
        name = display(KINDS[unit.table], unit.name)
        self.failed[name] = why
        self.rows[name] = (unit.table, unit.name)
        return name, reason, f"NB refused {unit.op} of {unit.table} {unit.name}: {why}"

    def hold(self, unit: PlanOp) -> None:
        """``unit``'s parent is not in NB (refused): it waits with the parent."""
        kind = KINDS[unit.table]
        assert kind.parent is not None
        parent = display(KINDS[kind.parent.table], unit.ref)
        name = display(kind, unit.name)
        self.failed[name] = f"waits for its {kind.parent.table} {unit.ref} ({self.failed.get(parent, 'not in NB')})"
        self.rows[name] = (unit.table, unit.name)
        log.info("%s %s waits for its %s %s", unit.table, unit.name, kind.parent.table, unit.ref)

    def held(self, table: str, keys: set[str]) -> list[str]:
        kind = KINDS[table]
        return [k for k in keys if display(kind, k) in self.failed]

    def retry(self) -> list[tuple[str, str]]:
        """``retry_interval`` passed: every failed row is tried again."""
        out = [tk for name, tk in self.rows.items() if name in self.failed]
        self.rows.clear()
        self.failed.clear()
        return out

    def suspect(self, units: list[PlanOp], exc: BaseException) -> PlanOp | None:
        """The session died inside a transaction of ``units``.  Returns the
        unit to refuse (it dropped the session twice alone), else None."""
        self.dropped_in_txn = True
        self.session_drops += 1
        keys = [(u.table, u.name) for u in units]
        if len(keys) > 1:
            mid = len(keys) // 2
            self.probe[0:0] = [set(keys[:mid]), set(keys[mid:])]
            log.warning("NB session lost inside a transaction of %d rows (%s): committing them apart", len(keys), exc)
            return None
        key = keys[0]
        self.strikes[key] += 1
        if self.strikes[key] < 2:  # once may be a coincidence (the server restarted): try it alone again
            self.probe.insert(0, {key})
            return None
        del self.strikes[key]
        return units[0]

    def committed(self, units: list[PlanOp]) -> None:
        if self.strikes:
            for u in units:
                self.strikes.pop((u.table, u.name), None)
