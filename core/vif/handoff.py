"""A veth whose workload end the runtime moves (libnetwork's remote driver).

Wrapper mode and CNI create the workload end directly inside the workload's
namespace (:mod:`.link`).  A Docker network driver may not: libnetwork's
``NetworkDriver.Join`` answers with the *name* of an interface in the
engine's own namespace (``InterfaceName.SrcName``), and Docker moves it into
the container's sandbox, renames it (``DstPrefix`` + an index) and sets its
addresses, MAC and routes itself.  So a hand-off is:

1. a veth created in the switch's namespace (where ovs-vswitchd runs), its
   peer created directly in the runtime's namespace (the one this process
   runs in, or ``runtime_netns``) named ``peer`` with the endpoint's MAC, left
   down (Docker brings it up inside the sandbox) — one RTM_NEWLINK, as in
   :mod:`.link`;
2. TX checksum offload off on both ends for the userspace datapath (a device's
   features survive the move into the sandbox);
3. the host end up.

and, later, once the logical port is known, the host end on the integration
bridge with ``external_ids:iface-id`` (:class:`HandoffPorts`).  Those
Interfaces carry ``ovn-hub:docker-driver=<hub id>`` and *not*
``ovn-hub:owner``: the wrapper-mode and CNI reconcilers adopt or remove every
Interface with the owner tag, and these are not theirs.

:class:`FakeHandoff` keeps the same contract in dicts, for unit tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any, Protocol

from .bridge import OvsBridge
from .link import NetlinkLinks, PlumbError, tx_csum_off

__all__ = ["DRIVER_OWNER", "FakeHandoff", "Handoff", "HandoffLinks", "HandoffPorts"]

#: external_ids key of the Interfaces a Docker network driver plugged (value: the hub id).
DRIVER_OWNER = "ovn-hub:docker-driver"


class Handoff(Protocol):
    """What the Docker network driver needs from links and the bridge."""

    @property
    def netdev(self) -> bool:
        """The bridge uses the userspace datapath (TX checksum offload goes off); known after connect."""
        ...

    async def create(self, dev: str, peer: str, mac: str) -> None:
        """The veth ``dev`` (switch side) / ``peer`` (runtime side, MAC ``mac``); replaces a stale one."""
        ...

    async def exists(self, dev: str) -> bool: ...

    async def destroy(self, dev: str) -> None:
        """Remove the veth (both ends, wherever the peer is now); absent is fine."""
        ...

    async def bind(self, dev: str, ids: dict[str, str]) -> None:
        """Put ``dev`` on the bridge with ``ids`` as its external_ids (or set them if it is there)."""
        ...

    async def unbind(self, dev: str) -> None:
        """Take ``dev`` off the bridge; absent is fine."""
        ...

    async def bound(self, owner: str) -> dict[str, dict[str, str]]:
        """Interface name → external_ids of the bridge's Interfaces tagged ``DRIVER_OWNER=<owner>``."""
        ...


class HandoffLinks(NetlinkLinks):
    """The netlink half: veths whose peer stays in the runtime's namespace."""

    def __init__(self, switch_netns: str = "", runtime_netns: str = "") -> None:
        super().__init__(switch_netns)
        #: path of the namespace Docker runs in; "" = this process' own
        self.runtime_netns = runtime_netns

    async def create(self, dev: str, peer: str, mac: str, *, tx_offload_off: bool) -> None:
        await asyncio.to_thread(self._create, dev, peer, mac, tx_offload_off)

    def _create(self, dev: str, peer: str, mac: str, tx_offload_off: bool) -> None:
        from pyroute2 import NetlinkError

        path = self.runtime_netns or "/proc/self/ns/net"  # the process' namespace, not a worker thread's
        with self._switch() as (ipr, switch_sock):
            self._delete_in(ipr, dev)  # a stale one (the peer goes with it, wherever it is)
            with self._open(path if self.runtime_netns else None) as (rt, rt_sock):
                self._delete_in(rt, peer)  # a stale peer left in the runtime's namespace
                fd = os.open(path, os.O_RDONLY)
                try:
                    ipr.link("add", ifname=dev, kind="veth", peer={"ifname": peer, "address": mac, "net_ns_fd": fd})
                except NetlinkError as exc:
                    raise PlumbError(f"veth {dev} with {peer} in {path}: {exc}") from None
                finally:
                    os.close(fd)
                try:
                    if tx_offload_off:
                        tx_csum_off(rt_sock, peer)
                        tx_csum_off(switch_sock, dev)
                    ipr.link("set", index=ipr.link_lookup(ifname=dev)[0], state="up")
                except (NetlinkError, OSError, IndexError) as exc:
                    self._delete_in(ipr, dev)
                    raise PlumbError(f"{dev} ({peer}): {exc}") from None
                except BaseException:
                    self._delete_in(ipr, dev)
                    raise


