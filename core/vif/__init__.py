"""Node plumbing that knows no orchestrator: attachments found by netns path.

An :class:`~core.vif.attachment.Attachment` is one interface of one workload:
the network namespace it lives in (a path, what a CNI plugin is handed as
``CNI_NETNS``; Docker's ``/proc/<pid>/ns/net``), the interface name inside it
(``CNI_IFNAME``; ``eth0``), the logical port it binds to and the addresses NB
gave that port.  The rooms:

* :mod:`.attachment` — the attachment and its ``external_ids`` on the OVS Interface;
* :mod:`.nbview`     — read-only NB view of the ports requesting this chassis;
* :mod:`.link`       — veth, netns move, addresses, route, TX offload (and a fake);
* :mod:`.bridge`     — OVS Interfaces on the integration bridge (and a fake);
* :mod:`.reconciler` — desired vs plugged: N at a time, retries, adopt, orphans.

Orchestrator glue (``adapters/docker/node.py`` today, a CNI plugin later) says
which keys exist and what each should look like; everything else is here.
"""

from .attachment import Attachment, veth_name
from .bridge import Bridge, FakeBridge, OvsBridge
from .link import FakeLinks, Links, NetlinkLinks, PlumbError
from .nbview import NbAddress, NbView
from .reconciler import Reconciler

__all__ = [
    "Attachment",
    "Bridge",
    "FakeBridge",
    "FakeLinks",
    "Links",
    "NbAddress",
    "NbView",
    "NetlinkLinks",
    "OvsBridge",
    "PlumbError",
    "Reconciler",
    "veth_name",
]
