"""Read-only NB view of the logical ports requesting this chassis.

A conditional monitor on the hub's ports whose ``options:requested-chassis``
is this chassis (and the hub's switches), so a node sees only its own.  From
it, per (endpoint uid, network): the port name, its MAC and ``ip/prefix``
list, and the network's gateway — everything a workload interface is
configured with:

* the address: ``addresses`` ("MAC IP…"), or northd's ``dynamic_addresses``
  when the hub asked OVN to allocate ("dynamic"), once the hub has locked
  ``port_security`` to it;
* the prefix length from the switch's ``other_config:subnet`` (IPv6: OVN's /64),
  the default route from its ``external_ids:ovn-hub:gateway`` (a shared
  network's: switch ``ovn-hub/net/<network>``, whose ports come from any source).

:meth:`NbView.apply` takes the ``update2`` notifications and returns the uids
whose answer may have changed; the caller marks them dirty.
"""

from __future__ import annotations

import ipaddress
from typing import Any, NamedTuple

from core.names import GATEWAY, NETWORK, OWNER, SHARED_PREFIX, SHARED_SOURCE, SOURCE, UID
from core.ovsdb.values import Col, apply_update2, decode_row, omap

PORT_COLUMNS = {"name": Col.SCALAR, "addresses": Col.SET, "dynamic_addresses": Col.OPTIONAL, "port_security": Col.SET,
                "external_ids": Col.MAP}  # fmt: skip
SWITCH_COLUMNS = {"name": Col.SCALAR, "other_config": Col.MAP, "external_ids": Col.MAP}

__all__ = ["NbAddress", "NbView"]


class NbAddress(NamedTuple):
    port: str
    mac: str
    addrs: tuple[str, ...]  # "ip/prefix"
    gateway: str


