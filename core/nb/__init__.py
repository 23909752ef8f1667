"""The OVN programmer: desired state, NB replica, plan, transactions, and the writer loop.

Everything ``hub/`` may import from here is below.  The rooms, in layers (an
import-linter contract keeps them so)::

    programmer   the writer loop: batches, bisection, quarantine, reconnects, status
    txn          row operations -> one transaction; its reply -> the replica
    plan         desired - actual, with the rules of kinds.py applied once for every kind
    desired | replica   what the sources say / what NB holds (never writes)
    portcache    the port replica's loads: restart cache, in-memory revalidation, slices
    tables       one file per NB table: its rows, and its RowKind
    store        replica stores (whole rows; the port store is in tables/port.py)
    kinds        RowKind, Ref, the registry and the five rules
"""

from core.nb import tables as _tables  # noqa: F401 - registers every table's kind
from core.nb.kinds import DesiredRow, PlanOp
from core.nb.programmer import Programmer
from core.nb.status import FabricStatus, NbRow, NbStatus, PortStatus, RouterPort

__all__ = ["DesiredRow", "FabricStatus", "NbRow", "NbStatus", "PlanOp", "PortStatus", "Programmer", "RouterPort"]
