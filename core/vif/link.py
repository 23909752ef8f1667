"""Link operations: a veth whose peer goes into the workload's namespace.

For one :class:`~core.vif.attachment.Attachment`: create the veth in the
switch's namespace (where ovs-vswitchd runs) with the peer already in the
workload's namespace (``ip link … netns <path>``: iproute2 opens a name with a
``/`` as a path), then inside that namespace (``nsenter --net=<path>``, one
``ip -batch``) rename the peer to ``ifname``, set the MAC, the addresses,
bring it up and add the default route; turn TX checksum offload off on both
ends when the bridge uses the userspace datapath (``ethtool -K … tx off``:
netdev does not fill in checksums the kernel left to the NIC); bring the host
end up.  A failure after the veth exists removes it again.

Measured against pyroute2 (netlink in-process) in ``bench dataplane
--plug-only``: see the README of ``bench/`` and issue 10's note.

:class:`FakeLinks` keeps the same contract in a dict, for the reconciler's
unit tests (no process, no namespace).
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Any, Protocol

from .attachment import Attachment

__all__ = ["FakeLinks", "IpRoute2Links", "Links", "PlumbError"]


class PlumbError(Exception):
    """A link or bridge operation failed (retried later)."""


class Links(Protocol):
    """What the reconciler needs from the link layer."""

    #: False when TX offload cannot be turned off (ethtool missing): the caller warns on netdev.
    offload_available: bool

    async def exists(self, dev: str) -> bool:
        """Whether the host end ``dev`` exists."""
        ...

    async def add(self, a: Attachment, *, tx_offload_off: bool) -> None:
        """Create and configure the veth of ``a``; on failure nothing of it is left."""
        ...

    async def delete(self, dev: str) -> None:
        """Remove the host end ``dev`` (its peer goes with it); absent is fine."""
        ...


def _tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


class IpRoute2Links:
    """iproute2, nsenter and ethtool subprocesses."""

    def __init__(self, switch_netns: str = "", timeout: float = 30.0) -> None:
        self.switch_netns = switch_netns  # ``ip netns`` name ovs-vswitchd runs in; "" = this one
        self.timeout = timeout
        self._ip = _tool("ip") or "ip"
        self._nsenter = shutil.which("nsenter") or "nsenter"
        self._ethtool = _tool("ethtool")
        self.offload_available = self._ethtool is not None

    async def _run(self, *argv: str, stdin: bytes | None = None, check: bool = True) -> str:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(self.timeout):
                out, err = await proc.communicate(stdin)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise PlumbError(f"{' '.join(argv)}: timed out") from None
        except asyncio.CancelledError:
            if proc.returncode is None:
                proc.kill()
            raise
        if check and proc.returncode != 0:
            raise PlumbError(f"{' '.join(argv)}: {err.decode(errors='replace').strip()}")
        return out.decode(errors="replace")

    def _sw(self, *argv: str) -> list[str]:
        """iproute2 in the switch's namespace."""
        ns = ("-n", self.switch_netns) if self.switch_netns else ()
        return [self._ip, *ns, *argv]

    def _sw_exec(self, *argv: str) -> list[str]:
        """Any command in the switch's namespace."""
        if self.switch_netns:
            return [self._ip, "netns", "exec", self.switch_netns, *argv]
        return list(argv)

    async def exists(self, dev: str) -> bool:
        out = await self._run(*self._sw("-o", "link", "show", "dev", dev), check=False)
        return dev in out

    async def delete(self, dev: str) -> None:
        await self._run(*self._sw("link", "del", "dev", dev), check=False)

    async def add(self, a: Attachment, *, tx_offload_off: bool) -> None:
        await self.veth(a)
        try:
            await self.configure(a)
            if tx_offload_off:
                await self.offload_off(a)
            await self._run(*self._sw("link", "set", "dev", a.dev, "up"))
        except BaseException:
            await self.delete(a.dev)
            raise

    async def veth(self, a: Attachment) -> None:
        """The pair: host end in the switch's namespace, peer moved into the workload's."""
        await self._run(*self._sw("link", "add", a.dev, "type", "veth", "peer", "name", a.peer, "netns", a.netns_path))

    async def configure(self, a: Attachment) -> None:
        """Inside the workload's namespace: name, MAC, addresses, up, default route."""
        batch = [f"link set dev {a.peer} name {a.ifname}", f"link set dev {a.ifname} address {a.mac}"]
        batch += [f"addr add {addr} dev {a.ifname}" for addr in a.addrs]
        batch.append(f"link set dev {a.ifname} up")
        if a.gateway:
            batch.append(f"route add default via {a.gateway} dev {a.ifname}")
        await self._run(
            self._nsenter, f"--net={a.netns_path}", self._ip, "-batch", "-", stdin=("\n".join(batch) + "\n").encode()
        )

    async def offload_off(self, a: Attachment) -> None:
        """TX checksum offload off on both ends (best effort, as ethtool's absence is)."""
        if self._ethtool is None:
            return
        await self._run(self._nsenter, f"--net={a.netns_path}", self._ethtool, "-K", a.ifname, "tx", "off", check=False)
        await self._run(*self._sw_exec(self._ethtool, "-K", a.dev, "tx", "off"), check=False)


class FakeLinks:
    """The link layer in a dict: ``links[dev]`` is what ``add`` configured.

    ``fail(dev, exc)`` makes the next ``add`` of ``dev`` raise ``exc`` (after
    the veth would exist, so the cleanup is exercised); ``vanish(dev)`` is a
    namespace going away under a plugged attachment.  ``calls`` records every
    mutating operation, in order."""

    def __init__(self, *, offload_available: bool = True) -> None:
        self.offload_available = offload_available
        self.links: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self._fail: dict[str, list[BaseException]] = {}
        self.gate: asyncio.Event | None = None  # when set, add waits for it (concurrency tests)
        self.active = 0
        self.max_active = 0

    def fail(self, dev: str, exc: BaseException, times: int = 1) -> None:
        self._fail.setdefault(dev, []).extend([exc] * times)

    def vanish(self, dev: str) -> None:
        self.links.pop(dev, None)

    async def exists(self, dev: str) -> bool:
        await asyncio.sleep(0)
        return dev in self.links

    async def delete(self, dev: str) -> None:
        await asyncio.sleep(0)
        self.calls.append(("delete", dev))
        self.links.pop(dev, None)

    async def add(self, a: Attachment, *, tx_offload_off: bool) -> None:
        self.calls.append(("add", a.dev))
        if a.dev in self.links:
            raise PlumbError(f"{a.dev}: File exists")
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            self.links[a.dev] = {"netns": a.netns_path, "ifname": a.ifname, "mac": a.mac, "addrs": a.addrs,
                                 "gateway": a.gateway, "tx_offload_off": tx_offload_off}  # fmt: skip
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0)
            errors = self._fail.get(a.dev)
            if errors:
                self.links.pop(a.dev, None)
                raise errors.pop(0)
        finally:
            self.active -= 1
