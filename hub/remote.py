"""Remote adapters over MQTT (contract: docs/bus.md, "Remote adapters").

``hubd --role adapter`` (:class:`RemoteAdapterDaemon`) runs only the configured
adapters and publishes every event they emit, encoded with
:func:`core.model.encode`, to ``ovn-hub/v1/<hub>/ingest/<orchestrator>/<cluster>``
(QoS 1, not retained).  It keeps the current objects of each source in memory
and, after every (re)connect, first publishes a fresh Snapshot of each source
that had one: deltas lost while the broker was away are covered by it.

The core hubd (:class:`RemoteIngest`) subscribes to ``ovn-hub/v1/<hub>/ingest/+/+``
and feeds the events of every ``[remote.<name>]`` source onto its bus through an
:class:`~hub.bus.AdapterSink`, exactly like a local adapter (READY waits for
each remote source's first snapshot; a source's rows are collected only after
its snapshot in this process).  Anything else is rejected with a reason, logged
and counted in ``ovn_hub_rejected_total``: a payload that fails decoding or
validation (the reason of :class:`core.model.Invalid`), and an event for a
source that is not configured or not the one of its topic
(``unauthorized-source``).  Who may publish on a topic is the broker's business
(ACL); the hub only checks that topic and payload agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import uuid
from typing import Any

import aiomqtt

from core.adapter import unique
from core.backoff import Backoff
from core.model import (
    Delete,
    Event,
    Invalid,
    Object,
    Rejected,
    Snapshot,
    Source,
    Upsert,
    decode_event,
    encode,
    kind_of,
    validate,
    validate_source,
)
from hub.bus import AdapterSink, Bus, Subscription
from hub.config import Config, MqttSection
from hub.mqttwire import PAHO_LOGGER, PREFIX, SESSION_ERRORS, client_kwargs, escape, props, unescape
from hub.notify import Notifier
from hub.supervise import AdapterRunner, describe_errors, reconnect, watchdog

log = logging.getLogger("ovn_hub.remote")

# MQTT's own limit on a packet (a 4-byte "remaining length": 256 MiB - 1), less
# room for the topic and properties.  mosquitto's max_packet_size and
# message_size_limit default to "no limit", i.e. this.
MAX_PAYLOAD = 268_435_455 - 65_536


def ingest_base(hub: str) -> str:
    return f"{PREFIX}/{hub}/ingest"


def resync_topic(hub: str) -> str:
    """The core's request, at every (re)subscription, that remote adapters publish a
    fresh Snapshot of each source (a core that started or reconnected after their
    last one would otherwise wait for their next reconnect)."""
    return f"{PREFIX}/{hub}/resync"


def ingest_topic(hub: str, src: Source) -> str:
    return f"{ingest_base(hub)}/{escape(src.orchestrator)}/{escape(src.cluster)}"


def _source_of(ev: Event) -> Source:
    return ev.obj.source if isinstance(ev, Upsert) else ev.source


# ---------------------------------------------------------------- adapter role
class RemoteAdapterDaemon:
    """``hubd --role adapter``: adapters → broker.  No OVN, no programmer."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.cfg: MqttSection = config.mqtt
        self.hub = config.hub.id
        self.notifier = Notifier()
        self.bus = Bus(config.bus.queue_size)
        self.sub: Subscription = self.bus.subscribe("remote", overflow="block")
        self.specs = config.adapter_specs()
        self.state: dict[Source, dict[tuple[str, str], Object]] = {}  # what the broker must know, per source
        self.snapshotted: set[Source] = set()  # sources whose adapter emitted a snapshot
        self.resyncs = 0  # resync requests of cores answered
        self.published: set[Source] = set()  # sources whose snapshot the broker acknowledged
        self.connected = asyncio.Event()
        self.ready = asyncio.Event()
        self.stopping = asyncio.Event()
        self.client_id = config.mqtt.client_id or f"ovn-hub-{self.hub}-adapter-{uuid.uuid4().hex[:8]}"
        self.last_error = ""
        self.sent = 0

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self._connection(), name="mqtt-publisher"),
                         tg.create_task(self._readiness(), name="readiness"),
                         tg.create_task(watchdog(self.notifier), name="watchdog")]
                for spec in self.specs.values():
                    runner = AdapterRunner(spec, AdapterSink(self.bus, spec.name))
                    runner.task = tg.create_task(runner.run(), name=f"adapter:{spec.name}")
                    tasks.append(runner.task)
                await self.stopping.wait()
                self.notifier.notify("STOPPING=1", "STATUS=stopping")
                for t in tasks:
                    t.cancel()
            log.info("stopped cleanly")
            return 0
        finally:
            self.notifier.close()

    async def _readiness(self) -> None:
        wanted = {s.source for s in self.specs.values()}
        while not (self.connected.is_set() and wanted <= self.published):
            missing = ", ".join(sorted(str(s) for s in wanted - self.published))
            self.notifier.status(f"waiting for the broker and the first snapshot of {missing}"
                                 if missing else "waiting for the broker")
            await asyncio.sleep(0.05)
        self.ready.set()
        self.notifier.notify("READY=1", f"STATUS=ready: publishing {len(wanted)} sources to {self.cfg.url}")
        log.info("ready: %d adapters publishing to %s", len(wanted), self.cfg.url)

    def fold(self, ev: Event) -> None:
        if isinstance(ev, Snapshot):
            self.state[ev.source] = {(kind_of(o), o.key): o for o in ev.objects}
            self.snapshotted.add(ev.source)
        elif isinstance(ev, Upsert):
            self.state.setdefault(ev.obj.source, {})[(kind_of(ev.obj), ev.obj.key)] = ev.obj
        elif isinstance(ev, Delete):
            self.state.get(ev.source, {}).pop((ev.kind, ev.key), None)

    async def _send(self, client: aiomqtt.Client, ev: Event) -> None:
        src = _source_of(ev)
        payload = encode(ev)
        if len(payload) > MAX_PAYLOAD:
            log.error("%s of %s is %d bytes, over MQTT's packet limit: not sent", type(ev).__name__, src, len(payload))
            return
        await client.publish(ingest_topic(self.hub, src), payload, qos=1, properties=props(), timeout=60)
        self.sent += 1
        if isinstance(ev, Snapshot):
            self.published.add(src)

    async def _connection(self, backoff_min: float = 0.5, backoff_max: float = 30.0) -> None:
        """Publish to the broker until cancelled.  Reset rule: a session that lasted over 60 s."""
        await reconnect(self._session, Backoff(backoff_min, backoff_max), what=f"MQTT broker {self.cfg.url}",
                        healthy_after=60, on_error=self._failed, on_down=self.connected.clear, logger=log)

    def _failed(self, eg: BaseExceptionGroup[Exception]) -> str:
        self.last_error = describe_errors(eg, log, "MQTT session", SESSION_ERRORS)
        return self.last_error

    async def _session(self) -> None:
        client = aiomqtt.Client(
            **client_kwargs(self.cfg), identifier=self.client_id, keepalive=self.cfg.keepalive, timeout=15,
            clean_start=True, max_inflight_messages=self.cfg.max_inflight, logger=logging.getLogger(PAHO_LOGGER),
        )
        async with client:
            log.info("connected to %s as %s", self.cfg.url, self.client_id)
            await client.subscribe(resync_topic(self.hub), qos=1)
            # whatever was lost while away: a fresh snapshot of each source first
            await self._snapshots(client)
            self.connected.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._resyncs(client), name="remote-resync")
                while True:
                    ev = await self.sub.get()
                    self.fold(ev)  # folded first: if the send fails, the next session's snapshot carries it
                    await self._send(client, ev)

    async def _snapshots(self, client: aiomqtt.Client) -> None:
        for src in sorted(self.snapshotted, key=str):
            await self._send(client, Snapshot(source=src, objects=tuple(self.state.get(src, {}).values())))

    async def _resyncs(self, client: aiomqtt.Client) -> None:
        """A core (re)subscribed and asks for everything: each source's snapshot again
        (built from the folded state when sent: events folded later follow it)."""
        async for _msg in client.messages:
            self.resyncs += 1
            log.info("a core asked for a resync: publishing %d snapshots", len(self.snapshotted))
            await self._snapshots(client)


