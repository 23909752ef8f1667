"""Property: any input ends as a canonical object that a real ovsdb-server
accepts, or as a Rejected with a reason.  Never a dropped NB session, a raise
out of an adapter or ingest, or a stall.

Two doors are fuzzed: lines of the static adapter's file, and payloads of the
remote-ingest topic.  Inputs are random JSON and bytes plus near-valid
canonical objects whose fields are drawn from hostile text (control, bidi and
zero-width characters, scope ids, whitespace around addresses, huge values).
Bounded: a fixed number of derandomized examples (the same in every CI run),
each with a time budget.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.static import StaticAdapter
from core.adapter import AdapterSpec
from core.model import Delete, Endpoint, Rejected, Snapshot, Source, Upsert
from core.nb import Programmer
from hub.bus import Bus
from hub.config import MqttSection
from hub.remote import RemoteIngest, ingest_topic
from hub.sandbox import OvnSandbox

SRC = Source("static", "fz")
SRC_JSON = {"orchestrator": "static", "cluster": "fz"}
TAG = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
FUZZ = settings(
    max_examples=40, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip

nasty = st.sampled_from(["\x00", "\n", "\t", " ", "\u202e", "\u200b", "\ufeff", "%", "%eth0", "%\x00", "/", "\\u0000", "é", ""])
ipish = st.one_of(
    st.sampled_from(["10.100.0.5", "10.100.0.6", "fd00::5", "fe80::1", "127.0.0.1", "::1", "255.255.255.255", "0.0.0.0",
                     "224.1.1.1", "10.100.0.256", "010.1.1.1", "1.2.3", "10.100.0.7"]),
    st.builds(lambda a, b: a + b, st.sampled_from(["10.100.0.9", "fe80::1", "fd00::9"]), nasty),
)  # fmt: skip
hostile_text = st.one_of(
    st.text(max_size=12),
    st.builds(lambda a, b, c: a + b + c, st.text("abc-", max_size=4), nasty, st.text("xyz", max_size=4)),
    st.sampled_from(["x" * 300, "y" * 5000]),
)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def endpoint_dict(draw: Any, source: dict[str, str] = SRC_JSON) -> dict[str, Any]:
    d: dict[str, Any] = {"type": "endpoint", "source": source, "uid": draw(st.one_of(st.sampled_from(["u1", "u2", "u3"]), hostile_text)),
                         "namespace": draw(st.one_of(st.just("lab"), hostile_text)), "name": draw(st.one_of(st.just("n"), hostile_text)),
                         "kind": "vm", "network": draw(st.sampled_from(["net0", "net1", "net0\n", "n e t", "x" * 200]))}  # fmt: skip
    if draw(st.booleans()):
        d["ips"] = draw(st.lists(ipish, max_size=3))
    if draw(st.booleans()):
        d["mac"] = draw(st.sampled_from(["02:00:00:00:00:01", "02:00:00:00:00:01\n", "01:00:00:00:00:01", "02:00:00:00:00:0G"]))
    if draw(st.booleans()):
        d["labels"] = draw(st.dictionaries(hostile_text, hostile_text, max_size=3))
    if draw(st.booleans()):
        d["ports"] = draw(st.lists(st.fixed_dictionaries({"port": st.integers(-5, 70000)}), max_size=3))
    if draw(st.booleans()):
        d["state"] = draw(hostile_text)
    if draw(st.booleans()):
        d["zz"] = draw(json_value)
    return d


@st.composite
def network_dict(draw: Any, source: dict[str, str] = SRC_JSON) -> dict[str, Any]:
    d: dict[str, Any] = {"type": "network", "source": source, "name": draw(st.sampled_from(["net0", "net1", "bad name"]))}
    if draw(st.booleans()):
        d["subnets"] = draw(st.lists(st.sampled_from(["10.100.0.0/16", "fd00::/64", "fe80::%x/64", "10.0.0.0/8\n", "nope"]), max_size=2))
    if draw(st.booleans()):
        d["gateway"] = draw(ipish)
    return d


line = st.one_of(
    st.binary(max_size=40),
    json_value.map(lambda v: json.dumps(v).encode()),
    endpoint_dict().map(lambda d: json.dumps(d, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    network_dict().map(lambda d: json.dumps(d).encode()),
    st.integers(100, 3000).map(lambda n: b'{"type":"endpoint","zz":' + b"[" * n + b"]" * n + b"}"),
)


async def program(ovn: OvnSandbox, snapshot: Snapshot, events: list[Any] = ()) -> Programmer:  # type: ignore[assignment]
    """Apply to a real ovsdb-server; the programmer must commit every row."""
    p = Programmer(ovn.nb_remote, "fuzz", coalesce=0, retry_interval=60)
    await p.start(timeout=20)
    task = asyncio.create_task(p.run())
    try:
        client = p._client
        p.apply(snapshot)
        for ev in events:
            p.apply(ev)
        await p.flush(20)
        assert not p.failed, p.failed
        assert p.session_drops == 0 and p._client is client and not client.closed.is_set()
        want = set(p.want_lsp)
        assert want <= set(p.lsp), want - set(p.lsp)
        return p
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await p.close()


@FUZZ
@given(lines=st.lists(line, min_size=1, max_size=12))
def test_any_static_line_is_programmed_or_rejected(ovn: OvnSandbox, tmpdir_short: Path, lines: list[bytes]) -> None:
    path = tmpdir_short / "fz.jsonl"
    data = b"\n".join(x.replace(b"\n", b" ") for x in lines) + b"\n"
    path.write_bytes(data)
    adapter = StaticAdapter(AdapterSpec(name="fz", type="static", cluster="fz", options={"path": str(path)}))
    objects, rejected = adapter.read()
    nonblank = sum(1 for x in data.split(b"\n") if x.strip())
    assert len(objects) + len(rejected) == nonblank  # every line is accounted for, once
    for r in rejected:
        assert TAG.fullmatch(r.reason), r.reason
        assert len(r.message) < 2000
    asyncio.run(asyncio.wait_for(program(ovn, Snapshot(source=SRC, objects=tuple(objects))), 60))


event_payload = st.one_of(
    st.binary(max_size=40),
    json_value.map(lambda v: json.dumps(v).encode()),
    st.lists(endpoint_dict(), max_size=5).map(
        lambda eps: json.dumps({"type": "snapshot", "source": SRC_JSON, "objects": eps}, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    endpoint_dict().map(lambda d: json.dumps({"type": "upsert", "obj": d}, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    endpoint_dict(source={"orchestrator": "other", "cluster": "x"}).map(lambda d: json.dumps({"type": "upsert", "obj": d}).encode()),
    st.builds(lambda k, key: json.dumps({"type": "delete", "source": SRC_JSON, "kind": k, "key": key}).encode(),
              st.sampled_from(["endpoint", "network", "pod", ""]), hostile_text),
    st.builds(lambda r, m: json.dumps({"type": "rejected", "source": SRC_JSON, "reason": r, "message": m}).encode(),
              hostile_text, hostile_text),
)  # fmt: skip


@FUZZ
@given(payloads=st.lists(event_payload, min_size=1, max_size=8), topic_ok=st.booleans())
def test_any_remote_payload_is_programmed_or_rejected(ovn: OvnSandbox, payloads: list[bytes], topic_ok: bool) -> None:
    async def run() -> None:
        bus = Bus()
        sub = bus.subscribe("t")
        ingest = RemoteIngest("hub1", MqttSection(), bus, {"fz": SRC})
        topic = ingest_topic("hub1", SRC) if topic_ok else "ovn-hub/v1/hub1/ingest/st\u202eatic/fz"
        for payload in payloads:
            await ingest.handle(topic, payload)  # never raises
        got: list[Any] = []
        while not sub.queue.empty():
            got.append(sub.queue.get_nowait())
        accepted = [e for e in got if isinstance(e, Snapshot | Upsert | Delete)]
        rejected = [e for e in got if isinstance(e, Rejected)]
        # every payload is accounted for: accepted, rejected on the bus, or counted as unauthorized
        assert len(accepted) + len(rejected) + (0 if topic_ok else len(payloads)) >= len(payloads)
        assert all(TAG.fullmatch(r.reason) and len(r.message) <= 1100 for r in rejected)
        if not topic_ok:
            assert not accepted and bus.rejections.counts[("invalid", "unauthorized-source")] >= 1
        for e in accepted:
            if isinstance(e, Upsert):
                assert isinstance(e.obj, Endpoint | type(e.obj)) and e.obj.source == SRC
        await program(ovn, Snapshot(source=SRC, objects=()), accepted)

    asyncio.run(asyncio.wait_for(run(), 60))
