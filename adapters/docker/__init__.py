"""Docker Engine adapter (entry point ``docker = "adapters.docker:create"``).

:func:`create` is the :class:`core.adapter.AdapterFactory`; :mod:`.normalize`
holds the pure payload → canonical-model functions.
"""

from __future__ import annotations

from core.adapter import Adapter, AdapterSpec

from . import normalize
from .adapter import DockerAdapter, DockerOptions

__all__ = ["DockerAdapter", "DockerOptions", "create", "normalize"]


def create(spec: AdapterSpec) -> Adapter:
    """Entry-point factory: validate ``spec.options`` and build the adapter."""
    return DockerAdapter(spec)
