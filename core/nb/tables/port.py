"""Logical_Switch_Port: one per endpoint, ``<orchestrator>/<cluster>/<network>/<uid>``.

The port path keeps its own, measured code: at 50k ports the full columns
cost ~1.5 KB a row, so the replica keeps a 64-bit digest of the columns the hub
writes (:class:`PortRow`), and the diff is one digest compare.  Everything else
(parents first, the switch's ``ports`` mutations, ownership in every
``where``) is the generic engine's, through ``parent=Ref(Logical_Switch, ports)``.

``addresses`` is "MAC IP…" or ``dynamic`` (OVN's IPAM); once northd
allocated (``dynamic_addresses``), the hub locks the port to that address with
``port_security``.  ``options:requested-chassis`` is the endpoint's node.
"""

from __future__ import annotations

import hashlib
import sys
import zlib
from array import array
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from core.model import Endpoint, Programmed, Source
from core.model.fabric import FABRIC_ORCHESTRATOR
from core.names import KIND, NAME, NAMESPACE, NETWORK, OWNER, SHARD, SHARDS, SOURCE, UID, derived_mac, lsp_name
from core.nb.kinds import PlanOp, Ref, RowKind, View, register
from core.nb.store import Events, KeyedRows, XRow
from core.nb.tables import switch
from core.ovsdb.values import Col, decode_row

TABLE = "Logical_Switch_Port"
COLUMNS = {"name": Col.SCALAR, "type": Col.SCALAR, "addresses": Col.SET, "port_security": Col.SET, "options": Col.MAP,
           "external_ids": Col.MAP, "up": Col.OPTIONAL, "dynamic_addresses": Col.OPTIONAL}  # fmt: skip
FABRIC_PREFIX = FABRIC_ORCHESTRATOR + "/"
#: what a read selects: the monitored columns, the row's identity and version
READ_COLUMNS = [*COLUMNS, "_uuid", "_version"]


def lsp_columns(ep: Endpoint, hub_id: str) -> dict[str, Any]:
    """Desired Logical_Switch_Port columns."""
    if ep.ips:
        mac = ep.mac or derived_mac(ep)
        addresses: tuple[str, ...] = (" ".join((mac, *ep.ips)),)
        port_security: tuple[str, ...] = addresses  # (one tuple: the same value)
    else:
        addresses = (f"{ep.mac} dynamic",) if ep.mac else ("dynamic",)
        port_security = ()
    options = {"requested-chassis": ep.node} if ep.node else {}
    src = str(ep.source)
    name = f"{src}/{ep.network}/{ep.uid}"  # lsp_name(ep)
    return {
        "name": name,
        "type": "",
        "addresses": addresses,
        "port_security": port_security,
        "options": options,
        "external_ids": {
            OWNER: hub_id,
            SOURCE: src,
            KIND: ep.kind,
            UID: ep.uid,
            NAMESPACE: ep.namespace,
            NAME: ep.name,
            NETWORK: ep.network,
            SHARD: _SHARD_TEXT[zlib.crc32(name.encode()) % SHARDS],
        },
    }


_SHARD_TEXT = [str(i) for i in range(SHARDS)]


_digest_enc = msgspec.msgpack.Encoder()
#: external_ids of an endpoint's port, in the order lsp_digest sorts them (checked below)
_EXT_SORTED = ("ovn-hub:kind", "ovn-hub:name", "ovn-hub:namespace", "ovn-hub:network", "ovn-hub:owner",
               "ovn-hub:shard", "ovn-hub:source", "ovn-hub:uid")  # fmt: skip
assert _EXT_SORTED == tuple(sorted((OWNER, SOURCE, KIND, UID, NAMESPACE, NAME, NETWORK, SHARD)))
assert (KIND, NAME, NAMESPACE, NETWORK, OWNER, SHARD, SOURCE, UID) == _EXT_SORTED


def endpoint_digest(ep: Endpoint, hub_id: str) -> int:
    """``lsp_digest(lsp_columns(ep, hub_id))`` without building the columns:
    the same canonical form (sorted sets and maps: one address, the options'
    one key, the external_ids in their sorted order), so the same bytes and
    digest (``tests/unit/nb/test_port_digest.py`` holds them equal), at about
    half the cost.  The diff of a port OVN allocated nothing to compares this."""
    src = str(ep.source)
    name = f"{src}/{ep.network}/{ep.uid}"  # lsp_name(ep)
    if ep.ips:
        addresses = [" ".join((ep.mac or derived_mac(ep), *ep.ips))]
        port_security = addresses
    else:
        addresses = [f"{ep.mac} dynamic" if ep.mac else "dynamic"]
        port_security = []
    return _digest((
        addresses,
        port_security,
        [("requested-chassis", ep.node)] if ep.node else [],
        [(KIND, ep.kind), (NAME, ep.name), (NAMESPACE, ep.namespace), (NETWORK, ep.network), (OWNER, hub_id),
         (SHARD, str(zlib.crc32(name.encode()) % SHARDS)), (SOURCE, src), (UID, ep.uid)],
    ))  # fmt: skip


