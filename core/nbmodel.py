"""How canonical objects become OVN Northbound rows (pure functions).

Names: a switch is ``<orchestrator>/<cluster>/<network>`` and a port
``<orchestrator>/<cluster>/<network>/<uid>``.  Orchestrator and cluster are DNS
labels and network names have no "/", so two sources can never produce the
same name (Kube-OVN #1677), and ``ovn-nbctl show`` stays readable.

Ownership: every row carries ``external_ids`` with the keys below; the hub
monitors, updates and deletes only rows whose ``ovn-hub:owner`` is its id.

Services: one Load_Balancer per (service, protocol), named
``<orchestrator>/<cluster>/svc/<namespace>/<name>/<uid>/<protocol>`` (the uid
makes a deleted-and-recreated service a different row even while both are
known), attached to the switch of the service's network through the weak
``Logical_Switch.load_balancer`` reference.  A rule without backends is left
out of ``vips``: OVN would otherwise need ``options:reject`` semantics we do
not want to promise (traffic to a VIP with no backend finds no port and is
dropped, as Kubernetes does without kube-proxy's REJECT rule).  The row stays
(with fewer or no VIPs) so flapping readiness does not churn rows.

Policies: see :mod:`core.policy`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import zlib
from typing import Any

import msgspec

from core.model import Endpoint, Network, Service, Source

OWNER = "ovn-hub:owner"
SOURCE = "ovn-hub:source"
KIND = "ovn-hub:kind"
UID = "ovn-hub:uid"
NAMESPACE = "ovn-hub:namespace"
NAME = "ovn-hub:name"
NETWORK = "ovn-hub:network"
GATEWAY = "ovn-hub:gateway"  # on a switch: the network's gateway (node plumbing's default route)
SHARD = "ovn-hub:shard"  # crc32(port name) % SHARDS: lets a restart read ports in slices
SHARDS = 8
ACL_KEY = "ovn-hub:acl"  # content digest identifying an ACL (ACL has no name index)
PARENT = "ovn-hub:parent"  # Port_Group an ACL belongs to / switch a load balancer is on
RULE = "ovn-hub:rule"  # which part of the policy an ACL or address set comes from (for humans)

LS = "Logical_Switch"
LSP = "Logical_Switch_Port"

LB = "Load_Balancer"
PG = "Port_Group"
AS = "Address_Set"
ACL = "ACL"

LS_COLUMNS = ["name", "ports", "load_balancer", "other_config", "external_ids"]
LSP_COLUMNS = ["name", "addresses", "port_security", "options", "external_ids", "up", "dynamic_addresses"]
#: Columns of the derived tables the hub monitors (and so compares).
X_COLUMNS: dict[str, list[str]] = {
    LB: ["name", "vips", "protocol", "options", "external_ids"],
    PG: ["name", "ports", "acls", "external_ids"],
    AS: ["name", "addresses", "external_ids"],
    ACL: ["priority", "direction", "match", "action", "options", "external_ids"],
}
#: Column kinds of those tables: "map", "set" (strings), "uuids" (set of refs), or scalar.
X_KINDS: dict[str, str] = {
    "vips": "map",
    "options": "map",
    "external_ids": "map",
    "protocol": "set",
    "addresses": "set",
    "ports": "uuids",
    "acls": "uuids",
}


class DesiredRow(msgspec.Struct, frozen=True, gc=False):
    """A row of a derived table (Load_Balancer, Port_Group, Address_Set, ACL)
    as a pure function of the desired state wants it.

    ``columns`` hold plain canonical values (maps as dicts, sets as sorted
    tuples, so equality is the diff); references that are only known at write
    time are symbolic: ``parent`` is the switch name a load balancer is
    attached to or the Port_Group name an ACL hangs from, ``members`` the
    Logical_Switch_Port names of a Port_Group."""

    table: str
    key: str
    source: str
    columns: dict[str, Any]
    parent: str = ""
    members: tuple[str, ...] = ()


def owner_ids(source: Source | str, kind: str, uid: str, namespace: str, name: str, hub_id: str) -> dict[str, str]:
    return {OWNER: hub_id, SOURCE: str(source), KIND: kind, UID: uid, NAMESPACE: namespace, NAME: name}


def ls_name(source: Source | str, network: str) -> str:
    return f"{source}/{network}"


def lsp_name(ep: Endpoint) -> str:
    return f"{ep.source}/{ep.network}/{ep.uid}"


def derived_mac(ep: Endpoint) -> str:
    """A stable locally administered MAC when the orchestrator gives none:
    0a:58 + the IPv4 address (as ovn-kubernetes does), else a hash of the port name."""
    for ip in ep.ips:
        if "." in ip and ":" not in ip:
            return "0a:58:" + ":".join(f"{int(b):02x}" for b in ip.split("."))
    digest = hashlib.sha256(lsp_name(ep).encode()).digest()
    return "0a:" + ":".join(f"{b:02x}" for b in digest[:5])


def ls_columns(source: Source | str, name: str, net: Network | None, hub_id: str) -> dict[str, Any]:
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
        "name": ls_name(source, name),
        "other_config": other,
        "external_ids": {
            OWNER: hub_id,
            SOURCE: str(source),
            KIND: "network",
            UID: name,
            NAMESPACE: "",
            NAME: name,
            **extra,
        },
    }


def lsp_columns(ep: Endpoint, hub_id: str) -> dict[str, Any]:
    """Desired Logical_Switch_Port columns."""
    if ep.ips:
        mac = ep.mac or derived_mac(ep)
        addr = " ".join((mac, *ep.ips))
        addresses: tuple[str, ...] = (addr,)
        port_security: tuple[str, ...] = (addr,)
    else:
        addresses = (f"{ep.mac} dynamic",) if ep.mac else ("dynamic",)
        port_security = ()
    options = {"requested-chassis": ep.node} if ep.node else {}
    name = lsp_name(ep)
    return {
        "name": name,
        "addresses": addresses,
        "port_security": port_security,
        "options": options,
        "external_ids": {
            OWNER: hub_id,
            SOURCE: str(ep.source),
            KIND: ep.kind,
            UID: ep.uid,
            NAMESPACE: ep.namespace,
            NAME: ep.name,
            NETWORK: ep.network,
            SHARD: str(zlib.crc32(name.encode()) % SHARDS),
        },
    }


def to_ovsdb(cols: dict[str, Any]) -> dict[str, Any]:
    """Plain Python column values → OVSDB JSON values."""
    out: dict[str, Any] = {}
    for k, v in cols.items():
        if isinstance(v, dict):
            out[k] = ["map", list(v.items())]
        elif isinstance(v, tuple):
            out[k] = ["set", list(v)]
        else:
            out[k] = v
    return out


# ---------------------------------------------------------------- services
OVN_MAX_AFFINITY = 65535  # ovn-nb(5): "Max supported affinity_timeout is 65535 seconds"


def lb_name(svc: Service, protocol: str) -> str:
    return f"{svc.source}/svc/{svc.namespace}/{svc.name}/{svc.uid}/{protocol}"


def vip_key(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def lb_rows(svc: Service, hub_id: str) -> list[DesiredRow]:
    """One Load_Balancer per protocol of ``svc`` (see the module docstring).
    Backends are sorted: their order carries no meaning, and a reordered
    EndpointSlice must not rewrite the row.  Kubernetes allows affinity up to
    86400 s, OVN 65535 s: longer timeouts are clamped."""
    by_proto: dict[str, dict[str, str]] = {}
    for rule in svc.rules:
        vips = by_proto.setdefault(rule.protocol, {})
        if rule.backends:
            vips[vip_key(rule.vip, rule.port)] = ",".join(sorted(rule.backends))
    rows = []
    parent = ls_name(svc.source, svc.network)
    for proto, vips in sorted(by_proto.items()):
        name = lb_name(svc, proto)
        options = {"affinity_timeout": str(min(svc.affinity_timeout, OVN_MAX_AFFINITY))} if svc.affinity_timeout else {}
        ids = owner_ids(svc.source, "service", svc.uid, svc.namespace, svc.name, hub_id)
        ids[NETWORK] = svc.network
        cols = {"name": name, "vips": vips, "protocol": (proto,), "options": options, "external_ids": ids}
        rows.append(DesiredRow(LB, name, str(svc.source), cols, parent=parent))
    return rows
