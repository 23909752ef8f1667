"""OVSDB (RFC 7047): the asyncio JSON-RPC client and the value helpers."""

from core.ovsdb.client import (
    ConnectionLost,
    OvsdbClient,
    OvsdbError,
    Refused,
    UpdateHandler,
    parse_remote,
    wait_for_server,
)
from core.ovsdb.values import Col, apply_update2, decode, decode_row, omap, py_map, py_set, to_ovsdb

__all__ = [
    "Col",
    "ConnectionLost",
    "OvsdbClient",
    "OvsdbError",
    "Refused",
    "UpdateHandler",
    "apply_update2",
    "decode",
    "decode_row",
    "omap",
    "parse_remote",
    "py_map",
    "py_set",
    "to_ovsdb",
    "wait_for_server",
]
