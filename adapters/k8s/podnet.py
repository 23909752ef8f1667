"""The pod network's subnets and gateway: pure functions, no I/O.

The k8s adapter emits one :class:`~core.model.Network` (named by its
``network`` option) that every pod Endpoint attaches to.  Its ``subnets`` come
from one of two places:

* the adapter option ``pod_cidr`` (the cluster CIDR(s), e.g. kube-controller-
  manager's ``--cluster-cidr``): :func:`parse_pod_cidr`; the gateway is
  ``pod_gateway`` when given (:func:`parse_pod_gateway`), else the first host
  address of the gateway subnet;
* else the nodes' ``spec.podCIDRs`` (``spec.podCIDR`` on nodes from before
  dual-stack; :func:`adapters.k8s.normalize.node_pod_cidrs`): every node's
  slice, united.

Either way the subnets are **the collapsed, sorted set** of those CIDRs
(:func:`collapse`: ``ipaddress.collapse_addresses`` per family, IPv4 first,
each family by address).  Adjacent or nested slices merge (10.244.0.0/24 and
10.244.1.0/24 are 10.244.0.0/23); slices that are not contiguous stay apart.
Never a covering supernet: a supernet of non-contiguous slices claims
addresses no node owns (other clusters', the nodes', anyone's).

The **gateway subnet** is the first of them, so the lowest IPv4 subnet (the
lowest IPv6 one in an IPv6-only network).  That is the subnet the hub's
Logical_Switch takes for ``other_config:subnet`` (core/nb/tables/switch.py
uses the first IPv4 subnet, and puts the gateway in ``exclude_ips``), so the
gateway is always inside the one subnet OVN's IPAM knows, and it is where the
routing fabric puts the network's router port.  The default gateway is the
first host address of the gateway subnet (10.244.0.1).  Derived from nodes,
that gateway moves when the lowest slice's node goes; set ``pod_cidr`` for a
gateway that never moves.

The model allows :data:`core.model.LIMITS` ``["subnets"]`` (16) subnets per
network.  Slices of a churned cluster may not collapse that far; :func:`cap`
then keeps the lowest ones, shared between the families, and the adapter logs
it once.  A pod whose address is in no subnet is still programmed: its port
has its address; only the routes the fabric derives from the subnets miss it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from core.model import LIMITS, Invalid, Network, Source, quote, validate, validate_ip, validate_subnet

__all__ = [
    "IPNetwork",
    "cap",
    "collapse",
    "first_host",
    "parse_pod_cidr",
    "parse_pod_gateway",
    "pod_network",
    "pod_subnet",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Longest prefix a pod subnet may have: room for the gateway and at least one pod.
_MAX_PREFIX = {4: 30, 6: 126}
_V4_ZERO = ipaddress.IPv4Network("0.0.0.0/8")
_V4_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def pod_subnet(text: str, what: str = "pod CIDR", *, strict: bool = False) -> IPNetwork:
    """One pod CIDR, or raise :class:`Invalid` (reason ``bad-subnet``).

    ``strict``: host bits must be clear (an option the operator wrote);
    otherwise they are cleared, as the API server's ParseCIDRSloppy accepts a
    node's ``10.0.0.1/24``.  Refused: no room for a gateway and a pod (IPv4
    longer than /30, IPv6 longer than /126) and ranges no pod can have
    (multicast, loopback, link-local, 0.0.0.0/8, the IPv4 broadcast address,
    IPv6 ``::``)."""
    net = validate_subnet(text, what)
    if "/" not in text:
        raise Invalid("bad-subnet", f"{what} {quote(text)} has no prefix length (a CIDR is address/length)")
    if strict and str(net.network_address) != str(ipaddress.ip_interface(text).ip):
        raise Invalid("bad-subnet", f"{what} {quote(text)} has host bits set (the network is {net})")
    if net.prefixlen > _MAX_PREFIX[net.version]:
        raise Invalid(
            "bad-subnet",
            f"{what} {net} is too small for pods (at most /{_MAX_PREFIX[net.version]} for IPv{net.version})",
        )
    unusable = net.is_multicast or net.is_loopback or net.is_link_local
    if isinstance(net, ipaddress.IPv4Network):
        unusable = unusable or net.overlaps(_V4_ZERO) or _V4_BROADCAST in net
    else:
        unusable = unusable or net.network_address.is_unspecified
    if unusable:
        raise Invalid(
            "bad-subnet", f"{what} {net} is not a range pods can have (multicast, loopback, link-local or reserved)"
        )
    return net


def collapse(cidrs: Iterable[str | IPNetwork]) -> tuple[str, ...]:
    """The collapsed, sorted set of ``cidrs``: adjacent and nested networks
    merged per family, IPv4 first, each family by address; host bits cleared."""
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    for c in cidrs:
        net = (
            c if isinstance(c, ipaddress.IPv4Network | ipaddress.IPv6Network) else ipaddress.ip_network(c, strict=False)
        )
        if isinstance(net, ipaddress.IPv4Network):
            v4.append(net)
        else:
            v6.append(net)
    return (*map(str, ipaddress.collapse_addresses(v4)), *map(str, ipaddress.collapse_addresses(v6)))


def cap(subnets: Sequence[str], limit: int = LIMITS["subnets"]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(kept, dropped)``: at most ``limit`` of the collapsed ``subnets``, the
    lowest of each family, the slots shared between the families (a family
    with fewer than half keeps all of its own, the other one the rest)."""
    if len(subnets) <= limit:
        return tuple(subnets), ()
    v4 = [s for s in subnets if ":" not in s]
    v6 = [s for s in subnets if ":" in s]
    n4 = min(len(v4), max(limit // 2, limit - len(v6)))
    n6 = min(len(v6), limit - n4)
    kept = (*v4[:n4], *v6[:n6])
    return kept, (*v4[n4:], *v6[n6:])


def first_host(subnet: str | IPNetwork) -> str:
    """The first host address of ``subnet`` (10.244.0.0/16 → 10.244.0.1)."""
    net = subnet if isinstance(subnet, ipaddress.IPv4Network | ipaddress.IPv6Network) else ipaddress.ip_network(subnet)
    return str(net.network_address + 1)


def parse_pod_cidr(value: str | Sequence[str]) -> tuple[str, ...]:
    """The ``pod_cidr`` option (one CIDR, a comma-separated list, or a list;
    IPv4 and/or IPv6) → the network's subnets (:func:`collapse`d), or raise
    :class:`Invalid` naming the bad entry: not a CIDR, host bits set, unusable
    (:func:`pod_subnet`), two entries that overlap, more than the model's limit."""
    items = [part.strip() for part in value.split(",")] if isinstance(value, str) else list(value)
    nets: list[IPNetwork] = []
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item:
            raise Invalid("bad-subnet", f"entry {i + 1} is empty" if item == "" else f"entry {i + 1} is not a string")
        net = pod_subnet(item, f"entry {i + 1}", strict=True)
        for other in nets:
            if other.version == net.version and other.overlaps(net):
                raise Invalid("bad-subnet", f"{net} overlaps {other}")
        nets.append(net)
    if not nets:
        raise Invalid("bad-subnet", "no CIDR")
    subnets = collapse(nets)
    if len(subnets) > LIMITS["subnets"]:
        raise Invalid("bad-subnet", f"{len(subnets)} subnets, more than a network may have ({LIMITS['subnets']})")
    return subnets


def parse_pod_gateway(text: str, subnets: Sequence[str]) -> str:
    """The ``pod_gateway`` option → its canonical address, or raise
    :class:`Invalid`: it must be a host address of the gateway subnet
    (``subnets[0]``: the lowest IPv4 subnet, the one the switch's IPAM uses),
    neither its network nor its broadcast address."""
    ip = ipaddress.ip_address(validate_ip(text, "address"))
    net = ipaddress.ip_network(subnets[0])
    if ip.version != net.version or ip not in net:
        raise Invalid(
            "bad-ip",
            f"{ip} is not in {net}, the gateway subnet (the lowest IPv{net.version} subnet of pod_cidr: "
            "the one OVN's switch takes)",
        )
    if ip == net.network_address or (isinstance(net, ipaddress.IPv4Network) and ip == net.broadcast_address):
        raise Invalid("bad-ip", f"{ip} is the network or broadcast address of {net}")
    return str(ip)


def pod_network(source: Source, name: str, subnets: Sequence[str], gateway: str | None = None) -> Network:
    """The validated Network: ``subnets`` as given (collapsed and sorted by
    the caller), ``gateway`` or else the first host address of ``subnets[0]``
    (None without subnets)."""
    if gateway is None and subnets:
        gateway = first_host(subnets[0])
    net = Network(source=source, name=name, subnets=tuple(subnets), gateway=gateway)
    validate(net)
    return net
