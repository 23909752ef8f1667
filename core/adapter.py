"""The adapter interface: what an orchestrator watcher gives the hub.

An adapter is found through the ``ovn_hub.adapters`` entry-point group; the
entry point names a factory ``create(spec: AdapterSpec) -> Adapter``.  The hub
calls ``await adapter.run(sink)`` inside its supervisor; ``run`` lists, emits a
:class:`~core.model.Snapshot`, then emits :class:`~core.model.Upsert` /
:class:`~core.model.Delete` deltas until cancelled.  It raises to be restarted
(with backoff) and must emit a fresh Snapshot after every relist.

Bad input never raises out of ``run``: the adapter emits
:class:`~core.model.Rejected` with a reason and goes on.

:class:`ObjectCache` does the bookkeeping every adapter needs: no-op filtering
(an unchanged object emits nothing) and the deletes implied by a relist.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

import msgspec

from core.model import (
    OBJECT_KINDS,
    Delete,
    Endpoint,
    InputEvent,
    Network,
    Object,
    Rejected,
    Snapshot,
    Source,
    Upsert,
    kind_of,
)

ENTRY_POINT_GROUP = "ovn_hub.adapters"


class EventSink(Protocol):
    async def emit(self, event: InputEvent) -> None:
        """Deliver one event; waits when the hub is saturated (backpressure)."""


class Adapter(Protocol):
    async def run(self, sink: EventSink) -> None:
        """Watch the orchestrator until cancelled (see module docstring)."""


class AdapterSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One ``[adapters.<name>]`` table of the hub config."""

    name: str
    type: str
    cluster: str
    options: dict[str, Any] = {}

    @property
    def source(self) -> Source:
        return Source(self.type, self.cluster)

    def logger(self) -> logging.Logger:
        return logging.getLogger(f"ovn_hub.adapter.{self.name}")


class AdapterFactory(Protocol):
    def __call__(self, spec: AdapterSpec) -> Adapter: ...


class OptionsError(ValueError):
    """An adapter option is wrong; the message names the key."""


def describe_exception(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has
    none): what a log line or a ``Rejected`` message says about a failure."""
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


T = TypeVar("T")


def parse_options(spec: AdapterSpec, typ: type[T]) -> T:
    """Convert ``spec.options`` to ``typ`` (a msgspec Struct); errors name the
    offending key as ``adapters.<name>.<key>``."""
    try:
        return msgspec.convert(spec.options, typ, strict=True)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        where = f"adapters.{spec.name}"
        if " - at `$." in msg:
            msg, _, path = msg.rpartition(" - at `$.")
            where = f"{where}.{path.rstrip('`')}"
        raise OptionsError(f"{where}: {msg}") from None


class ObjectCache:
    """Current objects of one source, keyed by (kind, key).

    ``upsert`` returns the event to emit, or None for a no-op; ``snapshot``
    replaces the whole content and returns the Snapshot to emit.
    """

    def __init__(self, source: Source) -> None:
        self.source = source
        self.objects: dict[tuple[str, str], Object] = {}

    def upsert(self, obj: Object) -> Upsert | None:
        k = (kind_of(obj), obj.key)
        if self.objects.get(k) == obj:
            return None
        self.objects[k] = obj
        return Upsert(obj=obj)

    def delete(self, kind: str, key: str) -> Delete | None:
        obj = self.objects.pop((kind, key), None)
        if obj is None:
            return None
        k = kind_of(obj)
        assert k in OBJECT_KINDS
        return Delete(source=self.source, kind=k, key=key)

    def snapshot(self, objects: list[Object]) -> Snapshot:
        """Replace the content.  Two objects with one (kind, key): the first
        wins (see :func:`unique`, which says so with a Rejected)."""
        objs: dict[tuple[str, str], Object] = {}
        for o in objects:
            objs.setdefault((kind_of(o), o.key), o)
        self.objects = objs
        return Snapshot(source=self.source, objects=tuple(objs.values()))

    def endpoints(self) -> list[Endpoint]:
        return [o for o in self.objects.values() if isinstance(o, Endpoint)]

    def networks(self) -> list[Network]:
        return [o for o in self.objects.values() if isinstance(o, Network)]


def unique(objects: list[Object], source: Source, refs: Sequence[str] | None = None) -> tuple[list[Object], list[Rejected]]:  # fmt: skip
    """Split one listing into its first object per (kind, key) and a
    ``duplicate`` rejection for every later one, naming both (``refs[i]`` says
    where object ``i`` came from, e.g. ``file:line``).

    Why the first wins rather than the last: the rejected one is the one the
    message points at, and it is the same one on every re-read of the input,
    so the endpoint does not flap between two definitions."""
    first: dict[tuple[str, str], int] = {}
    kept: list[Object] = []
    rejected: list[Rejected] = []
    for i, o in enumerate(objects):
        k = (kind_of(o), o.key)
        j = first.setdefault(k, i)
        if j == i:
            kept.append(o)
            continue
        here = refs[i] if refs else f"#{i}"
        there = refs[j] if refs else f"#{j}"
        rejected.append(
            Rejected(
                source=source,
                reason="duplicate",
                message=f"{k[0]} {k[1]} at {here} duplicates the one at {there}; the first is kept",
                ref=here,
            )
        )
    return kept, rejected


async def emit_all(sink: EventSink, events: list[InputEvent | None]) -> None:
    for ev in events:
        if ev is not None:
            await sink.emit(ev)
