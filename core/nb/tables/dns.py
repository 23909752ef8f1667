"""DNS: OVN native DNS records for the endpoints and Services of routed networks.

One row per (router, source, namespace), keyed ``ovn-hub/dns/<router>/<source>/<namespace>``,
attached to every switch of the router (``Logical_Switch.dns_records``, weak,
a row with several parents), so ovn-controller answers a query from any
workload on the router, whichever orchestrator it belongs to.  A row per
namespace keeps a change small: an endpoint event rewrites the records of
its namespace only.

Names: ``<name>.<namespace>.<orchestrator>.<cluster>.<zone>``, lower case.
When two objects produce the same name: a Service wins over endpoints (its
VIPs answer, as a Kubernetes Service name does); endpoints of the same name
(one workload on two networks, or two of the same name) answer with all
their addresses, sorted.  A name or namespace that is not a DNS label
sequence (``[a-z0-9]``, ``-``, ``_``, ``.``, 1-63 per label) gets no record.
"""

from __future__ import annotations

import re

from core.names import NAMESPACE, ROW_KEY, fabric_ids, switch_of
from core.nb.kinds import DesiredRow, Ref, RowKind, SourceView, by_external_id, register
from core.nb.tables import switch
from core.nb.tables.fabric import FabricIndex
from core.ovsdb.values import Col

TABLE = "DNS"
COLUMNS = {"records": Col.MAP, "external_ids": Col.MAP}
_LABELS = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*")


def dns_key(router: str, source: str, namespace: str) -> str:
    return f"ovn-hub/dns/{router}/{source}/{namespace}"


def record_name(name: str, namespace: str, source: str, zone: str) -> str | None:
    """The record of ``name`` in ``namespace`` of ``source`` ("k8s/prod"), or None if not a DNS name."""
    orch, _, cluster = source.partition("/")
    full = f"{name}.{namespace}.{orch}.{cluster}.{zone}".lower()
    return full if len(full) <= 253 and _LABELS.fullmatch(full) else None


def derive(view: SourceView) -> list[DesiredRow]:
    index: FabricIndex | None = view.fabric
    if index is None or not index.router_of or not index.spec.dns.enabled:
        return []
    src = str(view.source)
    zone = index.spec.dns.zone
    by_part: dict[tuple[str, str], dict[str, set[str]]] = {}
    services: set[tuple[str, str, str]] = set()
    for svc in view.state.services.values():
        router = index.router_of.get(switch_of(src, svc.network, view.state.networks))
        name = record_name(svc.name, svc.namespace, src, zone)
        if router and name:
            vips = {r.vip for r in svc.rules}
            if vips:
                by_part.setdefault((router, svc.namespace), {})[name] = vips
                services.add((router, svc.namespace, name))
    for ep in view.endpoints:
        router = index.router_of.get(switch_of(src, ep.network, view.state.networks))
        name = record_name(ep.name, ep.namespace, src, zone)
        if not router or not name or not ep.ips or (router, ep.namespace, name) in services:
            continue
        by_part.setdefault((router, ep.namespace), {}).setdefault(name, set()).update(ep.ips)
    rows = []
    for (router, ns), records in sorted(by_part.items()):
        key = dns_key(router, src, ns)
        switches = index.switches(router)
        ids = {**fabric_ids("dns", key, view.hub_id, source=src), ROW_KEY: key, NAMESPACE: ns}
        cols = {"records": {n: " ".join(sorted(ips)) for n, ips in sorted(records.items())}, "external_ids": ids}
        rows.append(DesiredRow(TABLE, key, src, cols, parent=switches[0] if switches else "", attach=switches[1:]))
    return rows


KIND_ = register(
    RowKind(table=TABLE, columns=COLUMNS, rank=6, key=by_external_id(ROW_KEY),
            parent=Ref(switch.TABLE, "dns_records", strong=False)),
    derive,
)  # fmt: skip
