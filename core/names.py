"""Names and ownership tags of every NB row the hub writes (programmer and node).

Names: a switch is ``<orchestrator>/<cluster>/<network>`` and a port
``<orchestrator>/<cluster>/<network>/<uid>``.  Orchestrator and cluster are DNS
labels and network names have no "/", so two sources can never produce the
same name (Kube-OVN #1677), and ``ovn-nbctl show`` stays readable.  A network
its source declares ``shared`` is one hub-wide switch ``ovn-hub/net/<network>``
that the ports of every source declaring it hang from (their names keep their
source).  Which switch a (source, network) is on: :func:`switch_of`, the one
resolution every caller (desired state, fabric, DNS, balancers, trace) uses.

Ownership: every row carries ``external_ids`` with the keys below; the hub
monitors, updates and deletes only rows whose ``ovn-hub:owner`` is its id
(ovn-kubernetes' owner-controller / owner-type / id scheme is the model).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from core.model import Endpoint, Network, Source

OWNER = "ovn-hub:owner"
SOURCE = "ovn-hub:source"
KIND = "ovn-hub:kind"
UID = "ovn-hub:uid"
NAMESPACE = "ovn-hub:namespace"
NAME = "ovn-hub:name"
NETWORK = "ovn-hub:network"
GATEWAY = "ovn-hub:gateway"  # on a switch: the network's gateway (node plumbing's default route)
SHARD = "ovn-hub:shard"  # crc32(port name) % SHARDS: a port slice a restart can read alone (portcache.READ_SPLIT)
SHARDS = 8
ACL_KEY = "ovn-hub:acl"  # content digest identifying an ACL (ACL has no name index)
PARENT = "ovn-hub:parent"  # Port_Group an ACL belongs to / switch a load balancer is on
ROW_KEY = "ovn-hub:key"  # the key of a fabric row whose table has no name column (NAT, DNS, routes, HA chassis)
RULE = "ovn-hub:rule"  # which part of the policy an ACL or address set comes from (for humans)


def owner_ids(source: Source | str, kind: str, uid: str, namespace: str, name: str, hub_id: str) -> dict[str, str]:
    return {OWNER: hub_id, SOURCE: str(source), KIND: kind, UID: uid, NAMESPACE: namespace, NAME: name}


def fabric_ids(kind: str, name: str, hub_id: str, source: str = "ovn-hub/fabric") -> dict[str, str]:
    """Ownership tags of a fabric row (``source``: the fabric's pseudo-source, or the
    source whose objects a row is made of, for DNS records)."""
    return {OWNER: hub_id, SOURCE: source, KIND: kind, UID: name, NAMESPACE: "", NAME: name}


def owner_prefix(hub_id: str) -> str:
    """The name prefix of the hub's rows in a table without ``external_ids``."""
    return f"ovn-hub/{hub_id}/"


def stable_mac(name: str) -> str:
    """A locally administered unicast MAC from a row name (router ports)."""
    digest = hashlib.sha256(name.encode()).digest()
    return "0a:" + ":".join(f"{b:02x}" for b in digest[:5])


def owned(hub_id: str) -> list[Any]:
    """The OVSDB condition "owned by this hub" (monitors, updates, deletes)."""
    return [["external_ids", "includes", ["map", [[OWNER, hub_id]]]]]


#: the pseudo-source of shared networks: their switch is ``ovn-hub/net/<network>``
SHARED_SOURCE = "ovn-hub/net"
SHARED_PREFIX = SHARED_SOURCE + "/"


def ls_name(source: Source | str, network: str, shared: bool = False) -> str:
    """The switch of ``network`` of ``source`` (``shared``: the hub-wide one)."""
    return f"{SHARED_PREFIX}{network}" if shared else f"{source}/{network}"


def switch_of(source: Source | str, network: str, networks: Mapping[str, Network] | None) -> str:
    """The switch ``source``'s endpoints and services on ``network`` are on, given the
    source's Network objects by name: the shared switch if the source declares it shared."""
    net = networks.get(network) if networks else None
    return f"{SHARED_PREFIX}{network}" if net is not None and net.shared else f"{source}/{network}"


def shared_network(switch: str) -> str:
    """The network name of a shared switch, or "" for any other switch."""
    return switch[len(SHARED_PREFIX):] if switch.startswith(SHARED_PREFIX) else ""


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