def lsp_digest(cols: dict[str, Any]) -> int:
    """Order-insensitive digest of the columns the hub writes on a port.
    Stable across processes (the port cache keeps it): 60 bits of BLAKE2b."""
    canon: tuple[object, ...] = (
        sorted(cols.get("addresses", ())),
        sorted(cols.get("port_security", ())),
        sorted(cols.get("options", {}).items()),
        sorted(cols.get("external_ids", {}).items()),
    )
    if cols.get("type"):  # only the fabric's ports have one: every endpoint port's digest is as before
        canon = (*canon, cols["type"])
    return _digest(canon)


def _digest(canon: tuple[object, ...]) -> int:
    # 60 bits: a Python int below 2**60 takes 32 bytes, one of 64 bits 48 (the replica keeps one a port)
    return int.from_bytes(hashlib.blake2b(_digest_enc.encode(canon), digest_size=8).digest(), "little") >> 4


def version_bytes(version: str) -> bytes:
    """A row's ``_version`` (a UUID) as its 16 bytes: 49 bytes of memory a
    port instead of 85 for the text.  Anything else OVSDB might send as itself."""
    if len(version) == 36:
        try:
            return bytes.fromhex(version.replace("-", ""))
        except ValueError:
            pass
    return version.encode()


class WirePort(msgspec.Struct, gc=False, rename={"uuid": "_uuid", "version": "_version"}):
    """A port as a select of READ_COLUMNS returns it (OVSDB's JSON forms), decoded
    one row at a time: no plain dicts on the way to its :class:`PortRow`."""

    uuid: tuple[str, str]
    name: str
    version: tuple[str, str] | None = None
    type: str = ""
    addresses: Any = None
    port_security: Any = None
    options: Any = None
    external_ids: Any = None
    up: Any = None
    dynamic_addresses: Any = None


_wire_decoder = msgspec.json.Decoder(WirePort)


def _wire_set(v: Any) -> list[Any]:
    """An OVSDB set of atoms (a bare atom when it has one) as a sorted list."""
    if isinstance(v, list) and len(v) == 2 and v[0] == "set":
        return sorted(v[1])
    return [] if v is None else [v]


def _wire_map(v: Any) -> list[Any]:
    """An OVSDB map as its sorted [key, value] pairs (msgpack: as sorted(dict.items()))."""
    if isinstance(v, list) and len(v) == 2 and v[0] == "map":
        return sorted(v[1])
    return []


def _wire_one(v: Any) -> Any:
    """A column of at most one value: the value, or None."""
    if isinstance(v, list) and len(v) == 2 and v[0] == "set":
        return v[1][0] if v[1] else None
    return v


def wire_digest(w: WirePort) -> int:
    """:func:`lsp_digest` of a row in OVSDB's JSON forms (equal for equal columns)."""
    canon: tuple[object, ...] = (
        _wire_set(w.addresses), _wire_set(w.port_security), _wire_map(w.options), _wire_map(w.external_ids),
    )  # fmt: skip
    if w.type:
        canon = (*canon, w.type)
    return _digest(canon)


class PortRow(msgspec.Struct, gc=False):
    """A hub-owned port in the replica, kept compact.  ``digest`` is None when
    someone else modified the row: it is then rewritten whole."""

    uuid: str
    source: str
    digest: int | None
    up: bool | None = None
    #: northd's ``dynamic_addresses`` ("MAC IP…") of a port the hub left to OVN's IPAM:
    #: once known, the hub writes it as the port's ``port_security``.
    dyn: str = ""
    #: the row's ``_version`` as last seen (:func:`version_bytes`; empty for a row this process
    #: inserted and NB has not modified since): a reconnect re-reads only rows whose version moved.
    version: bytes = b""


#: Changes of ports not recorded yet (northd fills dynamic_addresses within
#: milliseconds of our commit, before the insert's reply is handled) are kept, bounded.
EARLY_MAX = 100_000


