"""Load_Balancer: one per (service, protocol), on the switch of the service's network.

Named ``<orchestrator>/<cluster>/svc/<namespace>/<name>/<uid>/<protocol>`` (the
uid makes a deleted-and-recreated service a different row even while both are
known), attached through the weak ``Logical_Switch.load_balancer`` reference.
A rule without backends is left out of ``vips``: OVN would otherwise need
``options:reject`` semantics we do not want to promise (traffic to a VIP with no
backend finds no port and is dropped, as Kubernetes does without kube-proxy's
REJECT rule).  The row stays (with fewer or no VIPs) so flapping readiness does
not churn rows.  No unique index on ``name``: inserts are guarded.
"""

from __future__ import annotations

from core.model import Programmed, Service
from core.names import NETWORK, ls_name, owner_ids, switch_of
from core.nb.kinds import DesiredRow, PlanOp, Ref, RowKind, SourceView, Unit, View, register
from core.nb.tables import switch
from core.nb.tables.policy import object_programmed
from core.ovsdb.values import Col

TABLE = "Load_Balancer"
COLUMNS = {"name": Col.SCALAR, "vips": Col.MAP, "protocol": Col.OPTIONAL, "options": Col.MAP, "external_ids": Col.MAP}
OVN_MAX_AFFINITY = 65535  # ovn-nb(5): "Max supported affinity_timeout is 65535 seconds"


def lb_name(svc: Service, protocol: str) -> str:
    return f"{svc.source}/svc/{svc.namespace}/{svc.name}/{svc.uid}/{protocol}"


def vip_key(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def lb_rows(svc: Service, hub_id: str, hairpin_ip: str = "", switch: str = "") -> list[DesiredRow]:
    """One Load_Balancer per protocol of ``svc`` (see the module docstring).
    Backends are sorted: their order carries no meaning, and a reordered
    EndpointSlice must not rewrite the row.  Kubernetes allows affinity up to
    86400 s, OVN 65535 s: longer timeouts are clamped.  ``switch``: the one the
    service's network resolves to (``core.names.switch_of``; default its source's own)."""
    by_proto: dict[str, dict[str, str]] = {}
    for rule in svc.rules:
        vips = by_proto.setdefault(rule.protocol, {})
        if rule.backends:
            vips[vip_key(rule.vip, rule.port)] = ",".join(sorted(rule.backends))
    rows = []
    parent = switch or ls_name(svc.source, svc.network)
    for proto, vips in sorted(by_proto.items()):
        name = lb_name(svc, proto)
        options = {"affinity_timeout": str(min(svc.affinity_timeout, OVN_MAX_AFFINITY))} if svc.affinity_timeout else {}
        if hairpin_ip:
            options["hairpin_snat_ip"] = hairpin_ip
        ids = owner_ids(svc.source, "service", svc.uid, svc.namespace, svc.name, hub_id)
        ids[NETWORK] = svc.network
        cols = {"name": name, "vips": vips, "protocol": proto, "options": options, "external_ids": ids}
        rows.append(DesiredRow(TABLE, name, str(svc.source), cols, parent=parent))
    return rows


def _service_rows(view: SourceView, svc: Service) -> list[DesiredRow]:
    """On a routed network a client reaching itself through its Service is
    SNATed to the fabric's fixed ``hairpin_snat_ip`` (policies allow it);
    elsewhere OVN's default (the VIP) stays."""
    fab = view.fabric
    sw = switch_of(svc.source, svc.network, view.state.networks)
    routed = fab is not None and sw in fab.router_of
    return lb_rows(svc, view.hub_id, fab.spec.hairpin_snat_ip if routed else "", sw)


def derive(view: SourceView) -> list[DesiredRow]:
    """Every service's balancers (the oracle of :class:`Balancers`)."""
    return [r for svc in view.state.services.values() for r in _service_rows(view, svc)]


class Balancers:
    """:func:`derive`, incrementally: a unit per service; only a service's own
    change touches its rows (backends are resolved by the adapter, so endpoint
    changes touch none)."""

    def __init__(self) -> None:
        self.services: dict[str, Service] = {}
        self.dirty: set[str] = set()

    def load(self, view: SourceView) -> None:
        self.services = dict(view.state.services)
        self.dirty = set(self.services)

    def endpoint(self, old: object, new: object) -> None:
        return None

    def policy(self, old: object, new: object) -> None:
        return None

    def namespace(self, name: str, old: object, new: object) -> None:
        return None

    def service(self, old: Service | None, new: Service | None) -> None:
        uid = (new or old).uid  # type: ignore[union-attr]
        if new is None:
            self.services.pop(uid, None)
        else:
            self.services[uid] = new
        self.dirty.add(uid)

    def rows(self, view: SourceView) -> dict[Unit, list[DesiredRow]]:
        out: dict[Unit, list[DesiredRow]] = {}
        for uid in self.dirty:
            svc = self.services.get(uid)
            out[uid] = _service_rows(view, svc) if svc is not None else []
        self.dirty.clear()
        return out


def programmed(view: View, u: PlanOp) -> Programmed | None:
    return object_programmed(view, u)


KIND_ = register(
    RowKind(table=TABLE, columns=COLUMNS, rank=4, parent=Ref(switch.TABLE, "load_balancer", strong=False),
            guard_name=True, whole_batch=True, programmed=programmed),
    derive,
    incremental=Balancers,
)  # fmt: skip
