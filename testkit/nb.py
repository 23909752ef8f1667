"""Read OVN Northbound rows the way an operator does (``ovn-nbctl --format=json``)."""

from __future__ import annotations

import json
from typing import Any

from hub.sandbox import OvnSandbox


def nb_rows(sb: OvnSandbox, table: str) -> list[dict[str, Any]]:
    """All rows of a table as ovn-nbctl's JSON (columns → plain values)."""
    out = json.loads(sb.nbctl("--format=json", "list", table))
    heads = out["headings"]
    return [dict(zip(heads, row, strict=True)) for row in out["data"]]


def ovs_map(value: Any) -> dict[str, str]:
    return {k: v for k, v in value[1]} if isinstance(value, list) and value[0] == "map" else {}


def ovs_set(value: Any) -> list[Any]:
    if isinstance(value, list) and value and value[0] == "set":
        return list(value[1])
    return [value]