class PortStore(KeyedRows[PortRow]):
    """The port replica: by name, with the uuid map and early modifications."""

    def __init__(self, kind: RowKind) -> None:
        super().__init__(kind)
        self.early: dict[str, list[dict[str, Any]]] = {}
        self._early_full_warned = False
        #: digests of the columns a transaction in flight writes, by port: (the columns, their digest,
        #: the row an insert of them is recorded as, its uuid to come)
        self._prepared: dict[str, tuple[dict[str, Any], int, PortRow | None]] = {}
        #: the desired ports' names (the programmer's), for a read of many rows: each is keyed
        #: by the desired state's own string, and the one it was decoded with is freed at once
        self.desired_names: Callable[[], Iterable[str]] | None = None

    def canonical_names(self) -> dict[str, str] | None:
        """``{name: name}`` of the desired ports (None when there are none yet)."""
        names = self.desired_names() if self.desired_names is not None else ()
        return {n: n for n in names} or None

    def clear(self) -> None:
        super().clear()
        self.early.clear()
        self._prepared.clear()

    def prepare(self, units: Iterable[PlanOp]) -> None:
        """Digest the columns of the ports a transaction writes while NB works on
        it (the writer calls this after sending): recording its reply then
        costs no digest.  Tied to the very column dicts, so a unit planned
        again is digested again."""
        prepared = self._prepared
        prepared.clear()
        intern = sys.intern
        for u in units:
            if u.table == TABLE and u.op != "delete":
                cols = u.columns
                digest = lsp_digest(cols)
                row = PortRow("", intern(cols["external_ids"].get(SOURCE, "")), digest) if u.op == "insert" else None
                prepared[u.name] = (cols, digest, row)

    def unprepare(self) -> None:
        self._prepared.clear()  # (clear, not pops: gives a 50k table back)

    def _digest_of(self, name: str, cols: dict[str, Any]) -> int:
        got = self._prepared.get(name)
        return got[1] if got is not None and got[0] is cols else lsp_digest(cols)

    def source(self, key: str) -> str:
        r = self.rows.get(key)
        return r.source if r is not None else ""

    def row(self, key: str) -> XRow | None:
        return None  # ports are not kept whole

    def install(self, uuid: str, row: dict[str, Any], ev: Events) -> None:
        """A full row (a read or an initial/insert notification)."""
        cols = decode_row(COLUMNS, row)
        name = cols["name"]
        version = row.get("_version")
        self.rows[name] = PortRow(
            uuid, sys.intern(cols["external_ids"].get(SOURCE, "")), lsp_digest(cols), cols["up"],
            cols["dynamic_addresses"] or "", version_bytes(version[1]) if isinstance(version, list) else b"",
        )  # fmt: skip
        self.by_uuid[uuid] = name
        self.early.pop(uuid, None)  # a read returns the row after any racing change
        if cols["up"] is True:
            ev.up(name)

    def install_raw(self, raw: msgspec.Raw, ev: Events, canon: dict[str, str] | None = None) -> None:
        """A full row of a select (READ_COLUMNS) as its raw JSON: :meth:`install`
        without decoding it into plain columns.  ``canon``: name strings to key it by
        (:meth:`canonical_names`: one string a port, not two)."""
        w = _wire_decoder.decode(raw)
        uuid, name = w.uuid[1], w.name
        if canon is not None:
            name = canon.get(name, name)
        source = ""
        if w.external_ids is not None:
            for k, v in _wire_map(w.external_ids):
                if k == SOURCE:
                    source = v
                    break
        up = w.up if isinstance(w.up, bool) else None
        dyn = _wire_one(w.dynamic_addresses)
        prev = self.rows.get(name)
        was_up = prev is not None and prev.uuid == uuid and prev.up is True  # (read twice: one Ready)
        self.rows[name] = PortRow(
            uuid, sys.intern(source), wire_digest(w), up, dyn if isinstance(dyn, str) else "",
            version_bytes(w.version[1]) if w.version is not None else b"",
        )  # fmt: skip
        self.by_uuid[uuid] = name
        self.early.pop(uuid, None)  # a read returns the row after any racing change
        if up is True and not was_up:
            ev.up(name)

    def apply(self, uuid: str, change: dict[str, Any], ev: Events) -> None:
        if "delete" in change:
            self.early.pop(uuid, None)
            name = self.by_uuid.pop(uuid, None)
            if name is not None and name in self.rows and self.rows[name].uuid == uuid:
                del self.rows[name]
                ev.mark_dirty(TABLE, name)
                ev.deleted(self.kind, {})
            return
        row = change.get("initial") or change.get("insert")
        if row is not None:
            self.install(uuid, row, ev)
            return
        diff = change.get("modify")
        name = self.by_uuid.get(uuid)
        if diff is None:
            return
        if name is None:
            if len(self.early) < EARLY_MAX:  # bounded: only our own fresh inserts end up here
                self.early.setdefault(uuid, []).append(diff)
            elif not self._early_full_warned:
                self._early_full_warned = True
                ev.warn(f"{EARLY_MAX} port changes arrived for ports not yet recorded; dropping more (a resync repairs)")
            return
        cur = self.rows[name]
        version = diff.get("_version")
        if isinstance(version, list):
            cur.version = version_bytes(version[1])
        if "dynamic_addresses" in diff:
            # a column of at most one value: update2 carries its new value, not a diff;
            # an allocation that goes away (the switch lost its subnet) keeps the last lock
            new_dyn = diff["dynamic_addresses"] if isinstance(diff["dynamic_addresses"], str) else ""
            if new_dyn and new_dyn != cur.dyn:
                cur.dyn = new_dyn
                ev.mark_dirty(TABLE, name)  # its port_security follows the allocation
                ev.allocated(name)  # policy peers, DNS records and floating IPs hold the port's IPs
        if "up" in diff:
            old_up = cur.up
            cur.up = diff["up"] if isinstance(diff["up"], bool) else None  # ["set", []] when cleared
            if cur.up is True and old_up is not True:
                ev.up(name)
        if set(diff) - {"up", "dynamic_addresses", "_version"}:
            # the row changed under us (maybe our own update's echo): rewrite it whole
            cur.digest = None
            ev.mark_dirty(TABLE, name)

    def record_insert(self, key: str, uuid: str, cols: dict[str, Any], ev: Events) -> None:
        """A port this process inserted: its digest, and the changes that raced ahead of the reply."""
        got = self._prepared.get(key)
        row = got[2] if got is not None and got[0] is cols else None
        if row is not None and not row.uuid:  # (built while NB worked on the transaction)
            row.uuid = uuid
        else:
            row = PortRow(uuid, sys.intern(cols["external_ids"].get(SOURCE, "")), self._digest_of(key, cols))
        self.rows[key] = row
        self.by_uuid[uuid] = key
        for diff in self.early.pop(uuid, ()):
            self.apply(uuid, {"modify": diff}, ev)

    def prepared_rows(self, units: list[PlanOp]) -> list[Any] | None:
        """The rows :meth:`prepare` made for these inserts (None unless it made every one)."""
        prepared = self._prepared
        made = [got[2] if (got := prepared.get(u.name)) is not None and got[0] is u.columns else None for u in units]
        return None if None in made else made

    def record_inserts(self, units: list[PlanOp], names: list[str], uuids: list[str], made: list[Any] | None,
                       ev: Events) -> None:
        """:meth:`record_insert` of many: the rows :meth:`prepare` made get
        their uuid, and go into the indexes at once."""
        if made is None or any(row.uuid for row in made):  # (not all made, or recorded already: one by one)
            for u, uuid in zip(units, uuids, strict=True):
                self.record_insert(u.name, uuid, u.columns, ev)
            return
        for row, uuid in zip(made, uuids, strict=True):
            row.uuid = uuid
        self.rows.update(zip(names, made, strict=True))
        self.by_uuid.update(zip(uuids, names, strict=True))
        early = self.early
        if early:
            for uuid in uuids:
                for diff in early.pop(uuid, ()):
                    self.apply(uuid, {"modify": diff}, ev)

    def committed(self, unit: PlanOp) -> None:
        if unit.op == "update":
            r = self.rows.get(unit.name)
            if r is not None:
                r.digest = self._digest_of(unit.name, unit.columns)  # written whole: equal to desired now


