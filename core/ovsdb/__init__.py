"""OVSDB (RFC 7047): the asyncio JSON-RPC client and the value helpers."""

from core.ovsdb.client import (
    ConnectionLost,
    NoUsableServer,
    OvsdbClient,
    OvsdbError,
    Refused,
    UpdateHandler,
    wait_for_server,
)
from core.ovsdb.transport import Tls, TlsError, needs_tls, parse_remote, split_remotes
from core.ovsdb.values import Col, apply_update2, decode, decode_row, omap, py_map, py_set, to_ovsdb

__all__ = [
    "Col",
    "ConnectionLost",
    "NoUsableServer",
    "OvsdbClient",
    "OvsdbError",
    "Refused",
    "Tls",
    "TlsError",
    "UpdateHandler",
    "apply_update2",
    "decode",
    "decode_row",
    "needs_tls",
    "omap",
    "parse_remote",
    "py_map",
    "py_set",
    "split_remotes",
    "to_ovsdb",
    "wait_for_server",
]