# ---------------------------------------------------------------- core role
class IngestChecks:
    """One configured source's canonical events from outside the process, decoded,
    checked and emitted through its sink: the one path shared by remote adapters
    (MQTT, :class:`RemoteIngest`) and nodes posting to the admin API
    (:class:`ApiIngest`).  Bad input is rejected with a reason, counted once per
    distinct object, logged, and published on the bus."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.received = 0
        self.rejected = 0
        self._reasons: set[tuple[str, str]] = set()

    def _reject(self, src: Source | None, reason: str, message: str, published: bool = False) -> None:
        label = str(src) if src is not None else "invalid"
        self.rejected += 1
        if not published:  # what _refuse publishes, the bus counts (once per distinct object)
            self.bus.rejections.record(label, reason, message)
        level = logging.DEBUG if (label, reason) in self._reasons else logging.WARNING
        self._reasons.add((label, reason))
        log.log(level, "remote %s rejected (%s): %s", label, reason, message)

    async def accept(self, src: Source, sink: AdapterSink, payload: bytes, where: str) -> tuple[bool, list[str]]:
        """Decode, check, emit: (whether the event was emitted, the messages of what was
        rejected: the event, or the objects left out of a snapshot)."""
        refused: list[str] = []
        try:
            ev = decode_event(payload)
        except Invalid as exc:
            return False, [await self._refuse(src, exc.reason, f"{where}: {exc}")]
        if not isinstance(ev, Snapshot | Upsert | Delete | Rejected):
            msg = f"{where}: a {type(ev).__name__.lower()} event is not adapter input"
            return False, [await self._refuse(src, "schema", msg)]
        if _source_of(ev) != src:
            return False, [await self._refuse(src, "unauthorized-source", f"{where}: event for source {_source_of(ev)}")]
        try:
            if isinstance(ev, Upsert):
                validate(ev.obj)
            elif isinstance(ev, Snapshot):
                ev = await self._checked(src, where, ev, refused)
        except Invalid as exc:
            return False, [await self._refuse(src, exc.reason, f"{where}: {exc}")]
        await sink.emit(ev)
        return True, refused

    async def _checked(self, src: Source, topic: str, snap: Snapshot, refused: list[str]) -> Snapshot:
        """A snapshot without its invalid objects (each rejected), like an adapter's relist."""
        good: list[Object] = []
        for obj in snap.objects:
            try:
                if obj.source != src:
                    raise Invalid("unauthorized-source", f"object {obj.key} of source {obj.source}")
                validate(obj)
            except Invalid as exc:
                refused.append(await self._refuse(src, exc.reason, f"{topic}: snapshot {kind_of(obj)} {obj.key}: {exc}"))
                continue
            good.append(obj)
        good, dups = unique(good, src, [f"{kind_of(o)} {o.key}" for o in good])
        for r in dups:
            refused.append(await self._refuse(src, r.reason, f"{topic}: snapshot: {r.message}"))
        return snap if len(good) == len(snap.objects) else Snapshot(source=src, objects=tuple(good))

    async def _refuse(self, src: Source, reason: str, message: str) -> str:
        """A configured source's bad input: counted, logged, and on the bus (the mirror shows it)."""
        self._reject(src, reason, message, published=True)
        with contextlib.suppress(Exception):
            await self.bus.publish(Rejected(source=src, reason=reason, message=message))
        return f"{reason}: {message}"


