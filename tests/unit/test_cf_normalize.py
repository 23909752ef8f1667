"""Cloud Foundry, the pure half: the BBS messages (wire bytes of the reference's
tags), the hand-chunked SSE framing in any split, ActualLRP/CC/policy-server
payloads → canonical objects, and ``hubctl normalize --from cloudfoundry``."""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys

import pytest

from adapters.cloudfoundry import proto
from adapters.cloudfoundry.normalize import (
    APP_GUID,
    Catalog,
    best_records,
    decode_event,
    lrp_endpoint,
    lrp_from_json,
    lrp_from_proto,
    parse_asg_rules,
    parse_c2c,
    parse_security_groups,
    platform_objects,
)
from adapters.cloudfoundry.offline import normalize_text
from adapters.cloudfoundry.wire import ChunkDecoder, FramingError, SSEParser, encode_chunk, encode_frame
from core.model import LABEL_WORKLOAD, Endpoint, Invalid, Namespace, Policy, Source, workload_rank
from tests.conftest import FIXTURES_DIR, ROOT

SRC = Source("cloudfoundry", "prod")
CF = FIXTURES_DIR / "cloudfoundry"


def mk(pg: str = "pg", idx: int = 0, guid: str = "ig", ip: str = "10.255.0.2", state: str = "RUNNING",
       presence: int = 0) -> object:  # fmt: skip
    m = proto.ActualLRP(state=state, presence=presence)
    m.actual_lrp_key.process_guid, m.actual_lrp_key.index = pg, idx
    m.actual_lrp_instance_key.instance_guid, m.actual_lrp_instance_key.cell_id = guid, "cell"
    m.actual_lrp_net_info.instance_address = ip
    m.actual_lrp_net_info.ports.add(container_port=8080, host_port=61000, container_tls_proxy_port=61001)
    return m


def b64(msg: object) -> str:
    return base64.b64encode(msg.SerializeToString()).decode()  # type: ignore[attr-defined]


def test_the_wire_tags_are_the_references() -> None:
    m = mk()
    m.routable = False  # type: ignore[attr-defined]
    raw = m.SerializeToString()  # type: ignore[attr-defined]
    assert raw[0] == 0x0A and b"\x32\x07RUNNING" in raw and raw.endswith(b"\x68\x00")  # routable false is on the wire
    req = proto.ActualLRPsRequest()
    assert req.SerializeToString() == b"" and req.WhichOneof("optional_index") is None
    req.index = 0
    assert req.SerializeToString() == b"\x20\x00"  # index 0 is a filter only when present
    info = proto.ActualLRPInfo(Routable=True, availability_zone="z")
    assert info.SerializeToString() == b"\x58\x01\x62\x01z"
    assert proto.ERROR_TYPES[29] == "Unrecoverable" and proto.PRESENCE[1] == "EVACUATING"


def test_chunks_and_frames_in_any_split() -> None:
    frames = [encode_frame(i, "actual_lrp_instance_created", b64(mk(guid=f"g{i}"))) for i in range(5)]
    body = b"".join(encode_chunk(f) for f in frames) + b"0\r\n\r\n"
    rng = random.Random(7)
    for _ in range(30):
        dec, sse, got, pos = ChunkDecoder(), SSEParser(), [], 0
        while pos < len(body):
            n = rng.randint(1, 40)
            got += sse.feed(dec.feed(body[pos : pos + n]))
            pos += n
        assert [f.id for f in got] == ["0", "1", "2", "3", "4"] and dec.done
    # one chunk holding a frame and a half: frames are parsed across chunk boundaries
    joined = b"".join(frames)
    dec, sse = ChunkDecoder(), SSEParser()
    out = sse.feed(dec.feed(encode_chunk(joined[:300]) + encode_chunk(joined[300:])))
    assert len(out) == 5


@pytest.mark.parametrize("raw", [b"zz;\r\n", b"1" * 80, b"fffffffff;\r\n", b"3;\r\nabcXY"])
def test_broken_chunk_framing_is_a_framing_error(raw: bytes) -> None:
    with pytest.raises(FramingError):
        ChunkDecoder().feed(raw)


def test_bad_frames_say_why_and_the_parser_goes_on() -> None:
    sse = SSEParser()
    out = sse.feed(b"id: 1\nevent: x\n\nid: 2\nevent: e\nfoo: 1\ndata: a\n\nid: 3\ndata: a\n\n: comment\n\n"
                   b"id: 4\nevent: \xff\ndata: a\n\nid: 5\nevent: ok\ndata: AA==\n\n")  # fmt: skip
    assert [f.error.split(":")[0] for f in out] == ["no-data", "bad-frame", "bad-frame", "bad-frame", ""]
    assert out[-1].data == "AA==" and out[-1].event == "ok"


