"""The MQTT mirror of the bus (aiomqtt, MQTT v5).  Contract: docs/bus.md.

The mirror is one more bus subscriber.  Its bus consumer only folds events
into memory (current state per object, a set of dirty topics, a bounded deque
of lifecycle events) and never awaits the broker, so the bus -- and through it
the OVN programmer -- never waits on MQTT.  A separate connection task publishes
what is dirty with bounded concurrency, reconnects with exponential backoff and
jitter, republishes every retained topic after each (re)connect (a broker
restarted without persistence has lost them) and, once the hub is ready,
clears retained topics under its prefix that are not in the current state.

While the broker is slow or away, only the newest state of a topic is kept (a
superseded state is counted in ``ovn_hub_mqtt_dropped_total{what="state"}``);
lifecycle events beyond ``queue_size`` drop the oldest
(``{what="event"}``); subscribers see the gap in ``seq``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any, Literal

import aiomqtt
import msgspec
from paho.mqtt.subscribeoptions import SubscribeOptions
from prometheus_client import Counter, Gauge

from core.backoff import Backoff
from core.model import (
    Delete,
    Endpoint,
    Event,
    Object,
    Policy,
    Programmed,
    Ready,
    Rejected,
    Service,
    Snapshot,
    Upsert,
    kind_of,
)
from core.names import lsp_name
from hub.bus import Bus, Subscription
from hub.config import MqttSection
from hub.mqttwire import (
    MIRRORED,
    PAHO_LOGGER,
    PREFIX,
    SESSION_ERRORS,
    client_kwargs,
    packed_props,
    props,
    state_topic,
)
from hub.supervise import describe_errors, reconnect

if TYPE_CHECKING:
    from core.nb import Programmer

log = logging.getLogger("ovn_hub.mqtt")

DROPPED = Counter("ovn_hub_mqtt_dropped_total", "MQTT mirror: superseded states and dropped lifecycle events", ["what"])
CONNECTED = Gauge("ovn_hub_mqtt_connected", "MQTT mirror connected to the broker")
PUBLISHED = Counter("ovn_hub_mqtt_published_total", "MQTT messages published", ["what"])
# the labelled children, looked up once (a ``.labels()`` lookup per publish or drop adds up in a burst)
_DROPPED_STATE = DROPPED.labels("state")
_DROPPED_EVENT = DROPPED.labels("event")
_PUBLISHED_STATE = PUBLISHED.labels("state")
_PUBLISHED_EVENT = PUBLISHED.labels("event")



# ---------------------------------------------------------------- payloads
class EndpointState(msgspec.Struct, kw_only=True):
    """Retained on ``…/endpoints/…``: one endpoint attachment and its OVN port."""

    hub: str
    object: Endpoint
    port: str  # the Logical_Switch_Port name
    programmed: bool  # the port was committed to NB since the endpoint appeared
    ready: bool  # ovn-controller reported the port up
    error: str = ""  # NB refused the port (retried), else ""
    updated: float  # unix time of the last change


class ServiceState(msgspec.Struct, kw_only=True):
    """Retained on ``…/services/…``."""

    hub: str
    object: Service
    row: str = ""  # the NB row named in the last ``programmed`` event
    programmed: bool
    error: str = ""
    updated: float


class PolicyState(msgspec.Struct, kw_only=True):
    """Retained on ``…/policies/…``."""

    hub: str
    object: Policy
    row: str = ""
    programmed: bool
    error: str = ""
    updated: float


EventType = Literal["observed", "programmed", "ready", "deleted", "rejected"]


class LifecycleEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One message on ``ovn-hub/v1/<hub>/events`` (QoS 1, not retained)."""

    seq: int  # per hub process, +1 per event: a jump is a gap (dropped while the broker was away)
    hub: str
    time: float
    event: EventType
    source: str  # "orchestrator/cluster"
    kind: str = ""  # endpoint, network, namespace, service, policy ("" for an adapter rejection)
    key: str = ""  # the object's key within its source
    namespace: str = ""
    name: str = ""
    topic: str = ""  # the retained state topic of the object, if mirrored
    row: str = ""  # programmed/ready: the NB row (port) name
    deleted: bool = False  # programmed: the NB rows were removed
    reason: str = ""  # rejected
    message: str = ""  # rejected
    ref: str = ""  # rejected


