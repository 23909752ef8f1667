"""The fabric's index: which router each network is on (not a table: the
router, NAT, group and DNS tables read it).

Built from the fabric spec and every source's Network objects, rebuilt only
when one of them changes.  A network joins the first router whose patterns
match it, if it has a subnet; a network whose subnet overlaps one already on
that router (in switch-name order) stays off it, and the index says why
(``problems``): two networks cannot own one address range on one router.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from core.model import Network
from core.model.fabric import FABRIC_SOURCE, Fabric, gateway_of, routed_subnets
from core.names import ls_name

Subnet = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class RoutedNet:
    """One network on a router: its switch and the router port's addresses."""

    source: str
    network: Network
    switch: str
    subnets: tuple[Subnet, ...]
    gateways: tuple[str, ...]  # one per subnet, same order

    @property
    def cidrs(self) -> tuple[str, ...]:
        """The router port's ``networks``: ``gateway/prefixlen`` per subnet."""
        return tuple(f"{gw}/{s.prefixlen}" for gw, s in zip(self.gateways, self.subnets, strict=True))


class _Ranges:
    """Disjoint address ranges, sorted: an overlap check is a bisection, not a scan."""

    def __init__(self) -> None:
        self.starts: list[tuple[int, int]] = []  # (version, first address)
        self.ends: list[int] = []
        self.owners: list[str] = []

    def overlap(self, s: Subnet) -> str:
        lo, hi = (s.version, int(s.network_address)), int(s.broadcast_address)
        i = bisect.bisect_right(self.starts, lo)
        if i > 0 and self.starts[i - 1][0] == s.version and self.ends[i - 1] >= lo[1]:
            return self.owners[i - 1]
        if i < len(self.starts) and self.starts[i][0] == s.version and self.starts[i][1] <= hi:
            return self.owners[i]
        return ""

    def add(self, s: Subnet, owner: str) -> None:
        key = (s.version, int(s.network_address))
        i = bisect.bisect_right(self.starts, key)
        self.starts.insert(i, key)
        self.ends.insert(i, int(s.broadcast_address))
        self.owners.insert(i, owner)


@dataclass
class FabricIndex:
    spec: Fabric = field(default_factory=Fabric)
    #: router name -> its networks, in switch-name order
    nets: dict[str, list[RoutedNet]] = field(default_factory=dict)
    #: switch name -> router name
    router_of: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, spec: Fabric, networks: Iterable[tuple[str, Network]]) -> FabricIndex:
        idx = cls(spec=spec)
        if not spec.routers:
            return idx
        taken: dict[str, _Ranges] = {}
        for source, net in sorted(networks, key=lambda sn: ls_name(sn[0], sn[1].name)):
            router = spec.router_of(source, net.name)
            subnets = routed_subnets(net) if router else []
            if not subnets:
                continue
            switch = ls_name(source, net.name)
            mine = taken.setdefault(router, _Ranges())
            clash = next(((s, other) for s in subnets if (other := mine.overlap(s))), None)
            if clash is not None:
                idx.problems.append(f"network {switch} stays off router {router}: its subnet {clash[0]} overlaps {clash[1]}'s")
                continue
            for s in subnets:
                mine.add(s, switch)
            rn = RoutedNet(source, net, switch, tuple(subnets), tuple(gateway_of(net, s) for s in subnets))
            idx.nets.setdefault(router, []).append(rn)
            idx.router_of[switch] = router
        return idx

    def signature(self) -> tuple[object, ...]:
        """Equal for two indexes that derive the same rows."""
        return (self.spec, tuple((r, tuple((n.switch, n.cidrs) for n in ns)) for r, ns in sorted(self.nets.items())))

    def switches(self, router: str) -> tuple[str, ...]:
        return tuple(n.switch for n in self.nets.get(router, ()))


__all__ = ["FABRIC_SOURCE", "FabricIndex", "RoutedNet"]
