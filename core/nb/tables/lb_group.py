"""Load_Balancer_Group: a router's Services, on every switch of the router and on the router.

``ovn-hub/<hub id>/<router>``: the table has no ``external_ids`` in this NB
schema, so the hub's groups are known by that name prefix.  Its members are the load balancers of every Service on
a network of the router, from any source, so a Docker container reaches a
Kubernetes ClusterIP (ovn-kubernetes' cluster LB group; Octavia's "every
switch of the router").  It is attached to each switch through
``Logical_Switch.load_balancer_group`` (a weakly attached row with several
parents) and held by the router as a member (``Logical_Router.load_balancer_group``):
with the router's distributed gateway port, that serves external VIPs too.
Unique name index: no guard.
"""

from __future__ import annotations

from core.names import owner_prefix
from core.nb.kinds import DesiredRow, Ref, RowKind, register
from core.nb.tables import load_balancer, switch
from core.ovsdb.values import Col

TABLE = "Load_Balancer_Group"
COLUMNS = {"name": Col.SCALAR, "load_balancer": Col.UUIDS}


def group_name(router: str, hub_id: str) -> str:
    return f"{owner_prefix(hub_id)}{router}"


def group_row(router: str, switches: tuple[str, ...], members: list[str], hub_id: str) -> DesiredRow:
    name = group_name(router, hub_id)
    cols = {"name": name}
    return DesiredRow(TABLE, name, "ovn-hub/fabric", cols, parent=switches[0] if switches else "", attach=switches[1:],
                      members=tuple(sorted(set(members))))  # fmt: skip


KIND_ = register(
    RowKind(table=TABLE, columns=COLUMNS, rank=6, parent=Ref(switch.TABLE, "load_balancer_group", strong=False),
            members=Ref(load_balancer.TABLE, "load_balancer"), owner_in_name=True)
)  # fmt: skip
