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
independently; core evaluates it against its desired state (core/policy.py).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal

import msgspec

MODEL_VERSION = "1.0"
SCHEMA_ID = "https://ovn-hub.invalid/schema/model/v1"

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_NET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_CTRL = re.compile(r"[\x00-\x1f\x7f]")
_PROTOCOLS = frozenset({"tcp", "udp", "sctp"})
# Kubernetes label key: optional DNS-subdomain prefix + "/" + name (63, alnum at the ends).
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
# IANA_SVC_NAME, what Kubernetes allows for a named container port.
_PORT_NAME = re.compile(r"^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?!-))*(?<!-)$")
_OPERATORS = frozenset({"In", "NotIn", "Exists", "DoesNotExist"})
MAX_AFFINITY_TIMEOUT = 86400  # Kubernetes' limit for sessionAffinityConfig.clientIP.timeoutSeconds


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
        validate_source(src)
        return src


class PortSpec(msgspec.Struct, frozen=True):
    """A port an endpoint serves (container port, not a host mapping)."""

    port: int
    protocol: str = "tcp"
    name: str = ""


class Network(msgspec.Struct, frozen=True, tag="network", kw_only=True):
    """An L2 domain.  Maps to one Logical_Switch per (source, name)."""

    source: Source
    name: str
    subnets: tuple[str, ...] = ()
    gateway: str | None = None
    labels: dict[str, str] = {}

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
    A rule allows the traffic matching (any peer) AND (any port)."""

    peers: tuple[Peer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()


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


# ---------------------------------------------------------------- validation
def _text(field: str, value: str, maxlen: int = 253) -> None:
    if not value:
        raise Invalid("empty-field", f"{field} is empty")
    if len(value) > maxlen:
        raise Invalid("too-long", f"{field} is longer than {maxlen} characters")
    if _CTRL.search(value):
        raise Invalid("bad-characters", f"{field} {value!r} contains control characters")


def validate_source(src: Source) -> None:
    for field, value in (("orchestrator", src.orchestrator), ("cluster", src.cluster)):
        if not _DNS_LABEL.match(value):
            raise Invalid("bad-source", f"source {field} {value!r} is not a DNS label ([a-z0-9-], 1-63)")


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4 = re.compile(rf"^{_OCTET}(\.{_OCTET}){{3}}$")
_SPACE = re.compile(r"\s")


def validate_ip(text: str, field: str = "ip") -> str:
    """Return the canonical form of a host IP (v4 or v6), or raise."""
    if isinstance(text, str) and _V4.match(text):  # fast path: canonical dotted quad (no leading zeros)
        first = int(text[: text.index(".")])
        if 224 <= first <= 239 or text == "0.0.0.0":
            raise Invalid("bad-ip", f"{field} {text!r} is not a unicast host address")
        return text
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise Invalid("bad-ip", f"{field} {text!r} is not an IPv4 or IPv6 address") from None
    if ip.is_multicast or ip.is_unspecified:
        raise Invalid("bad-ip", f"{field} {text!r} is not a unicast host address")
    return str(ip)


def validate_mac(text: str) -> str:
    mac = text.lower()
    if not _MAC.match(mac):
        raise Invalid("bad-mac", f"mac {text!r} is not six colon-separated hex octets")
    if int(mac[:2], 16) & 1:
        raise Invalid("bad-mac", f"mac {text!r} is a multicast address")
    return mac


def _labels(labels: dict[str, str]) -> None:
    for k, v in labels.items():
        _text("label key", k, 317)
        if len(v) > 4096 or _CTRL.search(v):
            raise Invalid("bad-label", f"label {k!r} has a value that is too long or has control characters")


def _uid(uid: str) -> None:
    _text("uid", uid)
    if _SPACE.search(uid):
        raise Invalid("bad-uid", f"uid {uid!r} contains whitespace")


def _network_name(name: str) -> None:
    if not _NET_NAME.match(name):
        raise Invalid("bad-network", f"network name {name!r} must match {_NET_NAME.pattern}")


def parse_hostport(text: str, field: str = "backend") -> tuple[str, int]:
    """``"ip:port"`` / ``"[v6]:port"`` → (canonical ip, port), or raise."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep or ":" not in host:
            raise Invalid("bad-backend", f"{field} {text!r} is not [IPv6]:port")
    else:
        host, sep, port = text.rpartition(":")
        if not sep or ":" in host:
            raise Invalid("bad-backend", f"{field} {text!r} is not ip:port (IPv6 as [ip]:port)")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise Invalid("bad-backend", f"{field} {text!r} has no valid IP address") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise Invalid("bad-backend", f"{field} {text!r} has no port in 1-65535")
    if ip.is_multicast or ip.is_unspecified:
        raise Invalid("bad-backend", f"{field} {text!r} is not a unicast address")
    if str(ip) != host:
        raise Invalid("bad-backend", f"{field} {text!r} is not in canonical form ({ip})")
    return host, int(port)