class HubStatus(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Retained on ``ovn-hub/v1/<hub>/status``; the Last Will sets ``state`` offline."""

    hub: str
    state: Literal["online", "offline"]
    time: float
    reason: str = ""
    ready: bool = False
    pid: int = 0
    started: float = 0.0
    objects: int = 0  # retained state topics
    seq: int = 0  # last event seq
    dropped_events: int = 0
    superseded_states: int = 0
    #: the NB writer's role: "active", "standby" (another hubd of this hub id writes) or "paused"
    role: str = ""


PAYLOADS: dict[str, Any] = {
    "endpoint-state": EndpointState,
    "service-state": ServiceState,
    "policy-state": PolicyState,
    "event": LifecycleEvent,
    "status": HubStatus,
}


def payload_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of every payload (docs/schemas/*.json are generated from this)."""
    out = {}
    for name, typ in PAYLOADS.items():
        schema = msgspec.json.schema(typ)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://ovn-hub.invalid/schema/mqtt/v1/{name}.json"
        schema["title"] = f"OVN Hub MQTT {name} payload"
        out[name] = schema
    return out


class _Rec:
    __slots__ = ("error", "obj", "programmed", "ready", "row", "topic", "updated")

    def __init__(self, obj: Object, topic: str | None) -> None:
        self.obj = obj
        self.topic = topic
        self.programmed = False
        self.ready = False
        self.row = lsp_name(obj) if isinstance(obj, Endpoint) else ""
        self.error = ""
        self.updated = time.time()


class MqttMirror:
    def __init__(
        self, hub_id: str, cfg: MqttSection, bus: Bus, ready: asyncio.Event | None = None,
        programmer: Programmer | None = None,
    ) -> None:
        self.hub = hub_id
        self.programmer = programmer
        self._status_now = asyncio.Event()
        self.cfg = cfg
        self.base = f"{PREFIX}/{hub_id}"
        self.client_id = cfg.client_id or f"ovn-hub-{hub_id}"
        self.ready = ready or asyncio.Event()
        self.sub: Subscription = bus.subscribe("mqtt", overflow="block", maxsize=cfg.queue_size)
        self.objs: dict[str, dict[tuple[str, str], _Rec]] = {}  # source → (kind, key) → record
        self.topics: dict[str, _Rec] = {}  # retained topic → record (the current state)
        self.pending: dict[str, None] = {}  # dirty retained topics (ordered set)
        self.events: deque[tuple[int, bytes]] = deque()
        self.seq = 0
        self.dropped_events = 0
        self.superseded = 0
        self.connected = False
        self.connects = 0
        self.swept = 0
        self.last_error = ""
        self.started = time.time()
        self._work = asyncio.Event()
        # one per unacknowledged publish of a session (the senders and the status/sync publishes share them);
        # paho's own in-flight limit is off (it rescans every in-flight message on each PUBACK)
        self._slots = asyncio.Semaphore(max(1, cfg.max_inflight))

    # ------------------------------------------------------------ bus side
    def status(self) -> dict[str, Any]:
        return {
            "url": self.cfg.url,
            "connected": self.connected,
            "connects": self.connects,
            "topics": len(self.topics),
            "pending": len(self.pending),
            "queued_events": len(self.events),
            "seq": self.seq,
            "dropped_events": self.dropped_events,
            "superseded_states": self.superseded,
            "last_error": self.last_error,
        }

    async def consume(self) -> None:
        """Bus → memory.  Never awaits anything but the bus."""
        while True:
            ev = await self.sub.get()
            try:
                self.fold(ev)
            except Exception:  # a bug here must not stall the bus (and so OVN programming)
                log.exception("MQTT mirror: cannot fold %s", type(ev).__name__)

    async def _when_ready(self) -> None:
        await self.ready.wait()
        self.refresh()

    def refresh(self) -> None:
        """At READY: objects whose NB rows were already right (a hubd restart)
        produced no ``programmed`` event; take their status from the
        programmer's replica.  A service or policy present at READY was
        committed (the programmer flushed before READY; refusals come as
        ``rejected`` events and set ``error``)."""
        p = self.programmer
        for rec in self.topics.values():
            if isinstance(rec.obj, Endpoint):
                if p is None:
                    continue
                st = p.port_status(rec.row)
                programmed = rec.programmed or st.programmed
                ready = rec.ready or bool(st.up)
            else:
                programmed, ready = True, False
            if (programmed, ready) != (rec.programmed, rec.ready):
                rec.programmed, rec.ready = programmed, ready
                self._dirty(rec)

    def fold(self, ev: Event) -> None:
        if isinstance(ev, Snapshot):
            src = str(ev.source)
            old = self.objs.get(src, {})
            new: dict[tuple[str, str], Object] = {(kind_of(o), o.key): o for o in ev.objects}
            for k in [k for k in old if k not in new]:
                self._delete(src, k)
            for obj in new.values():
                self._upsert(obj)
        elif isinstance(ev, Upsert):
            self._upsert(ev.obj)
        elif isinstance(ev, Delete):
            self._delete(str(ev.source), (ev.kind, ev.key))
        elif isinstance(ev, Programmed):
            rec = self.objs.get(str(ev.source), {}).get((ev.kind, ev.key))
            if rec is not None and not ev.deleted:
                if not rec.programmed or rec.error or rec.row != ev.row:
                    rec.programmed, rec.error, rec.row = True, "", ev.row
                    self._dirty(rec)
            self._event("programmed", str(ev.source), ev.kind, ev.key, rec, row=ev.row, deleted=ev.deleted)
        elif isinstance(ev, Ready):
            rec = self.objs.get(str(ev.source), {}).get(("endpoint", ev.key))
            if rec is not None and not rec.ready:
                rec.ready = True
                self._dirty(rec)
            self._event("ready", str(ev.source), "endpoint", ev.key, rec, row=ev.port)
        elif isinstance(ev, Rejected):
            rec = None
            src = str(ev.source)
            if ev.ref.startswith(src + "/"):  # an NB refusal of a port names it: <source>/<network>/<uid>
                rec = self.objs.get(src, {}).get(("endpoint", ev.ref[len(src) + 1 :]))
                if rec is not None:
                    rec.error = ev.message
                    self._dirty(rec)
            self._event("rejected", str(ev.source), kind_of(rec.obj) if rec else "", rec.obj.key if rec else "", rec,
                        reason=ev.reason, message=ev.message, ref=ev.ref)

    def _upsert(self, obj: Object) -> None:
        src = str(obj.source)
        k = (kind_of(obj), obj.key)
        recs = self.objs.setdefault(src, {})
        rec = recs.get(k)
        if rec is not None and rec.obj == obj:
            return
        topic = state_topic(self.hub, obj)
        if rec is None:
            rec = recs[k] = _Rec(obj, topic)
        else:
            if rec.topic != topic and rec.topic is not None:  # renamed: clear the old topic
                self.topics.pop(rec.topic, None)
                self._mark(rec.topic)
            rec.obj, rec.topic, rec.updated = obj, topic, time.time()
        if topic is not None:
            self.topics[topic] = rec
            self._mark(topic)
        self._event("observed", src, k[0], k[1], rec)

    def _delete(self, src: str, k: tuple[str, str]) -> None:
        rec = self.objs.get(src, {}).pop(k, None)
        if rec is None:
            return
        if rec.topic is not None and self.topics.get(rec.topic) is rec:
            del self.topics[rec.topic]
            self._mark(rec.topic)
        self._event("deleted", src, k[0], k[1], rec)

    def _dirty(self, rec: _Rec) -> None:
        rec.updated = time.time()
        if rec.topic is not None:
            self._mark(rec.topic)

    def _mark(self, topic: str) -> None:
        if topic in self.pending:
            self.superseded += 1
            _DROPPED_STATE.inc()
            return
        if topic not in self.topics and len(self.pending) >= len(self.topics) + self.cfg.queue_size:
            # too many tombstones while the broker is away: the sweep after reconnect clears them
            self.superseded += 1
            _DROPPED_STATE.inc()
            return
        self.pending[topic] = None
        self._work.set()

    def _event(self, event: EventType, source: str, kind: str, key: str, rec: _Rec | None, **extra: Any) -> None:
        self.seq += 1
        obj = rec.obj if rec is not None else None
        ev = LifecycleEvent(
            seq=self.seq, hub=self.hub, time=time.time(), event=event, source=source, kind=kind, key=key,
            namespace=getattr(obj, "namespace", "") if obj is not None else "",
            name=getattr(obj, "name", "") if obj is not None else "",
            topic=(rec.topic or "") if rec is not None else "", **extra,
        )
        if len(self.events) >= self.cfg.queue_size:
            self.events.popleft()
            self.dropped_events += 1
            _DROPPED_EVENT.inc()
        self.events.append((self.seq, msgspec.json.encode(ev)))
        self._work.set()

    def state_payload(self, topic: str) -> bytes:
        rec = self.topics.get(topic)
        if rec is None:
            return b""
        obj = rec.obj
        st: EndpointState | ServiceState | PolicyState
        if isinstance(obj, Endpoint):
            st = EndpointState(hub=self.hub, object=obj, port=rec.row, programmed=rec.programmed, ready=rec.ready,
                               error=rec.error, updated=rec.updated)
        elif isinstance(obj, Service):
            st = ServiceState(hub=self.hub, object=obj, row=rec.row, programmed=rec.programmed, error=rec.error, updated=rec.updated)
        else:
            assert isinstance(obj, Policy)
            st = PolicyState(hub=self.hub, object=obj, row=rec.row, programmed=rec.programmed, error=rec.error, updated=rec.updated)
        return msgspec.json.encode(st)

    def hub_status(self, state: Literal["online", "offline"], reason: str = "") -> bytes:
        return msgspec.json.encode(HubStatus(
            hub=self.hub, state=state, time=time.time(), reason=reason, ready=self.ready.is_set(), pid=os.getpid(),
            started=self.started, objects=len(self.topics), seq=self.seq, dropped_events=self.dropped_events,
            superseded_states=self.superseded, role=self.programmer.role if self.programmer is not None else "",
        ))

    def status_changed(self) -> None:
        """Publish the status now (the writer's role changed), not at the next minute."""
        self._status_now.set()

    # ------------------------------------------------------------ broker side
    async def run(self, backoff_min: float = 0.5, backoff_max: float = 30.0) -> None:
        """Fold the bus and keep a broker session until cancelled; the mirror
        never takes hubd down.  Reset rule: a session that lasted over 60 s."""
        consumer = asyncio.create_task(self.consume(), name="mqtt-consumer")
        on_ready = asyncio.create_task(self._when_ready(), name="mqtt-ready")

        def failed(eg: BaseExceptionGroup[Exception]) -> str:
            self.last_error = describe_errors(eg, log, "MQTT mirror", SESSION_ERRORS)
            return self.last_error

        def down() -> None:
            self.connected = False
            CONNECTED.set(0)

        try:
            await reconnect(self._session, Backoff(backoff_min, backoff_max), what=f"MQTT broker {self.cfg.url}",
                            healthy_after=60, on_error=failed, on_down=down, logger=log)
        finally:
            for t in (consumer, on_ready):
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            self.sub.close()

    async def _session(self) -> None:
        will = aiomqtt.Will(f"{self.base}/status", self.hub_status("offline", "connection lost"), qos=1, retain=True,
                            properties=props())
        client = aiomqtt.Client(
            **client_kwargs(self.cfg), identifier=self.client_id, will=will, keepalive=self.cfg.keepalive,
            timeout=15, clean_start=True, max_inflight_messages=0,  # bounded by self._slots
            logger=logging.getLogger(PAHO_LOGGER),
        )
        self._slots = asyncio.Semaphore(max(1, self.cfg.max_inflight))
        async with client:
            self.connected = True
            self.connects += 1
            CONNECTED.set(1)
            log.info("MQTT mirror connected to %s as %s", self.cfg.url, self.client_id)
            try:
                await client.publish(f"{self.base}/status", self.hub_status("online"), qos=1, retain=True, properties=props())
                self.events = deque(sorted(self.events))  # events requeued by the last session
                # whatever the broker kept, it gets the current state again (no-op for an unchanged retained message)
                for topic in self.topics:
                    self.pending.setdefault(topic, None)
                self._work.set()
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._sender(client), name="mqtt-sender")
                    tg.create_task(self._sweep(client), name="mqtt-sweep")
                    tg.create_task(self._status_loop(client), name="mqtt-status")
            except asyncio.CancelledError:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    async with asyncio.timeout(3):
                        await client.publish(f"{self.base}/status", self.hub_status("offline", "stopped"), qos=1,
                                             retain=True, properties=props())
                raise

    async def _status_loop(self, client: aiomqtt.Client) -> None:
        topic = f"{self.base}/status"
        if not self.ready.is_set():
            await self.ready.wait()
            async with self._slots:
                await client.publish(topic, self.hub_status("online"), qos=1, retain=True, properties=props())
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._status_now.wait(), 60)
            self._status_now.clear()
            async with self._slots:
                await client.publish(topic, self.hub_status("online"), qos=1, retain=True, properties=props())

    async def _sender(self, client: aiomqtt.Client) -> None:
        """``max_inflight`` workers, each publishing one item at a time (events
        first, then dirty states), no task per publish.  Each publish holds one
        of ``self._slots``, shared with the status and sync-marker publishes:
        at most ``max_inflight`` unacknowledged publishes in all."""
        try:
            async with asyncio.TaskGroup() as tg:
                for i in range(max(1, self.cfg.max_inflight)):
                    tg.create_task(self._send_worker(client), name=f"mqtt-send-{i}")
        except BaseExceptionGroup as eg:  # the first failure ends the session, as one error
            raise eg.exceptions[0] from None

    async def _send_worker(self, client: aiomqtt.Client) -> None:
        events_topic = f"{self.base}/events"
        state_props = packed_props()
        event_props = packed_props(self.cfg.event_expiry)
        publish = client.publish
        slots = self._slots
        while True:
            events, pending = self.events, self.pending
            item: tuple[int, bytes] | str
            if events:
                item = events.popleft()
            elif pending:
                item = next(iter(pending))
                del pending[item]
            else:
                self._work.clear()
                await self._work.wait()
                continue
            try:
                async with slots:
                    if isinstance(item, str):
                        payload = self.state_payload(item)
                        await publish(item, payload, qos=1, retain=True, properties=state_props if payload else None,
                                      timeout=30)
                        _PUBLISHED_STATE.inc()
                    else:
                        await publish(events_topic, item[1], qos=1, properties=event_props, timeout=30)
                        _PUBLISHED_EVENT.inc()
            except BaseException:  # requeue (QoS 1: may arrive twice), then end the session
                if isinstance(item, str):
                    self.pending.setdefault(item, None)
                elif len(self.events) < self.cfg.queue_size:
                    self.events.appendleft(item)  # re-sorted by seq at the next session
                else:
                    self.dropped_events += 1
                    _DROPPED_EVENT.inc()
                self._work.set()
                raise

    async def _sweep(self, client: aiomqtt.Client) -> None:
        """Once the hub is ready: clear retained state topics under our prefix
        that are not in the current state (left by an earlier run, or deleted
        while the broker was away)."""
        await self.ready.wait()
        nonce = uuid.uuid4().hex
        marker = f"{self.base}/sync/{self.client_id}"
        seen: set[str] = set()
        wild = [f"{self.base}/{coll}/#" for coll in MIRRORED.values()]
        done = asyncio.Event()

        async def reader() -> None:
            async for msg in client.messages:
                topic = msg.topic.value
                if topic == marker:
                    if msg.payload == nonce.encode():
                        done.set()
                        return
                elif msg.retain and msg.payload:
                    seen.add(topic)

        task = asyncio.create_task(reader())
        try:
            # QoS 0 (hub.mqttwire.read_retained says why): past mosquitto's max_queued_messages
            # (1000 by default) QoS 1 deliveries are dropped, the marker with them
            opts = SubscribeOptions(qos=0, noLocal=True)
            await client.subscribe([(w, opts) for w in wild] + [(marker, SubscribeOptions(qos=0))])
            async with self._slots:
                await client.publish(marker, nonce.encode(), qos=1)
            async with asyncio.timeout(60):
                await asyncio.wait({task}, return_when=asyncio.FIRST_COMPLETED)
            if task.done() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
            await client.unsubscribe([*wild, marker])
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        stale = [t for t in seen if t not in self.topics]
        for topic in stale:
            self._mark(topic)
        self.swept += len(stale)
        log.info("MQTT mirror: %d retained topics under %s, %d stale cleared", len(seen), self.base, len(stale))