class RemoteIngest(IngestChecks):
    """Core hubd: ``ingest/+/+`` → the bus, for the ``[remote.<name>]`` sources."""

    def __init__(self, hub_id: str, cfg: MqttSection, bus: Bus, sources: dict[str, Source]) -> None:
        super().__init__(bus)
        self.hub = hub_id
        self.cfg = cfg
        self.client_id = f"{cfg.client_id or f'ovn-hub-{hub_id}'}-ingest"
        self.sinks: dict[Source, AdapterSink] = {}
        self.names: dict[Source, str] = {}
        self.set_sources(sources)
        self.connected = False
        self.connects = 0
        self.last_error = ""

    def set_sources(self, sources: dict[str, Source]) -> None:
        """(Re)configure the accepted sources; a kept source keeps its sink."""
        self.sinks = {src: self.sinks.get(src) or AdapterSink(self.bus, f"remote:{name}") for name, src in sources.items()}
        self.names = {src: name for name, src in sources.items()}

    def status(self) -> list[dict[str, Any]]:
        return [{"name": self.names[src], "source": str(src), "connected": self.connected,
                 "snapshots": sink.snapshots} for src, sink in self.sinks.items()]

    async def run(self, backoff_min: float = 0.5, backoff_max: float = 30.0) -> None:
        """Ingest until cancelled.  Reset rule: a session that lasted over 60 s."""
        await reconnect(self._session, Backoff(backoff_min, backoff_max), what=f"remote ingest from {self.cfg.url}",
                        healthy_after=60, on_error=self._failed, on_down=self._down, logger=log)

    def _failed(self, eg: BaseExceptionGroup[Exception]) -> str:
        self.last_error = describe_errors(eg, log, "MQTT session", SESSION_ERRORS)
        return self.last_error

    def _down(self) -> None:
        self.connected = False

    async def _session(self) -> None:
        client = aiomqtt.Client(
            **client_kwargs(self.cfg), identifier=self.client_id, keepalive=self.cfg.keepalive, timeout=15,
            clean_start=True, logger=logging.getLogger(PAHO_LOGGER),
        )
        async with client:
            await client.subscribe(f"{ingest_base(self.hub)}/+/+", qos=1)
            self.connected = True
            self.connects += 1
            log.info("remote ingest subscribed to %s/+/+ on %s", ingest_base(self.hub), self.cfg.url)
            # remote adapters that published their snapshots before this subscription send them again
            await client.publish(resync_topic(self.hub), self.client_id.encode(), qos=1, properties=props(), timeout=60)
            async for msg in client.messages:
                payload = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload or "").encode()
                try:
                    await self.handle(msg.topic.value, payload)
                except Exception:  # a bug here must not stop the ingest of every other message
                    log.exception("remote ingest: cannot handle a message on %s", msg.topic.value)

    async def handle(self, topic: str, payload: bytes) -> None:
        """One ingest message: decode, check, emit through the source's sink."""
        self.received += 1
        levels = topic.split("/")
        src: Source | None = None
        if len(levels) == 6:
            try:
                src = Source(unescape(levels[4]), unescape(levels[5]))
                validate_source(src)
            except Invalid:
                src = None
        sink = self.sinks.get(src) if src is not None else None
        if src is None or sink is None:
            self._reject(src, "unauthorized-source", f"{topic}: not a [remote] source of this hub")
            return
        await self.accept(src, sink, payload, topic)


