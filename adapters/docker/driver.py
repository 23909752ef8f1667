"""A Docker network + IPAM driver (libnetwork's remote driver protocol), the state half.

``docker network create -d ovn-hub --ipam-driver ovn-hub --subnet 10.60.0.0/24 green``
and ``docker run --network green …`` call, on the node agent's plugin socket::

    IpamDriver.RequestPool            the pool (--subnet, --ip-range)     → PoolID
    IpamDriver.RequestAddress         the gateway (first host, or --gateway), then one per endpoint
    NetworkDriver.CreateNetwork       the network: pools and gateways Docker settled on
    NetworkDriver.CreateEndpoint      the endpoint's address (from RequestAddress) → its MAC (0a:58 + IPv4)
    NetworkDriver.Join                a veth: host end in the switch's namespace, the other end left in
                                      Docker's namespace for Docker to move into the sandbox as eth<N>
                                      → InterfaceName {SrcName, DstPrefix "eth"}, Gateway
    NetworkDriver.Leave / DeleteEndpoint / DeleteNetwork, IpamDriver.ReleaseAddress / ReleasePool

**Who writes NB: the hub, from Docker (option A).**  The plugin never talks to
NB or the hub.  The hub's ordinary Docker adapter lists the network (driver
``ovn-hub``: a hub network with the IPAM subnet and gateway) and the container's
attachment (the address this IPAM gave, the MAC this driver gave), exactly as it
reads any container, and writes the Logical_Switch_Port with
``requested-chassis`` = its ``node``.  The node agent then only plumbs: once NB
has the port of (container, network) on this chassis, the veth's host end goes
on br-int with ``iface-id`` = that port's name (:mod:`.drivernode`).  No new
channel, and the hub stays the single programmer.

**Addresses: this driver's own allocation, not OVN's dynamic IPAM.**  Docker needs
the address at ``RequestAddress`` (before ``CreateEndpoint``), long before the
hub could have written a port for OVN to allocate on, and the hub only hears
of the container when Docker reports it.  So the pool is this IPAM's: serial
allocation (the next free address after the last one handed out, so a freed
address is not reused at once), the gateway the first host address unless
``--gateway`` says otherwise, network and broadcast addresses never handed out.
Every port on the switch then carries a static "MAC IP" that OVN's IPAM only
records; nothing on a driver network is ``dynamic``, so there is no range to
split with OVN.  A driver network is shared by every engine (below), so with
an ``allocate`` hook (the node's ``[node] hub_api``) an endpoint's address comes
from the hub's one allocator (hub/ipam.py) and is then recorded here; the
gateway stays this pool's answer (the same on every engine).

**Scope ``local``.**  Docker's ``global`` scope needs a cluster store
(``--cluster-store`` consul/etcd/zookeeper: deprecated in Docker 20.10, removed
in 23.0) or Swarm; ``local`` keeps each engine's networks, pools and endpoints
in its own store, which is what this process is a plugin of.  The hub gives the
cross-engine identity instead: a driver network is the shared hub network
``ovn-hub/net/<name>`` of every engine that has one of that name, and each node
agent creates it on its own engine (:func:`mirror_plan`, :mod:`.drivernode`).

**State** is one JSON file (``<state_dir>/docker-driver.json``), written
before every answer that changed it: an agent restart must know the pools,
addresses and endpoints Docker will not tell it again (``RequiresRequestReplay``
is false: Docker does not replay its requests on an engine restart either; the
file is the IPAM's database).  :meth:`DriverState.adopt` folds in what Docker
holds (the periodic reconciliation of :mod:`.drivernode`): what Docker has and
the file lost is adopted, what the file has and Docker no longer does is
released — but only what is older than the listing, so a request answered while
Docker was being listed is never collected.

Everything here is I/O-free except the state file; the plumbing is a
:class:`core.vif.handoff.Handoff` and the answers are plain dicts, so
:mod:`tests.unit.test_docker_driver` drives it without Docker.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from core.vif.handoff import Handoff

__all__ = [
    "CONTENT_TYPE",
    "GATEWAY_REQUEST",
    "GLOBAL_SPACE",
    "LOCAL_SPACE",
    "MIRROR_LABEL",
    "DockerNet",
    "DockerView",
    "Driver",
    "DriverError",
    "DriverState",
    "Endpoint",
    "Net",
    "Pool",
    "endpoint_mac",
    "handoff_names",
    "mirror_plan",
]

log = logging.getLogger("ovn_hub.driver")

#: What Docker's plugin client sends and expects (Plugin API v1.2).
CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
LOCAL_SPACE = "ovn-hub-local"
GLOBAL_SPACE = "ovn-hub-global"
#: RequestAddress Options["RequestAddressType"] when Docker asks for a network's gateway.
GATEWAY_REQUEST = "com.docker.network.gateway"
#: The label (value: the hub id) of a Docker network the node agent created because NB has the
#: shared network: the Docker adapter maps it as a ``mirror`` declaration (it never keeps the
#: hub's switch alive by itself), and the agent removes it once the hub's switch is gone.
MIRROR_LABEL = "ovn-hub.io/shared-mirror"
_DST_PREFIX = "eth"

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


class DriverError(Exception):
    """A request that cannot be served: answered ``{"Err": message}``."""


#: ``allocate(subnet, sub_pool, address, exclude)`` → an address of a shared network's pool, from
#: the hub (``address``: the one asked for, "" any; ``exclude``: what this engine holds already);
#: raises DriverError with the reason Docker shows
Allocate = Callable[[str, str, str, list[str]], Awaitable[str]]
#: ``release(subnet, address)``: the hub may hand ``address`` out again
Release = Callable[[str, str], Awaitable[None]]


# ---------------------------------------------------------------- state
class Pool(msgspec.Struct, kw_only=True):
    id: str
    space: str
    subnet: str  # the pool (--subnet), canonical CIDR
    sub: str = ""  # the container range (--ip-range), if any
    refs: int = 1
    #: address → the state's sequence number when it was handed out
    allocated: dict[str, int] = {}
    gateways: list[str] = []  # addresses handed out as a network's gateway
    last: str = ""  # the last address handed out (serial allocation continues after it)
    seq: int = 0


class Net(msgspec.Struct, kw_only=True):
    id: str
    pools: list[str] = []  # "10.60.0.0/24", IPv4 first, as Docker's IPv4Data/IPv6Data
    gateways: list[str] = []  # "10.60.0.1/24": each pool's gateway, same order ("" for none)
    seq: int = 0


class Endpoint(msgspec.Struct, kw_only=True):
    id: str
    network: str
    address: str = ""  # "10.60.0.2/24"
    address6: str = ""
    mac: str
    joined: bool = False
    sandbox: str = ""
    seq: int = 0

    @property
    def dev(self) -> str:
        return handoff_names(self.id)[0]

    @property
    def peer(self) -> str:
        return handoff_names(self.id)[1]

    @property
    def ips(self) -> list[str]:
        return [a.split("/")[0] for a in (self.address, self.address6) if a]


class _File(msgspec.Struct, kw_only=True):
    version: int = 1
    seq: int = 0
    pools: dict[str, Pool] = {}
    networks: dict[str, Net] = {}
    endpoints: dict[str, Endpoint] = {}


def handoff_names(eid: str) -> tuple[str, str]:
    """(host end on br-int, the end Docker moves into the sandbox): 14 characters each."""
    h = hashlib.sha1(f"docker-driver/{eid}".encode()).hexdigest()[:11]
    return f"ovh{h}", f"ovd{h}"


def endpoint_mac(eid: str, address: str) -> str:
    """0a:58 + the IPv4 address (as the hub derives MACs); an IPv6-only endpoint: from its id."""
    if address and ":" not in address:
        ip = address.split("/")[0]
        return "0a:58:" + ":".join(f"{int(b):02x}" for b in ip.split("."))
    digest = hashlib.sha256(eid.encode()).digest()
    return "0a:" + ":".join(f"{b:02x}" for b in digest[:5])


def _net(text: str, what: str) -> IPNet:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise DriverError(f"{what} {text!r} is not a CIDR") from None


def _hosts(net: IPNet) -> tuple[int, int]:
    """[first, last] usable host address as integers."""
    first, last = int(net.network_address), int(net.broadcast_address)
    if net.version == 4 and net.prefixlen < 31:
        return first + 1, last - 1
    if net.version == 6 and net.prefixlen < 127:
        return first + 1, last  # the subnet-router anycast address is never handed out
    return first, last


class DockerNet(msgspec.Struct, frozen=True, kw_only=True):
    """A Docker network as :func:`mirror_plan` reads it (``GET /networks``)."""

    id: str
    name: str
    driver: str
    #: the hub id of a network the node agent created as a copy of the hub's (``MIRROR_LABEL``), or ""
    mirror_of: str = ""


def mirror_plan(
    shared: Mapping[str, tuple[str, str]], nets: Iterable[DockerNet], *, driver: str, hub_id: str,
    declined: Iterable[str] = (),
) -> tuple[list[tuple[str, str, str]], list[DockerNet]]:  # fmt: skip
    """What makes this engine's networks follow the hub's shared networks (``shared``: name →
    (IPv4 subnet, gateway) of switch ``ovn-hub/net/<name>``): networks to create (name, subnet,
    gateway) where no network has the name, and this agent's copies whose shared network is
    gone (the caller removes only those no container uses).  A name taken by another network of
    this engine is left alone; ``declined``: names removed here while the hub still had them (the
    engine's user deleted the network they created: not copied back)."""
    by_name = {n.name: n for n in nets}
    skip = set(declined)
    create = [
        (name, subnet, gateway)
        for name, (subnet, gateway) in sorted(shared.items())
        if subnet and ":" not in subnet and name not in by_name and name not in skip
    ]
    remove = [n for _, n in sorted(by_name.items()) if n.driver == driver and n.mirror_of == hub_id and n.name not in shared]
    return create, remove


class DockerView(msgspec.Struct, kw_only=True):
    """What Docker holds, for :meth:`DriverState.adopt` (built by the node from the Engine API)."""

    #: network id → (pools, gateways) of networks whose driver is this one
    networks: dict[str, tuple[list[str], list[str]]] = {}
    #: endpoint id → (network id, IPv4 "ip/prefix", IPv6 "ip/prefix", MAC) on those networks
    endpoints: dict[str, tuple[str, str, str, str]] = {}
    #: pool id → networks using it, for networks whose IPAM driver is this one
    pools: dict[str, int] = {}
    #: pool id → addresses in use (endpoints, gateways, aux addresses)
    used: dict[str, set[str]] = {}


class DriverState:
    """Pools, networks and endpoints, persisted in ``path`` ("" = in memory only)."""

    def __init__(self, path: str = "") -> None:
        self.path = path
        self.data = _File()
        if path:
            self._load()

    def _load(self) -> None:
        p = Path(self.path)
        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            return
        try:
            self.data = msgspec.json.decode(raw, type=_File)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            bad = p.with_suffix(p.suffix + ".bad")
            os.replace(p, bad)
            log.error("docker driver state %s is damaged (%s): moved to %s; adopting what Docker holds", p, exc, bad)

    def save(self) -> None:
        if not self.path:
            return
        p = Path(self.path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp")
        # not fsynced: a crash of this process loses nothing (the page cache has it); a power loss that
        # loses the last writes is repaired by adopt() from what Docker holds
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, msgspec.json.encode(self.data))
        finally:
            os.close(fd)
        os.replace(tmp, p)

    def tick(self) -> int:
        self.data.seq += 1
        return self.data.seq

    @property
    def seq(self) -> int:
        return self.data.seq

    @property
    def pools(self) -> dict[str, Pool]:
        return self.data.pools

    @property
    def networks(self) -> dict[str, Net]:
        return self.data.networks

    @property
    def endpoints(self) -> dict[str, Endpoint]:
        return self.data.endpoints

    # ------------------------------------------------------------ IPAM
    @staticmethod
    def pool_id(space: str, subnet: str, sub: str = "") -> str:
        """Derived from the content: the id Docker stored survives a lost state file."""
        return f"{space}/{subnet}" + (f"/{sub}" if sub else "")

    def request_pool(self, space: str, pool: str, sub: str, v6: bool) -> Pool:
        if not pool:
            if sub:
                raise DriverError("a sub-pool (--ip-range) needs a pool (--subnet)")
            raise DriverError("the ovn-hub IPAM driver allocates no pool by itself: give --subnet")
        net = _net(pool, "pool")
        if v6 and net.version != 6:
            raise DriverError(f"pool {pool} is not IPv6")
        canon = str(net)
        subc = ""
        if sub:
            subnet = _net(sub, "sub-pool")
            if subnet.version != net.version or not subnet.subnet_of(net):  # type: ignore[arg-type]
                raise DriverError(f"sub-pool {sub} is not inside pool {canon}")
            subc = str(subnet)
        pid = self.pool_id(space, canon, subc)
        have = self.pools.get(pid)
        if have is not None:  # "multiple identical calls must return the same result": count them
            have.refs += 1
            have.seq = self.tick()
            return have
        for other in self.pools.values():
            if other.space == space and other.subnet != canon and _net(other.subnet, "pool").overlaps(net):
                raise DriverError(f"pool {canon} overlaps pool {other.subnet} (network of another --subnet)")
        self.pools[pid] = p = Pool(id=pid, space=space, subnet=canon, sub=subc, seq=self.tick())
        return p

    def _pool(self, pid: str) -> Pool:
        p = self.pools.get(pid)
        if p is not None:
            return p
        # a pool Docker knows and the state lost (a damaged file): its id says what it is
        space, _, rest = pid.partition("/")
        parts = rest.split("/")
        if space not in (LOCAL_SPACE, GLOBAL_SPACE) or len(parts) not in (2, 4):
            raise DriverError(f"unknown pool {pid!r}")
        subnet, sub = "/".join(parts[:2]), "/".join(parts[2:])
        try:
            pool = self.request_pool(space, subnet, sub, ipaddress.ip_network(subnet, strict=False).version == 6)
        except ValueError:
            raise DriverError(f"unknown pool {pid!r}") from None
        if pool.id != pid:
            raise DriverError(f"unknown pool {pid!r}")
        log.warning("pool %s was not in the driver's state: adopted", pid)
        return pool

    def release_pool(self, pid: str) -> None:
        p = self.pools.get(pid)
        if p is None:
            return  # released already: idempotent
        p.refs -= 1
        p.seq = self.tick()
        if p.refs <= 0:
            del self.pools[pid]

    def request_address(self, pid: str, address: str, options: Mapping[str, Any]) -> str:
        """Hand out ``address`` (or the next free one); returns "ip/prefix"."""
        p = self._pool(pid)
        net = _net(p.subnet, "pool")
        rng = _net(p.sub, "sub-pool") if p.sub else net
        gateway = options.get("RequestAddressType") == GATEWAY_REQUEST
        if address:
            try:
                ip = ipaddress.ip_address(address.split("/")[0])
            except ValueError:
                raise DriverError(f"address {address!r} is not an IP address") from None
            if ip not in net:
                raise DriverError(f"address {ip} is not in pool {p.subnet}")
            first, last = _hosts(net)
            if not first <= int(ip) <= last:
                raise DriverError(f"address {ip} is the network or broadcast address of {p.subnet}")
            text = str(ip)
            if text in p.allocated:
                if gateway and text in p.gateways:
                    return f"{text}/{net.prefixlen}"  # the same gateway asked again
                raise DriverError(f"address {text} is already in use in pool {p.subnet}")
        else:
            text = self._next_free(p, rng, from_start=gateway)
        p.allocated[text] = self.tick()
        if gateway:
            p.gateways.append(text)
        else:
            p.last = text
        return f"{text}/{net.prefixlen}"

    def _next_free(self, p: Pool, rng: IPNet, *, from_start: bool) -> str:
        first, last = _hosts(rng)
        net_first, net_last = _hosts(_net(p.subnet, "pool"))
        first, last = max(first, net_first), min(last, net_last)
        if last < first:
            raise DriverError(f"pool {p.subnet} has no host addresses")
        start = first
        if not from_start and p.last:
            prev = int(ipaddress.ip_address(p.last))
            if first <= prev < last:
                start = prev + 1
        size = last - first + 1
        make = ipaddress.ip_address
        for i in range(size):
            cand = str(make(first + (start - first + i) % size))
            if cand not in p.allocated:
                return cand
        raise DriverError(f"no free address left in {p.sub or p.subnet}")

    def release_address(self, pid: str, address: str) -> None:
        p = self.pools.get(pid)
        if p is None:
            return
        text = address.split("/")[0]
        if p.allocated.pop(text, None) is not None:
            self.tick()
        if text in p.gateways:
            p.gateways.remove(text)

    # ------------------------------------------------------------ adoption
    def adopt(
        self,
        docker: DockerView,
        before: int,
        *,
        exists: Callable[[str], bool],
        gone: Callable[[Endpoint], None],
        recent: Iterable[str] = (),
    ) -> list[str]:
        """Fold in what Docker holds (``docker``, listed when the state's sequence was
        ``before``): adopt what the state lacks, release what Docker no longer has and
        the state had before the listing.  ``exists(dev)``: the endpoint's veth is
        there (adopted as joined); ``gone(ep)``: an endpoint to unplumb; ``recent``:
        endpoints deleted since the listing (not adopted back).  Returns what changed."""
        changes: list[str] = []
        recent = set(recent)
        # networks
        for nid, (pools, gws) in sorted(docker.networks.items()):
            if nid not in self.networks:
                self.networks[nid] = Net(id=nid, pools=list(pools), gateways=list(gws), seq=self.tick())
                changes.append(f"adopted network {nid[:12]}")
        for nid, n in sorted(self.networks.items()):
            if nid not in docker.networks and n.seq <= before:
                del self.networks[nid]
                changes.append(f"released network {nid[:12]} (gone from Docker)")
        # endpoints
        for eid, (nid, a4, a6, mac) in sorted(docker.endpoints.items()):
            if eid in self.endpoints or eid in recent or nid not in self.networks:
                continue
            ep = Endpoint(id=eid, network=nid, address=a4, address6=a6, mac=mac or endpoint_mac(eid, a4),
                          seq=self.tick())  # fmt: skip
            ep.joined = exists(ep.dev)
            self.endpoints[eid] = ep
            changes.append(f"adopted endpoint {eid[:12]}")
        for eid, ep in sorted(self.endpoints.items()):
            if ep.seq <= before and (eid not in docker.endpoints or ep.network not in self.networks):
                del self.endpoints[eid]
                gone(ep)
                changes.append(f"released endpoint {eid[:12]} (gone from Docker)")
        # pools and addresses
        for pid, refs in sorted(docker.pools.items()):
            p = self.pools.get(pid)
            if p is None:
                try:
                    p = self._pool(pid)
                except DriverError:
                    continue
                changes.append(f"adopted pool {pid}")
            if p.seq <= before and p.refs != refs:
                p.refs = refs
        for pid, p in sorted(self.pools.items()):
            if pid not in docker.pools and p.seq <= before:
                del self.pools[pid]
                changes.append(f"released pool {pid} (no network uses it)")
                continue
            used = docker.used.get(pid, set())
            for ip in sorted(used - p.allocated.keys()):
                p.allocated[ip] = self.tick()
                changes.append(f"adopted address {ip} of {pid}")
            for ip, seq in sorted(p.allocated.items()):
                if ip not in used and seq <= before:
                    del p.allocated[ip]
                    if ip in p.gateways:
                        p.gateways.remove(ip)
                    changes.append(f"released address {ip} of {pid} (no endpoint has it)")
        if changes:
            self.tick()
        return changes


# ---------------------------------------------------------------- protocol
def _req(body: Any, *keys: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise DriverError("the request is not a JSON object")
    for k in keys:
        v = body.get(k)
        if not isinstance(v, str) or not v:
            raise DriverError(f"the request has no {k}")
    return body


class Driver:
    """The protocol's answers over a :class:`DriverState` and a :class:`Handoff`.

    ``on_change(eid)`` is called when an endpoint was joined, left or deleted (the
    node then binds or unbinds its port).  Every method returns the response body
    or raises :class:`DriverError`."""

    def __init__(
        self,
        state: DriverState,
        links: Handoff,
        *,
        on_change: Callable[[str], None] | None = None,
        deleted: Callable[[str], None] | None = None,
        allocate: Allocate | None = None,
        release: Release | None = None,
    ) -> None:
        self.state = state
        self.links = links
        self.on_change = on_change
        self.on_deleted = deleted
        #: the hub's allocation for endpoint addresses (every engine's driver networks are one
        #: shared network each, so one allocator across engines); None: this engine's pool alone
        self.allocate = allocate
        self.release = release
        self.calls: dict[str, int] = {}

    def methods(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "Plugin.Activate": self.activate,
            "NetworkDriver.GetCapabilities": self.capabilities,
            "NetworkDriver.CreateNetwork": self.create_network,
            "NetworkDriver.DeleteNetwork": self.delete_network,
            "NetworkDriver.CreateEndpoint": self.create_endpoint,
            "NetworkDriver.EndpointOperInfo": self.endpoint_info,
            "NetworkDriver.DeleteEndpoint": self.delete_endpoint,
            "NetworkDriver.Join": self.join,
            "NetworkDriver.Leave": self.leave,
            "NetworkDriver.DiscoverNew": self.nothing,
            "NetworkDriver.DiscoverDelete": self.nothing,
            "NetworkDriver.ProgramExternalConnectivity": self.nothing,
            "NetworkDriver.RevokeExternalConnectivity": self.nothing,
            "IpamDriver.GetCapabilities": self.ipam_capabilities,
            "IpamDriver.GetDefaultAddressSpaces": self.address_spaces,
            "IpamDriver.RequestPool": self.request_pool,
            "IpamDriver.ReleasePool": self.release_pool,
            "IpamDriver.RequestAddress": self.request_address,
            "IpamDriver.ReleaseAddress": self.release_address,
        }

    def _changed(self, eid: str) -> None:
        if self.on_change is not None:
            self.on_change(eid)

    # ------------------------------------------------------------ handshake
    async def activate(self, _body: Any) -> dict[str, Any]:
        return {"Implements": ["NetworkDriver", "IpamDriver"]}

    async def capabilities(self, _body: Any) -> dict[str, Any]:
        return {"Scope": "local", "ConnectivityScope": "local"}

    async def ipam_capabilities(self, _body: Any) -> dict[str, Any]:
        return {"RequiresMACAddress": False, "RequiresRequestReplay": False}

    async def address_spaces(self, _body: Any) -> dict[str, Any]:
        return {"LocalDefaultAddressSpace": LOCAL_SPACE, "GlobalDefaultAddressSpace": GLOBAL_SPACE}

    async def nothing(self, _body: Any) -> dict[str, Any]:
        return {}

    # ------------------------------------------------------------ IPAM
    async def request_pool(self, body: Any) -> dict[str, Any]:
        b = _req(body, "AddressSpace")
        pool = self.state.request_pool(b["AddressSpace"], str(b.get("Pool") or ""), str(b.get("SubPool") or ""),
                                       bool(b.get("V6")))  # fmt: skip
        self.state.save()
        return {"PoolID": pool.id, "Pool": pool.subnet, "Data": {}}

    async def release_pool(self, body: Any) -> dict[str, Any]:
        self.state.release_pool(_req(body, "PoolID")["PoolID"])
        self.state.save()
        return {}

    async def request_address(self, body: Any) -> dict[str, Any]:
        b = _req(body, "PoolID")
        options = b.get("Options") or {}
        if not isinstance(options, dict):
            raise DriverError("Options is not an object")
        address = str(b.get("Address") or "")
        if self.allocate is not None and options.get("RequestAddressType") != GATEWAY_REQUEST:
            # an endpoint's address comes from the hub (the gateway is the same on every engine)
            pool = self.state._pool(b["PoolID"])
            if address and address.split("/")[0] in pool.allocated:
                raise DriverError(f"address {address.split('/')[0]} is already in use in pool {pool.subnet}")
            address = await self.allocate(pool.subnet, pool.sub, address.split("/")[0], sorted(pool.allocated))
        addr = self.state.request_address(b["PoolID"], address, options)
        self.state.save()
        return {"Address": addr, "Data": {}}

    async def release_address(self, body: Any) -> dict[str, Any]:
        b = _req(body, "PoolID", "Address")
        pool = self.state.pools.get(b["PoolID"])
        ip = b["Address"].split("/")[0]
        central = pool is not None and ip in pool.allocated and ip not in pool.gateways
        self.state.release_address(b["PoolID"], b["Address"])
        self.state.save()
        if self.release is not None and central and pool is not None:
            try:
                await self.release(pool.subnet, ip)
            except DriverError as exc:  # the hub's reservation lapses by itself
                log.warning("releasing %s of %s at the hub failed: %s", ip, pool.subnet, exc)
        return {}

    # ------------------------------------------------------------ networks
    async def create_network(self, body: Any) -> dict[str, Any]:
        b = _req(body, "NetworkID")
        pools: list[str] = []
        gateways: list[str] = []
        for key in ("IPv4Data", "IPv6Data"):
            items = b.get(key) or []
            if not isinstance(items, list):
                raise DriverError(f"{key} is not an array")
            for item in items:
                if not isinstance(item, dict) or not isinstance(item.get("Pool"), str):
                    raise DriverError(f"{key} entries need a Pool")
                pools.append(str(_net(item["Pool"], "pool")))
                gw = item.get("Gateway")
                gateways.append(gw if isinstance(gw, str) else "")
        if not any(":" not in p for p in pools):
            raise DriverError("an ovn-hub network needs an IPv4 subnet (--subnet)")
        nid = b["NetworkID"]
        self.state.networks[nid] = Net(id=nid, pools=pools, gateways=gateways, seq=self.state.tick())
        self.state.save()
        log.info("network %s created: %s", nid[:12], ", ".join(pools))
        return {}

    async def delete_network(self, body: Any) -> dict[str, Any]:
        nid = _req(body, "NetworkID")["NetworkID"]
        for ep in [e for e in self.state.endpoints.values() if e.network == nid]:
            await self._unplumb(ep)
            del self.state.endpoints[ep.id]
        if self.state.networks.pop(nid, None) is not None:
            self.state.tick()
            log.info("network %s deleted", nid[:12])
        self.state.save()
        return {}

    # ------------------------------------------------------------ endpoints
    def _endpoint(self, body: Any) -> Endpoint:
        b = _req(body, "NetworkID", "EndpointID")
        ep = self.state.endpoints.get(b["EndpointID"])
        if ep is None or ep.network != b["NetworkID"]:
            raise DriverError(f"unknown endpoint {b['EndpointID'][:12]} on network {b['NetworkID'][:12]}")
        return ep

    async def create_endpoint(self, body: Any) -> dict[str, Any]:
        b = _req(body, "NetworkID", "EndpointID")
        nid, eid = b["NetworkID"], b["EndpointID"]
        if nid not in self.state.networks:
            raise DriverError(f"unknown network {nid[:12]}")
        iface = b.get("Interface") or {}
        if not isinstance(iface, dict):
            raise DriverError("Interface is not an object")
        a4, a6, mac = (str(iface.get(k) or "") for k in ("Address", "AddressIPv6", "MacAddress"))
        if not a4 and not a6:
            raise DriverError("the endpoint has no address: create the network with an IPAM driver and --subnet")
        for addr, version in ((a4, 4), (a6, 6)):
            try:
                if addr and ipaddress.ip_interface(addr).version != version:
                    raise ValueError
            except ValueError:
                raise DriverError(f"Interface address {addr[:60]!r} is not an IPv{version} address") from None
        out: dict[str, Any] = {}
        if not mac:
            mac = endpoint_mac(eid, a4)
            out = {"Interface": {"MacAddress": mac}}  # libnetwork takes the MAC of a driver when it had none
        self.state.endpoints[eid] = Endpoint(id=eid, network=nid, address=a4, address6=a6, mac=mac.lower(),
                                             seq=self.state.tick())  # fmt: skip
        self.state.save()
        return out

    async def endpoint_info(self, body: Any) -> dict[str, Any]:
        ep = self._endpoint(body)
        return {"Value": {"ovs-interface": ep.dev, "mac": ep.mac, "addresses": ep.ips, "joined": ep.joined}}

    async def delete_endpoint(self, body: Any) -> dict[str, Any]:
        b = _req(body, "NetworkID", "EndpointID")
        ep = self.state.endpoints.pop(b["EndpointID"], None)
        if ep is not None:
            self.state.tick()
            self.state.save()
            await self._unplumb(ep)
            log.info("endpoint %s deleted: %s removed", ep.id[:12], ep.dev)
            if self.on_deleted is not None:
                self.on_deleted(ep.id)
        return {}

    async def join(self, body: Any) -> dict[str, Any]:
        ep = self._endpoint(body)
        net = self.state.networks[ep.network]
        await self.links.create(ep.dev, ep.peer, ep.mac)
        ep.joined = True
        ep.sandbox = str(body.get("SandboxKey") or "")
        ep.seq = self.state.tick()
        self.state.save()
        log.info("endpoint %s joined: %s for %s (%s %s)", ep.id[:12], ep.peer, ep.sandbox, ep.mac, " ".join(ep.ips))
        self._changed(ep.id)
        out: dict[str, Any] = {"InterfaceName": {"SrcName": ep.peer, "DstPrefix": _DST_PREFIX}, "StaticRoutes": []}
        for addr, key in ((ep.address, "Gateway"), (ep.address6, "GatewayIPv6")):
            gw = _gateway_for(net, addr)
            if gw:
                out[key] = gw
        return out

    async def leave(self, body: Any) -> dict[str, Any]:
        ep = self._endpoint(body)
        await self.links.unbind(ep.dev)  # off br-int at once: the port goes down; the veth goes with DeleteEndpoint
        ep.joined = False
        ep.seq = self.state.tick()
        self.state.save()
        self._changed(ep.id)
        return {}

    async def _unplumb(self, ep: Endpoint) -> None:
        await self.links.unbind(ep.dev)
        await self.links.destroy(ep.dev)


def _gateway_for(net: Net, addr: str) -> str:
    """The gateway (without prefix) of the network's pool that holds ``addr``."""
    if not addr:
        return ""
    ip = ipaddress.ip_address(addr.split("/")[0])
    for pool, gw in zip(net.pools, net.gateways, strict=False):
        if gw and ip in ipaddress.ip_network(pool, strict=False):
            return gw.split("/")[0]
    return ""
