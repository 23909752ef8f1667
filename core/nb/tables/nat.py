"""NAT: a router's egress SNAT (``snat``: a routed subnet → the external address)
and floating IPs (``dnat_and_snat``: one endpoint ↔ one external address).

Lives in ``Logical_Router.nat`` (strong).  No name column: keyed by
``ovn-hub:key`` = ``<router>/snat/<cidr>`` or ``<router>/fip/<port>``.  On a
distributed router NAT needs exactly one distributed gateway port, which
``[external.*]`` provides (one per router, checked at config load).
"""

from __future__ import annotations

from core.names import ROW_KEY, fabric_ids
from core.nb.kinds import DesiredRow, Ref, RowKind, by_external_id, register
from core.ovsdb.values import Col

TABLE = "NAT"
COLUMNS = {"type": Col.SCALAR, "logical_ip": Col.SCALAR, "external_ip": Col.SCALAR, "options": Col.MAP,
           "external_ids": Col.MAP}  # fmt: skip


def nat_row(router: str, key: str, type_: str, logical_ip: str, external_ip: str, hub_id: str, **ids: str) -> DesiredRow:
    full = f"{router}/{key}"
    cols = {"type": type_, "logical_ip": logical_ip, "external_ip": external_ip, "options": {},
            "external_ids": {**fabric_ids("nat", full, hub_id), ROW_KEY: full, **ids}}  # fmt: skip
    return DesiredRow(TABLE, full, "ovn-hub/fabric", cols, parent=router)


KIND_ = register(RowKind(table=TABLE, columns=COLUMNS, rank=11, key=by_external_id(ROW_KEY), parent=Ref("Logical_Router", "nat")))
