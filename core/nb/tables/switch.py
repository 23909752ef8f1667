"""Logical_Switch: one per hub network, ``<orchestrator>/<cluster>/<network>``, or
``ovn-hub/net/<network>`` for a network its sources declare shared.

A network's subnet goes to ``other_config:subnet`` (OVN's IPAM for endpoints
without an address; the gateway in ``exclude_ips``), its IPv6 prefix to
``ipv6_prefix``, its gateway to ``external_ids:ovn-hub:gateway`` (the node's
default route).  Ports hang from ``ports`` (strong); load balancers are
attached through ``load_balancer`` (weak).  No unique index on ``name``: an
insert is guarded, so a foreign switch of the same name is a conflict, not a twin.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from core.model import Network, Programmed, Source
from core.model.fabric import FABRIC_ORCHESTRATOR, FABRIC_SOURCE
from core.names import GATEWAY, KIND, NAME, NAMESPACE, OWNER, SOURCE, UID, ls_name
from core.nb.kinds import PlanOp, RowKind, View, register
from core.ovsdb.values import Col

TABLE = "Logical_Switch"
COLUMNS = {"name": Col.SCALAR, "ports": Col.UUIDS, "load_balancer": Col.UUIDS, "load_balancer_group": Col.UUIDS,
           "dns_records": Col.UUIDS, "other_config": Col.MAP, "external_ids": Col.MAP}  # fmt: skip


def ls_columns(source: Source | str, name: str, net: Network | None, hub_id: str, shared: bool = False) -> dict[str, Any]:
    """Desired columns of the switch of network ``name`` (``net`` None: a
    network known only from its endpoints or services).  ``shared``: the hub-wide
    switch of a shared network (``ovn-hub/net/<name>``, ``net`` the winning
    declaration), owned by the fabric's pseudo-source: it is collected only once
    every expected source has listed (a source that has not may still declare it)."""
    other: dict[str, str] = {}
    extra: dict[str, str] = {}
    if net is not None:
        if net.gateway:
            extra[GATEWAY] = net.gateway
        v4 = [s for s in net.subnets if ipaddress.ip_network(s, strict=False).version == 4]
        v6 = [s for s in net.subnets if ipaddress.ip_network(s, strict=False).version == 6]
        if v4:
            other["subnet"] = str(ipaddress.ip_network(v4[0], strict=False))
            if net.gateway and ipaddress.ip_address(net.gateway).version == 4:
                other["exclude_ips"] = net.gateway
        if v6:
            other["ipv6_prefix"] = str(ipaddress.ip_network(v6[0], strict=False).network_address)
    return {
        "name": ls_name(source, name, shared),
        "other_config": other,
        "external_ids": {OWNER: hub_id, SOURCE: str(FABRIC_SOURCE) if shared else str(source),
                         KIND: "shared-network" if shared else "network", UID: name, NAMESPACE: "", NAME: name,
                         **extra},
    }  # fmt: skip


def programmed(view: View, u: PlanOp) -> Programmed | None:
    if u.name.startswith(FABRIC_ORCHESTRATOR + "/"):
        return None  # an external network's switch: the fabric's, no source's
    src, _, rest = u.name.partition("/")
    cluster, _, net = rest.partition("/")
    return Programmed(source=Source(src, cluster), kind="network", key=net, row=u.name, deleted=u.op == "delete")


KIND_ = register(RowKind(table=TABLE, columns=COLUMNS, rank=0, guard_name=True, programmed=programmed))
