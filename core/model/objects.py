"""The canonical model every adapter speaks and the OVN programmer consumes.

Why msgspec frozen Structs: the hub holds tens of thousands of these, compares
them on every event (no-op filtering is an equality check) and encodes them for
the bus and the admin API.  Structs are compact, fast to compare and encode, and
their JSON Schema comes for free (``hubctl schema``).

Validation is explicit (:func:`validate`) rather than in ``__post_init__`` so
that a decoder can produce an object, and the caller decides what to do with a
rejected one: it carries a :class:`Invalid` with a one-line reason.

Keys: a Network is keyed by ``name`` within its source; an Endpoint by
``network/uid`` within its source (one Endpoint per attachment: a container on
two networks is two Endpoints with the same ``uid``); a Namespace by ``name``;
a Service and a Policy by ``uid``.

Services and policies are *resolved* by the adapter: a Service carries concrete
``vip:port -> backend ip:port`` rules (EndpointSlices, named target ports,
NodePorts and externalIPs already expanded), so core never needs to know what a
Kubernetes Service is.  A Policy keeps Kubernetes NetworkPolicy v1 semantics
(selectors, ipBlocks, named ports) because its meaning depends on *other*
objects (endpoint labels and ports, namespace labels) that change
independently; core evaluates it against its desired state (core/nb/tables/policy.py).
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

#: orchestrator and cluster names (so ``str(source)`` is unambiguous)
DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
MODEL_VERSION = "1.0"
SCHEMA_ID = "https://ovn-hub.invalid/schema/model/v1"


class Invalid(ValueError):
    """A canonical object (or raw payload) was rejected; ``reason`` is a short
    machine-friendly tag (used as a metric label), ``str(exc)`` the sentence."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Source(msgspec.Struct, frozen=True):
    """Which orchestrator instance an object came from.  ``orchestrator`` and
    ``cluster`` are DNS labels, so ``str(source)`` ("k8s/prod") is unambiguous."""

    orchestrator: str
    cluster: str

    def __str__(self) -> str:
        return f"{self.orchestrator}/{self.cluster}"

    @classmethod
    def parse(cls, text: str) -> Source:
        orch, sep, cluster = text.partition("/")
        src = cls(orch, cluster)
        if not sep:
            raise Invalid("bad-source", f"source {text!r} is not 'orchestrator/cluster'")
        for field, value in (("orchestrator", src.orchestrator), ("cluster", src.cluster)):
            if not DNS_LABEL.fullmatch(value):
                raise Invalid("bad-source", f"source {field} {value[:70]!r} is not a DNS label ([a-z0-9-], 1-63)")
        return src


class PortSpec(msgspec.Struct, frozen=True):
    """A port an endpoint serves (container port, not a host mapping)."""

    port: int
    protocol: str = "tcp"
    name: str = ""


class Network(msgspec.Struct, frozen=True, tag="network", kw_only=True):
    """An L2 domain.  Maps to one Logical_Switch per (source, name), or, when
    ``shared``, to one hub-wide switch ``ovn-hub/net/<name>`` for every source that
    declares ``name`` shared (one L2 network across Docker engines, say): it lives
    while any of them declares it or has endpoints or services on it.  Two sources
    declaring one shared name with different subnets or gateways: the declaration of
    the lowest source name wins, the other is rejected (``shared-conflict``).
    ``mirror``: this declaration copies the shared network from the hub (a node agent
    created it because NB has it): it never keeps the switch alive by itself and
    yields to every declaration that is not a mirror."""

    source: Source
    name: str
    subnets: tuple[str, ...] = ()
    gateway: str | None = None
    labels: dict[str, str] = {}
    shared: bool = False
    mirror: bool = False

    @property
    def key(self) -> str:
        return self.name


class Endpoint(msgspec.Struct, frozen=True, tag="endpoint", kw_only=True):
    """One attachment of a workload (pod, container, task, app instance) to a
    network.  Maps to one Logical_Switch_Port.  ``ips`` may be empty: OVN then
    allocates (``dynamic``) from the network's subnet."""

    source: Source
    uid: str
    namespace: str
    name: str
    kind: str
    network: str
    node: str = ""
    ips: tuple[str, ...] = ()
    mac: str | None = None
    labels: dict[str, str] = {}
    ports: tuple[PortSpec, ...] = ()
    state: str = "running"

    @property
    def key(self) -> str:
        return f"{self.network}/{self.uid}"


