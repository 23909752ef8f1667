"""The in-process event bus.

Adapters emit input events (snapshot, upsert, delete, rejected); the OVN
programmer publishes status events (programmed, ready, rejected).  Every
subscriber has a bounded queue.  ``overflow="block"`` (the default, used by the
programmer) gives backpressure: ``publish`` waits for room, so a burst from an
adapter slows the adapter, never loses an event.  ``overflow="drop"`` is for
observers that must never slow the hub and can lose events:
the oldest queued event is dropped and counted.

A mirror is just another subscriber: adapters and core do not change.  The MQTT
mirror (hub/mqtt.py) subscribes with ``"block"`` but never waits on its broker:
it folds events into its own latest-state-per-topic map at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Literal

from prometheus_client import Counter

from core import metrics
from core.model import Event, InputEvent, Rejected
from hub.rejections import RejectionLog, sanitize

log = logging.getLogger("ovn_hub.bus")
DROPPED = Counter("ovn_hub_bus_dropped_total", "Events dropped by full drop-policy subscriptions", ["subscriber"])

Filter = Callable[[Event], bool]


class Subscription:
    def __init__(self, bus: Bus, name: str, maxsize: int, overflow: Literal["block", "drop"], accept: Filter | None) -> None:
        self.bus = bus
        self.name = name
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.overflow = overflow
        self.accept = accept
        self.dropped = 0

    async def put(self, event: Event) -> None:
        if self.accept is not None and not self.accept(event):
            return
        if self.overflow == "block":
            await self.queue.put(event)
            return
        while True:
            try:
                self.queue.put_nowait(event)
                return
            except asyncio.QueueFull:
                self.queue.get_nowait()
                self.dropped += 1
                DROPPED.labels(self.name).inc()

    async def put_many(self, events: Sequence[Event]) -> None:
        """:meth:`put` of each event, in order."""
        accept = self.accept
        if self.overflow != "block":
            for event in events:
                await self.put(event)
            return
        q = self.queue
        for event in events:
            if accept is not None and not accept(event):
                continue
            if q.full():
                await q.put(event)  # (waits for room: backpressure)
            else:
                q.put_nowait(event)

    async def get(self) -> Event:
        return await self.queue.get()

    def close(self) -> None:
        self.bus.unsubscribe(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()


class Bus:
    def __init__(self, maxsize: int = 10000) -> None:
        self.maxsize = maxsize
        self._subs: list[Subscription] = []
        #: every Rejected published here is counted (once per distinct object) and kept for status
        self.rejections = RejectionLog()

    def subscribe(
        self,
        name: str,
        *,
        accept: Filter | None = None,
        overflow: Literal["block", "drop"] = "block",
        maxsize: int | None = None,
    ) -> Subscription:
        sub = Subscription(self, name, maxsize or self.maxsize, overflow, accept)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    async def publish(self, event: Event) -> None:
        if isinstance(event, Rejected):
            event = sanitize(event)
            self.rejections.record(str(event.source), event.reason, event.message, event.ref)
        for sub in list(self._subs):
            await sub.put(event)

    async def publish_many(self, events: Sequence[Event]) -> None:
        """:meth:`publish` of each event, in order (each subscriber gets them in
        that order; a batch of the programmer's 50k Programmed events costs one
        call, not one per event).  Unlike one :meth:`publish` per event, the
        subscribers get the batch one after the other: a blocking one with a
        full queue holds the later ones for the whole batch."""
        if any(isinstance(e, Rejected) for e in events):
            for event in events:
                await self.publish(event)
            return
        for sub in list(self._subs):
            try:
                await sub.put_many(events)
            except Exception:  # (a subscriber's filter that raises: the others still get the batch)
                log.exception("subscriber %s: events of a batch lost", sub.name)

    def idle(self) -> bool:
        return all(s.queue.empty() for s in self._subs)


class AdapterSink:
    """The :class:`core.adapter.EventSink` handed to one adapter: counts, logs
    rejections (once per reason per adapter at warning, then at debug), and
    publishes."""

    def __init__(self, bus: Bus, adapter: str) -> None:
        self.bus = bus
        self.adapter = adapter
        self.snapshots = 0
        self.first_snapshot = asyncio.Event()
        self._reasons: set[str] = set()

    async def emit(self, event: InputEvent) -> None:
        kind = type(event).__name__.lower()
        src = str(event.obj.source) if hasattr(event, "obj") else str(getattr(event, "source", "?"))
        metrics.EVENTS.labels(src, kind).inc()
        if isinstance(event, Rejected):  # counted by the bus (once per distinct object)
            level = logging.DEBUG if event.reason in self._reasons else logging.WARNING
            self._reasons.add(event.reason)
            log.log(level, "adapter %s rejected input (%s): %s", self.adapter, event.reason, event.message)
        elif kind == "snapshot":
            self.snapshots += 1
        await self.bus.publish(event)