def test_decode_events() -> None:
    created = decode_event("actual_lrp_instance_created", b64(proto.ActualLRPInstanceCreatedEvent(actual_lrp=mk())))
    assert created is not None and created.upserts[0].ips == ("10.255.0.2",) and created.upserts[0].ports == (8080, 61001)
    ch = proto.ActualLRPInstanceChangedEvent()
    ch.actual_lrp_key.process_guid = "pg"
    ch.actual_lrp_instance_key.instance_guid = "ig"
    ch.before.state, ch.after.state, ch.before.presence, ch.after.presence = "RUNNING", "RUNNING", 2, 0
    ch.after.actual_lrp_net_info.instance_address = "10.255.0.3"
    changed = decode_event("actual_lrp_instance_changed", b64(ch))
    assert changed is not None and changed.moved_from == (("pg", 0, "SUSPECT"),) and changed.upserts[0].presence == "ORDINARY"
    assert decode_event("desired_lrp_changed", "") is None
    for name, data, reason in [
        ("nope", "AA==", "unknown-event"), ("actual_lrp_instance_created", "", "no-data"),
        ("actual_lrp_instance_created", "!!", "bad-base64"), ("actual_lrp_crashed", b64(mk()) + "A", "bad-base64"),
        ("actual_lrp_instance_removed", base64.b64encode(b"\x0a\xff").decode(), "bad-protobuf"),
        ("actual_lrp_instance_created", b64(proto.ActualLRPInstanceCreatedEvent(actual_lrp=mk(state="WEIRD"))), "bad-state"),
        ("actual_lrp_instance_created", b64(proto.ActualLRPInstanceCreatedEvent(actual_lrp=mk(ip="::1"))), "bad-ip"),
    ]:  # fmt: skip
        with pytest.raises(Invalid) as exc:
            change = decode_event(name, data)
            for rec in change.upserts if change else ():
                lrp_endpoint(rec, SRC, Catalog().meta(rec.process_guid, {}), "apps")
        assert exc.value.reason == reason, (name, exc.value)


def test_up_states_and_evacuation_twins() -> None:
    running, twin = lrp_from_proto(mk()), lrp_from_proto(mk(presence=1))
    crashed, unclaimed = lrp_from_proto(mk(state="CRASHED")), lrp_from_proto(mk(guid="", ip="", state="UNCLAIMED"))
    claimed = lrp_from_proto(mk(guid="new", ip="", state="CLAIMED"))
    meta = Catalog().meta("pg", {"app_name": "web-app", "space_name": "s", "organization_name": "o"})
    assert lrp_endpoint(crashed, SRC, meta, "apps") is None and lrp_endpoint(unclaimed, SRC, meta, "apps") is None
    ep = lrp_endpoint(claimed, SRC, meta, "apps")
    assert ep is not None and ep.ips == () and ep.state == "claimed" and ep.namespace == "o/s" and ep.name == "web-app/unknown/0"
    # the workload it is: the cell's CNI endpoint of the container (Garden's handle = the instance guid) yields to it
    assert ep.labels[LABEL_WORKLOAD] == "cloudfoundry:new" and workload_rank(ep) == 3
    assert lrp_endpoint(running, SRC, meta, "apps").labels[LABEL_WORKLOAD] == "cloudfoundry:ig"  # type: ignore[union-attr]
    assert best_records([twin, running, crashed]) == {"ig": running}  # one port, the ordinary record's
    assert best_records([twin]) == {"ig": twin}


def test_cfdot_fixture_and_pseudo_json() -> None:
    recs = [lrp_from_json(json.loads(line)) for line in (CF / "bbs-actual-lrps.cfdot-output.jsonl").read_text().splitlines()]
    assert [r.instance_guid for r in recs] == ["548a2730-0321-425c-7e6d-96ef", "95271825-7b25-4aa8-7301-3548"]
    assert recs[0].ips == ("10.255.243.213",) and recs[0].cell_id.startswith("c1715ac9") and recs[0].ports[:2] == (8080, 61001)
    out = list(normalize_text((CF / "bbs-actual-lrp-response.docs-pseudo-json.txt").read_text(), SRC))
    assert len(out) == 1 and isinstance(out[0], Invalid) and out[0].reason == "bad-json" and "\n" not in str(out[0])


