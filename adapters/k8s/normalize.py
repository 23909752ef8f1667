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

import ipaddress
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from core.model import (
    Endpoint,
    Expr,
    Invalid,
    LBRule,
    Namespace,
    Peer,
    Policy,
    PolicyPort,
    PortSpec,
    Rule,
    Selector,
    Service,
    Source,
    validate,
    validate_ip,
    validate_mac,
)

from .podnet import pod_subnet

__all__ = [
    "CHASSIS_KEY",
    "DEFAULT_AFFINITY_TIMEOUT",
    "MULTUS_STATUS_ANNOTATION",
    "OVNK_POD_NETWORKS_ANNOTATION",
    "SERVICE_NAME_LABEL",
    "WATCH_TYPES",
    "EndpointSliceInfo",
    "SlicePort",
    "namespace_labels",
    "node_chassis",
    "node_internal_ips",
    "node_pod_cidrs",
    "normalize_namespace",
    "normalize_pod",
    "normalize_policy",
    "normalize_service",
    "object_ref",
    "object_uid",
    "parse_documents",
    "parse_endpoint_slice",
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
#: EndpointSlice label naming the Service a slice belongs to.
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
#: Kubernetes' default of ``sessionAffinityConfig.clientIP.timeoutSeconds`` (3 hours).
DEFAULT_AFFINITY_TIMEOUT = 10800

WATCH_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"})
_DONE_PHASES = frozenset({"succeeded", "failed"})
_SPACE = re.compile(r"\s")
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
    if len(text) > 253 or _CTRL.search(text) or _SPACE.search(text):
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


def object_uid(obj: Any, kind: str) -> str:
    """``metadata.uid`` of an object of ``kind`` (validated); raises :class:`Invalid`."""
    o = _check_kind(obj, kind)
    meta = _dict(o.get("metadata"), "metadata", required=True)
    return _name(meta.get("uid"), "metadata.uid")


def _int(value: Any, field: str, *, lo: int = 1, hi: int = 65535, reason: str = "bad-port") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(reason, f"{field} is {_type_name(value)}, expected an integer")
    if not lo <= value <= hi:
        raise Invalid(reason, f"{field} {value} is out of range {lo}-{hi}")
    return value


def _protocol(value: Any, field: str) -> str:
    proto = _str(value, field, default="TCP").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise Invalid("bad-protocol", f"{field} {proto[:40]!r} is not TCP, UDP or SCTP")
    return proto


def _namespace_of(meta: dict[str, Any]) -> str:
    return _name(meta.get("namespace"), "metadata.namespace") if meta.get("namespace") is not None else "default"


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
    if len(chassis) > 253 or _CTRL.search(chassis) or _SPACE.search(chassis):
        raise Invalid("bad-chassis", f"{CHASSIS_KEY} {chassis[:80]!r} of node {name!r} is not a chassis name")
    return name, chassis


def normalize_namespace(obj: Any, source: Source) -> Namespace:
    """A Namespace → its canonical :class:`~core.model.Namespace` (name + labels)."""
    name, labels = namespace_labels(obj)
    ns = Namespace(source=source, name=name, labels=labels)
    validate(ns)
    return ns


def node_internal_ips(obj: Any) -> tuple[str, ...]:
    """A Node → its ``status.addresses`` of type InternalIP (canonical, in order)."""
    node = _check_kind(obj, "Node")
    status = _dict(node.get("status"), "status")
    ips: list[str] = []
    for i, entry in enumerate(_list(status.get("addresses"), "status.addresses")):
        field = f"status.addresses[{i}]"
        e = _dict(entry, field)
        if _str(e.get("type"), f"{field}.type") != "InternalIP":
            continue
        ip = validate_ip(_str(e.get("address"), f"{field}.address", required=True), f"{field}.address")
        if ip not in ips:
            ips.append(ip)
    return tuple(ips)


def node_pod_cidrs(obj: Any) -> tuple[str, ...]:
    """A Node → its pod CIDRs: ``spec.podCIDRs``, else ``spec.podCIDR`` (nodes
    from before dual-stack), in the node's order; ``()`` while none is
    allocated.  Host bits are cleared (the API server accepts ``10.0.0.1/24``);
    at most one CIDR per family, as Kubernetes allows; each must be usable by
    pods (:func:`adapters.k8s.podnet.pod_subnet`).  Raises :class:`Invalid`."""
    node = _check_kind(obj, "Node")
    spec = _dict(node.get("spec"), "spec")
    values = _list(spec.get("podCIDRs"), "spec.podCIDRs")
    fields = [f"spec.podCIDRs[{i}]" for i in range(len(values))]
    if not values:
        one = _str(spec.get("podCIDR"), "spec.podCIDR")
        values, fields = ([one], ["spec.podCIDR"]) if one else ([], [])
    out: list[str] = []
    families: set[int] = set()
    for field, value in zip(fields, values, strict=True):
        net = pod_subnet(_str(value, field, required=True), field)
        if net.version in families:
            raise Invalid("bad-subnet", f"spec.podCIDRs has two IPv{net.version} CIDRs (at most one per family)")
        families.add(net.version)
        out.append(str(net))
    return tuple(out)


# ---------------------------------------------------------------- endpoint slices
@dataclass(frozen=True)
class SlicePort:
    name: str
    port: int
    protocol: str


@dataclass(frozen=True)
class EndpointSliceInfo:
    """What an EndpointSlice contributes to its Service: the ready addresses
    (canonical, of ``family`` 4 or 6; none for FQDN slices) and the ports.
    ``service`` is the ``kubernetes.io/service-name`` label ("" = none)."""

    namespace: str
    name: str
    service: str
    family: int  # 4, 6, or 0 for FQDN
    ports: tuple[SlicePort, ...]
    addresses: tuple[str, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


_ADDRESS_TYPES = {"IPv4": 4, "IPv6": 6, "FQDN": 0}


def parse_endpoint_slice(obj: Any) -> EndpointSliceInfo:
    """A discovery.k8s.io/v1 EndpointSlice → :class:`EndpointSliceInfo`.

    Only endpoints whose ``conditions.ready`` is true (absent = ready) are kept;
    an address of the wrong family, a bad port or condition is :class:`Invalid`.
    Ports without a number (``port: null`` = "all ports") are skipped.
    """
    sl = _check_kind(obj, "EndpointSlice")
    meta = _dict(sl.get("metadata"), "metadata", required=True)
    name = _name(meta.get("name"), "metadata.name")
    namespace = _namespace_of(meta)
    labels = _str_map(meta.get("labels"), "metadata.labels")
    service = labels.get(SERVICE_NAME_LABEL, "")
    if service:
        service = _name(service, f"label {SERVICE_NAME_LABEL}")
    address_type = _str(sl.get("addressType"), "addressType", required=True)
    if address_type not in _ADDRESS_TYPES:
        raise Invalid("bad-field", f"addressType {address_type[:40]!r} is not IPv4, IPv6 or FQDN")
    family = _ADDRESS_TYPES[address_type]
    ports: list[SlicePort] = []
    for i, entry in enumerate(_list(sl.get("ports"), "ports")):
        field = f"ports[{i}]"
        p = _dict(entry, field)
        if p.get("port") is None:
            continue
        ports.append(
            SlicePort(
                name=_str(p.get("name"), f"{field}.name"),
                port=_int(p.get("port"), f"{field}.port"),
                protocol=_protocol(p.get("protocol"), f"{field}.protocol"),
            )
        )
    addresses: list[str] = []
    for i, entry in enumerate(_list(sl.get("endpoints"), "endpoints")):
        field = f"endpoints[{i}]"
        ep = _dict(entry, field)
        conditions = _dict(ep.get("conditions"), f"{field}.conditions")
        ready = conditions.get("ready")
        if ready is not None and not isinstance(ready, bool):
            raise Invalid("bad-field", f"{field}.conditions.ready is {_type_name(ready)}, expected a boolean")
        raw = _list(ep.get("addresses"), f"{field}.addresses")
        if family == 0:
            continue  # FQDN: not programmable, ignored
        for j, a in enumerate(raw):
            afield = f"{field}.addresses[{j}]"
            ip = validate_ip(_str(a, afield, required=True), afield)
            if ipaddress.ip_address(ip).version != family:
                raise Invalid("bad-ip", f"{afield} {ip} is not an {address_type} address")
            if ready is not False and ip not in addresses:
                addresses.append(ip)
    return EndpointSliceInfo(namespace, name, service, family, tuple(ports), tuple(addresses))


# ---------------------------------------------------------------- services
_SERVICE_TYPES = frozenset({"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"})


@dataclass(frozen=True)
class _ServicePort:
    name: str
    port: int
    protocol: str
    target: int | str
    node_port: int | None


def _service_ports(spec: dict[str, Any]) -> list[_ServicePort]:
    out: list[_ServicePort] = []
    for i, entry in enumerate(_list(spec.get("ports"), "spec.ports")):
        field = f"spec.ports[{i}]"
        p = _dict(entry, field)
        port = _int(p.get("port"), f"{field}.port")
        target_raw = p.get("targetPort")
        target: int | str
        if target_raw is None or target_raw == 0:
            target = port
        elif isinstance(target_raw, str):
            target = target_raw
            if not target or len(target) > 63 or _CTRL.search(target) or _SPACE.search(target):
                raise Invalid("bad-port", f"{field}.targetPort {target[:80]!r} is not a port name")
        else:
            target = _int(target_raw, f"{field}.targetPort")
        node_port_raw = p.get("nodePort")
        node_port = None if node_port_raw in (None, 0) else _int(node_port_raw, f"{field}.nodePort")
        out.append(
            _ServicePort(
                name=_str(p.get("name"), f"{field}.name"),
                port=port,
                protocol=_protocol(p.get("protocol"), f"{field}.protocol"),
                target=target,
                node_port=node_port,
            )
        )
    return out


def _ip_list(values: list[Any], field: str) -> list[str]:
    out: list[str] = []
    for i, v in enumerate(values):
        ip = validate_ip(_str(v, f"{field}[{i}]", required=True), f"{field}[{i}]")
        if ip not in out:
            out.append(ip)
    return out


def _affinity(spec: dict[str, Any]) -> int:
    affinity = _str(spec.get("sessionAffinity"), "spec.sessionAffinity", default="None")
    if affinity == "None":
        return 0
    if affinity != "ClientIP":
        raise Invalid("bad-affinity", f"spec.sessionAffinity {affinity[:40]!r} is not None or ClientIP")
    cfg = _dict(spec.get("sessionAffinityConfig"), "spec.sessionAffinityConfig")
    client_ip = _dict(cfg.get("clientIP"), "spec.sessionAffinityConfig.clientIP")
    timeout = client_ip.get("timeoutSeconds")
    if timeout is None:
        return DEFAULT_AFFINITY_TIMEOUT
    return _int(timeout, "spec.sessionAffinityConfig.clientIP.timeoutSeconds", hi=86400, reason="bad-affinity")


def _hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _backend_order(backend: str) -> tuple[int, bytes, int]:
    host, _, port = backend.rpartition(":")
    ip = ipaddress.ip_address(host.strip("[]"))
    return (ip.version, ip.packed, int(port))


def normalize_service(
    svc: Any,
    slices: Iterable[EndpointSliceInfo | dict[str, Any]],
    node_ips: Iterable[str],
    source: Source,
    network: str = "default",
) -> Service | None:
    """A Service joined with its EndpointSlices → a resolved :class:`~core.model.Service`.

    ``slices`` may hold slices of other services (they are filtered by namespace
    and ``kubernetes.io/service-name``), parsed or raw.  ``node_ips`` are the
    InternalIPs of every node: NodePort and LoadBalancer services get a rule
    ``node_ip:nodePort`` per node.  One :class:`~core.model.LBRule` per (vip,
    service port), VIPs = ``spec.clusterIPs`` (or ``clusterIP``) + ``externalIPs``
    (+ node IPs); backends = ready addresses of the slices of the VIP's family,
    port = numeric ``targetPort`` (default ``port``), or, for a named one, the
    port of the slice port named like the service port (slices without it
    contribute nothing).  None for headless and ExternalName services (still
    validated).
    """
    obj = _check_kind(svc, "Service")
    meta = _dict(obj.get("metadata"), "metadata", required=True)
    uid = _name(meta.get("uid"), "metadata.uid")
    name = _name(meta.get("name"), "metadata.name")
    namespace = _namespace_of(meta)
    spec = _dict(obj.get("spec"), "spec", required=True)
    typ = _str(spec.get("type"), "spec.type", default="ClusterIP")
    if typ not in _SERVICE_TYPES:
        raise Invalid("bad-field", f"spec.type {typ[:40]!r} is not ClusterIP, NodePort, LoadBalancer or ExternalName")
    if typ == "ExternalName":
        _str(spec.get("externalName"), "spec.externalName", required=True)
        return None
    ports = _service_ports(spec)
    affinity = _affinity(spec)
    raw_cluster = _list(spec.get("clusterIPs"), "spec.clusterIPs")
    if not raw_cluster and spec.get("clusterIP") not in (None, ""):
        raw_cluster = [spec.get("clusterIP")]
    if raw_cluster and raw_cluster[0] == "None":
        return None  # headless: no VIP, clients resolve the pods through DNS
    vips = _ip_list(raw_cluster, "spec.clusterIPs")
    for ip in _ip_list(_list(spec.get("externalIPs"), "spec.externalIPs"), "spec.externalIPs"):
        if ip not in vips:
            vips.append(ip)
    if typ == "LoadBalancer":  # the addresses the cloud (or MetalLB) gave it: VIPs on the fabric's gateway
        lb = _dict(_dict(obj.get("status"), "status").get("loadBalancer"), "status.loadBalancer")
        for i, ing in enumerate(_list(lb.get("ingress"), "status.loadBalancer.ingress")):
            lb_ip = _dict(ing, f"status.loadBalancer.ingress[{i}]").get("ip")
            if lb_ip in (None, ""):
                continue  # a hostname-only ingress (AWS ELB) has no address to serve
            for canon in _ip_list([lb_ip], f"status.loadBalancer.ingress[{i}].ip"):
                if canon not in vips:
                    vips.append(canon)
    nodes = sorted({validate_ip(ip, "node ip") for ip in node_ips}, key=lambda ip: _backend_order(_hostport(ip, 1)))

    mine: list[EndpointSliceInfo] = []
    for sl in slices:
        info = sl if isinstance(sl, EndpointSliceInfo) else parse_endpoint_slice(sl)
        if info.namespace == namespace and info.service == name and info.family:
            mine.append(info)

    def backends(family: int, sp: _ServicePort) -> tuple[str, ...]:
        out: set[str] = set()
        for info in mine:
            if info.family != family:
                continue
            if isinstance(sp.target, int):
                port: int | None = sp.target
            else:
                port = next((p.port for p in info.ports if p.name == sp.name and p.protocol == sp.protocol), None)
            if port is not None:
                out.update(_hostport(a, port) for a in info.addresses)
        return tuple(sorted(out, key=_backend_order))

    rules: list[LBRule] = []
    seen: set[tuple[str, str, int]] = set()

    def add(vip: str, port: int, sp: _ServicePort) -> None:
        if (sp.protocol, vip, port) in seen:
            return
        seen.add((sp.protocol, vip, port))
        family = ipaddress.ip_address(vip).version
        rules.append(LBRule(protocol=sp.protocol, vip=vip, port=port, backends=backends(family, sp)))

    for sp in ports:
        for vip in vips:
            add(vip, sp.port, sp)
        if typ in ("NodePort", "LoadBalancer") and sp.node_port is not None:
            for ip in nodes:
                add(ip, sp.node_port, sp)
    service = Service(
        source=source,
        uid=uid,
        namespace=namespace,
        name=name,
        network=network,
        rules=tuple(rules),
        affinity_timeout=affinity,
    )
    validate(service)
    return service


# ---------------------------------------------------------------- network policies
_POLICY_TYPES = ("Ingress", "Egress")


def _selector(value: Any, field: str) -> Selector:
    sel = _dict(value, field)
    labels = _str_map(sel.get("matchLabels"), f"{field}.matchLabels")
    exprs: list[Expr] = []
    for i, entry in enumerate(_list(sel.get("matchExpressions"), f"{field}.matchExpressions")):
        efield = f"{field}.matchExpressions[{i}]"
        e = _dict(entry, efield)
        values = _list(e.get("values"), f"{efield}.values")
        for j, v in enumerate(values):
            if not isinstance(v, str):
                raise Invalid("bad-selector", f"{efield}.values[{j}] is {_type_name(v)}, expected a string")
        exprs.append(
            Expr(
                key=_str(e.get("key"), f"{efield}.key", required=True),
                operator=_str(e.get("operator"), f"{efield}.operator", required=True),
                values=tuple(values),
            )
        )
    return Selector(match_labels=dict(labels), match_expressions=tuple(exprs))


def _peer(value: Any, field: str) -> Peer:
    p = _dict(value, field)
    pod = _selector(p["podSelector"], f"{field}.podSelector") if p.get("podSelector") is not None else None
    ns = (
        _selector(p["namespaceSelector"], f"{field}.namespaceSelector")
        if p.get("namespaceSelector") is not None
        else None
    )
    cidr: str | None = None
    excepts: tuple[str, ...] = ()
    if p.get("ipBlock") is not None:
        block = _dict(p["ipBlock"], f"{field}.ipBlock")
        cidr = _str(block.get("cidr"), f"{field}.ipBlock.cidr", required=True)
        ex = _list(block.get("except"), f"{field}.ipBlock.except")
        excepts = tuple(_str(x, f"{field}.ipBlock.except[{i}]", required=True) for i, x in enumerate(ex))
        for i, c in enumerate((cidr, *excepts)):
            where = f"{field}.ipBlock.cidr" if i == 0 else f"{field}.ipBlock.except[{i - 1}]"
            try:
                ipaddress.ip_network(c, strict=False)
            except ValueError:
                raise Invalid("bad-cidr", f"{where} {c[:60]!r} is not a CIDR") from None
            if "/" not in c:
                raise Invalid("bad-cidr", f"{where} {c[:60]!r} has no prefix length")
    return Peer(pod_selector=pod, namespace_selector=ns, cidr=cidr, except_cidrs=excepts)


def _policy_port(value: Any, field: str) -> PolicyPort:
    p = _dict(value, field)
    raw = p.get("port")
    port: int | str | None
    if raw is None or isinstance(raw, str):
        port = raw
    else:
        port = _int(raw, f"{field}.port")
    end_raw = p.get("endPort")
    end = None if end_raw is None else _int(end_raw, f"{field}.endPort")
    if end is not None and not isinstance(port, int):
        raise Invalid("bad-port", f"{field}.endPort needs a numeric port")
    if end is not None and isinstance(port, int) and end < port:
        raise Invalid("bad-port", f"{field}.endPort {end} is below port {port}")
    return PolicyPort(protocol=_protocol(p.get("protocol"), f"{field}.protocol"), port=port, end_port=end)


def _rules(spec: dict[str, Any], direction: str, peers_key: str) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    for i, entry in enumerate(_list(spec.get(direction), f"spec.{direction}")):
        field = f"spec.{direction}[{i}]"
        r = _dict(entry, field)
        peers = tuple(
            _peer(x, f"{field}.{peers_key}[{j}]") for j, x in enumerate(_list(r.get(peers_key), f"{field}.{peers_key}"))
        )
        ports = tuple(
            _policy_port(x, f"{field}.ports[{j}]") for j, x in enumerate(_list(r.get("ports"), f"{field}.ports"))
        )
        rules.append(Rule(peers=peers, ports=ports))
    return tuple(rules)


def normalize_policy(obj: Any, source: Source) -> Policy:
    """A networking.k8s.io/v1 NetworkPolicy → :class:`~core.model.Policy`.

    ``policyTypes`` absent or empty defaults as Kubernetes does: Ingress, plus
    Egress when ``spec.egress`` has rules.  A direction not in ``policyTypes`` is
    None (its rules, if any, are ignored, as Kubernetes does); a direction in
    effect without rules is ``()`` (default deny).
    """
    pol = _check_kind(obj, "NetworkPolicy")
    meta = _dict(pol.get("metadata"), "metadata", required=True)
    uid = _name(meta.get("uid"), "metadata.uid")
    name = _name(meta.get("name"), "metadata.name")
    namespace = _namespace_of(meta)
    spec = _dict(pol.get("spec"), "spec", required=True)
    pod_selector = _selector(spec.get("podSelector"), "spec.podSelector")
    types: list[str] = []
    for i, t in enumerate(_list(spec.get("policyTypes"), "spec.policyTypes")):
        if t not in _POLICY_TYPES:
            raise Invalid("bad-field", f"spec.policyTypes[{i}] {str(t)[:40]!r} is not Ingress or Egress")
        if t in types:
            raise Invalid("bad-field", f"spec.policyTypes[{i}] {t} appears twice")
        types.append(t)
    ingress = _rules(spec, "ingress", "from")
    egress = _rules(spec, "egress", "to")
    if not types:
        types = ["Ingress", "Egress"] if egress else ["Ingress"]
    policy = Policy(
        source=source,
        uid=uid,
        namespace=namespace,
        name=name,
        pod_selector=pod_selector,
        ingress=ingress if "Ingress" in types else None,
        egress=egress if "Egress" in types else None,
    )
    validate(policy)
    return policy


# ---------------------------------------------------------------- watch events
def parse_watch_event(value: Any) -> dict[str, Any]:
    """Validate one decoded watch event ``{"type": ..., "object": {...}}``."""
    if not isinstance(value, dict):
        raise Invalid("bad-event", f"watch event is {_type_name(value)}, expected an object")
    typ = value.get("type")
    if not isinstance(typ, str) or typ not in WATCH_TYPES:  # a list or an object is not hashable
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
