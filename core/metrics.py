"""Prometheus metrics shared by core, adapters (through the hub) and the daemon.

Defined once per process on the default registry; ``/metrics`` serves them.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram

_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 30.0, 60.0)

EVENT_TO_COMMIT = Histogram(
    "ovn_hub_event_to_commit_seconds",
    "From an input event marking a row dirty to the NB transaction that wrote it committing",
    buckets=_BUCKETS,
)
COMMIT_TO_UP = Histogram(
    "ovn_hub_commit_to_up_seconds",
    "From the NB commit of a logical switch port to OVN reporting it up",
    buckets=_BUCKETS,
)
TXN_SECONDS = Histogram("ovn_hub_nb_transaction_seconds", "Duration of one NB transaction", buckets=_BUCKETS)
TXNS = Counter("ovn_hub_nb_transactions_total", "NB transactions by result", ["result"])
NB_OPS = Counter("ovn_hub_nb_operations_total", "NB row operations written", ["table", "op"])
REJECTED = Counter("ovn_hub_rejected_total", "Input rejected, by source and reason", ["source", "reason"])
EVENTS = Counter("ovn_hub_events_total", "Input events consumed, by source and type", ["source", "type"])
DIRTY = Gauge("ovn_hub_dirty_rows", "Rows waiting to be reconciled")
DESIRED_ENDPOINTS = Gauge("ovn_hub_desired_endpoints", "Endpoints in the desired state")
ADAPTER_RESTARTS = Counter("ovn_hub_adapter_restarts_total", "Adapter restarts after a failure", ["adapter"])
ADAPTER_EVENT_LAG = Histogram(
    "ovn_hub_adapter_event_lag_seconds",
    "From an orchestrator event's own timestamp to the adapter having emitted what it changed (Docker)",
    ["adapter"],
    buckets=_BUCKETS,
)
ADAPTER_UP = Gauge("ovn_hub_adapter_running", "1 while an adapter task runs", ["adapter"])
NODE_OPS = Counter(
    "ovn_hub_node_operations_total",
    "hubd --role node: containers plugged, unplugged, failed (retried), bad Docker events",
    ["result"],
)
NODE_PLUGGED = Gauge("ovn_hub_node_plugged_containers", "hubd --role node: containers plugged into the bridge")
NODE_PLUG_SECONDS = Histogram(
    "ovn_hub_node_plug_seconds", "hubd --role node: veth + addresses + bridge port for one container", buckets=_BUCKETS
)
HUB_POLICIES = Gauge("ovn_hub_hub_policies", "Hub-level policies in force (the [policies] file as last read successfully)")
NB_ACTIVE = Gauge("ovn_hub_nb_active", "1 while this hubd holds its hub's NB lock and writes (0: standby or paused)")
TWINS_AVERTED = Counter(
    "ovn_hub_nb_duplicate_inserts_averted_total",
    "Inserts whose guard found the hub's own row: an earlier transaction committed it though its reply was lost",
)


def observe_many(hist: Histogram, amounts: Sequence[float]) -> None:
    """``hist.observe(a)`` for every amount of a histogram without labels, each
    bucket counted once (a 50k-port batch observes 50k event-to-commit times:
    one ``observe`` each cost ~1.5 us, with its lock and bucket scan)."""
    bounds = getattr(hist, "_upper_bounds", None)
    buckets = getattr(hist, "_buckets", None)
    total = getattr(hist, "_sum", None)
    if bounds is None or buckets is None or total is None or len(amounts) < 64:
        for a in amounts:  # (a labelled parent raises as observe would; few amounts: as they are)
            hist.observe(a)
        return
    counts: dict[int, int] = {}
    for a, n in collections.Counter(amounts).items():  # (a batch's amounts are few distinct values)
        i = bisect.bisect_left(bounds, a)  # observe: the first bucket whose bound is >= the amount
        counts[i] = counts.get(i, 0) + n
    total.inc(sum(amounts))
    for i, n in counts.items():
        buckets[i].inc(n)
