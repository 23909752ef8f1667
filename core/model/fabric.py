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
import re
from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from core.model.objects import Endpoint, Invalid, Network, Peer, PolicyPort, Selector, Source
from core.model.validate import (
    LIMITS,
    bad_characters,
    quote,
    validate_count,
    validate_peer,
    validate_policy_port,
)

#: the pseudo-source of rows that belong to no one source (routers, their groups);
#: the orchestrator name is reserved: no adapter may use it
FABRIC_ORCHESTRATOR = "ovn-hub"
FABRIC_SOURCE = Source(FABRIC_ORCHESTRATOR, "fabric")
#: implicit endpoint labels, so a selector can name endpoints of any source (see :func:`selector_labels`)
LABEL_ORCHESTRATOR = "ovn-hub.io/orchestrator"
LABEL_CLUSTER = "ovn-hub.io/cluster"
LABEL_NAMESPACE = "ovn-hub.io/namespace"
#: the label that asks for a floating IP (``dnat_and_snat``) on a router's external network
LABEL_FLOATING_IP = "ovn-hub.io/floating-ip"
#: OVN's load balancers SNAT a client that reaches itself through its own Service to this
#: address (a fixed one, so that policies can allow it; ovn-kubernetes uses the same)
DEFAULT_HAIRPIN_IP = "169.254.169.5"


def implicit_labels(source: Source, namespace: str) -> dict[str, str]:
    """The labels every endpoint of ``namespace`` in ``source`` (and that namespace itself) carries
    implicitly: its orchestrator, its cluster and its namespace's name."""
    return {LABEL_ORCHESTRATOR: source.orchestrator, LABEL_CLUSTER: source.cluster, LABEL_NAMESPACE: namespace}


def selector_labels(ep: Endpoint) -> dict[str, str]:
    """The labels a selector sees on ``ep``: the orchestrator's, then the implicit ones.

    They are merged here, when selectors are evaluated, and never stored on the
    Endpoint (an adapter's object stays what the orchestrator said).  The implicit
    labels win: a pod labelled ``ovn-hub.io/orchestrator: docker`` by its owner is
    still seen as a Kubernetes pod, so no orchestrator can put its endpoints into
    another source's selection."""
    return {**ep.labels, **implicit_labels(ep.source, ep.namespace)}


def namespace_selector_labels(source: Source, name: str, labels: dict[str, str] | None) -> dict[str, str]:
    """The labels a namespace selector sees on namespace ``name`` of ``source``:
    its Namespace object's (none without one), then the implicit ones (which win)."""
    return {**(labels or {}), **implicit_labels(source, name)}


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


#: rules of one direction of one hub-level policy, and the highest priority (lower = first):
#: ``core/nb/tables/admin_policy.py`` gives each rule its own ACL priority in 2000-31999
MAX_ADMIN_RULES = 30
MAX_ADMIN_PRIORITY = 999
#: a hub-level policy's name: a DNS subdomain, as Kubernetes names objects
_ADMIN_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_RULE_NAME_MAX = 100


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
    validate_admin_policies(fab.policies)


