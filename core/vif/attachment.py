"""One workload interface to plug, and how it is recorded on the OVS Interface.

The record *is* the actual state: a restarted node reads the Interfaces on the
bridge carrying ``ovn-hub:owner=<hub id>`` and knows what it plugged, with
which address, into which network namespace.  The keys predate this module
(they were written by the Docker-only node), so plumbing made before the move
is adopted as is; ``ovn-hub:netns`` and ``ovn-hub:ifname`` are new, and an
Interface without them is completed by the orchestrator glue
(:attr:`core.vif.reconciler.Reconciler.complete_ids`) or defaults to
``eth0``.

``extra`` carries the orchestrator's own ``ovn-hub:*`` tags (Docker: the pid),
written and compared like the rest, so a change there re-plugs too.
"""

from __future__ import annotations

import hashlib

import msgspec

from core.names import OWNER

__all__ = ["I_ADDR", "I_GATEWAY", "I_IFNAME", "I_KEY", "I_NETNS", "I_NETWORK", "I_VIA", "Attachment", "veth_name"]

#: external_ids of the Interfaces this package owns (besides ``iface-id`` and the owner tag).
I_KEY = "ovn-hub:container"  # the attachment's key: a Docker container id, a CNI container id
I_NETWORK = "ovn-hub:network"
I_NETNS = "ovn-hub:netns"
I_IFNAME = "ovn-hub:ifname"
I_ADDR = "ovn-hub:addresses"
I_GATEWAY = "ovn-hub:gateway"
#: Which glue plugged it ("cni"; none: Docker wrapper mode): each reconciler adopts only its own
#: (an ``extra`` tag, so Interfaces without it, from before, stay wrapper mode's).
I_VIA = "ovn-hub:via"
_CORE = frozenset({OWNER, I_KEY, I_NETWORK, I_NETNS, I_IFNAME, I_ADDR, I_GATEWAY})
_PREFIX = "ovn-hub:"


def veth_name(key: str, network: str) -> str:
    """Host end of an attachment's veth: 14 characters, stable per (key, network)."""
    return "ovh" + hashlib.sha1(f"{key}/{network}".encode()).hexdigest()[:11]


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    """One interface of one workload, plugged or to be plugged."""

    key: str  # orchestrator-stable: the reconciler's unit of work
    network: str
    netns_path: str  # the workload's network namespace (CNI_NETNS; /proc/<pid>/ns/net)
    ifname: str = "eth0"  # its name inside the namespace (CNI_IFNAME)
    port: str  # logical switch port name (iface-id)
    mac: str
    addrs: tuple[str, ...]  # "ip/prefix"
    gateway: str = ""
    extra: tuple[tuple[str, str], ...] = ()  # the orchestrator's own ovn-hub:* tags, sorted

    @property
    def dev(self) -> str:
        """The host end (the OVS Interface name)."""
        return veth_name(self.key, self.network)

    @property
    def peer(self) -> str:
        """The container end's name until it is renamed to ``ifname`` inside the namespace."""
        return "ovp" + self.dev[3:]

    def ids(self, owner: str) -> dict[str, str]:
        """external_ids of the Interface."""
        return {
            "iface-id": self.port,
            OWNER: owner,
            I_KEY: self.key,
            I_NETWORK: self.network,
            I_NETNS: self.netns_path,
            I_IFNAME: self.ifname,
            I_ADDR: " ".join((self.mac, *self.addrs)),
            I_GATEWAY: self.gateway,
            **dict(self.extra),
        }

    @classmethod
    def from_ids(cls, ids: dict[str, str]) -> Attachment | None:
        """The attachment an Interface records, or None if its tags are incomplete."""
        try:
            mac, *addrs = ids.get(I_ADDR, "").split()
            netns = ids[I_NETNS]
            if not netns:
                return None
            return cls(
                key=ids[I_KEY],
                network=ids[I_NETWORK],
                netns_path=netns,
                ifname=ids.get(I_IFNAME) or "eth0",
                port=ids["iface-id"],
                mac=mac,
                addrs=tuple(addrs),
                gateway=ids.get(I_GATEWAY, ""),
                extra=tuple(sorted((k, v) for k, v in ids.items() if k.startswith(_PREFIX) and k not in _CORE)),
            )
        except (KeyError, ValueError):
            return None
