"""Logical_Router: one per ``[routers.<name>]`` (``ovn-hub/<name>``), and the
fabric deriver that builds everything around it.

For every network on the router (``core/nb/tables/fabric.py`` decides which):
a router port at the network's gateway (``Logical_Router_Port``
``ovn-hub/rtos/<switch>``) and its peer on the switch (a ``router``-type
``Logical_Switch_Port`` ``ovn-hub/stor/<switch>``), so the address every
workload has as its default route answers and the router routes between the
networks.  The router holds its ``Load_Balancer_Group`` (every Service of its
networks, on every switch of it).

With an ``[external.<name>]`` on the router: a switch ``ovn-hub/ext/<name>``
with a ``localnet`` port on the provider network, a distributed gateway port
(``ovn-hub/rtoe/<name>``) whose ``HA_Chassis_Group`` holds the gateway chassis,
a default route to the external gateway, ``snat`` of each routed IPv4 subnet to
the external address, and a ``dnat_and_snat`` per endpoint that carries the
floating-IP label (an address inside the external CIDR; others are skipped
with a warning).

Every row carries the fabric's pseudo-source ``ovn-hub/fabric``: it is derived
(and collected) only once every source the hub expects has listed.  No unique
index on ``Logical_Router.name``: inserts are guarded.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from core.model import Endpoint
from core.model.fabric import ExternalSpec
from core.names import GATEWAY, NETWORK, fabric_ids, lsp_name, switch_of
from core.nb.kinds import DesiredRow, FabricView, Ref, RowKind, register
from core.nb.tables import ha_chassis, ha_chassis_group, lb_group, nat, router_port, static_route, switch
from core.nb.tables.fabric import FabricIndex
from core.nb.tables.load_balancer import lb_name
from core.ovsdb.values import Col

log = logging.getLogger("ovn_hub.programmer")

TABLE = "Logical_Router"
COLUMNS = {"name": Col.SCALAR, "ports": Col.UUIDS, "nat": Col.UUIDS, "static_routes": Col.UUIDS,
           "load_balancer_group": Col.UUIDS, "options": Col.MAP, "external_ids": Col.MAP}  # fmt: skip
PORT_TABLE = "Logical_Switch_Port"
_warned: set[str] = set()


def router_name(name: str) -> str:
    return f"ovn-hub/{name}"


def external_switch(name: str) -> str:
    return f"ovn-hub/ext/{name}"


def _lsp(name: str, switch_name: str, type_: str, addresses: tuple[str, ...], options: dict[str, str], hub_id: str,
         **ids: str) -> DesiredRow:  # fmt: skip
    cols: dict[str, Any] = {"name": name, "type": type_, "addresses": addresses, "port_security": (), "options": options,
                            "external_ids": {**fabric_ids(f"{type_}-port", name, hub_id), **ids}}  # fmt: skip
    return DesiredRow(PORT_TABLE, name, "ovn-hub/fabric", cols, parent=switch_name)


def _warn(msg: str) -> None:
    if msg not in _warned:
        _warned.add(msg)
        log.warning("%s", msg)


def derive(view: FabricView) -> list[DesiredRow]:
    index: FabricIndex = view.index
    hub = view.hub_id
    rows: list[DesiredRow] = []
    lbs: dict[str, list[str]] = {}
    for st in view.sources.values():
        for svc in st.services.values():
            r = index.router_of.get(switch_of(svc.source, svc.network, st.networks))
            if r:
                lbs.setdefault(r, []).extend(lb_name(svc, p) for p in {rule.protocol for rule in svc.rules})
    externals = {e.router: e for e in index.spec.externals}
    floating_by_switch: dict[str, list[Endpoint]] = {}
    for ep in view.floating:
        owner = view.sources.get(str(ep.source))
        floating_by_switch.setdefault(switch_of(ep.source, ep.network, owner.networks if owner is not None else None),
                                      []).append(ep)  # fmt: skip
    for spec in index.spec.routers:
        rname = router_name(spec.name)
        switches = index.switches(spec.name)
        group = lb_group.group_name(spec.name, hub)
        rows.append(lb_group.group_row(spec.name, switches, lbs.get(spec.name, []), hub))
        rows.append(DesiredRow(TABLE, rname, "ovn-hub/fabric",
                               {"name": rname, "options": {}, "external_ids": fabric_ids("router", rname, hub)},
                               members=(group,)))  # fmt: skip
        for rn in index.nets.get(spec.name, ()):
            lrp = router_port.lrp_name_for(rn.switch)
            rows.append(router_port.lrp_row(lrp, rname, rn.cidrs, hub, "router-port", **{NETWORK: rn.switch}))
            rows.append(_lsp(f"ovn-hub/stor/{rn.switch}", rn.switch, "router", ("router",), {"router-port": lrp}, hub,
                             **{NETWORK: rn.switch, GATEWAY: " ".join(rn.gateways)}))  # fmt: skip
        ext = externals.get(spec.name)
        if ext is not None:
            rows += _external(ext, rname, index, floating_by_switch, hub)
    return rows


def _external(ext: ExternalSpec, rname: str, index: FabricIndex, floating: dict[str, list[Endpoint]], hub: str) -> list[DesiredRow]:
    net = ipaddress.ip_network(ext.cidr, strict=False)
    ls = external_switch(ext.name)
    lrp = router_port.lrp_name_external(ext.name)
    group = ha_chassis_group.group_name(ext.name)
    rows = [
        DesiredRow(switch.TABLE, ls, "ovn-hub/fabric",
                   {"name": ls, "other_config": {}, "external_ids": fabric_ids("external", ls, hub)}),
        _lsp(f"{ls}/localnet", ls, "localnet", ("unknown",), {"network_name": ext.physnet}, hub),
        _lsp(f"{ls}/router", ls, "router", ("router",), {"router-port": lrp}, hub),
        ha_chassis_group.group_row(ext.name, hub),
        *ha_chassis.chassis_rows(group, ext.chassis, hub),
        router_port.lrp_row(lrp, rname, (f"{ext.ip}/{net.prefixlen}",), hub, "gateway-port", group=group),
    ]
    if ext.gateway:
        rows.append(static_route.route_row(rname, "0.0.0.0/0", ext.gateway, lrp, hub))
    router = next(r.name for r in index.spec.routers if router_name(r.name) == rname)
    taken: dict[str, str] = {}
    for rn in index.nets.get(router, ()):
        if ext.snat:
            for s in rn.subnets:
                if s.version == 4:
                    rows.append(nat.nat_row(rname, f"snat/{s}", "snat", str(s), ext.ip, hub))
        for ep in sorted(floating.get(rn.switch, ()), key=lsp_name):
            fip = ep.labels.get(ext.floating_ip_label, "")
            v4 = next((ip for ip in ep.ips if "." in ip), "")
            try:
                ok = ipaddress.ip_address(fip) in net and ipaddress.ip_address(fip) != ipaddress.ip_address(ext.ip)
            except ValueError:
                ok = False
            port = lsp_name(ep)
            if not ok or not v4:
                _warn(f"endpoint {port}: floating IP {fip[:64]!r} is not a free IPv4 address of {ext.cidr}"
                      f"{'' if v4 else ' (or the endpoint has no IPv4 address yet)'}; no floating IP")  # fmt: skip
                continue
            if fip in taken:
                _warn(f"endpoint {port}: floating IP {fip} is already {taken[fip]}'s; no floating IP")
                continue
            taken[fip] = port
            rows.append(nat.nat_row(rname, f"fip/{port}", "dnat_and_snat", v4, fip, hub))
    return rows


KIND_ = register(
    RowKind(table=TABLE, columns=COLUMNS, rank=9, guard_name=True, members=Ref(lb_group.TABLE, "load_balancer_group")),
    fabric=derive,
)