#: The one empty labels dict of endpoints whose names were shared (:func:`share_names`; never modified).
NO_LABELS: dict[str, str] = {}


def share_names(ep: Endpoint, names: dict[str, str]) -> None:
    """One copy of the names endpoints repeat (namespace, kind, network, node,
    state) from ``names`` (filled as it goes), and :data:`NO_LABELS` for empty
    labels: each decoded endpoint brings its own, ~0.4 KB an endpoint.  In
    place (the values are equal), so whoever holds the endpoint shares them
    too.  The static adapter does it as each line is decoded, the desired
    state for every endpoint it takes."""
    setattr_ = msgspec.structs.force_setattr
    get = names.setdefault
    v = ep.namespace
    if (c := get(v, v)) is not v:
        setattr_(ep, "namespace", c)
    v = ep.kind
    if (c := get(v, v)) is not v:
        setattr_(ep, "kind", c)
    v = ep.network
    if (c := get(v, v)) is not v:
        setattr_(ep, "network", c)
    v = ep.node
    if (c := get(v, v)) is not v:
        setattr_(ep, "node", c)
    v = ep.state
    if (c := get(v, v)) is not v:
        setattr_(ep, "state", c)
    if not ep.labels and ep.labels is not NO_LABELS:
        setattr_(ep, "labels", NO_LABELS)  # (an endpoint is immutable: its labels are never changed in place)

#: The label by which an Endpoint says which workload it is, ``<orchestrator>:<id>`` (the
#: orchestrator that scheduled it and its id there: ``mesos:<ContainerID>``).  Two sources
#: that see the same workload (the Docker adapter sees a Mesos Docker-containerizer task as
#: container ``mesos-<ContainerID>``; the CNI source sees what a runtime attached) each say
#: so, and the desired state programs one port for it: the endpoints of the source with the
#: highest :func:`workload_rank` (core/nb/desired.py).
LABEL_WORKLOAD = "ovn-hub.io/workload"
#: Sources that see workloads other orchestrators scheduled, by rank: they yield to any
#: orchestrator adapter (rank 2), CNI to Docker too; the scheduler named by the workload id
#: ranks above every other orchestrator (3).
RUNTIME_RANKS: dict[str, int] = {"cni": 0, "docker": 1}


def workload_of(ep: Endpoint) -> str:
    """The workload ``ep`` declares (``LABEL_WORKLOAD``), or ``""``."""
    return ep.labels.get(LABEL_WORKLOAD, "") if ep.labels else ""


def workload_rank(ep: Endpoint) -> int:
    """How strongly ``ep``'s source claims its workload: 3 the orchestrator named by the
    workload id (it scheduled it), 2 any other orchestrator adapter, 1 Docker, 0 CNI."""
    orch = ep.source.orchestrator
    if orch in RUNTIME_RANKS:
        return RUNTIME_RANKS[orch]
    return 3 if workload_of(ep).partition(":")[0] == orch else 2


class Namespace(msgspec.Struct, frozen=True, tag="namespace", kw_only=True):
    """A tenant and its labels.  Programs nothing by itself: policies'
    ``namespace_selector`` match these labels (a namespace without a Namespace
    object has no labels)."""

    source: Source
    name: str
    labels: dict[str, str] = {}

    @property
    def key(self) -> str:
        return self.name


class LBRule(msgspec.Struct, frozen=True, kw_only=True):
    """One ``vip:port`` of a service and where it goes.  ``backends`` are
    ``"ip:port"`` (``"[v6]:port"`` for IPv6), of the same family as ``vip``;
    empty = no ready backend (the VIP is then left out of the load balancer)."""

    protocol: str = "tcp"
    vip: str
    port: int
    backends: tuple[str, ...] = ()


class Service(msgspec.Struct, frozen=True, tag="service", kw_only=True):
    """A resolved service: VIP rules → backends.  Maps to one Load_Balancer per
    protocol on the Logical_Switch of ``network`` (same source).
    ``affinity_timeout`` > 0 = client-IP session affinity for that many seconds."""

    source: Source
    uid: str
    namespace: str
    name: str
    network: str
    rules: tuple[LBRule, ...] = ()
    affinity_timeout: int = 0

    @property
    def key(self) -> str:
        return self.uid


class Expr(msgspec.Struct, frozen=True, kw_only=True):
    """A label selector requirement (``matchExpressions`` item)."""

    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist
    values: tuple[str, ...] = ()


