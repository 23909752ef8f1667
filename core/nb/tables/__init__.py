"""One file per NB table the hub writes; importing this package registers them all.

Each file holds the table's pure row functions and one ``register(RowKind(...))``
(``core/nb/kinds.py``).  Adding a table = adding a file here and its import below.
``fabric`` is not a table: the index of routed networks the fabric's tables read.
"""

from core.nb.tables import (
    admin_policy,
    dns,
    ha_chassis,
    ha_chassis_group,
    lb_group,
    load_balancer,
    nat,
    policy,
    port,
    router,
    router_port,
    static_route,
    switch,
)

__all__ = ["ACL", "AS", "LB", "LS", "LSP", "PG", "admin_policy", "dns", "ha_chassis", "ha_chassis_group", "lb_group",
           "load_balancer", "nat", "policy", "port", "router", "router_port", "static_route", "switch"]  # fmt: skip

LS = switch.TABLE
LSP = port.TABLE
LB = load_balancer.TABLE
PG = policy.PG
AS = policy.AS
ACL = policy.ACL