def _port(port: int, what: str) -> None:
    if not 0 < port < 65536:
        raise Invalid("bad-port", f"{what} {port} is out of range 1-65535")


def _protocol(protocol: str, what: str) -> None:
    if protocol not in _PROTOCOLS:
        raise Invalid("bad-protocol", f"{what} protocol {protocol!r} is not tcp, udp or sctp")


def validate_label_key(key: str) -> None:
    prefix, slash, name = key.rpartition("/")
    if not _LABEL_NAME.match(name) or (slash and (len(prefix) > 253 or not _LABEL_PREFIX.match(prefix))):
        raise Invalid("bad-selector", f"label key {key!r} is not a valid Kubernetes label key")


def validate_selector(sel: Selector, what: str = "selector") -> None:
    for k in sel.match_labels:
        validate_label_key(k)
    for e in sel.match_expressions:
        validate_label_key(e.key)
        if e.operator not in _OPERATORS:
            raise Invalid("bad-selector", f"{what} operator {e.operator!r} is not In, NotIn, Exists or DoesNotExist")
        if e.operator in ("In", "NotIn") and not e.values:
            raise Invalid("bad-selector", f"{what} operator {e.operator} on {e.key!r} needs values")
        if e.operator in ("Exists", "DoesNotExist") and e.values:
            raise Invalid("bad-selector", f"{what} operator {e.operator} on {e.key!r} takes no values")


