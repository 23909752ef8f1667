"""HA_Chassis: one gateway chassis of a group, with its priority (first listed = highest).

No name column: keyed by ``ovn-hub:key`` = ``<group>/<chassis>``.
"""

from __future__ import annotations

from core.names import ROW_KEY, fabric_ids
from core.nb.kinds import DesiredRow, Ref, RowKind, by_external_id, register
from core.nb.tables import ha_chassis_group
from core.ovsdb.values import Col

TABLE = "HA_Chassis"
COLUMNS = {"chassis_name": Col.SCALAR, "priority": Col.SCALAR, "external_ids": Col.MAP}


def chassis_rows(group: str, chassis: tuple[str, ...], hub_id: str) -> list[DesiredRow]:
    rows = []
    for i, name in enumerate(chassis):
        key = f"{group}/{name}"
        ids = {**fabric_ids("ha-chassis", key, hub_id), ROW_KEY: key}
        cols = {"chassis_name": name, "priority": 10 * (len(chassis) - i), "external_ids": ids}
        rows.append(DesiredRow(TABLE, key, "ovn-hub/fabric", cols, parent=group))
    return rows


KIND_ = register(
    RowKind(table=TABLE, columns=COLUMNS, rank=8, key=by_external_id(ROW_KEY), parent=Ref(ha_chassis_group.TABLE, "ha_chassis"))
)
