"""The hub's address allocation for shared networks (``POST /v1/ipam/request|release``).

Why on the hub: a shared network (one switch ``ovn-hub/net/<name>``) spans
Docker engines, and Docker asks each engine's IPAM driver for an address at
``RequestAddress``, before the hub could hear of the container.  Two engines
allocating from one pool on their own would hand out the same address.  So the
node agents ask the hub, over the authenticated node → hub channel the CNI
agents already use (the admin API with the ``[api]`` ingest token as bearer).

What an address is taken by: an endpoint of the desired state (any source) in
the pool's subnet, or a **reservation** this allocator handed out (per node) and
that was neither released (Docker's ``ReleaseAddress``) nor older than ``ttl``:
by then the engine's adapter has reported the container, and the desired state
holds its address.  The requesting node also names what it holds already
(``exclude``: its gateway, addresses of its endpoints).  Allocation is serial
per subnet (the next free address after the last one handed out), never the
network or broadcast address.

Failure modes (README, "The Docker network driver"): the hub unreachable at
``RequestAddress`` is a Docker error naming the hub; a hub restart forgets
reservations, so an address handed out in the seconds before the restart whose
container the adapter has not reported yet may be handed out again (the window
is the adapter's reporting delay).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

__all__ = ["IpamError", "SharedIpam"]


class IpamError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Request(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    node: str
    subnet: str
    range: str = ""
    address: str = ""
    exclude: list[str] = []


class _Release(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    node: str
    subnet: str
    address: str


_MAX_EXCLUDE = 65536


class SharedIpam:
    """Addresses of shared pools, one allocator for every node.  ``in_use()``: the
    addresses of the desired state's endpoints (read at each request)."""

    def __init__(self, in_use: Callable[[], Iterable[str]], ttl: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.in_use = in_use
        self.ttl = ttl
        self.clock = clock
        #: subnet → address → (node, when it was handed out)
        self.reserved: dict[str, dict[str, tuple[str, float]]] = {}
        self.last: dict[str, int] = {}
        self.requests = 0
        self.refused = 0

    def status(self) -> dict[str, Any]:
        return {"requests": self.requests, "refused": self.refused,
                "reserved": {s: len(r) for s, r in sorted(self.reserved.items()) if r}}  # fmt: skip

    def _expire(self, subnet: str) -> dict[str, tuple[str, float]]:
        res = self.reserved.setdefault(subnet, {})
        old = self.clock() - self.ttl
        for ip in [ip for ip, (_n, t) in res.items() if t < old]:
            del res[ip]
        return res

    def request(self, node: str, subnet: str, rng: str = "", address: str = "", exclude: Iterable[str] = ()) -> str:
        """An address of ``subnet`` (inside ``rng`` if given) for ``node``; IpamError 409 when
        ``address`` is taken or the pool is full, 400 for a malformed request."""
        try:
            net = ipaddress.ip_network(subnet, strict=False)
            sub = ipaddress.ip_network(rng, strict=False) if rng else net
            want = ipaddress.ip_address(address) if address else None
        except ValueError as exc:
            raise IpamError(400, str(exc)) from None
        if sub.version != net.version or not sub.subnet_of(net):  # type: ignore[arg-type]
            raise IpamError(400, f"range {rng} is not inside subnet {subnet}")
        key = str(net)
        res = self._expire(key)
        taken = set(res)
        taken.update(str(ip) for ip in exclude)
        for ip in self.in_use():
            try:
                if ipaddress.ip_address(ip) in net:
                    taken.add(ip)
            except ValueError:
                continue
        first, last = int(net.network_address), int(net.broadcast_address)
        if net.version == 4 and net.prefixlen < 31:
            first, last = first + 1, last - 1
        lo, hi = max(first, int(sub.network_address)), min(last, int(sub.broadcast_address))
        self.requests += 1
        if want is not None:
            if want not in net or not first <= int(want) <= last:
                raise IpamError(400, f"address {want} is not a host address of {key}")
            if str(want) in taken and res.get(str(want), ("",))[0] != node:
                self.refused += 1
                holder = res.get(str(want))
                who = f"handed out to node {holder[0]}" if holder else "held by an endpoint of the hub"
                raise IpamError(409, f"address {want} of shared subnet {key} is already in use ({who})")
            res[str(want)] = (node, self.clock())
            return str(want)
        if hi < lo:
            raise IpamError(409, f"{rng or key} has no host addresses")
        size = hi - lo + 1
        prev = self.last.get(key, lo - 1)
        start = prev + 1 if lo <= prev + 1 <= hi else lo
        make = ipaddress.ip_address
        for i in range(size):
            cand = str(make(lo + (start - lo + i) % size))
            if cand not in taken:
                res[cand] = (node, self.clock())
                self.last[key] = int(make(cand))
                return cand
        self.refused += 1
        raise IpamError(409, f"no free address left in shared subnet {rng or key}")

    def release(self, node: str, subnet: str, address: str) -> bool:
        try:
            key = str(ipaddress.ip_network(subnet, strict=False))
        except ValueError as exc:
            raise IpamError(400, str(exc)) from None
        res = self.reserved.get(key, {})
        if res.get(address, ("",))[0] == node:
            del res[address]
            return True
        return False

    def handle(self, op: str, payload: bytes) -> tuple[int, dict[str, Any]]:
        """One API call: (HTTP status, body)."""
        try:
            if op == "request":
                req = msgspec.json.decode(payload, type=_Request)
                if len(req.exclude) > _MAX_EXCLUDE:
                    return 413, {"error": f"exclude holds more than {_MAX_EXCLUDE} addresses"}
                return 200, {"address": self.request(req.node, req.subnet, req.range, req.address, req.exclude)}
            if op == "release":
                rel = msgspec.json.decode(payload, type=_Release)
                return 200, {"released": self.release(rel.node, rel.subnet, rel.address)}
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return 400, {"error": f"bad ipam {op} request: {exc}"}
        except IpamError as exc:
            return exc.status, {"error": str(exc)}
        return 404, {"error": f"unknown ipam operation {op!r} (request, release)"}
