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
from collections.abc import Iterable, Mapping
from typing import TypeVar

from core.model import Endpoint, Network, Service
from core.names import NAMESPACE, ROW_KEY, fabric_ids, switch_of
from core.nb.kinds import DesiredRow, Ref, RowKind, SourceView, Unit, by_external_id, register
from core.nb.tables import switch
from core.nb.tables.fabric import FabricIndex
from core.ovsdb.values import Col

TABLE = "DNS"
COLUMNS = {"records": Col.MAP, "external_ids": Col.MAP}
_T = TypeVar("_T")
_LABELS = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*")


def dns_key(router: str, source: str, namespace: str) -> str:
    return f"ovn-hub/dns/{router}/{source}/{namespace}"


def record_name(name: str, namespace: str, source: str, zone: str) -> str | None:
    """The record of ``name`` in ``namespace`` of ``source`` ("k8s/prod"), or None if not a DNS name."""
    orch, _, cluster = source.partition("/")
    full = f"{name}.{namespace}.{orch}.{cluster}.{zone}".lower()
    return full if len(full) <= 253 and _LABELS.fullmatch(full) else None


def _rows(index: FabricIndex, src: str, hub_id: str, services: Iterable[Service], endpoints: Iterable[Endpoint],
          networks: Mapping[str, Network]) -> list[DesiredRow]:  # fmt: skip
    """The rows of ``services`` and ``endpoints`` (of source ``src``, whose Network
    objects are ``networks``): one per (router, namespace) they are on."""
    zone = index.spec.dns.zone
    by_part: dict[tuple[str, str], dict[str, set[str]]] = {}
    named: set[tuple[str, str, str]] = set()
    for svc in sorted(services, key=lambda s: s.uid):  # two of one name: the same one wins, whatever the order
        router = index.router_of.get(switch_of(src, svc.network, networks))
        name = record_name(svc.name, svc.namespace, src, zone)
        if router and name:
            vips = {r.vip for r in svc.rules}
            if vips:
                by_part.setdefault((router, svc.namespace), {})[name] = vips
                named.add((router, svc.namespace, name))
    for ep in endpoints:
        router = index.router_of.get(switch_of(src, ep.network, networks))
        name = record_name(ep.name, ep.namespace, src, zone)
        if not router or not name or not ep.ips or (router, ep.namespace, name) in named:
            continue
        by_part.setdefault((router, ep.namespace), {}).setdefault(name, set()).update(ep.ips)
    rows = []
    for (router, ns), records in sorted(by_part.items()):
        key = dns_key(router, src, ns)
        switches = index.switches(router)
        ids = {**fabric_ids("dns", key, hub_id, source=src), ROW_KEY: key, NAMESPACE: ns}
        cols = {"records": {n: " ".join(sorted(ips)) for n, ips in sorted(records.items())}, "external_ids": ids}
        rows.append(DesiredRow(TABLE, key, src, cols, parent=switches[0] if switches else "", attach=switches[1:]))
    return rows


def _enabled(index: FabricIndex | None) -> bool:
    return index is not None and bool(index.router_of) and index.spec.dns.enabled


def derive(view: SourceView) -> list[DesiredRow]:
    """Every row of the source (the oracle of :class:`Records`)."""
    index: FabricIndex | None = view.fabric
    if index is None or not _enabled(index):
        return []
    return _rows(index, str(view.source), view.hub_id, view.state.services.values(), view.endpoints, view.state.networks)


class Records:
    """:func:`derive`, incrementally: a unit per namespace (its rows on every
    router); a change of an endpoint or a service recomputes its namespace's
    records only."""

    def __init__(self) -> None:
        self.on = False
        self.endpoints: dict[str, dict[str, Endpoint]] = {}  # namespace -> key -> endpoint
        self.services: dict[str, dict[str, Service]] = {}  # namespace -> uid -> service
        self.dirty: set[str] = set()

    def load(self, view: SourceView) -> None:
        self.on = _enabled(view.fabric)
        self.endpoints, self.services, self.dirty = {}, {}, set()
        if not self.on:
            return
        for ep in view.endpoints:
            self.endpoint(None, ep)
        for svc in view.state.services.values():
            self.service(None, svc)

    def endpoint(self, old: Endpoint | None, new: Endpoint | None) -> None:
        if not self.on:
            return
        if old is not None:
            _pop(self.endpoints, old.namespace, old.key)
            self.dirty.add(old.namespace)
        if new is not None:
            self.endpoints.setdefault(new.namespace, {})[new.key] = new
            self.dirty.add(new.namespace)

    def service(self, old: Service | None, new: Service | None) -> None:
        if not self.on:
            return
        if old is not None:
            _pop(self.services, old.namespace, old.uid)
            self.dirty.add(old.namespace)
        if new is not None:
            self.services.setdefault(new.namespace, {})[new.uid] = new
            self.dirty.add(new.namespace)

    def policy(self, old: object, new: object) -> None:
        return None

    def namespace(self, name: str, old: object, new: object) -> None:
        return None

    def rows(self, view: SourceView) -> dict[Unit, list[DesiredRow]]:
        index: FabricIndex | None = view.fabric
        out: dict[Unit, list[DesiredRow]] = {}
        if index is None or not self.dirty:
            return out
        src = str(view.source)
        for ns in self.dirty:
            out[ns] = _rows(index, src, view.hub_id, self.services.get(ns, {}).values(), self.endpoints.get(ns, {}).values(),
                            view.state.networks)  # fmt: skip
        self.dirty.clear()
        return out


def _pop(by_ns: dict[str, dict[str, _T]], ns: str, key: str) -> None:
    objs = by_ns.get(ns)
    if objs is not None:
        objs.pop(key, None)
        if not objs:
            del by_ns[ns]


KIND_ = register(
    RowKind(table=TABLE, columns=COLUMNS, rank=6, key=by_external_id(ROW_KEY),
            parent=Ref(switch.TABLE, "dns_records", strong=False)),
    derive,
    incremental=Records,
)  # fmt: skip
