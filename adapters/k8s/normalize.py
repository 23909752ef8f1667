"""Kubernetes payloads → canonical model: pure functions, no I/O.

Only ``core`` and the standard library are imported at module level; PyYAML is
imported inside :func:`parse_documents` (the only function that parses text
that may be YAML), so the adapter's hot path never needs it.

Every function takes a decoded API object (a ``dict``, as in the JSON of the
API server) and either returns canonical data or raises
:class:`core.model.Invalid` with a short reason tag — never ``KeyError`` or
``TypeError`` on malformed input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from core.model import Endpoint, Invalid, PortSpec, Source, validate, validate_ip, validate_mac

__all__ = [
    "CHASSIS_KEY",
    "MULTUS_STATUS_ANNOTATION",
    "OVNK_POD_NETWORKS_ANNOTATION",
    "WATCH_TYPES",
    "namespace_labels",
    "node_chassis",
    "normalize_pod",
    "object_ref",
    "parse_documents",
    "parse_watch_event",
    "pod_uid",
    "resource_version",
    "watch_error",
]

#: ovn-kubernetes: per-network pod annotation (JSON object keyed by network name).
OVNK_POD_NETWORKS_ANNOTATION = "k8s.ovn.org/pod-networks"
#: Multus: network status of every interface of the pod (JSON list).
MULTUS_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
#: Node label/annotation naming the OVN chassis of a node.
CHASSIS_KEY = "k8s.ovn.org/node-chassis-id"

WATCH_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"})
_DONE_PHASES = frozenset({"succeeded", "failed"})
_CTRL = re.compile(r"[\x00-\x1f\x7f]")
_YAML_SEPARATOR = re.compile(r"^(?:---|\.\.\.)(?:\s.*)?$")


# ---------------------------------------------------------------- field access
def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _dict(value: Any, field: str, *, required: bool = False) -> dict[str, Any]:
    if value is None:
        if required:
            raise Invalid("missing-field", f"{field} is missing")
        return {}
    if not isinstance(value, dict):
        raise Invalid("bad-field", f"{field} is {_type_name(value)}, expected an object")
    return value


def _list(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid("bad-field", f"{field} is {_type_name(value)}, expected a list")
    return value


def _str(value: Any, field: str, *, required: bool = False, default: str = "") -> str:
    if value is None or (required and value == ""):
        if required:
            raise Invalid("missing-field", f"{field} is missing")
        return default
    if not isinstance(value, str):
        raise Invalid("bad-field", f"{field} is {_type_name(value)}, expected a string")
    return value


def _name(value: Any, field: str) -> str:
    text = _str(value, field, required=True)
    if len(text) > 253 or _CTRL.search(text) or any(c.isspace() for c in text):
        raise Invalid("bad-name", f"{field} {text[:80]!r} is not a valid object name")
    return text


def _str_map(value: Any, field: str) -> dict[str, str]:
    m = _dict(value, field)
    for k, v in m.items():
        if not isinstance(v, str):
            raise Invalid("bad-label", f"{field}[{k!r}] is {_type_name(v)}, expected a string")
    return m


def _check_kind(obj: Any, kind: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise Invalid("not-object", f"{kind} payload is {_type_name(obj)}, expected an object")
    got = obj.get("kind")
    if got is not None and got != kind:
        raise Invalid("wrong-kind", f"object kind {str(got)[:60]!r} is not {kind}")
    return obj


def object_ref(obj: Any) -> str:
    """``namespace/name`` (or ``name``, or the uid) of an object, for messages; never raises."""
    if not isinstance(obj, dict):
        return ""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return ""
    name, ns, uid = meta.get("name"), meta.get("namespace"), meta.get("uid")
    if isinstance(name, str) and name:
        return f"{ns}/{name}" if isinstance(ns, str) and ns else name
    return uid if isinstance(uid, str) else ""


def resource_version(obj: Any) -> str:
    """``metadata.resourceVersion`` of an object or list, or ``""``; never raises."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return rv if isinstance(rv, str) else ""


def pod_uid(obj: Any) -> str:
    """``metadata.uid`` of a pod (validated); raises :class:`Invalid`."""
    pod = _check_kind(obj, "Pod")
    meta = _dict(pod.get("metadata"), "metadata", required=True)
    return _name(meta.get("uid"), "metadata.uid")


