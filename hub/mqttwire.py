"""The MQTT side of the bus contract (docs/bus.md) that the mirror, remote
adapters and ``hubctl events`` share: the topic prefix and escaping, the
retained state topics, PUBLISH properties, client arguments from a config
section, and reading every retained message under a prefix.

No state and no task lives here: :mod:`hub.mqtt` (the mirror) and
:mod:`hub.remote` (remote adapters) build on it and never on each other.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import ssl
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from core.model import Endpoint, Object, Policy, Service, kind_of
from hub.config import MqttSection, parse_mqtt_url

PAHO_LOGGER = "ovn_hub.mqtt.paho"


class _NoPendingNoise(logging.Filter):
    """aiomqtt warns "There are N pending publish calls." for every publish past
    ten in flight; bounded concurrency is this design, not a problem."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pending publish calls" not in record.getMessage()


logging.getLogger(PAHO_LOGGER).addFilter(_NoPendingNoise())

PREFIX = "ovn-hub/v1"
CONTENT_TYPE = "application/json"
#: Failures of a broker session that need no traceback in the log (reconnect and go on).
SESSION_ERRORS: tuple[type[BaseException], ...] = (aiomqtt.MqttError, OSError, TimeoutError)
#: Object kind → the collection of its retained state topics.
MIRRORED = {"endpoint": "endpoints", "service": "services", "policy": "policies"}
_ESCAPES = {"%": "%25", "/": "%2F", "+": "%2B", "#": "%23", "\x00": "%00"}
_NEEDS_ESCAPE = re.compile("[%/+#\x00]").search


# ---------------------------------------------------------------- topics
def escape(level: str) -> str:
    """One MQTT topic level: percent-encode ``% / + #`` and NUL."""
    if _NEEDS_ESCAPE(level) is None:
        return level
    return "".join(_ESCAPES.get(c, c) for c in level)


def unescape(level: str) -> str:
    out = level
    for c, e in sorted(_ESCAPES.items(), key=lambda kv: kv[0] == "%"):  # %25 last
        out = out.replace(e, c)
    return out


def state_topic(hub: str, obj: Object) -> str | None:
    """The retained topic of a mirrored object, None for networks/namespaces."""
    coll = MIRRORED.get(kind_of(obj))
    if coll is None:
        return None
    src = obj.source
    levels = [src.orchestrator, src.cluster]
    if isinstance(obj, Endpoint):
        levels += [obj.namespace, obj.name, obj.network, obj.uid]
    elif isinstance(obj, Service | Policy):
        levels += [obj.namespace, obj.name, obj.uid]
    return f"{PREFIX}/{hub}/{coll}/" + "/".join(escape(x) for x in levels)


# ---------------------------------------------------------------- PUBLISH properties
@functools.lru_cache(maxsize=8)
def props(expiry: int | None = None) -> Properties:
    """PUBLISH properties, built once per expiry value (paho only reads them to
    pack a packet; building one per publish cost ~20 % of a 30k-message burst)."""
    p = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    p.ContentType = CONTENT_TYPE
    p.PayloadFormatIndicator = 1
    if expiry is not None:
        p.MessageExpiryInterval = expiry
    return p


class _PackedProperties(Properties):
    """PUBLISH properties that are never changed after construction, so their
    wire form is packed once: paho packs ``properties`` for every PUBLISH it
    sends, which costs more than the rest of building the packet."""

    _packed: bytes | None = None

    def pack(self) -> bytes:
        if self._packed is None:
            object.__setattr__(self, "_packed", super().pack())  # type: ignore[no-untyped-call]  # __setattr__ takes property names only
        return self._packed  # type: ignore[return-value]


@functools.lru_cache(maxsize=8)
def packed_props(expiry: int | None = None) -> Properties:
    """The properties of :func:`props`, packed once (for a sender's hot loop)."""
    p = _PackedProperties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    p.ContentType = CONTENT_TYPE
    p.PayloadFormatIndicator = 1
    if expiry is not None:
        p.MessageExpiryInterval = expiry
    p.pack()
    return p


# ---------------------------------------------------------------- clients
def client_kwargs(cfg: MqttSection) -> dict[str, Any]:
    """aiomqtt.Client arguments for a config section (shared with ``hubctl events``)."""
    tls, host, port = parse_mqtt_url(cfg.url)
    kw: dict[str, Any] = {"hostname": host, "port": port, "protocol": aiomqtt.ProtocolVersion.V5}
    if cfg.username:
        kw["username"] = cfg.username
    if cfg.password_file:
        kw["password"] = Path(cfg.password_file).read_text().splitlines()[0] if Path(cfg.password_file).stat().st_size else ""
    if tls:
        ctx = ssl.create_default_context(cafile=cfg.ca_file or None)
        if cfg.cert_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file or None)
        kw["tls_context"] = ctx
    return kw


async def read_retained(
    client: aiomqtt.Client, base: str, timeout: float = 10.0, follow_events: bool = False
) -> tuple[dict[str, bytes], list[bytes]]:
    """Every retained message under ``base`` (topic → payload), read with a
    marker: a QoS 1 message to ``base/sync/<nonce>`` comes back after the
    retained messages the broker queued at subscribe time.  With
    ``follow_events`` the events topic is subscribed first, and the events that
    arrived meanwhile are returned too (nothing is missed between the two)."""
    nonce = uuid.uuid4().hex
    marker = f"{base}/sync/{nonce}"
    state: dict[str, bytes] = {}
    early: list[bytes] = []
    if follow_events:
        await client.subscribe(f"{base}/events", qos=1)
    # QoS 0: a broker holds at most max_queued_messages QoS 1 messages per client beyond
    # its in-flight window (mosquitto: 1000 by default) and drops the rest, marker included;
    # at QoS 0 the retained messages and the marker go out in order, unqueued
    await client.subscribe([(f"{base}/#", SubscribeOptions(qos=0))])
    await client.publish(marker, nonce.encode(), qos=1)
    async with asyncio.timeout(timeout):
        async for msg in client.messages:
            topic = msg.topic.value
            payload = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload or "").encode()
            if topic == marker:
                break
            if topic == f"{base}/events":
                if follow_events:
                    early.append(payload)
            elif msg.retain and payload and "/sync/" not in topic:
                state[topic] = payload
    await client.unsubscribe(f"{base}/#")
    return state, early
