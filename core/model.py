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
import unicodedata
from typing import Any, Literal

import msgspec

MODEL_VERSION = "1.0"
SCHEMA_ID = "https://ovn-hub.invalid/schema/model/v1"

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
#: A canonical network name (also an adapter option, e.g. the k8s adapter's ``network``).
NETWORK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
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
#: Every string field and collection of the model has a limit; past it the
#: object is rejected (``too-long`` / ``too-many``) with a reason.  README's
#: configuration reference lists these.  They are far above what orchestrators
#: produce and well below what would make one NB row or one log line huge.
LIMITS: dict[str, int] = {
    "text": 253,  # uid, name, namespace, node (a DNS subdomain's length)
    "kind": 63,  # Endpoint.kind, Endpoint.state
    "label_key": 317,  # a 253-character prefix, "/" and a 63-character name
    "label_value": 4096,
    "labels": 256,  # labels of one object; match_labels of one selector
    "ips": 16,  # addresses of one endpoint
    "ports": 1024,  # ports of one endpoint
    "subnets": 16,  # subnets of one network
    "rules": 10000,  # vip:port rules of one service
    "backends": 10000,  # backends of one rule
    "policy_rules": 1000,  # ingress or egress rules of one policy
    "peers": 1000,  # peers of one rule
    "policy_ports": 1000,  # ports of one rule
    "except_cidrs": 256,
    "expressions": 256,  # match_expressions of one selector
    "values": 1024,  # values of one expression
    "object_bytes": 16 << 20,  # one JSON object
    "event_bytes": 256 << 20,  # one JSON event (a remote snapshot)
}
_QUOTE = 200  # at most this many characters of a bad value go into a message
# Categories no identifier may contain: controls, format characters (bidi
# overrides, zero-width joiners and spaces, BOM), surrogates, line separators.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def quote(value: object, limit: int = _QUOTE) -> str:
    """``repr(value)``, cut to about ``limit`` characters (a 1 MB bad value
    must not become a 1 MB log line, metric or status entry)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[:limit]}...{size}"


def bad_characters(value: str) -> bool:
    """True if ``value`` has a control, bidi/zero-width (format), surrogate or
    line-separator character.  ASCII takes one regex; other text is checked
    per character."""
    if value.isascii():
        return _CTRL.search(value) is not None
    return any(unicodedata.category(c) in _BAD_CATEGORIES for c in value)


def _text(field: str, value: str, maxlen: int = LIMITS["text"]) -> None:
    if not value:
        raise Invalid("empty-field", f"{field} is empty")
    if len(value) > maxlen:
        raise Invalid("too-long", f"{field} is longer than {maxlen} characters")
    if bad_characters(value):
        raise Invalid("bad-characters", f"{field} {quote(value)} contains control, bidi or zero-width characters")


def _count(field: str, values: object, limit: str) -> None:
    n = len(values)  # type: ignore[arg-type]
    if n > LIMITS[limit]:
        raise Invalid("too-many", f"{field} has {n} items, more than {LIMITS[limit]}")


def validate_source(src: Source) -> None:
    for field, value in (("orchestrator", src.orchestrator), ("cluster", src.cluster)):
        if not _DNS_LABEL.fullmatch(value):
            raise Invalid("bad-source", f"source {field} {quote(value)} is not a DNS label ([a-z0-9-], 1-63)")


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4 = re.compile(rf"{_OCTET}(\.{_OCTET}){{3}}")  # used with fullmatch: no "$" that matches before a newline
_SPACE = re.compile(r"\s")


def validate_ip(text: str, field: str = "ip") -> str:
    """Return the canonical form of a unicast host IP (v4 or v6), or raise.

    Parsed by :mod:`ipaddress`; refused: surrounding whitespace or any control
    character, IPv6 scope ids (``fe80::1%eth0``: OVN's address columns cannot
    carry them, and ``%`` let text after it reach NB), loopback, multicast,
    unspecified (and 0.0.0.0/8) and the IPv4 broadcast address."""
    if not isinstance(text, str):
        raise Invalid("bad-ip", f"{field} {quote(text)} is not a string")
    if _V4.fullmatch(text):  # fast path: canonical dotted quad (no leading zeros)
        first = int(text[: text.index(".")])
        if 224 <= first <= 239 or first in (0, 127) or text == "255.255.255.255":
            raise Invalid("bad-ip", f"{field} {text!r} is not a unicast host address")
        return text
    if "%" in text:
        raise Invalid("bad-ip", f"{field} {quote(text)} has an IPv6 scope id (not allowed)")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise Invalid("bad-ip", f"{field} {quote(text)} is not an IPv4 or IPv6 address") from None
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback:
        raise Invalid("bad-ip", f"{field} {quote(text)} is not a unicast host address")
    if isinstance(ip, ipaddress.IPv4Address) and (ip.packed[0] == 0 or ip == _BROADCAST):
        raise Invalid("bad-ip", f"{field} {quote(text)} is not a unicast host address")
    return str(ip)


_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def validate_mac(text: str) -> str:
    mac = text.lower()
    if not _MAC.fullmatch(mac):
        raise Invalid("bad-mac", f"mac {quote(text)} is not six colon-separated hex octets")
    if int(mac[:2], 16) & 1:
        raise Invalid("bad-mac", f"mac {text!r} is a multicast address")
    return mac


def _labels(labels: dict[str, str]) -> None:
    _count("labels", labels, "labels")
    for k, v in labels.items():
        _text("label key", k, LIMITS["label_key"])
        if len(v) > LIMITS["label_value"]:
            raise Invalid("too-long", f"label {quote(k)} has a value longer than {LIMITS['label_value']} characters")
        if bad_characters(v):
            raise Invalid("bad-label", f"label {quote(k)} has a value with control, bidi or zero-width characters")


def _uid(uid: str) -> None:
    _text("uid", uid)
    if _SPACE.search(uid):
        raise Invalid("bad-uid", f"uid {quote(uid)} contains whitespace")


def _network_name(name: str) -> None:
    if not NETWORK_NAME.fullmatch(name):
        raise Invalid("bad-network", f"network name {quote(name)} must match {NETWORK_NAME.pattern}")


def validate_subnet(text: str, what: str = "subnet") -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A CIDR as OVN's ``other_config:subnet`` takes it: no scope id, no whitespace."""
    if not isinstance(text, str) or "%" in text or bad_characters(text) or text != text.strip():
        raise Invalid("bad-subnet", f"{what} {quote(text)} is not a CIDR")
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise Invalid("bad-subnet", f"{what} {quote(text)} is not a CIDR") from None