class Selector(msgspec.Struct, frozen=True, kw_only=True):
    """A Kubernetes label selector; the empty selector matches everything."""

    match_labels: dict[str, str] = {}
    match_expressions: tuple[Expr, ...] = ()


class Peer(msgspec.Struct, frozen=True, kw_only=True):
    """One ``from``/``to`` item.  Exactly as Kubernetes: ``pod_selector`` alone =
    pods of the policy's namespace; ``namespace_selector`` alone = every pod of
    the matching namespaces; both = pods matching ``pod_selector`` *in* matching
    namespaces (AND); ``cidr`` (+ ``except_cidrs``) = an ipBlock, alone."""

    pod_selector: Selector | None = None
    namespace_selector: Selector | None = None
    cidr: str | None = None
    except_cidrs: tuple[str, ...] = ()


class PolicyPort(msgspec.Struct, frozen=True, kw_only=True):
    """``port`` None = every port of ``protocol``; a str = a named container
    port, resolved per destination pod against ``Endpoint.ports`` names;
    ``end_port`` makes ``port..end_port`` a range."""

    protocol: str = "tcp"
    port: int | str | None = None
    end_port: int | None = None


class Rule(msgspec.Struct, frozen=True, kw_only=True):
    """Empty ``peers`` = every source/destination; empty ``ports`` = every port.
    A rule allows the traffic matching (any peer) AND (any port).

    ``log``: the traffic the rule allows is logged too (OVN ACL logging: the
    rule's ACLs get ``log=true``, ``name`` = the policy's name, ``severity=info``;
    ovn-controller writes one line per new connection).  Not a Kubernetes field:
    Cloud Foundry's ASGs (``"log": true``) ask for it.  Decoding JSON without
    it gives false, so payloads written before it existed still decode."""

    peers: tuple[Peer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()
    log: bool = False


class Policy(msgspec.Struct, frozen=True, tag="policy", kw_only=True):
    """A Kubernetes NetworkPolicy (v1).  ``ingress``/``egress`` None = that
    policy type is not in effect; ``()`` = default deny in that direction.  A pod
    selected by any policy with a direction in effect is isolated in that
    direction: only the union of the allowing rules of all such policies passes."""

    source: Source
    uid: str
    namespace: str
    name: str
    pod_selector: Selector = msgspec.field(default_factory=Selector)
    ingress: tuple[Rule, ...] | None = None
    egress: tuple[Rule, ...] | None = None

    @property
    def key(self) -> str:
        return self.uid


Object = Network | Endpoint | Namespace | Service | Policy
ObjectKind = Literal["network", "endpoint", "namespace", "service", "policy"]
OBJECT_KINDS: tuple[ObjectKind, ...] = ("network", "endpoint", "namespace", "service", "policy")
_KIND_OF: dict[type, ObjectKind] = {
    Network: "network",
    Endpoint: "endpoint",
    Namespace: "namespace",
    Service: "service",
    Policy: "policy",
}


def kind_of(obj: Object) -> ObjectKind:
    return _KIND_OF[type(obj)]


# ---------------------------------------------------------------- events
class Snapshot(msgspec.Struct, frozen=True, tag="snapshot", kw_only=True):
    """Everything a source has, after a (re)list.  Objects of the source that are
    not in it are deleted: the snapshot is what licenses garbage collection."""

    source: Source
    objects: tuple[Object, ...]


class Upsert(msgspec.Struct, frozen=True, tag="upsert", kw_only=True):
    obj: Object


class Delete(msgspec.Struct, frozen=True, tag="delete", kw_only=True):
    source: Source
    kind: ObjectKind
    key: str


class Rejected(msgspec.Struct, frozen=True, tag="rejected", kw_only=True):
    """Input that could not become a canonical object, and why."""

    source: Source
    reason: str
    message: str
    ref: str = ""


class Programmed(msgspec.Struct, frozen=True, tag="programmed", kw_only=True):
    """The object's NB rows are committed (or removed, with ``deleted``)."""

    source: Source
    kind: ObjectKind
    key: str
    row: str
    deleted: bool = False


class Ready(msgspec.Struct, frozen=True, tag="ready", kw_only=True):
    """OVN reports the endpoint's port up (ovn-controller bound it)."""

    source: Source
    key: str
    port: str


InputEvent = Snapshot | Upsert | Delete | Rejected
StatusEvent = Programmed | Ready
Event = Snapshot | Upsert | Delete | Rejected | Programmed | Ready