def diff(view: View, name: str) -> PlanOp | None:
    """desired - actual for one port: one digest compare."""
    ep: Endpoint | None = view.desired.ports.get(name)
    store: PortStore = view.replica.stores[TABLE]
    cur = store.rows.get(name)
    if ep is not None:
        if cur is not None and not cur.dyn:  # (nothing of OVN's to keep: the columns are lsp_columns(ep))
            if cur.digest == endpoint_digest(ep, view.hub_id):
                return None
            want = lsp_columns(ep, view.hub_id)
            return PlanOp("update", TABLE, name, {k: v for k, v in want.items() if k != "name"})
        if ep.ips and cur is not None and kept_allocation(ep, cur.dyn):
            # the orchestrator now reports the address OVN allocated (a pod's CNI ADD got it from the
            # dynamic port, then the kubelet wrote it in podIPs): the port stays as it is, with its MAC
            # ("dynamic", or "MAC dynamic" if it was written so)
            ep = msgspec.structs.replace(ep, ips=())
            if ep.mac and cur.digest != _locked_digest(ep, cur.dyn, view.hub_id):
                ep = msgspec.structs.replace(ep, mac=None)
        want = lsp_columns(ep, view.hub_id)
        if not ep.ips and cur is not None and cur.dyn:
            # OVN allocated the address: hold the port to it (no spoofing another's IP or MAC)
            want["port_security"] = (cur.dyn,)
        if cur is None:
            return PlanOp("insert", TABLE, name, want, ref=view.desired.switch_of(ep.source, ep.network))
        if cur.digest == lsp_digest(want):
            return None
        return PlanOp("update", TABLE, name, {k: v for k, v in want.items() if k != "name"})
    row = view.desired.rows[TABLE].get(name)
    if row is not None:  # a port of the fabric (a router's, a localnet port)
        if cur is None:
            return PlanOp("insert", TABLE, name, row.columns, ref=row.parent)
        if cur.digest == lsp_digest(row.columns):
            return None
        return PlanOp("update", TABLE, name, {k: v for k, v in row.columns.items() if k != "name"})
    if cur is not None and view.synced(cur.source):
        return PlanOp("delete", TABLE, name)
    return None


