"""Remote adapters without a broker: the ``[remote.<name>]`` config and the checks
the ingest applies to every message.  ``hubd --role adapter`` and the core hubd
through a real mosquitto: tests/integration/test_remote.py."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from core.model import Delete, Endpoint, Network, Programmed, Snapshot, Source, Upsert, encode
from hub.bus import Bus
from hub.config import ConfigError, MqttSection, loads
from hub.remote import RemoteIngest, ingest_topic

HUB = "hubt"
SRC = Source("static", "b")


def ep(uid: str, src: Source = SRC, ip: str = "10.5.0.2") -> Endpoint:
    return Endpoint(source=src, uid=uid, namespace="lab", name=f"vm-{uid}", kind="vm", network="blue", ips=(ip,))


def rejected(source: str, reason: str) -> float:
    return REGISTRY.get_sample_value("ovn_hub_rejected_total", {"source": source, "reason": reason}) or 0.0


# ---------------------------------------------------------------- units
def test_remote_config() -> None:
    cfg = loads('[remote.siteb]\norchestrator = "static"\ncluster = "b"\nusername = "site-b"\n')
    assert cfg.remote_sources() == {"siteb": SRC} and cfg.remote["siteb"].username == "site-b"
    for text, key in (
        ('[remote.x]\norchestrator = "static"\ncluster = "B!"\n', "remote.x"),
        ('[remote.x]\norchestrator = "static"\n', "remote.x: Object missing required field `cluster`"),
        ('[remote.x]\norchestrator = "static"\ncluster = "b"\npassword = "p"\n', "remote.x.password"),
        ('[remote.x]\norchestrator = "static"\ncluster = "b"\n[remote.y]\norchestrator = "static"\ncluster = "b"\n',
         "remote.y.cluster"),
        ('[adapters.b]\ntype = "static"\npath = "/x"\ncluster = "b"\n'
         '[remote.x]\norchestrator = "static"\ncluster = "b"\n', "remote.x.cluster"),
    ):
        with pytest.raises(ConfigError, match=key):
            loads(text)
    assert ingest_topic(HUB, SRC) == "ovn-hub/v1/hubt/ingest/static/b"


async def test_ingest_checks_every_message() -> None:
    bus = Bus(100)
    sub = bus.subscribe("t")
    ing = RemoteIngest(HUB, MqttSection(), bus, {"siteb": SRC})
    topic = ingest_topic(HUB, SRC)
    other = Source("static", "zzz")
    before = {k: rejected(*k) for k in (("static/b", "schema"), ("static/b", "bad-json"), ("static/b", "bad-ip"),
                                        ("static/b", "unauthorized-source"), ("static/zzz", "unauthorized-source"),
                                        ("invalid", "unauthorized-source"))}
    await ing.handle(topic, b'{"type": "upsert", "obj": {"type": "endpoint"}}')
    await ing.handle(topic, b"{not json")
    await ing.handle(topic, encode(Upsert(obj=ep("bad", ip="10.5.0.300"))))
    await ing.handle(topic, encode(Upsert(obj=ep("x", src=other))))  # not the topic's source
    await ing.handle(topic, encode(Programmed(source=SRC, kind="endpoint", key="x", row="r")))  # not input
    await ing.handle(ingest_topic(HUB, other), encode(Upsert(obj=ep("x", src=other))))  # not configured
    await ing.handle("ovn-hub/v1/hubt/ingest/Bad!/b", b"{}")
    good = Snapshot(source=SRC, objects=(Network(source=SRC, name="blue"), ep("a"), ep("bad", ip="nope"),
                                         ep("y", src=other)))
    await ing.handle(topic, encode(good))
    await ing.handle(topic, encode(Delete(source=SRC, kind="endpoint", key="blue/a")))
    assert rejected("static/b", "schema") - before[("static/b", "schema")] == 2
    assert rejected("static/b", "bad-json") - before[("static/b", "bad-json")] == 1
    assert rejected("static/b", "bad-ip") - before[("static/b", "bad-ip")] == 2
    assert rejected("static/b", "unauthorized-source") - before[("static/b", "unauthorized-source")] == 2
    assert rejected("static/zzz", "unauthorized-source") - before[("static/zzz", "unauthorized-source")] == 1
    assert rejected("invalid", "unauthorized-source") - before[("invalid", "unauthorized-source")] == 1
    assert ing.rejected == 9
    got = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    snaps = [e for e in got if isinstance(e, Snapshot)]
    assert len(snaps) == 1 and [o.key for o in snaps[0].objects] == ["blue", "blue/a"]
    assert isinstance(got[-1], Delete)
    assert ing.sinks[SRC].snapshots == 1
