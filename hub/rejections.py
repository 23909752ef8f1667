"""What was rejected, for operators: counts by reason and the last few.

Every rejection in hubd passes through the bus (adapters' through their sink,
remote ingest's, the programmer's ``nb-*`` ones), and the bus hands each to one
:class:`RejectionLog`.  It counts a rejection **once per distinct object**: the
static adapter re-reads its whole file on every change and a refused NB row is
retried every ``retry_interval``, and neither may inflate
``ovn_hub_rejected_total`` or the status counts.  "Distinct" is (source,
reason, ref, message): the same bad line rejected the same way is one.

Events are also made safe to keep and show: a reason that is not a short tag
(remote input can say anything) becomes ``invalid-reason`` (it is a metric
label), a message is cut to :data:`MAX_MESSAGE` characters and a ref to
:data:`MAX_REF`.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter, OrderedDict, deque
from typing import Any

import msgspec

from core import metrics
from core.model import Rejected

MAX_MESSAGE = 1000
MAX_REF = 300
#: distinct rejections remembered (oldest forgotten first: then counted again)
MAX_DISTINCT = 100_000
RECENT = 20
_REASON = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def sanitize(ev: Rejected) -> Rejected:
    """``ev`` with a tag-shaped reason and bounded message and ref."""
    reason = ev.reason if _REASON.fullmatch(ev.reason) else "invalid-reason"
    if reason == ev.reason and len(ev.message) <= MAX_MESSAGE and len(ev.ref) <= MAX_REF:
        return ev
    return msgspec.structs.replace(ev, reason=reason, message=_cut(ev.message, MAX_MESSAGE), ref=_cut(ev.ref, MAX_REF))


class RejectionLog:
    def __init__(self) -> None:
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self.counts: Counter[tuple[str, str]] = Counter()  # (source, reason) -> distinct rejections
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.total = 0  # every rejection, repeats included

    def record(self, source: str, reason: str, message: str, ref: str = "") -> bool:
        """Count one rejection; True if it is new (not seen with the same
        source, reason, ref and message)."""
        self.total += 1
        key = hashlib.blake2b(f"{source}\0{reason}\0{ref}\0{message}".encode(errors="replace"), digest_size=16).digest()
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > MAX_DISTINCT:
            self._seen.popitem(last=False)
        self.counts[(source, reason)] += 1
        metrics.REJECTED.labels(source, reason).inc()
        self.recent.append(
            {"time": round(time.time(), 3), "source": source, "reason": reason, "ref": _cut(ref, 120),
             "message": _cut(message, 200)}
        )  # fmt: skip
        return True

    def status(self) -> dict[str, Any]:
        by_reason: Counter[str] = Counter()
        for (_, reason), n in self.counts.items():
            by_reason[reason] += n
        return {
            "distinct": sum(self.counts.values()),
            "total": self.total,
            "by_reason": dict(sorted(by_reason.items())),
            "by_source": {f"{s} {r}": n for (s, r), n in sorted(self.counts.items())},
            "recent": list(self.recent),
        }
