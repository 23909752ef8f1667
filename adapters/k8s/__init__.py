"""Kubernetes adapter (entry point ``k8s = "adapters.k8s:create"``).

:func:`create` is the :class:`core.adapter.AdapterFactory`; :mod:`.normalize`
holds the pure payload → canonical-model functions, :mod:`.podnet` the pod
network's subnets and gateway, :mod:`.offline` the ``hubctl normalize --from
k8s`` normalizer.

:mod:`.adapter` (and so kubernetes_asyncio) is imported lazily: the offline
normalizer and the pure functions do not need the client library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.adapter import Adapter, AdapterSpec

from . import normalize, podnet
from .normalize import (
    namespace_labels,
    node_chassis,
    node_pod_cidrs,
    normalize_namespace,
    normalize_pod,
    normalize_policy,
    normalize_service,
    parse_documents,
    parse_endpoint_slice,
)

if TYPE_CHECKING:
    from .adapter import K8sAdapter, K8sOptions

__all__ = [
    "K8sAdapter",
    "K8sOptions",
    "create",
    "namespace_labels",
    "node_chassis",
    "node_pod_cidrs",
    "normalize",
    "normalize_namespace",
    "normalize_pod",
    "normalize_policy",
    "normalize_service",
    "parse_documents",
    "parse_endpoint_slice",
    "podnet",
]


def create(spec: AdapterSpec) -> Adapter:
    """Entry-point factory: validate ``spec.options`` and build the adapter."""
    from .adapter import K8sAdapter

    return K8sAdapter(spec)


def __getattr__(name: str) -> Any:
    if name in ("K8sAdapter", "K8sOptions"):
        from . import adapter

        return getattr(adapter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