class HandoffPorts:
    """The OVS half, on an :class:`OvsBridge` the node already connected."""

    def __init__(self, bridge: OvsBridge) -> None:
        self.bridge = bridge

    @property
    def _api(self) -> Any:
        api = self.bridge._api
        if api is None:
            raise PlumbError("the Open_vSwitch database is not connected")
        return api

    async def bind(self, dev: str, ids: dict[str, str]) -> None:
        await asyncio.to_thread(self._bind, dev, ids)

    def _bind(self, dev: str, ids: dict[str, str]) -> None:
        api = self._api
        rows = api.db_find_rows("Interface", ("name", "=", dev)).execute(check_error=True)
        with api.transaction(check_error=True) as txn:
            if not rows:
                txn.add(api.add_port(self.bridge.bridge, dev))
            else:  # keep the other keys (ovs-vswitchd's, ovn-controller's), replace ours
                old = dict(rows[0].external_ids)
                stale = [k for k in old if k not in ids and (k.startswith("ovn-hub:") or k == "iface-id")]
                if stale:
                    txn.add(api.db_remove("Interface", dev, "external_ids", *stale))
            txn.add(api.db_set("Interface", dev, ("external_ids", ids)))

    async def unbind(self, dev: str) -> None:
        await self.bridge.delete(dev)

    async def bound(self, owner: str) -> dict[str, dict[str, str]]:
        return await asyncio.to_thread(self._bound, owner)

    def _bound(self, owner: str) -> dict[str, dict[str, str]]:
        rows = self._api.db_list_rows("Interface").execute(check_error=True)
        return {row.name: dict(row.external_ids) for row in rows if row.external_ids.get(DRIVER_OWNER) == owner}


class OvsHandoff:
    """:class:`Handoff` over netlink and ovsdbapp."""

    def __init__(self, links: HandoffLinks, ports: HandoffPorts) -> None:
        self.links = links
        self.ports = ports

    @property
    def netdev(self) -> bool:
        return self.ports.bridge.netdev

    async def create(self, dev: str, peer: str, mac: str) -> None:
        await self.links.create(dev, peer, mac, tx_offload_off=self.netdev)

    async def exists(self, dev: str) -> bool:
        return await self.links.exists(dev)

    async def destroy(self, dev: str) -> None:
        await self.links.delete(dev)

    async def bind(self, dev: str, ids: dict[str, str]) -> None:
        await self.ports.bind(dev, ids)

    async def unbind(self, dev: str) -> None:
        await self.ports.unbind(dev)

    async def bound(self, owner: str) -> dict[str, dict[str, str]]:
        return await self.ports.bound(owner)


class FakeHandoff:
    """Links and bridge in dicts: ``links[dev]`` = (peer, mac), ``ifaces[dev]`` = external_ids.

    ``fail(op, dev)`` makes the next ``op`` ("create", "bind") of ``dev`` raise;
    ``calls`` records every mutating operation, in order."""

    def __init__(self, *, netdev: bool = True) -> None:
        self.netdev = netdev
        self.links: dict[str, tuple[str, str]] = {}
        self.ifaces: dict[str, dict[str, str]] = {}
        self.calls: list[tuple[str, str]] = []
        self._fail: dict[tuple[str, str], BaseException] = {}

    def fail(self, op: str, dev: str, exc: BaseException | None = None) -> None:
        self._fail[(op, dev)] = exc or PlumbError(f"{op} {dev}: injected failure")

    def _check(self, op: str, dev: str) -> None:
        self.calls.append((op, dev))
        exc = self._fail.pop((op, dev), None)
        if exc is not None:
            raise exc

    async def create(self, dev: str, peer: str, mac: str) -> None:
        await asyncio.sleep(0)
        self._check("create", dev)
        self.links[dev] = (peer, mac)

    async def exists(self, dev: str) -> bool:
        await asyncio.sleep(0)
        return dev in self.links

    async def destroy(self, dev: str) -> None:
        await asyncio.sleep(0)
        self.calls.append(("destroy", dev))
        self.links.pop(dev, None)

    async def bind(self, dev: str, ids: dict[str, str]) -> None:
        await asyncio.sleep(0)
        self._check("bind", dev)
        self.ifaces[dev] = dict(ids)

    async def unbind(self, dev: str) -> None:
        await asyncio.sleep(0)
        self.calls.append(("unbind", dev))
        with contextlib.suppress(KeyError):
            del self.ifaces[dev]

    async def bound(self, owner: str) -> dict[str, dict[str, str]]:
        await asyncio.sleep(0)
        return {d: dict(ids) for d, ids in self.ifaces.items() if ids.get(DRIVER_OWNER) == owner}
