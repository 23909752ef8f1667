"""One file per NB table the hub writes; importing this package registers them all.

Each file holds the table's pure row functions and one ``register(RowKind(...))``
(``core/nb/kinds.py``).  Adding a table = adding a file here and its import below.
"""

from core.nb.tables import admin_policy, load_balancer, policy, port, switch

__all__ = ["ACL", "AS", "LB", "LS", "LSP", "PG", "admin_policy", "load_balancer", "policy", "port", "switch"]

LS = switch.TABLE
LSP = port.TABLE
LB = load_balancer.TABLE
PG = policy.PG
AS = policy.AS
ACL = policy.ACL
