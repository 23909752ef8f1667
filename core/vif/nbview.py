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
  the default route from its ``external_ids:ovn-hub:gateway``.

:meth:`NbView.apply` takes the ``update2`` notifications and returns the uids
whose answer may have changed; the caller marks them dirty.
"""

from __future__ import annotations

import ipaddress
from typing import Any, NamedTuple

from core.names import GATEWAY, NETWORK, OWNER, SOURCE, UID
from core.ovsdb import omap, py_map, py_set

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
                    "columns": ["name", "addresses", "dynamic_addresses", "port_security", "external_ids"],
                    "where": [owner, here],
                }
            ],
            "Logical_Switch": [{"columns": ["name", "other_config", "external_ids"], "where": [owner]}],
        }

    def clear(self) -> None:
        """Forget everything (a new session's initial rows follow)."""
        self.ports.clear()
        self._port_uuid.clear()
        self.switches.clear()
        self._switch_uuid.clear()
        self._switch_rows.clear()

    def apply(self, updates: dict[str, Any]) -> set[str]:
        """Apply one ``update2`` notification; return the uids it may have changed."""
        dirty: set[str] = set()
        for uuid, change in updates.get("Logical_Switch", {}).items():
            old = self._switch_uuid.pop(uuid, None)
            if old is not None:
                self.switches.pop(old, None)
            if "delete" in change:
                self._switch_rows.pop(uuid, None)
                continue
            full = self._switch_rows.setdefault(uuid, {"other_config": {}, "external_ids": {}})
            if "modify" in change:
                for col in ("other_config", "external_ids"):
                    if col in change["modify"]:
                        full[col] = _map_diff(full[col], py_map(change["modify"][col]))
            else:
                row = change.get("initial") or change.get("insert") or {}
                for col in ("other_config", "external_ids"):
                    full[col] = py_map(row.get(col, ["map", []]))
            ids, other = full["external_ids"], full["other_config"]
            key = (ids.get(SOURCE, ""), ids.get(UID, ""))
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
                mod = change["modify"]
                if "addresses" in mod:  # a set: the diff toggles elements
                    row["addresses"] = _toggle(row["addresses"], py_set(mod["addresses"]))
                if "port_security" in mod:  # a set: update2 sends the elements to toggle
                    row["port_security"] = _toggle(row["port_security"], py_set(mod["port_security"]))
                if "dynamic_addresses" in mod:  # at most one value: update2 sends the new value
                    row["dynamic_addresses"] = py_set(mod["dynamic_addresses"])
                dirty.add(pkey[0])
                continue
            row = change.get("initial") or change.get("insert")
            if row is None:
                continue
            ids = py_map(row.get("external_ids", ["map", []]))
            key = (ids.get(UID, ""), ids.get(NETWORK, ""))
            self.ports[key] = {
                "uuid": uuid,
                "name": row.get("name", ""),
                "source": ids.get(SOURCE, ""),
                "addresses": py_set(row.get("addresses", ["set", []])),
                "dynamic_addresses": py_set(row.get("dynamic_addresses", ["set", []])),
                "port_security": py_set(row.get("port_security", ["set", []])),
            }
            self._port_uuid[uuid] = key
            dirty.add(key[0])
        return dirty

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
            dyn = [d for d in row["dynamic_addresses"] if d]
            if not dyn or dyn[0] not in row["port_security"]:
                return None  # not allocated yet, or the hub has not locked the port to it yet
            text = dyn[0]
        mac, *ips = text.split()
        subnet, gateway = self.switches.get((row["source"], network), ("", ""))
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


def _map_diff(current: dict[str, str], diff: dict[str, str]) -> dict[str, str]:
    """Apply an update2 map diff: a pair equal to the current one is removed,
    any other pair is set."""
    out = dict(current)
    for k, v in diff.items():
        if out.get(k) == v:
            del out[k]
        else:
            out[k] = v
    return out


def _toggle(current: tuple[str, ...] | list[str], diff: tuple[Any, ...]) -> tuple[str, ...]:
    """Apply an update2 set diff: listed elements are toggled."""
    out = list(current)
    for v in diff:
        if v in out:
            out.remove(v)
        else:
            out.append(v)
    return tuple(out)
