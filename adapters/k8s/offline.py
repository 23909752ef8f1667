"""``hubctl normalize --from k8s``: Kubernetes payloads from files → canonical.

Accepts what :func:`adapters.k8s.normalize.parse_documents` accepts: JSON or
YAML manifests (multi-document, ``*List`` kinds) and captured watch streams.

* a Pod (or an ``ADDED``/``MODIFIED`` event of one) → its Endpoint, or nothing
  when it has none (hostNetwork, finished, unscheduled);
* a ``DELETED`` event of a Pod → ``Delete(kind="endpoint", key="<network>/<uid>")``;
* Namespaces and Nodes → nothing, but they are validated;
* ``BOOKMARK`` events → nothing; ``ERROR`` events → an :class:`Invalid`
  (reason ``expired`` for 410, else ``watch-error``);
* any other kind → ``Invalid("unknown-kind")``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from core.model import Delete, Endpoint, Invalid, Source

from .normalize import namespace_labels, node_chassis, normalize_pod, object_ref, parse_documents, pod_uid, watch_error

__all__ = ["normalize_object", "normalize_text"]


def _where(obj: Any) -> str:
    ref = object_ref(obj)
    return f"{ref}: " if ref else ""


def normalize_object(obj: dict[str, Any], source: Source, *, network: str = "default") -> Iterator[Endpoint | Invalid]:
    """One API object (not an event) → its canonical objects, or an Invalid."""
    kind = obj.get("kind")
    try:
        if kind is None:
            raise Invalid("missing-field", "kind is missing")
        if kind == "Pod":
            ep = normalize_pod(obj, source, network=network)
            if ep is not None:
                yield ep
        elif kind == "Namespace":
            namespace_labels(obj)
        elif kind == "Node":
            node_chassis(obj)
        else:
            raise Invalid("unknown-kind", f"kind {str(kind)[:60]!r} is not Pod, Namespace or Node")
    except Invalid as exc:
        yield Invalid(exc.reason, f"{_where(obj)}{exc}")


def _event(ev: dict[str, Any], source: Source, network: str) -> Iterator[Endpoint | Delete | Invalid]:
    typ, obj = ev["type"], ev["object"]
    if typ == "ERROR":
        yield watch_error(ev)
        return
    if typ == "BOOKMARK":
        return
    if typ == "DELETED":
        try:
            if obj.get("kind") is None:
                raise Invalid("missing-field", "kind is missing")
            if obj.get("kind") == "Pod":
                yield Delete(source=source, kind="endpoint", key=f"{network}/{pod_uid(obj)}")
                return
        except Invalid as exc:
            yield Invalid(exc.reason, f"DELETED {_where(obj)}{exc}")
            return
    for item in normalize_object(obj, source, network=network):
        if isinstance(item, Invalid) or typ != "DELETED":
            yield item


def normalize_text(text: str, source: Source, *, network: str = "default") -> Iterator[Endpoint | Delete | Invalid]:
    """Offline normalizer (entry point ``ovn_hub.normalizers``: ``k8s``)."""
    for piece in parse_documents(text):
        if isinstance(piece, Invalid):
            yield piece
        elif "type" in piece and "object" in piece:
            yield from _event(piece, source, network)
        else:
            yield from normalize_object(piece, source, network=network)
