"""The fabric: what the hub builds *between* the orchestrators' networks.

Sources describe networks, endpoints, services and policies; the fabric is the
operator's: which networks a hub-owned router joins, which external (provider)
network it leaves through, the DNS zone, the hairpin address, and hub-level
policies that span sources.  ``hub/config.py`` reads it from ``[routers.*]``,
``[external.*]``, ``[dns]`` and ``[policies]``; the programmer derives its rows
(``core/nb/tables/router.py`` and neighbours) from it and the networks every
source reports.

Patterns name networks as ``<orchestrator>/<cluster>/<network>`` with
:mod:`fnmatch` wildcards (``*`` matches within and across the parts, so ``*``
alone is every network, ``k8s/*`` every network of every Kubernetes cluster).
"""

from __future__ import annotations

import fnmatch
import ipaddress
from typing import Literal

import msgspec

from core.model.objects import Invalid, Network, Peer, PolicyPort, Selector, Source

#: the pseudo-source of rows that belong to no one source (routers, their groups);
#: the orchestrator name is reserved: no adapter may use it
FABRIC_ORCHESTRATOR = "ovn-hub"
FABRIC_SOURCE = Source(FABRIC_ORCHESTRATOR, "fabric")
#: implicit endpoint labels, so a selector can name endpoints of any source
LABEL_ORCHESTRATOR = "ovn-hub.io/orchestrator"
LABEL_CLUSTER = "ovn-hub.io/cluster"
LABEL_NAMESPACE = "ovn-hub.io/namespace"
#: the label that asks for a floating IP (``dnat_and_snat``) on a router's external network
LABEL_FLOATING_IP = "ovn-hub.io/floating-ip"
#: OVN's load balancers SNAT a client that reaches itself through its own Service to this
#: address (a fixed one, so that policies can allow it; ovn-kubernetes uses the same)
DEFAULT_HAIRPIN_IP = "169.254.169.5"


class RouterSpec(msgspec.Struct, frozen=True, kw_only=True):
    """``[routers.<name>]``: one distributed Logical_Router joining the networks
    that match ``networks`` and have a subnet."""

    name: str
    networks: tuple[str, ...] = ("*",)

    def joins(self, source: Source | str, network: str) -> bool:
        full = f"{source}/{network}"
        return any(fnmatch.fnmatchcase(full, p) for p in self.networks)


class ExternalSpec(msgspec.Struct, frozen=True, kw_only=True):
    """``[external.<name>]``: a provider network (a localnet port on the bridge
    mapped to ``physnet`` on the gateway chassis) that ``router`` leaves
    through, by a distributed gateway port at ``ip`` whose ``HA_Chassis_Group``
    holds ``chassis`` (first = highest priority)."""

    name: str
    router: str
    cidr: str
    ip: str
    gateway: str = ""
    physnet: str = "physnet"
    chassis: tuple[str, ...] = ()
    snat: bool = True
    #: an endpoint label whose value is the endpoint's floating IP on this network
    floating_ip_label: str = LABEL_FLOATING_IP


class DnsSpec(msgspec.Struct, frozen=True, kw_only=True):
    """``[dns]``: OVN native DNS records for every endpoint and Service on a routed network."""

    enabled: bool = True
    zone: str = "hub"


class AdminRule(msgspec.Struct, frozen=True, kw_only=True):
    """One rule of a hub-level policy.  ``peers`` as Kubernetes peers, except
    that a ``pod_selector`` alone selects endpoints of *every* source and
    namespace (the implicit labels narrow it); empty = every peer."""

    action: Literal["allow", "deny", "pass"]
    name: str = ""
    peers: tuple[Peer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()


class AdminPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """A hub-level policy (the AdminNetworkPolicy model): evaluated before every
    orchestrator's own policies, lower ``priority`` first.  ``allow`` admits
    (no orchestrator policy can drop it), ``deny`` drops, ``pass`` leaves the
    decision to the orchestrator's policies; traffic no rule matches falls
    through too."""

    name: str
    priority: int = 0
    subject: Peer = msgspec.field(default_factory=lambda: Peer(pod_selector=Selector()))
    ingress: tuple[AdminRule, ...] = ()
    egress: tuple[AdminRule, ...] = ()


class Fabric(msgspec.Struct, frozen=True, kw_only=True):
    routers: tuple[RouterSpec, ...] = ()
    externals: tuple[ExternalSpec, ...] = ()
    dns: DnsSpec = msgspec.field(default_factory=DnsSpec)
    hairpin_snat_ip: str = DEFAULT_HAIRPIN_IP
    policies: tuple[AdminPolicy, ...] = ()

    def router_of(self, source: Source | str, network: str) -> str:
        """The router a network joins (the first in name order whose patterns match), or ""."""
        for r in self.routers:
            if r.joins(source, network):
                return r.name
        return ""


def routed_subnets(net: Network) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The network's subnets a router port takes: all of them, IPv4 first (a
    Kubernetes pod network made of nodes' podCIDR slices that do not collapse
    into one has several, each with its gateway)."""
    nets = [ipaddress.ip_network(s, strict=False) for s in net.subnets]
    return [n for n in nets if n.version == 4] + [n for n in nets if n.version == 6]


def gateway_of(net: Network, subnet: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """The gateway address in ``subnet``: the network's own gateway when it is
    in it, else the subnet's first host address (what Docker and most IPAMs pick)."""
    if net.gateway:
        gw = ipaddress.ip_address(net.gateway)
        if gw.version == subnet.version and gw in subnet:
            return str(gw)
    first = subnet.network_address + 1
    return str(first)


def validate_fabric(fab: Fabric) -> None:
    """Raise :class:`Invalid` naming the bad key."""
    names = [r.name for r in fab.routers]
    if len(set(names)) != len(names):
        raise Invalid("bad-fabric", "two routers have the same name")
    for r in fab.routers:
        if not r.networks:
            raise Invalid("bad-fabric", f"routers.{r.name}.networks is empty")
    for e in fab.externals:
        where = f"external.{e.name}"
        if e.router not in names:
            raise Invalid("bad-fabric", f"{where}.router {e.router!r} is not a configured router")
        try:
            net = ipaddress.ip_network(e.cidr, strict=False)
            ip = ipaddress.ip_address(e.ip)
            gw = ipaddress.ip_address(e.gateway) if e.gateway else None
        except ValueError as exc:
            raise Invalid("bad-fabric", f"{where}: {exc}") from None
        if net.version != 4 or ip not in net or (gw is not None and gw not in net):
            raise Invalid("bad-fabric", f"{where}: ip and gateway must be IPv4 addresses inside cidr {e.cidr}")
        if not e.chassis:
            raise Invalid("bad-fabric", f"{where}.chassis names no gateway chassis")
    routers_with_ext = [e.router for e in fab.externals]
    if len(set(routers_with_ext)) != len(routers_with_ext):
        raise Invalid("bad-fabric", "a router may have one external network (OVN: one distributed gateway port)")
    try:
        ipaddress.ip_address(fab.hairpin_snat_ip)
    except ValueError:
        raise Invalid("bad-fabric", f"hairpin_snat_ip {fab.hairpin_snat_ip!r} is not an IP address") from None
    labels = fab.dns.zone.split(".")
    if not fab.dns.zone or any(not lab or len(lab) > 63 for lab in labels):
        raise Invalid("bad-fabric", f"dns.zone {fab.dns.zone!r} is not a DNS name")