# ---------------------------------------------------------------- pods
def _pod_ips(status: dict[str, Any]) -> tuple[str, ...]:
    raw: list[tuple[str, Any]] = []
    pod_ips = _list(status.get("podIPs"), "status.podIPs")
    for i, entry in enumerate(pod_ips):
        raw.append((f"status.podIPs[{i}].ip", _dict(entry, f"status.podIPs[{i}]").get("ip")))
    if not raw and status.get("podIP") not in (None, ""):
        raw.append(("status.podIP", status.get("podIP")))
    ips: list[str] = []
    for field, value in raw:
        ip = validate_ip(_str(value, field, required=True), field)
        if ip not in ips:
            ips.append(ip)
    return tuple(ips)


def _json_annotation(annotations: dict[str, str], key: str) -> Any:
    try:
        return json.loads(annotations[key])
    except (ValueError, RecursionError):
        raise Invalid("bad-annotation", f"annotation {key} is not JSON") from None


def _pod_mac(annotations: dict[str, str], network: str) -> str | None:
    if OVNK_POD_NETWORKS_ANNOTATION in annotations:
        nets = _json_annotation(annotations, OVNK_POD_NETWORKS_ANNOTATION)
        if not isinstance(nets, dict):
            raise Invalid("bad-annotation", f"annotation {OVNK_POD_NETWORKS_ANNOTATION} is not a JSON object")
        entry = nets.get(network)
        if entry is not None:
            if not isinstance(entry, dict):
                raise Invalid(
                    "bad-annotation", f"annotation {OVNK_POD_NETWORKS_ANNOTATION}[{network!r}] is not an object"
                )
            mac = entry.get("mac_address")
            if mac is not None:
                return validate_mac(_str(mac, f"{OVNK_POD_NETWORKS_ANNOTATION}[{network!r}].mac_address"))
    if MULTUS_STATUS_ANNOTATION in annotations:
        status = _json_annotation(annotations, MULTUS_STATUS_ANNOTATION)
        if not isinstance(status, list):
            raise Invalid("bad-annotation", f"annotation {MULTUS_STATUS_ANNOTATION} is not a JSON list")
        with_mac = [e for e in status if isinstance(e, dict) and e.get("mac") not in (None, "")]
        chosen = next((e for e in with_mac if e.get("default") is True), with_mac[0] if with_mac else None)
        if chosen is not None:
            return validate_mac(_str(chosen.get("mac"), f"{MULTUS_STATUS_ANNOTATION}[].mac"))
    return None


def _pod_ports(spec: dict[str, Any]) -> tuple[PortSpec, ...]:
    ports: list[PortSpec] = []
    seen: set[tuple[int, str]] = set()
    for ci, container in enumerate(_list(spec.get("containers"), "spec.containers")):
        c = _dict(container, f"spec.containers[{ci}]")
        for pi, port in enumerate(_list(c.get("ports"), f"spec.containers[{ci}].ports")):
            field = f"spec.containers[{ci}].ports[{pi}]"
            p = _dict(port, field)
            number = p.get("containerPort")
            if isinstance(number, bool) or not isinstance(number, int):
                raise Invalid("bad-port", f"{field}.containerPort is {_type_name(number)}, expected an integer")
            if not 0 < number < 65536:
                raise Invalid("bad-port", f"{field}.containerPort {number} is out of range 1-65535")
            proto = _str(p.get("protocol"), f"{field}.protocol", default="TCP").lower()
            name = _str(p.get("name"), f"{field}.name")
            if (number, proto) in seen:
                continue
            seen.add((number, proto))
            ports.append(PortSpec(port=number, protocol=proto, name=name))
    return tuple(ports)


