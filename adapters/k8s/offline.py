"""``hubctl normalize --from k8s``: Kubernetes payloads from files → canonical.

Accepts what :func:`adapters.k8s.normalize.parse_documents` accepts: JSON or
YAML manifests (multi-document, ``*List`` kinds) and captured watch streams.

* a Pod (or an ``ADDED``/``MODIFIED`` event of one) → its Endpoint, or nothing
  when it has none (hostNetwork, finished, unscheduled);
* a Namespace → its Namespace; a NetworkPolicy → its Policy;
* a Service → its resolved Service (nothing for headless and ExternalName
  services), joined with the EndpointSlices present in the same input (every
  file/stream is read whole first; the last state of each slice counts, a
  ``DELETED`` slice event removes it) and, for NodePort/LoadBalancer services,
  with the InternalIPs of the Nodes present in the input.  Without slices its
  rules have no backends;
* EndpointSlices and Nodes → nothing, but they are validated;
* a ``DELETED`` event → ``Delete`` of the Endpoint (``<network>/<uid>``), the
  Service or Policy (uid) or the Namespace (name); of a Node or an
  EndpointSlice → nothing;
* ``BOOKMARK`` events → nothing; ``ERROR`` events → an :class:`Invalid`
  (reason ``expired`` for 410, else ``watch-error``);
* any other kind → ``Invalid("unknown-kind")``.

Every input object that yields no canonical object and no Invalid is reported
to ``on_skip(reason, message)`` when given (``hubctl normalize`` prints one
line each): a Pod without an endpoint (``host-network``, ``finished``,
``unscheduled``), a headless or ExternalName Service (``headless``,
``external-name``), an EndpointSlice whose Service is not in the input
(``no-service``) or yields nothing (``service-skipped``), one without a Service
label or with FQDN addresses (``no-service``, ``fqdn``), a Node when no
NodePort/LoadBalancer Service of the input uses its addresses
(``node-unused``), a BOOKMARK (``bookmark``), a DELETED event of a kind that is
only joined (``deleted-join``), and an input with no object at all (``empty``).
A slice or Node that was joined into a Service of the input is not reported:
it is in that Service.  (A manifest without ``metadata.uid`` - one written by
hand rather than read back from the API server - is an Invalid, reason
``missing-field``: the hub keys every object by uid.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from core.model import Delete, Invalid, Object, Source

from .normalize import (
    SERVICE_NAME_LABEL,
    EndpointSliceInfo,
    namespace_labels,
    node_chassis,
    node_internal_ips,
    normalize_namespace,
    normalize_pod,
    normalize_policy,
    normalize_service,
    object_ref,
    object_uid,
    parse_documents,
    parse_endpoint_slice,
    pod_uid,
    watch_error,
)

__all__ = ["normalize_object", "normalize_text"]

_KINDS = "Pod, Namespace, Node, Service, EndpointSlice or NetworkPolicy"
_MISSING_UID = (
    "metadata.uid is missing (a manifest written by hand has none: the hub keys objects by uid;"
    " `kubectl get -o yaml` gives them)"
)

#: ``on_skip(reason, message)``: an input object that yields no canonical object.
OnSkip = Callable[[str, str], None]


class _Inputs:
    """What the whole input holds that single objects are joined with."""

    def __init__(self) -> None:
        self.slices: list[EndpointSliceInfo] = []
        self.node_ips: list[str] = []
        #: (namespace, name) of each Service in the input → why it yields nothing ("" = it yields one).
        self.services: dict[tuple[str, str], str] = {}
        self.node_ports = False  # a NodePort/LoadBalancer Service uses the nodes' addresses


def _field(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def _skip_pod(obj: dict[str, Any]) -> tuple[str, str]:
    spec, status = _field(obj, "spec"), _field(obj, "status")
    ref = object_ref(obj)
    if spec.get("hostNetwork") is True:
        return "host-network", f"Pod {ref}: uses hostNetwork (no attachment of its own)"
    phase = status.get("phase")
    if isinstance(phase, str) and phase.lower() in ("succeeded", "failed"):
        return "finished", f"Pod {ref}: has finished (phase {phase}): no endpoint"
    return "unscheduled", f"Pod {ref}: not scheduled to a node yet (no spec.nodeName): no endpoint"


def _service_skip_reason(obj: dict[str, Any]) -> str:
    spec = _field(obj, "spec")
    if spec.get("type") == "ExternalName":
        return "external-name"
    ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
    return "headless" if isinstance(ips, list) and ips and ips[0] == "None" else ""


def _skip_service(obj: dict[str, Any]) -> tuple[str, str]:
    ref = object_ref(obj)
    if _service_skip_reason(obj) == "external-name":
        return "external-name", f"Service {ref}: type ExternalName is a DNS alias, no VIP to balance"
    return "headless", f"Service {ref}: headless (clusterIP None): clients resolve its pods through DNS, no VIP"


def _skip_slice(obj: dict[str, Any], inputs: _Inputs) -> tuple[str, str] | None:
    """Why a (valid) EndpointSlice contributes to no Service of the input; None if it does."""
    info = parse_endpoint_slice(obj)
    ref = f"EndpointSlice {info.namespace}/{info.name}"
    if not info.service:
        return "no-service", f"{ref}: has no {SERVICE_NAME_LABEL} label (it belongs to no Service)"
    if info.family == 0:
        return "fqdn", f"{ref}: holds FQDN addresses (not programmable as backends)"
    svc = f"{info.namespace}/{info.service}"
    why = inputs.services.get((info.namespace, info.service))
    if why is None:
        return "no-service", f"{ref}: its Service {svc} is not in the input (give both to join them)"
    if why:
        what = "an ExternalName alias" if why == "external-name" else why
        return "service-skipped", f"{ref}: its Service {svc} is {what} (no load balancer to take the backends)"
    return None


def _where(obj: Any) -> str:
    ref = object_ref(obj)
    return f"{ref}: " if ref else ""


def normalize_object(
    obj: dict[str, Any],
    source: Source,
    *,
    network: str = "default",
    slices: Iterable[EndpointSliceInfo] = (),
    node_ips: Iterable[str] = (),
    on_skip: OnSkip | None = None,
    inputs: _Inputs | None = None,
) -> Iterator[Object | Invalid]:
    """One API object (not an event) → its canonical objects, or an Invalid.
    ``slices`` and ``node_ips`` are what a Service is joined with; ``on_skip``
    hears of a valid object that yields nothing (``inputs``: the rest of the
    input, to tell whether a slice or a Node was joined into a Service)."""
    kind = obj.get("kind")
    skip: tuple[str, str] | None = None
    try:
        if kind is None:
            raise Invalid("missing-field", "kind is missing")
        if kind == "Pod":
            ep = normalize_pod(obj, source, network=network)
            if ep is not None:
                yield ep
            else:
                skip = _skip_pod(obj)
        elif kind == "Namespace":
            yield normalize_namespace(obj, source)
        elif kind == "Node":
            name, _ = node_chassis(obj)
            node_internal_ips(obj)
            if inputs is not None and not inputs.node_ports:
                skip = (
                    "node-unused",
                    f"Node {name}: only NodePort/LoadBalancer Services use node addresses, and the input has none",
                )
        elif kind == "Service":
            svc = normalize_service(obj, slices, node_ips, source, network)
            if svc is not None:
                yield svc
            else:
                skip = _skip_service(obj)
        elif kind == "EndpointSlice":
            parse_endpoint_slice(obj)
            if inputs is not None:
                skip = _skip_slice(obj, inputs)
        elif kind == "NetworkPolicy":
            yield normalize_policy(obj, source)
        else:
            raise Invalid("unknown-kind", f"kind {str(kind)[:60]!r} is not {_KINDS}")
    except Invalid as exc:
        msg = _MISSING_UID if exc.reason == "missing-field" and str(exc) == "metadata.uid is missing" else str(exc)
        yield Invalid(exc.reason, f"{_where(obj)}{msg}")
        return
    if skip is not None and on_skip is not None:
        on_skip(*skip)


def _deleted(obj: dict[str, Any], source: Source, network: str) -> Delete | None:
    """The Delete a DELETED event of ``obj`` stands for (None: not a deletable
    kind, to be validated like any object); raises :class:`Invalid`."""
    kind = obj.get("kind")
    if kind is None:
        raise Invalid("missing-field", "kind is missing")
    if kind == "Pod":
        return Delete(source=source, kind="endpoint", key=f"{network}/{pod_uid(obj)}")
    if kind == "Service":
        return Delete(source=source, kind="service", key=object_uid(obj, "Service"))
    if kind == "NetworkPolicy":
        return Delete(source=source, kind="policy", key=object_uid(obj, "NetworkPolicy"))
    if kind == "Namespace":
        return Delete(source=source, kind="namespace", key=namespace_labels(obj)[0])
    return None


def _event(
    ev: dict[str, Any], source: Source, network: str, inputs: _Inputs, on_skip: OnSkip | None
) -> Iterator[Object | Delete | Invalid]:
    typ, obj = ev["type"], ev["object"]
    if typ == "ERROR":
        yield watch_error(ev)
        return
    if typ == "BOOKMARK":
        if on_skip is not None:
            meta = obj.get("metadata")
            rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
            on_skip("bookmark", f"BOOKMARK event (resourceVersion {rv}): a watch position, no object")
        return
    if typ == "DELETED":
        try:
            delete = _deleted(obj, source, network)
        except Invalid as exc:
            msg = _MISSING_UID if exc.reason == "missing-field" and str(exc) == "metadata.uid is missing" else str(exc)
            yield Invalid(exc.reason, f"DELETED {_where(obj)}{msg}")
            return
        if delete is not None:
            yield delete
            return
        bad = False
        for item in normalize_object(obj, source, network=network, slices=inputs.slices, node_ips=inputs.node_ips):
            if isinstance(item, Invalid):
                bad = True
                yield item
        if not bad and on_skip is not None:
            on_skip(
                "deleted-join",
                f"DELETED {obj.get('kind')} {object_ref(obj)}: not a canonical object of its own"
                " (only joined into Services; the input's last state of each is used)",
            )
        return
    yield from normalize_object(
        obj, source, network=network, slices=inputs.slices, node_ips=inputs.node_ips, on_skip=on_skip, inputs=inputs
    )


def _join_inputs(pieces: list[dict[str, Any] | Invalid]) -> _Inputs:
    """The EndpointSlices (last state of each), node InternalIPs and Services of the input."""
    slices: dict[tuple[str, str], EndpointSliceInfo] = {}
    nodes: dict[str, tuple[str, ...]] = {}
    inputs = _Inputs()
    for piece in pieces:
        if isinstance(piece, Invalid):
            continue
        event = "type" in piece and "object" in piece
        obj = piece["object"] if event else piece
        typ = piece["type"] if event else "ADDED"
        if typ in ("ADDED", "MODIFIED", "DELETED") and obj.get("kind") == "Service":
            meta = obj.get("metadata")
            meta = meta if isinstance(meta, dict) else {}
            key = (str(meta.get("namespace") or "default"), str(meta.get("name")))
            if typ == "DELETED":
                inputs.services.pop(key, None)
            else:
                inputs.services[key] = _service_skip_reason(obj)
                spec = obj.get("spec")
                if isinstance(spec, dict) and spec.get("type") in ("NodePort", "LoadBalancer"):
                    inputs.node_ports = True
            continue
        if typ not in ("ADDED", "MODIFIED", "DELETED") or obj.get("kind") not in ("EndpointSlice", "Node"):
            continue
        try:
            if obj["kind"] == "EndpointSlice":
                info = parse_endpoint_slice(obj)
                if typ == "DELETED":
                    slices.pop(info.key, None)
                else:
                    slices[info.key] = info
            else:
                name, _ = node_chassis(obj)
                if typ == "DELETED":
                    nodes.pop(name, None)
                else:
                    nodes[name] = node_internal_ips(obj)
        except Invalid:
            continue  # reported when the piece itself is normalized
    inputs.slices = list(slices.values())
    inputs.node_ips = [ip for ips in nodes.values() for ip in ips]
    return inputs


def normalize_text(
    text: str, source: Source, *, network: str = "default", on_skip: OnSkip | None = None
) -> Iterator[Object | Delete | Invalid]:
    """Offline normalizer (entry point ``ovn_hub.normalizers``: ``k8s``); see the
    module docstring for ``on_skip``."""
    pieces = list(parse_documents(text))
    if not pieces and on_skip is not None:
        on_skip("empty", "no object in the input (an empty list, or only comments)")
    inputs = _join_inputs(pieces)
    for piece in pieces:
        if isinstance(piece, Invalid):
            yield piece
        elif "type" in piece and "object" in piece:
            yield from _event(piece, source, network, inputs, on_skip)
        else:
            yield from normalize_object(
                piece,
                source,
                network=network,
                slices=inputs.slices,
                node_ips=inputs.node_ips,
                on_skip=on_skip,
                inputs=inputs,
            )