def test_asg_rules() -> None:
    rules, unsupported = parse_asg_rules(json.dumps([
        {"protocol": "all", "destination": "0.0.0.0-9.255.255.255"},
        {"protocol": "tcp", "destination": "10.0.11.0/24,10.0.12.7", "ports": "80,443,8000-8010", "log": True},
        {"protocol": "icmp", "destination": "0.0.0.0/0", "type": 0, "code": 0},
    ]), "g")  # fmt: skip
    assert rules[0].cidrs == ("0.0.0.0/5", "8.0.0.0/7") and rules[0].ports == ()
    assert rules[1].cidrs == ("10.0.11.0/24", "10.0.12.7/32") and rules[1].ports == ((80, 80), (443, 443), (8000, 8010))
    assert rules[1].log and unsupported[0].reason == "unsupported-rule"
    for bad, reason in [({"protocol": "tcp", "destination": "10.0.0.0/33"}, "bad-destination"),
                        ({"protocol": "tcp", "destination": "10.0.0.1", "ports": "99999"}, "bad-port"),
                        ({"protocol": "gre", "destination": "10.0.0.1"}, "bad-protocol")]:  # fmt: skip
        with pytest.raises(Invalid) as exc:
            parse_asg_rules([bad], "g")
        assert exc.value.reason == reason


def test_platform_objects_c2c_default_deny_and_asgs() -> None:
    cat = Catalog()
    from adapters.cloudfoundry.normalize import CCApp, CCOrg, CCSpace

    cat.add(CCOrg("o1", "acme", {}))
    cat.add(CCSpace("s1", "dev", "o1", {}))
    cat.add(CCApp("a1", "front", "s1", {}))
    cat.add(CCApp("b1", "back", "s1", {}))
    c2c, bad = parse_c2c({"policies": [
        {"source": {"id": "a1"}, "destination": {"id": "b1", "protocol": "tcp", "ports": {"start": 8080, "end": 8080}}},
        {"source": {"id": "a1"}, "destination": {"id": "b1", "protocol": "icmp", "ports": {"start": 1, "end": 1}}},
    ]})  # fmt: skip
    assert len(c2c) == 1 and bad[0].reason == "bad-protocol"
    groups, gbad, nxt = parse_security_groups({"next": 0, "security_groups": [
        {"guid": "g1", "name": "dns", "rules": '[{"protocol":"udp","destination":"0.0.0.0/0","ports":"53"}]',
         "running_default": True, "staging_default": False, "running_space_guids": [], "staging_space_guids": []}]})  # fmt: skip
    assert gbad == [] and nxt == 0
    objs = {getattr(o, "uid", o.key): o for o in platform_objects(SRC, cat, c2c, groups, ["10.255.0.0/16"])}
    assert isinstance(objs["acme/dev"], Namespace)
    default = objs["c2c-default:s1"]
    assert isinstance(default, Policy) and default.ingress and default.ingress[0].peers[0].except_cidrs == ("10.255.0.0/16",)
    pol = objs["c2c:b1"]
    assert isinstance(pol, Policy) and pol.pod_selector.match_labels == {APP_GUID: "b1"}
    run = objs["asg-running:s1"]
    assert isinstance(run, Policy) and [r.ports[0].port for r in run.egress or () if r.ports] == [53]
    stage = objs["asg-staging:s1"]
    assert isinstance(stage, Policy) and len(stage.egress or ()) == 1  # the overlay only


def test_offline_accounts_for_every_fixture() -> None:
    for path in sorted(CF.iterdir()):
        if path.name == "SOURCES.md":
            continue
        skips: list[tuple[str, str]] = []
        out = list(normalize_text(path.read_text(), SRC, on_skip=lambda r, m, skips=skips: skips.append((r, m))))
        assert out or skips, path.name
        if "pseudo" not in path.name:
            assert not [o for o in out if isinstance(o, Invalid)], (path.name, out)
    eps = [o for o in normalize_text((CF / "cc-v3-process-stats-list.docs.json").read_text(), SRC) if isinstance(o, Endpoint)]
    assert [(e.uid, e.ips) for e in eps] == [("e49f448e-54d2-4c33-61a3-5335", ("10.255.93.167",))]


def test_hubctl_normalize_from_cloudfoundry() -> None:
    def run(*files: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hub.cli", "normalize", "--from", "cloudfoundry", *files],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)  # fmt: skip

    ok = run(str(CF / "bbs-actual-lrps.cfdot-output.jsonl"))
    assert ok.returncode == 0 and len(ok.stdout.splitlines()) == 3, ok.stderr  # the network and two endpoints
    bad = run(str(CF / "bbs-actual-lrp-response.docs-pseudo-json.txt"))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "rejected (bad-json)" in bad.stderr
    tags = run(str(CF / "policy-server-external-tags-response.docs.json"))
    assert tags.returncode == 3 and "skipped (tags)" in tags.stderr
