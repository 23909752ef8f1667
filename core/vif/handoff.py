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
from collections.abc import Sequence
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

    async def bind(self, items: Sequence[tuple[str, dict[str, str], Sequence[str]]]) -> None:
        """In one transaction, for each (dev, ids, stale): put ``dev`` on the bridge (if it is not there)
        with ``ids`` in its external_ids, removing the keys ``stale``."""
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

    async def bind(self, items: Sequence[tuple[str, dict[str, str], Sequence[str]]]) -> None:
        await asyncio.to_thread(self._bind, items)

    def _bind(self, items: Sequence[tuple[str, dict[str, str], Sequence[str]]]) -> None:
        # One transaction for a burst: ovsdbapp waits after each for ovs-vswitchd to apply it (next_cfg),
        # which costs tens of milliseconds a transaction on a busy host.  The other keys of an Interface
        # (ovs-vswitchd's, ovn-controller's) are left alone.
        api = self._api
        with api.transaction(check_error=True) as txn:
            for dev, ids, stale in items:
                txn.add(api.add_port(self.bridge.bridge, dev, may_exist=True))
                if stale:
                    txn.add(api.db_remove("Interface", dev, "external_ids", *stale, if_exists=True))
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

    async def bind(self, items: Sequence[tuple[str, dict[str, str], Sequence[str]]]) -> None:
        await self.ports.bind(items)

    async def unbind(self, dev: str) -> None:
        await self.ports.unbind(dev)

    async def bound(self, owner: str) -> dict[str, dict[str, str]]:
        return await self.ports.bound(owner)


class FakeHandoff:
    """Links and bridge in dicts: ``links[dev]`` = (peer, mac), ``ifaces[dev]`` = external_ids.

    ``fail(op, dev, times=n)`` makes the next n ``op`` ("create", "bind") of ``dev`` raise;
    ``calls`` records every mutating operation, in order."""

    def __init__(self, *, netdev: bool = True) -> None:
        self.netdev = netdev
        self.links: dict[str, tuple[str, str]] = {}
        self.ifaces: dict[str, dict[str, str]] = {}
        self.calls: list[tuple[str, str]] = []
        self.batches: list[list[str]] = []  # the devs of each bind transaction
        self._fail: dict[tuple[str, str], list[BaseException]] = {}

    def fail(self, op: str, dev: str, exc: BaseException | None = None, times: int = 1) -> None:
        self._fail.setdefault((op, dev), []).extend([exc or PlumbError(f"{op} {dev}: injected failure")] * times)

    def _check(self, op: str, dev: str) -> None:
        self.calls.append((op, dev))
        errors = self._fail.get((op, dev))
        if errors:
            raise errors.pop(0)

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

    async def bind(self, items: Sequence[tuple[str, dict[str, str], Sequence[str]]]) -> None:
        await asyncio.sleep(0)
        self.batches.append([dev for dev, _, _ in items])
        for dev, _ids, _stale in items:  # all or nothing, like the transaction
            self._check("bind", dev)
        for dev, ids, stale in items:
            kept = {k: v for k, v in self.ifaces.get(dev, {}).items() if k not in stale}
            self.ifaces[dev] = {**kept, **ids}

    async def unbind(self, dev: str) -> None:
        await asyncio.sleep(0)
        self.calls.append(("unbind", dev))
        with contextlib.suppress(KeyError):
            del self.ifaces[dev]

    async def bound(self, owner: str) -> dict[str, dict[str, str]]:
        await asyncio.sleep(0)
        return {d: dict(ids) for d, ids in self.ifaces.items() if ids.get(DRIVER_OWNER) == owner}
