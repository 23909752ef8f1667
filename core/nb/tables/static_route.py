"""Logical_Router_Static_Route: a router's default route out of its external network.

Lives in ``Logical_Router.static_routes`` (strong); keyed by ``ovn-hub:key`` = ``<router>/<prefix>``.
"""

from __future__ import annotations

from core.names import ROW_KEY, fabric_ids
from core.nb.kinds import DesiredRow, Ref, RowKind, by_external_id, register
from core.ovsdb.values import Col

TABLE = "Logical_Router_Static_Route"
COLUMNS = {"ip_prefix": Col.SCALAR, "nexthop": Col.SCALAR, "output_port": Col.OPTIONAL, "external_ids": Col.MAP}


def route_row(router: str, prefix: str, nexthop: str, output_port: str, hub_id: str) -> DesiredRow:
    key = f"{router}/{prefix}"
    cols = {"ip_prefix": prefix, "nexthop": nexthop, "output_port": output_port,
            "external_ids": {**fabric_ids("route", key, hub_id), ROW_KEY: key}}  # fmt: skip
    return DesiredRow(TABLE, key, "ovn-hub/fabric", cols, parent=router)


KIND_ = register(
    RowKind(table=TABLE, columns=COLUMNS, rank=11, key=by_external_id(ROW_KEY), parent=Ref("Logical_Router", "static_routes"))
)
