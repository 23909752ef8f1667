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
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from core.model import Delete, Invalid, Object, Source

from .normalize import (
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
) -> Iterator[Object | Invalid]:
    """One API object (not an event) → its canonical objects, or an Invalid.
    ``slices`` and ``node_ips`` are what a Service is joined with."""
    kind = obj.get("kind")
    try:
        if kind is None:
            raise Invalid("missing-field", "kind is missing")
        if kind == "Pod":
            ep = normalize_pod(obj, source, network=network)
            if ep is not None:
                yield ep
        elif kind == "Namespace":
            yield normalize_namespace(obj, source)
        elif kind == "Node":
            node_chassis(obj)
            node_internal_ips(obj)
        elif kind == "Service":
            svc = normalize_service(obj, slices, node_ips, source, network)
            if svc is not None:
                yield svc
        elif kind == "EndpointSlice":
            parse_endpoint_slice(obj)
        elif kind == "NetworkPolicy":
            yield normalize_policy(obj, source)
        else:
            raise Invalid("unknown-kind", f"kind {str(kind)[:60]!r} is not {_KINDS}")
    except Invalid as exc:
        yield Invalid(exc.reason, f"{_where(obj)}{exc}")


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
    ev: dict[str, Any], source: Source, network: str, slices: list[EndpointSliceInfo], node_ips: list[str]
) -> Iterator[Object | Delete | Invalid]:
    typ, obj = ev["type"], ev["object"]
    if typ == "ERROR":
        yield watch_error(ev)
        return
    if typ == "BOOKMARK":
        return
    if typ == "DELETED":
        try:
            delete = _deleted(obj, source, network)
        except Invalid as exc:
            yield Invalid(exc.reason, f"DELETED {_where(obj)}{exc}")
            return
        if delete is not None:
            yield delete
            return
    for item in normalize_object(obj, source, network=network, slices=slices, node_ips=node_ips):
        if isinstance(item, Invalid) or typ != "DELETED":
            yield item


def _join_inputs(pieces: list[dict[str, Any] | Invalid]) -> tuple[list[EndpointSliceInfo], list[str]]:
    """The EndpointSlices (last state of each) and node InternalIPs of the input."""
    slices: dict[tuple[str, str], EndpointSliceInfo] = {}
    nodes: dict[str, tuple[str, ...]] = {}
    for piece in pieces:
        if isinstance(piece, Invalid):
            continue
        event = "type" in piece and "object" in piece
        obj = piece["object"] if event else piece
        typ = piece["type"] if event else "ADDED"
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
    return list(slices.values()), [ip for ips in nodes.values() for ip in ips]


def normalize_text(text: str, source: Source, *, network: str = "default") -> Iterator[Object | Delete | Invalid]:
    """Offline normalizer (entry point ``ovn_hub.normalizers``: ``k8s``)."""
    pieces = list(parse_documents(text))
    slices, node_ips = _join_inputs(pieces)
    for piece in pieces:
        if isinstance(piece, Invalid):
            yield piece
        elif "type" in piece and "object" in piece:
            yield from _event(piece, source, network, slices, node_ips)
        else:
            yield from normalize_object(piece, source, network=network, slices=slices, node_ips=node_ips)
