"""The MQTT mirror without a broker: the [mqtt] config section, topic escaping and
the generated payload schemas (docs/schemas), the bounded state and event
queues, a rename and an NB refusal.  Against a real mosquitto and hubd:
tests/integration/test_mqtt.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgspec
import pytest

from core.model import Endpoint as Ep
from core.model import Network, Source, Upsert, json_schema
from hub.bus import Bus
from hub.config import ConfigError, MqttSection, loads
from hub.mqtt import MqttMirror, payload_schemas
from hub.mqttwire import PREFIX, escape, state_topic, unescape
from testkit.wait import wait_until

HUB = "hubt"
BASE = f"{PREFIX}/{HUB}"
SRC = Source("static", "a")


# ---------------------------------------------------------------- units
def test_config_section() -> None:
    assert loads("").mqtt.enabled is False
    cfg = loads('[hub]\nid = "h1"\n[mqtt]\nenabled = true\nurl = "mqtts://broker.example:8884"\nca_file = "/ca"\n')
    assert cfg.mqtt.url.startswith("mqtts://") and cfg.mqtt.client_id == ""
    for text, key in (('[mqtt]\npassword = "x"\n', "mqtt.password"), ('[mqtt]\nurl = "http://x"\n', "mqtt.url"),
                      ('[mqtt]\nca_file = "/ca"\n', "mqtt.url"), ('[mqtt]\nqueue_size = 0\n', "mqtt.queue_size"),
                      ('[mqtt]\npassword_file = "/p"\n', "mqtt.username"), ('[mqtt]\ncert_file = "/c"\nurl = "mqtts://h"\n', "mqtt.key_file")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            loads(text)


def test_topics_escape_and_schemas() -> None:
    ep = Ep(source=SRC, uid="u#1", namespace="a+b", name="x/y%", kind="vm", network="blue")
    topic = state_topic(HUB, ep)
    assert topic == f"{BASE}/endpoints/static/a/a%2Bb/x%2Fy%25/blue/u%231"
    assert [unescape(x) for x in topic.split("/")[-4:]] == ["a+b", "x/y%", "blue", "u#1"]
    assert escape("%2F") == "%252F" and unescape(escape("%2F")) == "%2F"
    assert state_topic(HUB, Network(source=SRC, name="blue")) is None
    docs = Path(__file__).resolve().parents[2] / "docs" / "schemas"
    for name, schema in payload_schemas().items():  # docs/schemas are generated, not hand-edited
        assert json.loads((docs / f"{name}.json").read_text()) == json.loads(json.dumps(schema)), f"regenerate docs/schemas/{name}.json"
    assert json_schema()["version"]


async def test_mirror_keeps_latest_state_and_bounded_events() -> None:
    """Without a broker: the bus is never blocked; superseded states and
    dropped events are counted; seq is monotonic."""
    bus = Bus(10)
    m = MqttMirror(HUB, MqttSection(queue_size=50), bus)
    task = asyncio.create_task(m.consume())
    try:
        for i in range(500):  # far more than the bus queue (10) and the event queue (50)
            ep = Ep(source=SRC, uid="u1", namespace="n", name="e", kind="vm", network="blue", labels={"i": str(i)})
            await asyncio.wait_for(bus.publish(Upsert(obj=ep)), 5)
        await wait_until(lambda: bus.idle(), 5, "bus drained")
        assert len(m.topics) == 1 and len(m.pending) == 1 and m.superseded == 499
        assert len(m.events) == 50 and m.dropped_events == 450 and m.seq == 500
        assert [s for s, _ in m.events] == list(range(451, 501))
        st = json.loads(m.state_payload(next(iter(m.pending))))
        assert st["object"]["labels"] == {"i": "499"} and st["port"] == "static/a/blue/u1" and st["programmed"] is False
    finally:
        task.cancel()


def test_payload_schema_validates_a_message() -> None:
    import jsonschema

    ep = Ep(source=SRC, uid="u1", namespace="n", name="e", kind="vm", network="blue")
    m = MqttMirror(HUB, MqttSection(), Bus(10))
    m.fold(Upsert(obj=ep))
    topic = next(iter(m.topics))
    schemas = payload_schemas()
    jsonschema.validate(json.loads(m.state_payload(topic)), schemas["endpoint-state"])
    jsonschema.validate(msgspec.json.decode(m.events[0][1]), schemas["event"])
    jsonschema.validate(json.loads(m.hub_status("online")), schemas["status"])


def test_rename_clears_old_topic_and_nb_refusal_sets_error() -> None:
    from core.model import Programmed, Ready, Rejected

    m = MqttMirror(HUB, MqttSection(), Bus(10))
    ep = Ep(source=SRC, uid="u1", namespace="n", name="old", kind="vm", network="blue")
    m.fold(Upsert(obj=ep))
    old = next(iter(m.topics))
    m.pending.clear()
    m.fold(Programmed(source=SRC, kind="endpoint", key="blue/u1", row="static/a/blue/u1"))
    m.fold(Ready(source=SRC, key="blue/u1", port="static/a/blue/u1"))
    m.fold(Upsert(obj=msgspec.structs.replace(ep, name="new")))
    new = f"{BASE}/endpoints/static/a/n/new/blue/u1"
    assert set(m.topics) == {new} and list(m.pending) == [old, new]
    assert m.state_payload(old) == b""  # the old topic is cleared (empty retained message)
    st = json.loads(m.state_payload(new))
    assert st["programmed"] and st["ready"]  # an update does not reset the status
    m.fold(Rejected(source=SRC, reason="nb-conflict", message="NB refused insert", ref="static/a/blue/u1"))
    assert json.loads(m.state_payload(new))["error"] == "NB refused insert"
    events = [msgspec.json.decode(p) for _, p in m.events]
    assert [e["event"] for e in events] == ["observed", "programmed", "ready", "observed", "rejected"]
    assert events[-1]["key"] == "blue/u1" and events[-1]["reason"] == "nb-conflict"
