"""Logical_Router_Port: a router's leg on a network (``ovn-hub/rtos/<source>/<network>``)
or on an external network (``ovn-hub/rtoe/<external>``, the distributed gateway port).

Lives in ``Logical_Router.ports`` (strong).  ``networks`` are ``gateway/prefixlen``
for each of the network's subnets, so the router answers at the gateway
address the orchestrator handed its workloads.  A gateway port holds its
``HA_Chassis_Group`` as a member (the group is inserted first, rank 7 < 10).
The name has a unique index: no guard.
"""

from __future__ import annotations

from typing import Any

from core.names import fabric_ids, stable_mac
from core.nb.kinds import DesiredRow, Ref, RowKind, register
from core.nb.tables import ha_chassis_group
from core.ovsdb.values import Col

TABLE = "Logical_Router_Port"
COLUMNS = {"name": Col.SCALAR, "mac": Col.SCALAR, "networks": Col.SET, "ha_chassis_group": Col.UUIDS,
           "options": Col.MAP, "external_ids": Col.MAP}  # fmt: skip


def lrp_name_for(switch: str) -> str:
    return f"ovn-hub/rtos/{switch}"


def lrp_name_external(external: str) -> str:
    return f"ovn-hub/rtoe/{external}"


def lrp_row(name: str, router: str, cidrs: tuple[str, ...], hub_id: str, kind: str, group: str = "", **ids: str) -> DesiredRow:
    cols: dict[str, Any] = {"name": name, "mac": stable_mac(name), "networks": tuple(sorted(cidrs)), "options": {},
                            "external_ids": {**fabric_ids(kind, name, hub_id), **ids}}  # fmt: skip
    return DesiredRow(TABLE, name, "ovn-hub/fabric", cols, parent=router, members=(group,) if group else ())


KIND_ = register(
    RowKind(table=TABLE, columns=COLUMNS, rank=10, parent=Ref("Logical_Router", "ports"),
            members=Ref(ha_chassis_group.TABLE, "ha_chassis_group"))
)  # fmt: skip