class ApiIngest(IngestChecks):
    """Core hubd: ``POST /v1/ingest/<orchestrator>/<cluster>`` (hub/api.py checks the
    bearer token) → the bus.  It takes the sources of ``orchestrators`` (``cni``: every
    node agent is a source ``cni/<node>``), of any cluster: nodes come and go without a
    hub config change.  Such a source's rows are collected only after its snapshot in
    this process (a node sends one with every change and periodically), and READY does
    not wait for it (a node that is down must not hold the hub)."""

    def __init__(self, bus: Bus, orchestrators: frozenset[str] = frozenset({"cni"})) -> None:
        super().__init__(bus)
        self.orchestrators = orchestrators
        self.sinks: dict[Source, AdapterSink] = {}
        self.last: dict[Source, float] = {}

    def status(self) -> list[dict[str, Any]]:
        return [{"source": str(src), "snapshots": sink.snapshots, "last": round(self.last.get(src, 0.0), 1)}
                for src, sink in sorted(self.sinks.items(), key=lambda kv: str(kv[0]))]  # fmt: skip

    async def ingest(self, orchestrator: str, cluster: str, payload: bytes) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body): 200 taken (``rejected``: objects left out of a snapshot),
        403 not a source this endpoint takes, 422 the event was refused."""
        self.received += 1
        src = Source(orchestrator, cluster)
        where = f"ingest {orchestrator[:63]}/{cluster[:63]}"
        try:
            validate_source(src)
        except Invalid as exc:
            self._reject(None, "unauthorized-source", f"{where}: {exc}")
            return 403, {"error": f"{where}: {exc}"}
        allowed = ", ".join(f"{o}/*" for o in sorted(self.orchestrators))
        if orchestrator not in self.orchestrators:
            self._reject(src, "unauthorized-source", f"{where}: this endpoint takes only {allowed} sources")
            return 403, {"error": f"{where}: this endpoint takes only {allowed} sources"}
        sink = self.sinks.get(src)
        if sink is None:
            sink = self.sinks[src] = AdapterSink(self.bus, f"ingest:{src}")
            log.info("ingest: new source %s", src)
        taken, refused = await self.accept(src, sink, payload, where)
        if not taken:
            return 422, {"error": refused[0], "rejected": refused}
        self.last[src] = time.time()
        return 200, {"accepted": True, "rejected": refused}
