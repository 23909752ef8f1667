"""How canonical objects become OVN Northbound rows (pure functions).

Names: a switch is ``<orchestrator>/<cluster>/<network>`` and a port
``<orchestrator>/<cluster>/<network>/<uid>``.  Orchestrator and cluster are DNS
labels and network names have no "/", so two sources can never produce the
same name (Kube-OVN #1677), and ``ovn-nbctl show`` stays readable.

Ownership: every row carries ``external_ids`` with the keys below; the hub
monitors, updates and deletes only rows whose ``ovn-hub:owner`` is its id.
"""

from __future__ import annotations

import hashlib
import ipaddress
import zlib
from typing import Any

from core.model import Endpoint, Network, Source

OWNER = "ovn-hub:owner"
SOURCE = "ovn-hub:source"
KIND = "ovn-hub:kind"
UID = "ovn-hub:uid"
NAMESPACE = "ovn-hub:namespace"
NAME = "ovn-hub:name"
NETWORK = "ovn-hub:network"
SHARD = "ovn-hub:shard"  # crc32(port name) % SHARDS: lets a restart read ports in slices
SHARDS = 8

LS = "Logical_Switch"
LSP = "Logical_Switch_Port"

LS_COLUMNS = ["name", "ports", "other_config", "external_ids"]
LSP_COLUMNS = ["name", "addresses", "port_security", "options", "external_ids", "up"]


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
    if net is not None:
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
