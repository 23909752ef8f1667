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
two networks is two Endpoints with the same ``uid``).
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


Object = Network | Endpoint
ObjectKind = Literal["network", "endpoint"]


def kind_of(obj: Object) -> ObjectKind:
    return "network" if isinstance(obj, Network) else "endpoint"


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


def validate_ip(text: str, field: str = "ip") -> str:
    """Return the canonical form of a host IP (v4 or v6), or raise."""
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


def validate(obj: Object) -> None:
    """Raise :class:`Invalid` with a reason if ``obj`` cannot be programmed."""
    validate_source(obj.source)
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
    _text("uid", obj.uid)
    if any(c.isspace() for c in obj.uid):
        raise Invalid("bad-uid", f"uid {obj.uid!r} contains whitespace")
    _text("namespace", obj.namespace)
    _text("name", obj.name)
    _text("kind", obj.kind, 63)
    if not _NET_NAME.match(obj.network):
        raise Invalid("bad-network", f"network name {obj.network!r} must match {_NET_NAME.pattern}")
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