def parse_hostport(text: str, field: str = "backend") -> tuple[str, int]:
    """``"ip:port"`` / ``"[v6]:port"`` → (canonical ip, port), or raise."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep or ":" not in host:
            raise Invalid("bad-backend", f"{field} {quote(text)} is not [IPv6]:port")
    else:
        host, sep, port = text.rpartition(":")
        if not sep or ":" in host:
            raise Invalid("bad-backend", f"{field} {quote(text)} is not ip:port (IPv6 as [ip]:port)")
    if "%" in host:
        raise Invalid("bad-backend", f"{field} {quote(text)} has an IPv6 scope id (not allowed)")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise Invalid("bad-backend", f"{field} {quote(text)} has no valid IP address") from None
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise Invalid("bad-backend", f"{field} {quote(text)} has no port in 1-65535")
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback:
        raise Invalid("bad-backend", f"{field} {quote(text)} is not a unicast address")
    if str(ip) != host:
        raise Invalid("bad-backend", f"{field} {quote(text)} is not in canonical form ({ip})")
    return host, int(port)


def _port(port: int, what: str) -> None:
    if not 0 < port < 65536:
        raise Invalid("bad-port", f"{what} {port} is out of range 1-65535")


def _protocol(protocol: str, what: str) -> None:
    if protocol not in _PROTOCOLS:
        raise Invalid("bad-protocol", f"{what} protocol {quote(protocol)} is not tcp, udp or sctp")


def validate_label_key(key: str) -> None:
    prefix, slash, name = key.rpartition("/")
    if not _LABEL_NAME.fullmatch(name) or (slash and (len(prefix) > 253 or not _LABEL_PREFIX.fullmatch(prefix))):
        raise Invalid("bad-selector", f"label key {quote(key)} is not a valid Kubernetes label key")


def validate_selector(sel: Selector, what: str = "selector") -> None:
    _count(f"{what} match_labels", sel.match_labels, "labels")
    _count(f"{what} match_expressions", sel.match_expressions, "expressions")
    for k, v in sel.match_labels.items():
        validate_label_key(k)
        _selector_value(what, k, v)
    for e in sel.match_expressions:
        validate_label_key(e.key)
        _count(f"{what} values of {e.key!r}", e.values, "values")
        for v in e.values:
            _selector_value(what, e.key, v)
        if e.operator not in _OPERATORS:
            raise Invalid("bad-selector", f"{what} operator {quote(e.operator)} is not In, NotIn, Exists or DoesNotExist")
        if e.operator in ("In", "NotIn") and not e.values:
            raise Invalid("bad-selector", f"{what} operator {e.operator} on {e.key!r} needs values")
        if e.operator in ("Exists", "DoesNotExist") and e.values:
            raise Invalid("bad-selector", f"{what} operator {e.operator} on {e.key!r} takes no values")


def _selector_value(what: str, key: str, value: str) -> None:
    if len(value) > LIMITS["label_value"] or bad_characters(value):
        raise Invalid("bad-selector", f"{what} value {quote(value)} of {quote(key)} is too long or has bad characters")


def _cidr(text: str, what: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return validate_subnet(text, what)
    except Invalid:
        raise Invalid("bad-cidr", f"{what} {quote(text)} is not a CIDR") from None


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
        _count(f"{where} except_cidrs", peer.except_cidrs, "except_cidrs")
        for ex in peer.except_cidrs:
            sub = _cidr(ex, f"{where} except")
            if sub.version != net.version or not sub.subnet_of(net):  # type: ignore[arg-type]
                raise Invalid("bad-cidr", f"{where}: except {quote(ex)} is not inside {quote(peer.cidr)}")
    if peer.pod_selector is not None:
        validate_selector(peer.pod_selector, f"{where} pod selector")
    if peer.namespace_selector is not None:
        validate_selector(peer.namespace_selector, f"{where} namespace selector")


def _validate_policy_port(pp: PolicyPort, where: str) -> None:
    _protocol(pp.protocol, where)
    if isinstance(pp.port, str):
        if not _PORT_NAME.fullmatch(pp.port):
            raise Invalid("bad-port", f"{where}: named port {quote(pp.port)} is not an IANA service name")
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
    _count("rules", svc.rules, "rules")
    seen: set[tuple[str, str, int]] = set()
    for rule in svc.rules:
        _protocol(rule.protocol, "rule")
        vip = validate_ip(rule.vip, "vip")
        if vip != rule.vip:
            raise Invalid("bad-ip", f"vip {quote(rule.vip)} is not in canonical form ({vip!r})")
        _port(rule.port, "vip port")
        if (rule.protocol, vip, rule.port) in seen:
            raise Invalid("bad-rule", f"{rule.protocol} {vip} port {rule.port} appears twice")
        seen.add((rule.protocol, vip, rule.port))
        family = ipaddress.ip_address(vip).version
        _count(f"{rule.protocol} {vip}:{rule.port} backends", rule.backends, "backends")
        for b in rule.backends:
            host, _ = parse_hostport(b)
            if ipaddress.ip_address(host).version != family:
                raise Invalid("bad-backend", f"backend {quote(b)} is not of the family of vip {vip}")
        if len(set(rule.backends)) != len(rule.backends):
            raise Invalid("bad-backend", f"{rule.protocol} {vip}:{rule.port} has duplicate backends")


def _validate_policy(pol: Policy) -> None:
    _uid(pol.uid)
    _text("namespace", pol.namespace)
    _text("name", pol.name)
    validate_selector(pol.pod_selector, "pod selector")
    for direction, rules in (("ingress", pol.ingress), ("egress", pol.egress)):
        _count(direction, rules or (), "policy_rules")
        for i, rule in enumerate(rules or ()):
            _count(f"{direction}[{i}] peers", rule.peers, "peers")
            _count(f"{direction}[{i}] ports", rule.ports, "policy_ports")
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
        _network_name(obj.name)
        _count("subnets", obj.subnets, "subnets")
        for s in obj.subnets:
            validate_subnet(s, f"subnet of network {obj.name!r}")
        if obj.gateway is not None:
            validate_ip(obj.gateway, "gateway")
        _labels(obj.labels)
        return
    _uid(obj.uid)
    _text("namespace", obj.namespace)
    _text("name", obj.name)
    _text("kind", obj.kind, LIMITS["kind"])
    _text("state", obj.state, LIMITS["kind"])
    _network_name(obj.network)
    if obj.node:
        _text("node", obj.node)
    _count("ips", obj.ips, "ips")
    for ip in obj.ips:
        canon = validate_ip(ip)
        if canon != ip:
            raise Invalid("bad-ip", f"ip {quote(ip)} is not in canonical form ({canon!r})")
    if len(set(obj.ips)) != len(obj.ips):
        raise Invalid("bad-ip", "ips has duplicates")
    if obj.mac is not None and validate_mac(obj.mac) != obj.mac:
        raise Invalid("bad-mac", f"mac {quote(obj.mac)} is not lower case")
    _count("ports", obj.ports, "ports")
    for p in obj.ports:
        if not 0 < p.port < 65536:
            raise Invalid("bad-port", f"port {p.port} is out of range 1-65535")
        if p.protocol not in _PROTOCOLS:
            raise Invalid("bad-port", f"port protocol {quote(p.protocol)} is not tcp, udp or sctp")
        if p.name and not _PORT_NAME.fullmatch(p.name):
            raise Invalid("bad-port", f"port name {quote(p.name)} is not an IANA service name")
    _labels(obj.labels)


# ---------------------------------------------------------------- codecs
_event_decoder = msgspec.json.Decoder(Event)
_object_decoder = msgspec.json.Decoder(Object)
_encoder = msgspec.json.Encoder(order="deterministic")


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def _decode(decoder: msgspec.json.Decoder[Any], data: bytes | str, what: str, limit: int) -> Any:
    """Decode, and turn *every* failure into :class:`Invalid`: a bad line must
    cost that line, never the file or the adapter (a value nested 1,000 deep
    raises RecursionError inside msgspec)."""
    if len(data) > limit:
        raise Invalid("too-long", f"{what} is {len(data)} bytes, more than {limit}")
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise Invalid("schema", f"{what} does not match the model: {_cut(str(exc))}") from None
    except msgspec.DecodeError as exc:
        raise Invalid("bad-json", f"not JSON: {_cut(str(exc))}") from None
    except RecursionError:
        raise Invalid("bad-json", f"{what} is nested too deeply") from None
    except (ValueError, TypeError, OverflowError, MemoryError) as exc:  # defensive: any other decoder failure
        raise Invalid("bad-json", f"{what} could not be decoded: {type(exc).__name__}") from None


def _cut(text: str, limit: int = 2 * _QUOTE) -> str:
    return text if len(text) <= limit else f"{text[:limit]}..."


def decode_event(data: bytes | str) -> Event:
    """Decode one canonical event (JSON); raise :class:`Invalid` on bad input."""
    ev: Event = _decode(_event_decoder, data, "event", LIMITS["event_bytes"])
    return ev


def decode_object(data: bytes | str) -> Object:
    """Decode one canonical object (JSON); raise :class:`Invalid` on bad input."""
    obj: Object = _decode(_object_decoder, data, "object", LIMITS["object_bytes"])
    return obj


def json_schema() -> dict[str, Any]:
    """The versioned JSON Schema of canonical events (and so of every object)."""
    schema = msgspec.json.schema(Event)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "OVN Hub canonical event"
    schema["version"] = MODEL_VERSION
    return schema