def normalize_pod(obj: Any, source: Source, *, network: str = "default") -> Endpoint | None:
    """A Pod → its Endpoint on ``network``, or None when it has none.

    None for: hostNetwork pods, finished pods (phase Succeeded/Failed), pods
    not scheduled yet (no ``spec.nodeName``).  A scheduled pod without an IP
    yet yields an Endpoint with ``ips=()`` (OVN allocates).  ``node`` is the
    node *name*; the adapter substitutes the node's chassis.
    """
    pod = _check_kind(obj, "Pod")
    meta = _dict(pod.get("metadata"), "metadata", required=True)
    uid = _name(meta.get("uid"), "metadata.uid")
    name = _name(meta.get("name"), "metadata.name")
    namespace = _name(meta.get("namespace"), "metadata.namespace") if meta.get("namespace") is not None else "default"
    labels = _str_map(meta.get("labels"), "metadata.labels")
    annotations = _str_map(meta.get("annotations"), "metadata.annotations")
    spec = _dict(pod.get("spec"), "spec", required=True)
    status = _dict(pod.get("status"), "status")

    host_network = spec.get("hostNetwork", False)
    if not isinstance(host_network, bool):
        raise Invalid("bad-field", f"spec.hostNetwork is {_type_name(host_network)}, expected a boolean")
    phase = _str(status.get("phase"), "status.phase", default="Pending")
    if not phase or _CTRL.search(phase) or len(phase) > 63:
        raise Invalid("bad-field", f"status.phase {phase[:80]!r} is not a phase")
    state = phase.lower()
    node = _str(spec.get("nodeName"), "spec.nodeName")
    ips = _pod_ips(status)
    mac = _pod_mac(annotations, network)
    ports = _pod_ports(spec)
    if host_network or state in _DONE_PHASES or not node:
        return None
    ep = Endpoint(
        source=source,
        uid=uid,
        namespace=namespace,
        name=name,
        kind="pod",
        network=network,
        node=node,
        ips=ips,
        mac=mac,
        labels=dict(labels),
        ports=ports,
        state=state,
    )
    validate(ep)
    return ep


# ---------------------------------------------------------------- namespaces, nodes
def namespace_labels(obj: Any) -> tuple[str, dict[str, str]]:
    """A Namespace → (name, labels)."""
    ns = _check_kind(obj, "Namespace")
    meta = _dict(ns.get("metadata"), "metadata", required=True)
    name = _name(meta.get("name"), "metadata.name")
    labels = _str_map(meta.get("labels"), "metadata.labels")
    for k in labels:
        if not k or len(k) > 317 or _CTRL.search(k):
            raise Invalid("bad-label", f"label key {k[:80]!r} is empty, too long or has control characters")
    return name, dict(labels)


def node_chassis(obj: Any) -> tuple[str, str]:
    """A Node → (name, chassis): the ``k8s.ovn.org/node-chassis-id`` label or
    annotation when present, else the node name."""
    node = _check_kind(obj, "Node")
    meta = _dict(node.get("metadata"), "metadata", required=True)
    name = _name(meta.get("name"), "metadata.name")
    labels = _str_map(meta.get("labels"), "metadata.labels")
    annotations = _str_map(meta.get("annotations"), "metadata.annotations")
    chassis = labels.get(CHASSIS_KEY) or annotations.get(CHASSIS_KEY) or name
    if len(chassis) > 253 or _CTRL.search(chassis) or any(c.isspace() for c in chassis):
        raise Invalid("bad-chassis", f"{CHASSIS_KEY} {chassis[:80]!r} of node {name!r} is not a chassis name")
    return name, chassis


# ---------------------------------------------------------------- watch events
def parse_watch_event(value: Any) -> dict[str, Any]:
    """Validate one decoded watch event ``{"type": ..., "object": {...}}``."""
    if not isinstance(value, dict):
        raise Invalid("bad-event", f"watch event is {_type_name(value)}, expected an object")
    typ = value.get("type")
    if typ not in WATCH_TYPES:
        raise Invalid("bad-event", f"watch event type {str(typ)[:40]!r} is not one of {', '.join(sorted(WATCH_TYPES))}")
    if not isinstance(value.get("object"), dict):
        raise Invalid("bad-event", f"watch {typ} event has no object")
    return value


def watch_error(event: dict[str, Any]) -> Invalid:
    """The :class:`Invalid` an ``ERROR`` event stands for: reason ``expired``
    for 410 (Gone/Expired: relist), ``watch-error`` otherwise."""
    status = event.get("object")
    status = status if isinstance(status, dict) else {}
    code = status.get("code")
    message = status.get("message")
    text = f"watch error {code}: {status.get('reason')}: {message if isinstance(message, str) else ''}"
    if code == 410 or status.get("reason") in ("Expired", "Gone"):
        return Invalid("expired", text)
    return Invalid("watch-error", text)