# ---------------------------------------------------------------- hub-level policies
def validate_admin_policies(policies: Sequence[AdminPolicy]) -> None:
    """Raise :class:`Invalid` naming the first bad policy: names (DNS subdomains, unique),
    priorities (0-999, unique: OVN orders equal ACL priorities arbitrarily), subjects
    (selectors, no ipBlock), rules (at most :data:`MAX_ADMIN_RULES` per direction) and
    their peers and ports as a Kubernetes Policy's."""
    names: dict[str, int] = {}
    priorities: dict[int, str] = {}
    for i, pol in enumerate(policies):
        where = f"policies[{i}]"
        if not isinstance(pol.name, str) or not _ADMIN_NAME.fullmatch(pol.name):
            raise Invalid("bad-name", f"{where}.name {quote(pol.name)} is not a DNS subdomain ([a-z0-9.-], 1-253)")
        where = f"policies[{i}] ({pol.name})"
        if pol.name in names:
            raise Invalid("duplicate", f"{where}: the name is also policies[{names[pol.name]}]'s")
        names[pol.name] = i
        if not 0 <= pol.priority <= MAX_ADMIN_PRIORITY:
            raise Invalid("bad-priority", f"{where}.priority {pol.priority} is out of range 0-{MAX_ADMIN_PRIORITY}")
        if pol.priority in priorities:
            raise Invalid("duplicate", f"{where}.priority {pol.priority} is also that of policy {priorities[pol.priority]!r}"
                                       " (two policies of one priority have no defined order)")  # fmt: skip
        priorities[pol.priority] = pol.name
        if pol.subject.cidr is not None:
            raise Invalid("bad-subject", f"{where}.subject selects endpoints: selectors, not a cidr")
        validate_peer(pol.subject, f"{where}.subject")
        for direction, rules in (("ingress", pol.ingress), ("egress", pol.egress)):
            if len(rules) > MAX_ADMIN_RULES:
                raise Invalid("too-many", f"{where}.{direction} has {len(rules)} rules, more than {MAX_ADMIN_RULES}")
            for j, rule in enumerate(rules):
                at = f"{where}.{direction}[{j}]"
                if rule.name and (len(rule.name) > _RULE_NAME_MAX or bad_characters(rule.name)):
                    raise Invalid("bad-name", f"{at}.name {quote(rule.name)} is longer than {_RULE_NAME_MAX} "
                                              "characters or has control, bidi or zero-width characters")  # fmt: skip
                validate_count(f"{at}.peers", rule.peers, "peers")
                validate_count(f"{at}.ports", rule.ports, "policy_ports")
                for k, peer in enumerate(rule.peers):
                    validate_peer(peer, f"{at}.peers[{k}]")
                for k, pp in enumerate(rule.ports):
                    validate_policy_port(pp, f"{at}.ports[{k}]")


def _unknown_key(raw: Any, t: msgspec.inspect.Type, path: str) -> str | None:
    """The first key of ``raw`` (decoded JSON) that type ``t`` has no field for, as a path."""
    mi = msgspec.inspect
    if isinstance(t, mi.StructType) and isinstance(raw, dict):
        fields = {f.encode_name: f for f in t.fields}
        for k, v in raw.items():
            f = fields.get(k)
            if f is None:
                return f"{path}.{k}"
            if (bad := _unknown_key(v, f.type, f"{path}.{k}")) is not None:
                return bad
    elif isinstance(t, mi.ListType | mi.VarTupleType) and isinstance(raw, list):
        for j, v in enumerate(raw):
            if (bad := _unknown_key(v, t.item_type, f"{path}[{j}]")) is not None:
                return bad
    elif isinstance(t, mi.UnionType):
        for member in t.types:
            if isinstance(member, mi.StructType):
                return _unknown_key(raw, member, path)
    return None


_ADMIN_POLICIES_TYPE = msgspec.inspect.type_info(list[AdminPolicy])


def decode_admin_policies(data: bytes, origin: str = "policies") -> tuple[AdminPolicy, ...]:
    """A policies file (a JSON array of :class:`AdminPolicy`), decoded and validated
    strictly: no type coercion, no unknown key (a misspelt ``ingres`` must not leave a
    policy without its rules), :func:`validate_admin_policies`.  Raises :class:`Invalid`
    whose message starts with ``origin``."""
    if len(data) > LIMITS["object_bytes"]:
        raise Invalid("too-long", f"{origin}: {len(data)} bytes, more than {LIMITS['object_bytes']}")
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise Invalid("bad-json", f"{origin}: not JSON: {exc}") from None
    except RecursionError:
        raise Invalid("bad-json", f"{origin}: nested too deeply") from None
    if not isinstance(raw, list):
        raise Invalid("not-array", f"{origin}: expected a JSON array of policies")
    bad = _unknown_key(raw, _ADMIN_POLICIES_TYPE, "$")
    if bad is not None:
        raise Invalid("schema", f"{origin}: unknown key {quote(bad)}")
    try:
        policies = msgspec.convert(raw, list[AdminPolicy], strict=True)
    except msgspec.ValidationError as exc:
        raise Invalid("schema", f"{origin}: {exc}") from None
    try:
        validate_admin_policies(policies)
    except Invalid as exc:
        raise Invalid(exc.reason, f"{origin}: {exc}") from None
    return tuple(policies)
