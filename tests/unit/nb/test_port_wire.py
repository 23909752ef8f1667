"""A port row read raw (one select row at a time, ``install_raw``) lands in the
replica exactly as the same row decoded into plain columns (``install``): same
digest, source, ``up``, allocation and version, whatever shape OVSDB gives each
column (a bare atom for a one-element set, ``["set", []]`` for none)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from core.nb.kinds import KINDS
from core.nb.tables.port import COLUMNS, TABLE, PortStore, lsp_digest
from core.ovsdb.values import decode_row


class _Ev:
    def __init__(self) -> None:
        self.ups: list[str] = []

    def up(self, key: str) -> None:
        self.ups.append(key)

    def mark_dirty(self, table: str, key: str) -> None: ...
    def deleted(self, kind: object, cols: dict[str, Any]) -> None: ...
    def parent_changed(self, table: str, key: str) -> None: ...
    def allocated(self, port: str) -> None: ...
    def warn(self, message: str) -> None: ...


IDS = ["map", [["ovn-hub:kind", "container"], ["ovn-hub:owner", "hub1"], ["ovn-hub:source", "docker/local"], ["ovn-hub:uid", "u1"]]]
ROWS: list[dict[str, Any]] = [
    {"name": "docker/local/n/u1", "type": "", "addresses": "02:00:00:00:00:01 10.0.0.1",
     "port_security": "02:00:00:00:00:01 10.0.0.1", "options": ["map", [["requested-chassis", "node1"]]],
     "external_ids": IDS, "up": True, "dynamic_addresses": ["set", []]},
    {"name": "docker/local/n/u2", "type": "", "addresses": ["set", ["dynamic", "router"]], "port_security": ["set", []],
     "options": ["map", []], "external_ids": IDS, "up": ["set", []], "dynamic_addresses": "02:00:00:00:00:02 10.0.0.2"},
    {"name": "ovn-hub/fabric/x", "type": "router", "addresses": ["set", ["router", "02:00:00:00:00:03"]],
     "port_security": ["set", []], "options": ["map", [["router-port", "lrp-x"], ["nat-addresses", "router"]]],
     "external_ids": ["map", [["ovn-hub:owner", "hub1"]]], "up": False, "dynamic_addresses": ["set", []]},
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r["name"] for r in ROWS])
def test_a_raw_row_installs_as_the_decoded_row(row: dict[str, Any]) -> None:
    full = {"_uuid": ["uuid", "11111111-2222-3333-4444-555555555555"], "_version": ["uuid", "v-1"], **row}
    plain, raw = PortStore(KINDS[TABLE]), PortStore(KINDS[TABLE])
    ev_plain, ev_raw = _Ev(), _Ev()
    plain.install(full["_uuid"][1], dict(full), ev_plain)
    raw.install_raw(msgspec.Raw(msgspec.json.encode(full)), ev_raw)
    assert raw.rows == plain.rows and raw.by_uuid == plain.by_uuid and ev_raw.ups == ev_plain.ups
    assert raw.rows[row["name"]].digest == lsp_digest(decode_row(COLUMNS, row))


def test_versions_are_kept_as_their_16_bytes_and_digests_in_60_bits() -> None:
    from core.nb.tables.port import version_bytes

    v = "0e9c5c1e-7f1a-4c2b-9d3e-5a6b7c8d9e0f"
    assert version_bytes(v) == bytes.fromhex(v.replace("-", "")) and len(version_bytes(v)) == 16
    assert version_bytes(v) != version_bytes(v.replace("0f", "10"))
    assert version_bytes("v-1") == b"v-1"  # anything else as itself
    assert all(0 <= lsp_digest(decode_row(COLUMNS, r)) < 1 << 60 for r in ROWS)


def test_a_read_of_many_rows_is_keyed_by_the_desired_names() -> None:
    from core.nb.portcache import CANON_MIN_ROWS, install_rows

    names = [f"docker/node1/blue/u{i}" for i in range(CANON_MIN_ROWS)]
    desired = {"".join(n): None for n in names}  # equal strings, other objects (as the desired state's are)
    store, ev = PortStore(KINDS[TABLE]), _Ev()
    store.desired_names = desired.keys
    row = ROWS[0]
    rows = [msgspec.Raw(msgspec.json.encode({**row, "name": n, "_uuid": ["uuid", f"u-{i}"], "_version": ["uuid", "v"]}))
            for i, n in enumerate(names)]  # fmt: skip
    again = list(rows)  # (a hook empties the rows it installs)
    assert install_rows(store, ev, [{"rows": rows}]) == len(names)
    own = {id(k) for k in desired}
    assert set(store.rows) == set(names) and all(id(k) in own for k in store.rows)
    assert all(id(store.by_uuid[f"u-{i}"]) in own for i in range(len(names)))
    plain = PortStore(KINDS[TABLE])  # and the rows are the ones a read without names installs
    install_rows(plain, _Ev(), [{"rows": again}])
    assert plain.rows == store.rows and plain.by_uuid == store.by_uuid
