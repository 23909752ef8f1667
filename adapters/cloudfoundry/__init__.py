"""Cloud Foundry adapter (entry point ``cloudfoundry = "adapters.cloudfoundry:create"``).

:mod:`.proto` declares the Diego BBS messages (descriptor_pb2, from the
reference), :mod:`.wire` reads the BBS event stream's framing, :mod:`.normalize`
holds the pure payload → canonical-model functions, :mod:`.offline` the
``hubctl normalize --from cloudfoundry`` normalizer, :mod:`.adapter` the
watcher (imported lazily: the offline path needs no HTTP client).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.adapter import Adapter, AdapterSpec

if TYPE_CHECKING:
    from .adapter import CFAdapter, CFOptions

__all__ = ["CFAdapter", "CFOptions", "create"]


def create(spec: AdapterSpec) -> Adapter:
    """Entry-point factory: validate ``spec.options`` and build the adapter."""
    from .adapter import CFAdapter

    return CFAdapter(spec)


def __getattr__(name: str) -> Any:
    if name in ("CFAdapter", "CFOptions"):
        from . import adapter

        return getattr(adapter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