# ---------------------------------------------------------------- text
def _expand(value: Any, where: str) -> Iterator[dict[str, Any] | Invalid]:
    """One decoded document → objects/events: lists and ``*List`` kinds expanded."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from _expand(item, f"{where}[{i}]")
        return
    if not isinstance(value, dict):
        yield Invalid("not-object", f"{where} is {_type_name(value)}, expected an object")
        return
    if "type" in value and "object" in value:
        try:
            yield parse_watch_event(value)
        except Invalid as exc:
            yield exc
        return
    kind = value.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and "items" in value:
        items = value.get("items")
        if items is None:
            return
        if not isinstance(items, list):
            yield Invalid("bad-field", f"{where}: {kind}.items is {_type_name(items)}, expected a list")
            return
        item_kind = kind[: -len("List")]
        for i, item in enumerate(items):
            if isinstance(item, dict):
                item = dict(item)
                if item_kind and "kind" not in item:
                    item["kind"] = item_kind
                if "apiVersion" not in item and isinstance(value.get("apiVersion"), str):
                    item["apiVersion"] = value["apiVersion"]
                if "kind" not in item:
                    yield Invalid("missing-field", f"{where}.items[{i}]: kind is missing")
                    continue
                yield item
            else:
                yield Invalid("not-object", f"{where}.items[{i}] is {_type_name(item)}, expected an object")
        return
    yield value


def _parse_json(text: str) -> Iterator[dict[str, Any] | Invalid] | None:
    """JSON values separated by whitespace (one document, JSON lines, or a
    pretty-printed watch stream).  None when the first value is not JSON."""
    decoder = json.JSONDecoder()
    pos = len(text) - len(text.lstrip())
    try:
        first, end = decoder.raw_decode(text, pos)
    except RecursionError:
        return iter([Invalid("too-deep", "document is nested too deeply")])
    except ValueError:
        return None

    def gen(first: Any, end: int) -> Iterator[dict[str, Any] | Invalid]:
        n = 1
        yield from _expand(first, "document 1")
        pos = end
        while True:
            rest = text[pos:]
            stripped = rest.lstrip()
            if not stripped:
                return
            pos += len(rest) - len(stripped)
            n += 1
            line = text.count("\n", 0, pos) + 1
            try:
                value, pos = decoder.raw_decode(text, pos)
            except (ValueError, RecursionError) as exc:
                yield Invalid("bad-json", f"line {line}: not JSON: {str(exc).splitlines()[0][:200]}")
                nxt = text.find("\n{", pos)  # resynchronize at the next line that opens an object
                if nxt < 0:
                    return
                pos = nxt + 1
                continue
            yield from _expand(value, f"document {n} (line {line})")

    return gen(first, end)


def _yaml_documents(text: str) -> Iterator[tuple[int, str]]:
    """Split a multi-document YAML stream on ``---``/``...`` lines, so that a
    bad document does not hide the ones after it."""
    start, buf = 1, list[str]()
    for n, line in enumerate(text.splitlines(), 1):
        if _YAML_SEPARATOR.match(line):
            if any(b.strip() and not b.lstrip().startswith("#") for b in buf):
                yield start, "\n".join(buf)
            start, buf = n + 1, []
            rest = line[3:].strip()
            if line.startswith("---") and rest and not rest.startswith("#"):
                buf.append(rest)  # "--- {a: 1}"
        else:
            buf.append(line)
    if any(b.strip() and not b.lstrip().startswith("#") for b in buf):
        yield start, "\n".join(buf)


def _parse_yaml(text: str) -> Iterator[dict[str, Any] | Invalid]:
    import yaml  # only text parsing needs PyYAML

    for line, doc in _yaml_documents(text):
        try:
            value = yaml.safe_load(doc)
        except (yaml.YAMLError, RecursionError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            yield Invalid("bad-yaml", f"document at line {line}: not YAML: {first[:200]}")
            continue
        if value is None:
            continue
        yield from _expand(value, f"document at line {line}")


def parse_documents(text: str) -> Iterator[dict[str, Any] | Invalid]:
    """Kubernetes text → API objects / watch events, one at a time.

    Accepts JSON (one object, an array, JSON lines, a pretty-printed watch
    stream with objects split across lines and blank lines), and YAML (block
    or flow style, multi-document).  ``*List`` kinds are expanded into their
    items (``kind`` filled from the list kind); watch events
    (``{"type", "object"}``) are yielded whole.  Each bad piece yields an
    :class:`Invalid` and parsing goes on.
    """
    if not text.strip():
        yield Invalid("empty", "no document")
        return
    parsed = _parse_json(text) if text.lstrip()[:1] in ("{", "[") else None
    if parsed is None:
        parsed = _parse_yaml(text)
    yield from parsed