class Ahead:
    """The desired ports' column digests, computed before there is a replica to
    diff them against (``Programmer.digest_ahead``: while NB answers the start's
    reads), each with the endpoint it is of.  Flat arrays, no object per port:
    it lives only until the first diff."""

    __slots__ = ("digests", "eps", "hub_id", "names")

    def __init__(self, ports: Mapping[str, Endpoint], hub_id: str) -> None:
        self.hub_id = hub_id
        self.names = list(ports)
        self.eps = list(ports.values())
        self.digests = array("Q", (endpoint_digest(ep, hub_id) for ep in self.eps))

    def unchanged(self, view: View) -> set[str]:
        """The ports :func:`diff` would leave alone, found without it: the
        desired endpoint is the very one digested ahead, its row has no
        allocation of OVN's (the columns are then ``lsp_columns``), and the
        row's digest is the one computed.  (diff computes that same digest.)"""
        rows: dict[str, PortRow] = view.replica.stores[TABLE].rows
        want: dict[str, Endpoint] = view.desired.ports
        out: set[str] = set()
        if view.hub_id != self.hub_id:
            return out
        for name, ep, digest in zip(self.names, self.eps, self.digests, strict=True):
            cur = rows.get(name)
            if cur is not None and cur.digest == digest and not cur.dyn and want.get(name) is ep:
                out.add(name)
        return out


def kept_allocation(ep: Endpoint, dyn: str) -> bool:
    """Whether ``ep``'s addresses are exactly OVN's allocation ``dyn`` ("MAC IP…") of its
    dynamic port (and its MAC, if it names one, too): then the port is left dynamic, so
    an orchestrator catching up with what the workload was plugged with writes nothing."""
    if not dyn:
        return False
    mac, *ips = dyn.split()
    return bool(ips) and sorted(ips) == sorted(ep.ips) and ep.mac in (None, "", mac)


def _locked_digest(ep: Endpoint, dyn: str, hub_id: str) -> int:
    want = lsp_columns(ep, hub_id)
    want["port_security"] = (dyn,)
    return lsp_digest(want)


def desired_keys(view: View) -> set[str]:
    return view.desired.ports.keys() | view.desired.rows[TABLE].keys()  # type: ignore[no-any-return]


def programmed(view: View, u: PlanOp) -> Programmed | None:
    if u.name in view.desired.rows[TABLE] or u.name.startswith(FABRIC_PREFIX):
        return None  # the fabric's: no endpoint to report
    ep = view.desired.ports.get(u.name)
    if ep is not None:
        return Programmed(source=ep.source, kind="endpoint", key=ep.key, row=u.name, deleted=u.op == "delete")
    src, _, rest = u.name.partition("/")
    cluster, _, key = rest.partition("/")
    return Programmed(source=Source(src, cluster), kind="endpoint", key=key, row=u.name, deleted=True)


def with_dynamic_ips(ep: Endpoint, store: PortStore) -> Endpoint:
    """``ep`` with the IPs OVN allocated to its port, when it has none of its
    own: peers of a policy are matched by address (Address_Sets)."""
    if ep.ips:
        return ep
    cur = store.rows.get(lsp_name(ep))
    if cur is None or not cur.dyn:
        return ep
    return msgspec.structs.replace(ep, ips=tuple(cur.dyn.split()[1:]))


KIND_ = register(
    RowKind(table=TABLE, columns=COLUMNS, rank=1, parent=Ref(switch.TABLE, "ports"), diff=diff, programmed=programmed,
            initial=False, extra_columns=("_version",), store=PortStore, desired_keys=desired_keys,
            reports_up=True)
)  # fmt: skip
