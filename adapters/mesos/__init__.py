"""Mesos adapter (entry point ``mesos = "adapters.mesos:create"``): the master's operator
API v1 ``SUBSCRIBE`` stream, and Marathon as an optional second source.

:mod:`.streams` reads RecordIO and server-sent events, :mod:`.normalize` turns the
master's events into Endpoints (pure), :mod:`.marathon` Marathon's apps into
namespaces and VIP Services (pure), :mod:`.offline` is ``hubctl normalize --from
mesos``.  :mod:`.adapter` (aiohttp) is imported lazily: the offline normalizer
needs no client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.adapter import Adapter, AdapterSpec

if TYPE_CHECKING:
    from .adapter import MesosAdapter, MesosOptions

__all__ = ["MesosAdapter", "MesosOptions", "create"]


def create(spec: AdapterSpec) -> Adapter:
    """Entry-point factory: validate ``spec.options`` and build the adapter."""
    from .adapter import MesosAdapter

    return MesosAdapter(spec)


def __getattr__(name: str) -> Any:
    if name in ("MesosAdapter", "MesosOptions"):
        from . import adapter

        return getattr(adapter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