def _cidr(text: str, what: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise Invalid("bad-cidr", f"{what} {text!r} is not a CIDR") from None


def _validate_peer(peer: Peer, where: str) -> None:
    selectors = peer.pod_selector is not None or peer.namespace_selector is not None
    if peer.cidr is None:
        if not selectors:
            raise Invalid("bad-peer", f"{where}: a peer needs a pod selector, a namespace selector or a cidr")
        if peer.except_cidrs:
            raise Invalid("bad-peer", f"{where}: except_cidrs without a cidr")
    else:
        if selectors:
            raise Invalid("bad-peer", f"{where}: an ipBlock peer cannot also have selectors")
        net = _cidr(peer.cidr, f"{where} cidr")
        for ex in peer.except_cidrs:
            sub = _cidr(ex, f"{where} except")
            if sub.version != net.version or not sub.subnet_of(net):  # type: ignore[arg-type]
                raise Invalid("bad-cidr", f"{where}: except {ex!r} is not inside {peer.cidr!r}")
    if peer.pod_selector is not None:
        validate_selector(peer.pod_selector, f"{where} pod selector")
    if peer.namespace_selector is not None:
        validate_selector(peer.namespace_selector, f"{where} namespace selector")


def _validate_policy_port(pp: PolicyPort, where: str) -> None:
    _protocol(pp.protocol, where)
    if isinstance(pp.port, str):
        if not _PORT_NAME.match(pp.port):
            raise Invalid("bad-port", f"{where}: named port {pp.port!r} is not an IANA service name")
        if pp.end_port is not None:
            raise Invalid("bad-port", f"{where}: end_port needs a numeric port")
    elif isinstance(pp.port, int):
        _port(pp.port, f"{where} port")
        if pp.end_port is not None:
            _port(pp.end_port, f"{where} end_port")
            if pp.end_port < pp.port:
                raise Invalid("bad-port", f"{where}: end_port {pp.end_port} is below port {pp.port}")
    elif pp.end_port is not None:
        raise Invalid("bad-port", f"{where}: end_port without port")


def _validate_service(svc: Service) -> None:
    _uid(svc.uid)
    _text("namespace", svc.namespace)
    _text("name", svc.name)
    _network_name(svc.network)
    if not 0 <= svc.affinity_timeout <= MAX_AFFINITY_TIMEOUT:
        raise Invalid("bad-affinity", f"affinity_timeout {svc.affinity_timeout} is out of range 0-{MAX_AFFINITY_TIMEOUT}")
    seen: set[tuple[str, str, int]] = set()
    for rule in svc.rules:
        _protocol(rule.protocol, "rule")
        vip = validate_ip(rule.vip, "vip")
        if vip != rule.vip:
            raise Invalid("bad-ip", f"vip {rule.vip!r} is not in canonical form ({vip!r})")
        _port(rule.port, "vip port")
        if (rule.protocol, vip, rule.port) in seen:
            raise Invalid("bad-rule", f"{rule.protocol} {vip} port {rule.port} appears twice")
        seen.add((rule.protocol, vip, rule.port))
        family = ipaddress.ip_address(vip).version
        for b in rule.backends:
            host, _ = parse_hostport(b)
            if ipaddress.ip_address(host).version != family:
                raise Invalid("bad-backend", f"backend {b!r} is not of the family of vip {vip}")
        if len(set(rule.backends)) != len(rule.backends):
            raise Invalid("bad-backend", f"{rule.protocol} {vip}:{rule.port} has duplicate backends")


def _validate_policy(pol: Policy) -> None:
    _uid(pol.uid)
    _text("namespace", pol.namespace)
    _text("name", pol.name)
    validate_selector(pol.pod_selector, "pod selector")
    for direction, rules in (("ingress", pol.ingress), ("egress", pol.egress)):
        for i, rule in enumerate(rules or ()):
            for j, peer in enumerate(rule.peers):
                _validate_peer(peer, f"{direction}[{i}] peer[{j}]")
            for j, pp in enumerate(rule.ports):
                _validate_policy_port(pp, f"{direction}[{i}] port[{j}]")


def validate(obj: Object) -> None:
    """Raise :class:`Invalid` with a reason if ``obj`` cannot be programmed."""
    validate_source(obj.source)
    if isinstance(obj, Namespace):
        _text("namespace", obj.name)
        _labels(obj.labels)
        return
    if isinstance(obj, Service):
        _validate_service(obj)
        return
    if isinstance(obj, Policy):
        _validate_policy(obj)
        return
    if isinstance(obj, Network):
        if not _NET_NAME.match(obj.name):
            raise Invalid("bad-network", f"network name {obj.name!r} must match {_NET_NAME.pattern}")
        for s in obj.subnets:
            try:
                ipaddress.ip_network(s, strict=False)
            except ValueError:
                raise Invalid("bad-subnet", f"subnet {s!r} of network {obj.name!r} is not a CIDR") from None
        if obj.gateway is not None:
            validate_ip(obj.gateway, "gateway")
        _labels(obj.labels)
        return
    _uid(obj.uid)
    _text("namespace", obj.namespace)
    _text("name", obj.name)
    _text("kind", obj.kind, 63)
    _network_name(obj.network)
    if obj.node:
        _text("node", obj.node)
    for ip in obj.ips:
        if validate_ip(ip) != ip:
            raise Invalid("bad-ip", f"ip {ip!r} is not in canonical form ({validate_ip(ip)!r})")
    if len(set(obj.ips)) != len(obj.ips):
        raise Invalid("bad-ip", "ips has duplicates")
    if obj.mac is not None and validate_mac(obj.mac) != obj.mac:
        raise Invalid("bad-mac", f"mac {obj.mac!r} is not lower case")
    for p in obj.ports:
        if not 0 < p.port < 65536:
            raise Invalid("bad-port", f"port {p.port} is out of range 1-65535")
        if p.protocol not in _PROTOCOLS:
            raise Invalid("bad-port", f"port protocol {p.protocol!r} is not tcp, udp or sctp")
    _labels(obj.labels)


# ---------------------------------------------------------------- codecs
_event_decoder = msgspec.json.Decoder(Event)
_object_decoder = msgspec.json.Decoder(Object)
_encoder = msgspec.json.Encoder(order="deterministic")


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def _decode(decoder: msgspec.json.Decoder[Any], data: bytes | str, what: str) -> Any:
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise Invalid("schema", f"{what} does not match the model: {exc}") from None
    except msgspec.DecodeError as exc:
        raise Invalid("bad-json", f"not JSON: {exc}") from None


def decode_event(data: bytes | str) -> Event:
    """Decode one canonical event (JSON); raise :class:`Invalid` on bad input."""
    ev: Event = _decode(_event_decoder, data, "event")
    return ev


def decode_object(data: bytes | str) -> Object:
    """Decode one canonical object (JSON); raise :class:`Invalid` on bad input."""
    obj: Object = _decode(_object_decoder, data, "object")
    return obj


def json_schema() -> dict[str, Any]:
    """The versioned JSON Schema of canonical events (and so of every object)."""
    schema = msgspec.json.schema(Event)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "OVN Hub canonical event"
    schema["version"] = MODEL_VERSION
    return schema
