"""HA_Chassis_Group: the gateway chassis of an external network (``ovn-hub/<external>``).

A root table with a unique name index; its ``HA_Chassis`` rows hang from
``ha_chassis`` (strong).  The distributed gateway port holds it; ovn-controller
runs BFD between the chassis and the highest-priority live one is active.
"""

from __future__ import annotations

from core.names import fabric_ids
from core.nb.kinds import DesiredRow, RowKind, register
from core.ovsdb.values import Col

TABLE = "HA_Chassis_Group"
COLUMNS = {"name": Col.SCALAR, "ha_chassis": Col.UUIDS, "external_ids": Col.MAP}


def group_name(external: str) -> str:
    return f"ovn-hub/{external}"


def group_row(external: str, hub_id: str) -> DesiredRow:
    name = group_name(external)
    return DesiredRow(TABLE, name, "ovn-hub/fabric", {"name": name, "external_ids": fabric_ids("ha-chassis-group", name, hub_id)})


KIND_ = register(RowKind(table=TABLE, columns=COLUMNS, rank=7))
