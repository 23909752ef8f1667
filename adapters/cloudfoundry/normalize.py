"""Cloud Foundry payloads → canonical model: pure functions, no I/O.

Three inputs meet here:

* **Diego BBS ActualLRPs** (protobuf on the wire, :mod:`.proto`; the JSON of
  ``cfdot actual-lrps`` offline) become :class:`LRP` records
  (:func:`lrp_from_proto`, :func:`lrp_from_json`, :func:`decode_event`);
* **Cloud Controller v3** apps, processes, spaces and organizations fill a
  :class:`Catalog` (:func:`parse_cc_resource`);
* **the policy server's internal API**: c2c policies (:func:`parse_c2c`) and
  security groups (:func:`parse_security_groups`).

:func:`lrp_endpoint` joins an LRP record with the catalog into an Endpoint;
:func:`platform_objects` turns the catalog and the policy server's state into
Namespaces and Policies.  Every function either returns canonical data or
raises :class:`core.model.Invalid` with a short reason - never ``KeyError`` or
``TypeError`` on malformed input.

The mapping (README "Cloud Foundry"):

* an ActualLRP **with an instance guid** in state RUNNING or CLAIMED is an
  Endpoint: ``uid`` = ``instance_guid`` (Garden's container handle, the CNI's
  ``CNI_CONTAINERID``), ``ips`` = ``instance_address`` and
  ``instance_ipv6_address``, ``node`` = ``cell_id``, ``ports`` = the container
  ports (and the container side of the TLS proxy ports), ``state`` running or
  claimed (a CLAIMED instance has no address yet: its port is dynamic, OVN
  allocates, which is the address the CNI plugin hands the container);
  CRASHED and UNCLAIMED are not up: no port (a restart is claimed with a new
  instance guid);
* ``namespace`` = ``<org name>/<space name>``, ``name`` = ``<app>/<process type>/<index>``,
  from the Cloud Controller (process guid = the LRP's ``process_guid[:36]``),
  else from the LRP's ``metric_tags``, else ``unknown`` and the guids;
* ``labels`` = the app's and the process's CC labels, plus
  ``cloudfoundry.org/app-guid``, ``/process-type``, ``/space-guid``,
  ``/org-guid`` and ``/lifecycle`` (``running``), which CC reserves (no user
  label has that prefix), and ``ovn-hub.io/workload`` =
  ``cloudfoundry:<instance_guid>`` (the cell's CNI endpoint of the container
  says the same workload and yields to this one: one port per instance);
* per space: a ``c2c-default`` ingress Policy (every instance isolated; what
  comes from outside the overlay subnets passes: GoRouter, SSH proxy, the
  outside world), ``asg-running`` / ``asg-staging`` egress Policies (the
  overlay, plus every rule of the platform-wide and space-bound security
  groups of that lifecycle); per destination app a ``c2c-<app>`` ingress Policy
  with one rule per source app.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from msgspec.structs import replace

from core.model import (
    LABEL_WORKLOAD,
    Endpoint,
    Invalid,
    Namespace,
    Network,
    Peer,
    Policy,
    PolicyPort,
    PortSpec,
    Rule,
    Selector,
    Source,
    validate,
    validate_ip,
    validate_subnet,
)

from . import proto

__all__ = [
    "APP_GUID",
    "DEFAULT_SUBNETS",
    "LIFECYCLE",
    "LRP",
    "ORG_GUID",
    "PROCESS_TYPE",
    "SPACE_GUID",
    "AppMeta",
    "Asg",
    "AsgRule",
    "C2CPolicy",
    "Catalog",
    "LrpChange",
    "decode_event",
    "lrp_endpoint",
    "lrp_from_json",
    "lrp_from_proto",
    "parse_asg_rules",
    "parse_c2c",
    "parse_cc_resource",
    "parse_security_groups",
    "platform_objects",
    "stats_endpoints",
    "workload",
]

APP_GUID = "cloudfoundry.org/app-guid"
PROCESS_TYPE = "cloudfoundry.org/process-type"
SPACE_GUID = "cloudfoundry.org/space-guid"
ORG_GUID = "cloudfoundry.org/org-guid"
LIFECYCLE = "cloudfoundry.org/lifecycle"
KIND = "app-instance"
#: silk's default overlay (``cf_networking.network``): where app instances' addresses come from
DEFAULT_SUBNETS = ("10.255.0.0/16",)
UP_STATES = {"RUNNING": "running", "CLAIMED": "claimed"}
DOWN_STATES = frozenset({"CRASHED", "UNCLAIMED"})
#: Presence preference when two records carry one instance guid: the ordinary record's data wins.
PRESENCE_RANK = {"ORDINARY": 0, "SUSPECT": 1, "EVACUATING": 2}
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CTRL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_ID = 253
_MAX_INDEX = 2**31 - 1


# ---------------------------------------------------------------- field access
def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _dict(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid("bad-field", f"{what} is {_type_name(value)}, expected an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid("bad-field", f"{what} is {_type_name(value)}, expected a list")
    return value


def _str(value: Any, what: str, *, required: bool = False) -> str:
    if value is None or (required and value == ""):
        if required:
            raise Invalid("missing-field", f"{what} is missing")
        return ""
    if not isinstance(value, str):
        raise Invalid("bad-field", f"{what} is {_type_name(value)}, expected a string")
    return value


def _ident(value: Any, what: str, *, required: bool = True) -> str:
    text = _str(value, what, required=required)
    if len(text) > _MAX_ID or _CTRL.search(text) or text.strip() != text:
        raise Invalid("bad-field", f"{what} {text[:80]!r} is too long or has control characters or spaces")
    return text


def _int(value: Any, what: str, lo: int, hi: int, reason: str = "bad-field") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(reason, f"{what} is {_type_name(value)}, expected an integer")
    if not lo <= value <= hi:
        raise Invalid(reason, f"{what} {value} is out of range {lo}-{hi}")
    return value


def _labels(value: Any, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in _dict(value, what).items():
        if v is None:
            continue  # CC drops a label by PATCHing it to null; a GET never shows one, but be lenient
        if not isinstance(v, str):
            raise Invalid("bad-label", f"{what}[{k[:60]!r}] is {_type_name(v)}, expected a string")
        out[k] = v
    return out


# ---------------------------------------------------------------- ActualLRPs
class LRP(msgspec.Struct, frozen=True):
    """One ActualLRP record, as the BBS keys it: (process guid, index, presence).  ``ips`` are
    canonical (:func:`core.model.validate_ip`'s answers), without duplicates."""

    process_guid: str
    index: int
    instance_guid: str
    cell_id: str
    state: str
    presence: str
    ips: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    domain: str = ""
    address: str = ""  # the cell's address (host side of the port mappings)
    tags: tuple[tuple[str, str], ...] = ()  # metric_tags, sorted

    @property
    def record(self) -> tuple[str, int, str]:
        return (self.process_guid, self.index, self.presence)

    @property
    def up(self) -> bool:
        """Has a container worth a port (RUNNING, or CLAIMED: being created)."""
        return bool(self.instance_guid) and self.state in UP_STATES


class LrpChange(msgspec.Struct, frozen=True):
    """What one stream event says: records to set (``upserts``) and records gone (``removes``)."""

    event: str
    upserts: tuple[LRP, ...] = ()
    removes: tuple[tuple[str, int, str], ...] = ()
    #: the (process guid, index, presence) a changed event moved away from (presence changed)
    moved_from: tuple[tuple[str, int, str], ...] = ()


_IP_CACHE: dict[str, str] = {}


def _ip(text: str, what: str) -> str:
    ip = _IP_CACHE.get(text)
    if ip is None:
        ip = validate_ip(text, what)
        if len(_IP_CACHE) < 200_000:
            _IP_CACHE[text] = ip
    return ip


def _lrp_ips(v4: str, v6: str) -> tuple[str, ...]:
    ips: list[str] = []
    if v4:
        ips.append(_ip(v4, "instance_address"))
    if v6:
        ip6 = _ip(v6, "instance_ipv6_address")
        if ip6 not in ips:
            ips.append(ip6)
    return tuple(ips)


def _check_guid(value: str, what: str, required: bool = True) -> str:
    if required and not value:
        raise Invalid("missing-field", f"{what} is missing")
    # isprintable: no control character (nor other non-printables, which the regex then looks at)
    if len(value) > _MAX_ID or (not value.isprintable() and _CTRL.search(value)) or " " in value:
        raise Invalid("bad-field", f"{what} {value[:80]!r} is too long or has control characters or spaces")
    return value


def _ports(mappings: Iterable[Any]) -> tuple[int, ...]:
    """The container ports (and container TLS proxy ports) of port mappings."""
    out: list[int] = []
    for m in mappings:
        for p in (m.container_port, m.container_tls_proxy_port):
            if p and p not in out:
                if not 0 < p < 65536:
                    raise Invalid("bad-port", f"container port {p} is out of range 1-65535")
                out.append(p)
    return tuple(out)


def _lrp(
    key: Any, ikey: Any, net: Any, state: str, presence: int, tags: Mapping[str, str] | None = None
) -> LRP:
    pres = proto.PRESENCE.get(presence)
    if pres is None:
        raise Invalid("bad-field", f"presence {presence} is not ORDINARY, EVACUATING or SUSPECT")
    if state not in UP_STATES and state not in DOWN_STATES:
        raise Invalid("bad-state", f"state {state[:40]!r} is not UNCLAIMED, CLAIMED, RUNNING or CRASHED")
    pguid, iguid, cell = key.process_guid, ikey.instance_guid, ikey.cell_id
    ids = pguid + iguid + cell
    # printable (so no control character), no space, each within _MAX_ID: what _check_guid asks
    if not (pguid and len(ids) <= _MAX_ID and ids.isprintable() and " " not in ids):
        pguid = _check_guid(pguid, "process_guid")  # in the order of the fields, for the first error
        _int(key.index, "index", 0, _MAX_INDEX)
        iguid = _check_guid(iguid, "instance_guid", required=False)
        cell = _check_guid(cell, "cell_id", required=False)
    index = key.index
    if type(index) is not int or not 0 <= index <= _MAX_INDEX:  # (a bool is not an int here)
        index = _int(index, "index", 0, _MAX_INDEX)
    v4, v6 = net.instance_address, net.instance_ipv6_address
    mappings = net.ports
    return LRP(  # positionally: a record per event (process_guid, index, instance_guid, cell_id, state, presence,
        pguid,  # ips, ports, domain, address, tags)
        index,
        iguid,
        cell,
        state,
        pres,
        (_ip(v4, "instance_address"),) if v4 and not v6 else _lrp_ips(v4, v6),
        _ports(mappings) if mappings else (),
        key.domain,
        net.address,
        tuple(sorted(tags.items())) if tags else (),
    )


def lrp_from_proto(msg: Any) -> LRP:
    """A ``models.ActualLRP`` message → :class:`LRP`; raises :class:`Invalid`."""
    return _lrp(
        msg.actual_lrp_key, msg.actual_lrp_instance_key, msg.actual_lrp_net_info, msg.state, msg.presence,
        msg.metric_tags,
    )  # fmt: skip


def _decode(cls: Any, data: bytes, what: str) -> Any:
    try:
        return cls.FromString(data)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends, any bytes
        raise Invalid("bad-protobuf", f"{what}: not a protobuf {cls.DESCRIPTOR.name}: {exc}") from None


def decode_event(name: str, data: str | bytes) -> LrpChange | None:
    """One SSE frame of ``lrp_instances.r1`` (its ``event:`` name and base64
    ``data:``) → an :class:`LrpChange`; None for events that carry no instance
    (desired-LRP events); raises :class:`Invalid` (unknown event name, bad
    base64, bad protobuf, bad fields)."""
    cls = proto.EVENTS.get(name)
    if cls is None:
        raise Invalid("unknown-event", f"event {name[:60]!r} is not an LRP-instance or desired-LRP event")
    if name.startswith("desired_lrp_"):
        return None
    if not data:
        raise Invalid("no-data", f"{name}: an event with no data")
    try:
        raw = binascii.a2b_base64(data, strict_mode=True)  # = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("bad-base64", f"{name}: data is not standard base64") from None
    try:
        msg = cls.FromString(raw)
    except Exception:  # noqa: BLE001 - as _decode: protobuf's DecodeError and friends, any bytes
        msg = _decode(cls, raw, name)  # raises the Invalid, with its message
    if name == "actual_lrp_instance_changed":
        after = msg.after if msg.HasField("after") else msg.before
        before = msg.before if msg.HasField("before") else after
        rec = _lrp(msg.actual_lrp_key, msg.actual_lrp_instance_key, after.actual_lrp_net_info, after.state,
                   after.presence)  # fmt: skip
        old = (rec.process_guid, rec.index, proto.PRESENCE.get(before.presence, "ORDINARY"))
        return LrpChange(name, (rec,), (), (old,) if old != rec.record else ())  # upserts, removes, moved_from
    if name == "actual_lrp_crashed":
        # the crashed instance (the before instance key); the changed/removed event that comes with it says the rest
        return LrpChange(name)
    rec = lrp_from_proto(msg.actual_lrp)
    if name == "actual_lrp_instance_created":
        return LrpChange(name, (rec,))  # upserts
    return LrpChange(name, removes=(rec.record,), upserts=())


def crashed_instance(data: str | bytes) -> tuple[str, str]:
    """(process guid, instance guid) of an ``actual_lrp_crashed`` event; raises :class:`Invalid`."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("bad-base64", "actual_lrp_crashed: data is not standard base64") from None
    msg = _decode(proto.ActualLRPCrashedEvent, raw, "actual_lrp_crashed")
    return msg.actual_lrp_key.process_guid, msg.actual_lrp_instance_key.instance_guid


class _JsonKey:
    """Adapts a flattened cfdot JSON object to the attribute shape of the protobuf keys."""

    __slots__ = ("address", "cell_id", "domain", "index", "instance_address", "instance_guid",
                 "instance_ipv6_address", "ports", "process_guid")  # fmt: skip

    def __init__(self, obj: dict[str, Any]) -> None:
        self.process_guid = _str(obj.get("process_guid"), "process_guid", required=True)
        self.index = obj.get("index", 0)
        self.domain = _str(obj.get("domain"), "domain")
        self.instance_guid = _str(obj.get("instance_guid"), "instance_guid")
        self.cell_id = _str(obj.get("cell_id"), "cell_id")
        self.address = _str(obj.get("address"), "address")
        self.instance_address = _str(obj.get("instance_address"), "instance_address")
        self.instance_ipv6_address = _str(obj.get("instance_ipv6_address"), "instance_ipv6_address")
        self.ports = [_JsonPort(p, i) for i, p in enumerate(_list(obj.get("ports"), "ports"))]


class _JsonPort:
    __slots__ = ("container_port", "container_tls_proxy_port")

    def __init__(self, value: Any, i: int) -> None:
        p = _dict(value, f"ports[{i}]")
        self.container_port = _int(p.get("container_port", 0), f"ports[{i}].container_port", 0, 65535, "bad-port")
        tls = p.get("container_tls_proxy_port", 0)
        self.container_tls_proxy_port = _int(tls, f"ports[{i}].container_tls_proxy_port", 0, 65535, "bad-port")


def lrp_from_json(obj: Any) -> LRP:
    """One ``cfdot actual-lrps`` JSON object (gogo JSON tags, keys flattened,
    enums as names) → :class:`LRP`; raises :class:`Invalid`."""
    if not isinstance(obj, dict):
        raise Invalid("not-object", f"an ActualLRP is {_type_name(obj)}, expected an object")
    k = _JsonKey(obj)
    presence_name = _str(obj.get("presence"), "presence") or "ORDINARY"
    numbers = {v: n for n, v in proto.PRESENCE.items()}
    if presence_name not in numbers:
        raise Invalid("bad-field", f"presence {presence_name[:40]!r} is not ORDINARY, EVACUATING or SUSPECT")
    tags = {k2: v for k2, v in _dict(obj.get("metric_tags"), "metric_tags").items() if isinstance(v, str)}
    state = _str(obj.get("state"), "state", required=True)
    return _lrp(k, k, k, state, numbers[presence_name], tags)


# ---------------------------------------------------------------- Cloud Controller
@dataclass(frozen=True, slots=True)
class CCApp:
    guid: str
    name: str
    space: str
    labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class CCProcess:
    guid: str
    type: str
    app: str
    labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class CCSpace:
    guid: str
    name: str
    org: str
    labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class CCOrg:
    guid: str
    name: str
    labels: dict[str, str]


CCResource = CCApp | CCProcess | CCSpace | CCOrg
_CC_KINDS = {"/v3/apps/": "app", "/v3/processes/": "process", "/v3/spaces/": "space", "/v3/organizations/": "org"}


def cc_kind(obj: dict[str, Any]) -> str:
    """``app``, ``process``, ``space``, ``org``, ``stats`` (a process instance's
    stats) or "" - from ``links.self`` when present, else from the shape."""
    links = obj.get("links")
    this = links.get("self") if isinstance(links, dict) else None
    href = this.get("href") if isinstance(this, dict) else None
    if isinstance(href, str):
        for part, kind in _CC_KINDS.items():
            if part in href:
                return kind
    if "instance_ports" in obj or "usage" in obj or ("index" in obj and "state" in obj and "type" in obj):
        return "stats"
    rel = obj.get("relationships")
    rel = rel if isinstance(rel, dict) else {}
    if "lifecycle" in obj or "space" in rel:
        return "app"
    if "app" in rel and "type" in obj:
        return "process"
    if "organization" in rel:
        return "space"
    if "guid" in obj and "name" in obj and "suspended" in obj:
        return "org"
    return ""


def _rel(obj: dict[str, Any], name: str) -> str:
    rel = _dict(obj.get("relationships"), "relationships")
    data = _dict(_dict(rel.get(name), f"relationships.{name}").get("data"), f"relationships.{name}.data")
    return _ident(data.get("guid"), f"relationships.{name}.data.guid")


def _meta_labels(obj: dict[str, Any]) -> dict[str, str]:
    return _labels(_dict(obj.get("metadata"), "metadata").get("labels"), "metadata.labels")


def parse_cc_resource(obj: Any, kind: str = "") -> CCResource:
    """A CC v3 app, process, space or organization resource → its record; raises :class:`Invalid`."""
    if not isinstance(obj, dict):
        raise Invalid("not-object", f"a CC resource is {_type_name(obj)}, expected an object")
    kind = kind or cc_kind(obj)
    guid = _ident(obj.get("guid"), "guid")
    if kind == "app":
        return CCApp(guid, _ident(obj.get("name"), "name"), _rel(obj, "space"), _meta_labels(obj))
    if kind == "process":
        return CCProcess(guid, _ident(obj.get("type"), "type"), _rel(obj, "app"), _meta_labels(obj))
    if kind == "space":
        return CCSpace(guid, _ident(obj.get("name"), "name"), _rel(obj, "organization"), _meta_labels(obj))
    if kind == "org":
        return CCOrg(guid, _ident(obj.get("name"), "name"), _meta_labels(obj))
    raise Invalid("unknown-kind", "not a CC v3 app, process, space or organization")


@dataclass(frozen=True, slots=True)
class AppMeta:
    """What an instance's Endpoint takes from the Cloud Controller (or metric_tags)."""

    namespace: str
    app_name: str
    process_type: str
    labels: tuple[tuple[str, str], ...]
    app_guid: str
    space_guid: str


@dataclass
class Catalog:
    """The Cloud Controller's apps, processes, spaces and organizations, by guid.
    Filled through :meth:`add` (which forgets the metas :meth:`lrp_meta` remembered)."""

    apps: dict[str, CCApp] = field(default_factory=dict)
    processes: dict[str, CCProcess] = field(default_factory=dict)
    spaces: dict[str, CCSpace] = field(default_factory=dict)
    orgs: dict[str, CCOrg] = field(default_factory=dict)
    _metas: dict[tuple[str, tuple[tuple[str, str], ...]], AppMeta] = field(
        default_factory=dict, repr=False, compare=False
    )

    def add(self, res: CCResource) -> None:
        self._metas.clear()
        if isinstance(res, CCApp):
            self.apps[res.guid] = res
        elif isinstance(res, CCProcess):
            self.processes[res.guid] = res
        elif isinstance(res, CCSpace):
            self.spaces[res.guid] = res
        else:
            self.orgs[res.guid] = res

    def namespace(self, space_guid: str) -> str | None:
        space = self.spaces.get(space_guid)
        org = self.orgs.get(space.org) if space is not None else None
        return f"{org.name}/{space.name}" if space is not None and org is not None else None

    def app_namespace(self, app_guid: str) -> str | None:
        app = self.apps.get(app_guid)
        return self.namespace(app.space) if app is not None else None

    def lrp_meta(self, rec: LRP) -> AppMeta:
        """:meth:`meta` of a record, remembered per (process guid, metric tags) until :meth:`add`:
        every event of an app's instances asks the same."""
        key = (rec.process_guid, rec.tags)
        meta = self._metas.get(key)
        if meta is None:
            meta = self.meta(rec.process_guid, dict(rec.tags))
            if len(self._metas) >= 100_000:
                self._metas.clear()
            self._metas[key] = meta
        return meta

    def meta(self, process_guid: str, tags: Mapping[str, str]) -> AppMeta:
        """Names and labels of an LRP's instances: CC first, then ``metric_tags``, then ``unknown``."""
        pguid = process_guid[:36] if _GUID.match(process_guid) else process_guid
        proc = self.processes.get(pguid)
        app_guid = proc.app if proc is not None else tags.get("app_id") or pguid
        app = self.apps.get(app_guid)
        space = self.spaces.get(app.space) if app is not None else None
        org = self.orgs.get(space.org) if space is not None else None
        space_guid = space.guid if space is not None else tags.get("space_id", "")
        org_guid = org.guid if org is not None else tags.get("organization_id", "")
        org_name = org.name if org is not None else tags.get("organization_name") or "unknown"
        space_name = space.name if space is not None else tags.get("space_name") or "unknown"
        app_name = app.name if app is not None else tags.get("app_name") or app_guid
        ptype = proc.type if proc is not None else tags.get("process_type") or "unknown"
        labels: dict[str, str] = {}
        if app is not None:
            labels.update(app.labels)
        if proc is not None:
            labels.update(proc.labels)
        labels[APP_GUID] = app_guid
        labels[PROCESS_TYPE] = ptype
        labels[LIFECYCLE] = "running"
        if space_guid:
            labels[SPACE_GUID] = space_guid
        if org_guid:
            labels[ORG_GUID] = org_guid
        return AppMeta(f"{org_name}/{space_name}", app_name, ptype, tuple(sorted(labels.items())), app_guid,
                       space_guid)  # fmt: skip


def lrp_endpoint(rec: LRP, source: Source, meta: AppMeta, network: str) -> Endpoint | None:
    """The Endpoint of one up LRP record (None when it is not up: no instance
    guid, CRASHED, UNCLAIMED); raises :class:`Invalid` (the model's checks)."""
    if not rec.up:
        return None
    # the labels once per app (per AppMeta object: Catalog.lrp_meta hands out the same one), in an
    # endpoint carrying them, checked whole; the entry holds the meta, so its id is not reused meanwhile
    hit = _LABELS_OK.get(id(meta))
    if hit is not None and hit[0] is meta and hit[1] == source:
        labels = hit[2]
    else:
        labels = dict(meta.labels)
        validate(Endpoint(source=source, uid="x", namespace=meta.namespace, name=meta.app_name, kind=KIND,
                          network=network, labels=labels))  # fmt: skip
        if len(_LABELS_OK) > 100_000:
            _LABELS_OK.clear()
        _LABELS_OK[id(meta)] = (meta, source, labels)
    ports = _PORT_SPECS.get(rec.ports)
    if ports is None:
        ports = tuple(PortSpec(port=p) for p in rec.ports)
        if len(_PORT_SPECS) >= 4096:
            _PORT_SPECS.clear()
        _PORT_SPECS[rec.ports] = ports
    name = f"{meta.app_name}/{meta.process_type}/{rec.index}"
    state = UP_STATES[rec.state]
    uid, ips = rec.instance_guid, rec.ips
    # one address that validate_ip answered with itself (canonical: what the Endpoint's check asks of
    # it) is left out of the check below; anything else is checked there
    known = not ips or (len(ips) == 1 and _IP_CACHE.get(ips[0]) == ips[0])
    # everything but the labels, checked above (and the workload's id is the uid, checked here)
    ep = Endpoint(source=source, uid=uid, namespace=meta.namespace, name=name, kind=KIND, network=network,
                  node=rec.cell_id, ips=() if known else ips, ports=ports, state=state)  # fmt: skip
    validate(ep)
    return replace(ep, ips=ips, labels={**labels, LABEL_WORKLOAD: f"cloudfoundry:{uid}"})  # = workload()


def workload(instance_guid: str) -> str:
    """The workload an app instance is (:data:`core.model.LABEL_WORKLOAD`): the node's CNI
    endpoint of its container (Garden's handle = the instance guid) says the same, and yields."""
    return f"cloudfoundry:{instance_guid}"


#: id(AppMeta) → (that AppMeta, source, its labels), already checked by the model's validator
_LABELS_OK: dict[int, tuple[AppMeta, Source, dict[str, str]]] = {}
#: container ports → their PortSpecs (immutable, shared by the endpoints of an app's instances)
_PORT_SPECS: dict[tuple[int, ...], tuple[PortSpec, ...]] = {}


def best_records(records: Iterable[LRP]) -> dict[str, LRP]:
    """instance guid → the record its Endpoint is made of: of the up records
    carrying that guid, the ordinary one before a suspect before an evacuating
    one (an evacuation's twin never makes a second port)."""
    best: dict[str, LRP] = {}
    for rec in records:
        if not rec.up:
            continue
        cur = best.get(rec.instance_guid)
        if cur is None or PRESENCE_RANK[rec.presence] < PRESENCE_RANK[cur.presence]:
            best[rec.instance_guid] = rec
    return best


_STATS_UP = {"RUNNING": "running", "STARTING": "starting"}


def stats_endpoints(obj: Any, source: Source, catalog: Catalog, network: str) -> list[Endpoint]:
    """A CC process stats resource (``GET /v3/processes/:guid/stats``) → the
    Endpoint of its instance, or none (no instance guid or address yet, not
    RUNNING/STARTING).  Named through the catalog when it has exactly one
    process of that type; raises :class:`Invalid`."""
    res = _dict(obj, "process stats")
    ptype = _ident(res.get("type"), "type")
    index = _int(res.get("index"), "index", 0, 2**31 - 1)
    state = _str(res.get("state"), "state", required=True)
    guid = _str(res.get("instance_guid"), "instance_guid")
    ip = _str(res.get("instance_internal_ip"), "instance_internal_ip")
    if state not in _STATS_UP or not guid or not ip:
        return []
    ports: list[int] = []
    for i, p in enumerate(_list(res.get("instance_ports"), "instance_ports")):
        d = _dict(p, f"instance_ports[{i}]")
        for key in ("internal", "internal_tls_proxy_port"):
            v = d.get(key)
            if v:
                port = _int(v, f"instance_ports[{i}].{key}", 1, 65535, "bad-port")
                if port not in ports:
                    ports.append(port)
    procs = [pr for pr in catalog.processes.values() if pr.type == ptype]
    meta = catalog.meta(procs[0].guid if len(procs) == 1 else "", {"process_type": ptype})
    ep = Endpoint(
        source=source, uid=_check_guid(guid, "instance_guid"), namespace=meta.namespace,
        name=f"{meta.app_name or 'unknown'}/{ptype}/{index}", kind=KIND, network=network,
        ips=(_ip(ip, "instance_internal_ip"),), labels={**dict(meta.labels), LABEL_WORKLOAD: workload(guid)},
        ports=tuple(PortSpec(port=p) for p in ports),
        state=_STATS_UP[state],
    )  # fmt: skip
    validate(ep)
    return [ep]


# ---------------------------------------------------------------- the policy server
@dataclass(frozen=True, slots=True)
class C2CPolicy:
    source: str
    destination: str
    protocol: str
    start: int
    end: int


def parse_c2c(doc: Any) -> tuple[list[C2CPolicy], list[Invalid]]:
    """``{"policies": [...]}`` (internal or external API) → policies, and one
    Invalid per bad policy (the rest still count)."""
    if not isinstance(doc, dict):
        raise Invalid("not-object", f"a policies response is {_type_name(doc)}, expected an object")
    out: list[C2CPolicy] = []
    bad: list[Invalid] = []
    for i, item in enumerate(_list(doc.get("policies"), "policies")):
        try:
            p = _dict(item, f"policies[{i}]")
            src = _dict(p.get("source"), f"policies[{i}].source")
            dst = _dict(p.get("destination"), f"policies[{i}].destination")
            proto_ = _str(dst.get("protocol"), f"policies[{i}].destination.protocol", required=True).lower()
            if proto_ not in ("tcp", "udp"):
                raise Invalid("bad-protocol", f"policies[{i}]: protocol {proto_[:20]!r} is not tcp or udp")
            ports = _dict(dst.get("ports"), f"policies[{i}].destination.ports")
            if not ports and "port" in dst:  # API v0's single port
                start = end = _int(dst.get("port"), f"policies[{i}].destination.port", 1, 65535, "bad-port")
            else:
                start = _int(ports.get("start"), f"policies[{i}].destination.ports.start", 1, 65535, "bad-port")
                end = _int(ports.get("end", start), f"policies[{i}].destination.ports.end", 1, 65535, "bad-port")
            if end < start:
                raise Invalid("bad-port", f"policies[{i}]: port range {start}-{end} is empty")
            out.append(C2CPolicy(_ident(src.get("id"), f"policies[{i}].source.id"),
                                 _ident(dst.get("id"), f"policies[{i}].destination.id"), proto_, start, end))  # fmt: skip
        except Invalid as exc:
            bad.append(exc)
    return out, bad


@dataclass(frozen=True, slots=True)
class AsgRule:
    """One ASG rule as canonical egress peers and ports (``ports`` empty: every port of ``protocol``;
    protocol ``all``: every protocol)."""

    protocol: str
    cidrs: tuple[str, ...]
    ports: tuple[tuple[int, int], ...]
    log: bool


@dataclass(frozen=True, slots=True)
class Asg:
    guid: str
    name: str
    rules: tuple[AsgRule, ...]
    running_default: bool
    staging_default: bool
    running_spaces: tuple[str, ...]
    staging_spaces: tuple[str, ...]
    #: rules the canonical model cannot say (ICMP: the model's ports are TCP/UDP/SCTP), as Invalid
    unsupported: tuple[Invalid, ...] = ()


def _destination(text: str, where: str) -> list[str]:
    cidrs: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            lo_s, _, hi_s = part.partition("-")
            try:
                lo, hi = ipaddress.ip_address(lo_s.strip()), ipaddress.ip_address(hi_s.strip())
                cidrs += [str(n) for n in ipaddress.summarize_address_range(lo, hi)]  # type: ignore[arg-type]
            except (ValueError, TypeError):
                raise Invalid("bad-destination", f"{where}: destination {part[:60]!r} is not an address range") from None
        else:
            try:
                cidrs.append(str(validate_subnet(part if "/" in part else part + ("/128" if ":" in part else "/32"))))
            except Invalid:
                raise Invalid("bad-destination", f"{where}: destination {part[:60]!r} is not an address or CIDR") from None
    if not cidrs:
        raise Invalid("bad-destination", f"{where}: no destination")
    return cidrs


def _asg_ports(text: str, where: str) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo_s, dash, hi_s = part.partition("-")
        try:
            lo = int(lo_s)
            hi = int(hi_s) if dash else lo
        except ValueError:
            raise Invalid("bad-port", f"{where}: ports {part[:40]!r} is not a port or a range") from None
        if not (0 < lo <= hi < 65536):
            raise Invalid("bad-port", f"{where}: ports {part[:40]!r} is out of range 1-65535")
        out.append((lo, hi))
    return tuple(out)


def parse_asg_rules(value: Any, asg: str) -> tuple[tuple[AsgRule, ...], tuple[Invalid, ...]]:
    """An ASG's ``rules`` (a JSON array, or a string holding one, as the internal
    API sends it) → rules, and the unsupported ones; raises :class:`Invalid` for a bad rule."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise Invalid("bad-json", f"security group {asg}: rules are not JSON") from None
    rules: list[AsgRule] = []
    unsupported: list[Invalid] = []
    for i, item in enumerate(_list(value, f"security group {asg} rules")):
        where = f"security group {asg} rule {i}"
        r = _dict(item, where)
        protocol = _str(r.get("protocol"), f"{where} protocol", required=True).lower()
        cidrs = _destination(_str(r.get("destination"), f"{where} destination", required=True), where)
        log = r.get("log", False)
        if not isinstance(log, bool):
            raise Invalid("bad-field", f"{where}: log is {_type_name(log)}, expected a boolean")
        if protocol in ("icmp", "icmpv6"):
            unsupported.append(Invalid("unsupported-rule", f"{where}: {protocol} rules are not supported (dropped)"))
            continue
        if protocol not in ("tcp", "udp", "all"):
            raise Invalid("bad-protocol", f"{where}: protocol {protocol[:20]!r} is not tcp, udp, icmp or all")
        ports = _asg_ports(_str(r.get("ports"), f"{where} ports"), where) if protocol != "all" else ()
        rules.append(AsgRule(protocol, tuple(cidrs), ports, log))
    return tuple(rules), tuple(unsupported)


def _guids(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):  # "comma-separated" in the API doc
        return tuple(g for g in (s.strip() for s in value.split(",")) if g)
    return tuple(_ident(g, f"{what}[]") for g in _list(value, what))


def parse_security_groups(doc: Any) -> tuple[list[Asg], list[Invalid], int]:
    """One page of ``GET /networking/v1/internal/security_groups`` → groups, one
    Invalid per bad group, and ``next`` (0: the last page)."""
    if not isinstance(doc, dict):
        raise Invalid("not-object", f"a security groups response is {_type_name(doc)}, expected an object")
    nxt = doc.get("next", 0)
    if nxt is None:
        nxt = 0
    _int(nxt, "next", 0, 2**63 - 1)
    out: list[Asg] = []
    bad: list[Invalid] = []
    for i, item in enumerate(_list(doc.get("security_groups"), "security_groups")):
        try:
            g = _dict(item, f"security_groups[{i}]")
            name = _ident(g.get("name"), f"security_groups[{i}].name")
            rules, unsupported = parse_asg_rules(g.get("rules"), name)
            flags = []
            for key in ("running_default", "staging_default"):
                v = g.get(key, False)
                if not isinstance(v, bool):
                    raise Invalid("bad-field", f"security group {name}: {key} is {_type_name(v)}, expected a boolean")
                flags.append(v)
            out.append(Asg(
                _ident(g.get("guid"), f"security_groups[{i}].guid"), name, rules, flags[0], flags[1],
                _guids(g.get("running_space_guids"), f"security group {name} running_space_guids"),
                _guids(g.get("staging_space_guids"), f"security group {name} staging_space_guids"),
                unsupported,
            ))  # fmt: skip
        except Invalid as exc:
            bad.append(exc)
    return out, bad, nxt


# ---------------------------------------------------------------- namespaces and policies
def _parse_subnets(subnets: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [validate_subnet(s, "overlay subnet") for s in subnets]


def overlay_network(source: Source, name: str, subnets: Iterable[str], gateway: str | None = None) -> Network:
    """The one network every app instance attaches to (CF's overlay, silk's ``10.255.0.0/16`` by default)."""
    nets = _parse_subnets(subnets)
    gw = gateway
    if gw is None and nets:
        gw = str(next(nets[0].hosts()))
    net = Network(source=source, name=name, subnets=tuple(str(n) for n in nets), gateway=gw)
    validate(net)
    return net


def _ingress_default(subnets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> Rule:
    """From anywhere but the overlay (c2c needs a policy): GoRouter, SSH proxy, the outside."""
    peers: list[Peer] = []
    for version, everything in ((4, "0.0.0.0/0"), (6, "::/0")):
        mine = [str(n) for n in subnets if n.version == version]
        if mine:
            peers.append(Peer(cidr=everything, except_cidrs=tuple(mine)))
    return Rule(peers=tuple(peers))


def _asg_rule(r: AsgRule) -> Rule:
    peers = tuple(Peer(cidr=c) for c in r.cidrs)
    if r.protocol == "all":
        return Rule(peers=peers, log=r.log)
    ports = tuple(PolicyPort(protocol=r.protocol, port=lo, end_port=hi if hi != lo else None) for lo, hi in r.ports)
    return Rule(peers=peers, ports=ports or (PolicyPort(protocol=r.protocol),), log=r.log)


def _policy_name(text: str) -> str:
    return text[:_MAX_ID]


def platform_objects(
    source: Source,
    catalog: Catalog,
    c2c: Iterable[C2CPolicy],
    asgs: Iterable[Asg] | None,
    subnets: Iterable[str],
    *,
    app_namespaces: Mapping[str, str] | None = None,
) -> Iterator[Namespace | Policy]:
    """Namespaces (one per space) and Policies (per space: c2c default,
    ``asg-running``, ``asg-staging``; per destination app: ``c2c-<app>``).
    ``asgs`` None = the security groups are not known (no egress policy: egress
    is not isolated until they are); ``app_namespaces``: namespaces of apps the
    catalog does not know (from their instances' metric_tags).  Raises :class:`Invalid`."""
    nets = _parse_subnets(subnets)
    overlay = Rule(peers=tuple(Peer(cidr=str(n)) for n in nets))
    asg_list = sorted(asgs or (), key=lambda g: g.guid)
    for sguid, space in sorted(catalog.spaces.items()):
        ns = catalog.namespace(sguid)
        if ns is None:
            continue  # its organization is not listed (yet)
        org = catalog.orgs[space.org]
        labels = {**org.labels, **space.labels, SPACE_GUID: sguid, ORG_GUID: org.guid}
        yield _checked(Namespace(source=source, name=ns, labels=labels))
        yield _checked(Policy(
            source=source, uid=f"c2c-default:{sguid}", namespace=ns, name="c2c-default", pod_selector=Selector(),
            ingress=(_ingress_default(nets),),
        ))  # fmt: skip
        if asgs is None:
            continue
        for lifecycle in ("running", "staging"):
            rules = [overlay] if nets else []
            for g in asg_list:
                default = g.running_default if lifecycle == "running" else g.staging_default
                bound = g.running_spaces if lifecycle == "running" else g.staging_spaces
                if default or sguid in bound:
                    rules += [_asg_rule(r) for r in g.rules]
            yield _checked(Policy(
                source=source, uid=f"asg-{lifecycle}:{sguid}", namespace=ns, name=f"asg-{lifecycle}",
                pod_selector=Selector(match_labels={LIFECYCLE: lifecycle}), egress=tuple(rules),
            ))  # fmt: skip
    by_dest: dict[str, dict[str, list[C2CPolicy]]] = {}
    for p in c2c:
        by_dest.setdefault(p.destination, {}).setdefault(p.source, []).append(p)
    extra = app_namespaces or {}
    for dest, sources in sorted(by_dest.items()):
        ns = catalog.app_namespace(dest) or extra.get(dest)
        if ns is None:
            continue  # no instance of it can be known: nothing to protect yet
        app = catalog.apps.get(dest)
        rules = []
        for src, items in sorted(sources.items()):
            ports = sorted({(p.protocol, p.start, p.end) for p in items})
            rules.append(Rule(
                peers=(Peer(pod_selector=Selector(match_labels={APP_GUID: src}), namespace_selector=Selector()),),
                ports=tuple(PolicyPort(protocol=pr, port=lo, end_port=hi if hi != lo else None) for pr, lo, hi in ports),
            ))  # fmt: skip
        yield _checked(Policy(
            source=source, uid=f"c2c:{dest}", namespace=ns, name=_policy_name(f"c2c-{app.name if app else dest}"),
            pod_selector=Selector(match_labels={APP_GUID: dest}), ingress=tuple(rules),
        ))  # fmt: skip


def _checked(obj: Namespace | Policy) -> Namespace | Policy:
    validate(obj)
    return obj