class NbView:
    """Ports and switches of one hub that request one chassis."""

    def __init__(self) -> None:
        #: (uid, network) → port row; (source, network) → (subnet, gateway)
        self.ports: dict[tuple[str, str], dict[str, Any]] = {}
        self._port_uuid: dict[str, tuple[str, str]] = {}
        self.switches: dict[tuple[str, str], tuple[str, str]] = {}
        self._switch_uuid: dict[str, tuple[str, str]] = {}
        self._switch_rows: dict[str, dict[str, dict[str, str]]] = {}

    @staticmethod
    def monitor_spec(hub_id: str, chassis: str) -> dict[str, Any]:
        """``monitor_cond`` tables for :class:`core.ovsdb.OvsdbClient`."""
        owner = ["external_ids", "includes", omap({OWNER: hub_id})]
        here = ["options", "includes", omap({"requested-chassis": chassis})]
        return {
            "Logical_Switch_Port": [
                {
                    "columns": list(PORT_COLUMNS),
                    "where": [owner, here],
                }
            ],
            "Logical_Switch": [{"columns": list(SWITCH_COLUMNS), "where": [owner]}],
        }

    def clear(self) -> None:
        """Forget everything (a new session's initial rows follow)."""
        self.ports.clear()
        self._port_uuid.clear()
        self.switches.clear()
        self._switch_uuid.clear()
        self._switch_rows.clear()

    def apply(self, updates: dict[str, Any]) -> set[str]:
        """Apply one ``update2`` notification; return the uids it may have changed.
        Rows are folded by core.ovsdb's one update2 applier, by column kind."""
        dirty: set[str] = set()
        for uuid, change in updates.get("Logical_Switch", {}).items():
            old = self._switch_uuid.pop(uuid, None)
            if old is not None:
                self.switches.pop(old, None)
            if "delete" in change:
                self._switch_rows.pop(uuid, None)
                continue
            full = _fold(self._switch_rows, uuid, change, SWITCH_COLUMNS)
            ids, other = full["external_ids"], full["other_config"]
            shared = full.get("name", "").startswith(SHARED_PREFIX)
            key = (SHARED_SOURCE if shared else ids.get(SOURCE, ""), ids.get(UID, ""))
            self.switches[key] = (other.get("subnet", ""), ids.get(GATEWAY, ""))
            self._switch_uuid[uuid] = key
            dirty.update(uid for uid, net in self.ports if net == key[1])
        for uuid, change in updates.get("Logical_Switch_Port", {}).items():
            if "delete" in change:
                gone = self._port_uuid.pop(uuid, None)
                if gone is not None:
                    if self.ports.get(gone, {}).get("uuid") == uuid:
                        del self.ports[gone]
                    dirty.add(gone[0])
                continue
            if "modify" in change:
                pkey = self._port_uuid.get(uuid)
                row = self.ports.get(pkey) if pkey is not None else None
                if pkey is None or row is None or row["uuid"] != uuid:
                    continue
                for col, value in change["modify"].items():
                    kind = PORT_COLUMNS.get(col)
                    if kind is not None:
                        row[col] = apply_update2(kind, row.get(col), value)
                dirty.add(pkey[0])
                continue
            new = change.get("initial") or change.get("insert")
            if new is None:
                continue
            row = decode_row(PORT_COLUMNS, new)
            ids = row["external_ids"]
            key = (ids.get(UID, ""), ids.get(NETWORK, ""))
            row.update(uuid=uuid, name=row.get("name", ""), source=ids.get(SOURCE, ""))
            self.ports[key] = row
            self._port_uuid[uuid] = key
            dirty.add(key[0])
        return dirty

    def switch(self, source: str, network: str) -> tuple[str, str]:
        """(subnet, gateway) of ``source``'s ``network``: its own switch, else the shared one."""
        got = self.switches.get((source, network))
        if got is None:
            got = self.switches.get((SHARED_SOURCE, network))
        return got if got is not None else ("", "")

    def shared(self) -> dict[str, tuple[str, str]]:
        """The hub's shared networks: name → (subnet, gateway) of switch ``ovn-hub/net/<name>``."""
        return {net: v for (src, net), v in self.switches.items() if src == SHARED_SOURCE}

    def address(self, uid: str, network: str) -> NbAddress | None:
        """What NB says the attachment of ``uid`` on ``network`` is, or None if it has no usable address yet."""
        row = self.ports.get((uid, network))
        if row is None:
            return None
        addrs = [a for a in row["addresses"] if a]
        if not addrs:
            return None
        text = addrs[0]
        if "dynamic" in text.split():
            dyn = row["dynamic_addresses"]
            if not dyn or dyn not in row["port_security"]:
                return None  # not allocated yet, or the hub has not locked the port to it yet
            text = dyn
        mac, *ips = text.split()
        subnet, gateway = self.switch(row["source"], network)
        net = ipaddress.ip_network(subnet) if subnet else None
        out = []
        for ip in ips:
            addr = ipaddress.ip_address(ip)
            if addr.version == 6:
                prefix = 64  # OVN's ipv6_prefix is a /64
            else:
                prefix = net.prefixlen if net is not None and net.version == 4 else 32
            out.append(f"{ip}/{prefix}")
        if not out:
            return None  # a MAC-only port (no subnet): nothing to configure a workload with
        return NbAddress(row["name"], mac, tuple(out), gateway)



def _fold(rows: dict[str, dict[str, Any]], uuid: str, change: dict[str, Any], columns: dict[str, Col]) -> dict[str, Any]:
    """One switch row after an update2 change (initial, insert or modify)."""
    if "modify" not in change:
        rows[uuid] = decode_row(columns, change.get("initial") or change.get("insert") or {})
        return rows[uuid]
    full = rows.setdefault(uuid, decode_row(columns, {}))
    for col, value in change["modify"].items():
        kind = columns.get(col)
        if kind is not None:
            full[col] = apply_update2(kind, full.get(col), value)
    return full
