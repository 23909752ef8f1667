"""Adapters and offline normalizers are found through entry points.

In-tree adapters register exactly as a third-party package would, in
pyproject.toml::

    [project.entry-points."ovn_hub.adapters"]
    docker = "adapters.docker:create"

    [project.entry-points."ovn_hub.normalizers"]
    docker = "adapters.docker.offline:normalize_text"
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Any, cast

from core.adapter import ENTRY_POINT_GROUP, AdapterFactory

NORMALIZER_GROUP = "ovn_hub.normalizers"


class PluginError(LookupError):
    pass


def available(group: str = ENTRY_POINT_GROUP) -> list[str]:
    return sorted(ep.name for ep in entry_points(group=group))


def _load(group: str, name: str) -> Any:
    matches = [ep for ep in entry_points(group=group) if ep.name == name]
    if not matches:
        raise PluginError(f"no {group} entry point named {name!r} (installed: {', '.join(available(group)) or 'none'})")
    return matches[0].load()


def adapter_factory(name: str) -> AdapterFactory:
    return cast(AdapterFactory, _load(ENTRY_POINT_GROUP, name))


Normalizer = Callable[..., Iterator[Any]]


def normalizer(name: str) -> Normalizer:
    return cast(Normalizer, _load(NORMALIZER_GROUP, name))
