"""``hubctl trace`` without a server: ovn-trace's output read back (hub/ovntrace.py) on
real output captured by tests/integration/test_trace.py (tests/fixtures/ovn-trace/,
SOURCES.md says how), the microflow, hubctl's text, and the API's answers to bad
requests."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from core.model import Endpoint, Policy
from core.nb import NbRow
from hub.api import ApiServer
from hub.cli import trace_lines
from hub.ovntrace import Parsed, Step, explain, parse
from hub.trace import Request, TraceError, TraceFailed, microflow
from tests.conftest import FIXTURES_DIR

FIX = FIXTURES_DIR / "ovn-trace"
CASES = ("routed-ping", "service-vip", "policy-drop", "outside-arp", "outside-snat")


def text(case: str) -> str:
    return (FIX / f"{case}.txt").read_text()


def answer(case: str) -> dict[str, Any]:
    return dict(json.loads((FIX / f"{case}.json").read_text()))


class NoNames:
    """A hub that knows nothing: every flow is shown raw."""

    def __init__(self, hints: bool = False) -> None:
        self.hints = hints

    def datapath(self, uuid: str) -> str:
        return ""

    def row(self, step: Step, tables: tuple[str, ...]) -> NbRow | None:
        return None

    def hint(self, step: Step) -> str:
        return "deadbeef" if self.hints else ""

    def endpoint(self, port: str) -> Endpoint | None:
        return None

    def endpoints_with_ip(self, ip: str) -> list[Endpoint]:
        return []

    def isolating(self, port: str, direction: str) -> list[Policy]:
        return []


def stages(p: Parsed) -> list[str]:
    return [s.stage for s in p.steps]


@pytest.mark.parametrize("case", CASES)
def test_every_captured_trace_parses_whole(case: str) -> None:
    p = parse(text(case))
    assert p.flow.split(",")[0] in ("icmp", "tcp")
    assert p.steps and p.notes == []  # every line is a shape the parser knows
    assert all(s.section.pipeline in ("ingress", "egress") and s.section.datapath for s in p.steps)
    assert all(len(s.uuid) == 8 for s in p.steps if not s.no_match)
    # the JSON answer was made from this very text
    assert answer(case)["trace"] == text(case)


def test_routed_ping() -> None:
    p = parse(text("routed-ping"))
    assert [(o.port, o.type, o.delivers) for o in p.outputs] == [
        ("ovn-hub/stor/docker/local/blue", "patch", False),
        ("ovn-hub/rtos/k8s/prod/pods", "patch", False),
        ("k8s/prod/pods/uid-client", "", True),
    ]
    assert [(s.section.pipeline, s.section.inport, s.section.outport) for s in p.steps if s.stage.endswith("delivery")] == [
        ("egress", "ovn-hub/rtos/docker/local/blue", "ovn-hub/rtos/k8s/prod/pods")]
    (route,) = [s for s in p.steps if s.stage == "lr_in_ip_routing"]
    assert (route.table, route.match, route.priority) == (13, "ip4.dst == 10.244.0.0/16", 50)
    assert (route.assigned("outport"), route.assigned("reg0"), route.assigned("reg1")) == (
        "ovn-hub/rtos/k8s/prod/pods", "ip4.dst", "10.244.0.1")
    assert len(p.datapaths) == 3 and not any(s.drops for s in p.steps)
    e = explain(p, NoNames(), "10.244.0.6")
    assert e["verdict"] == "delivered" and [d["port"] for d in e["delivered"]] == ["k8s/prod/pods/uid-client"]
    assert [d["kind"] for d in e["decisions"]] == ["route"] and e["decisions"][0]["prefix"] == "10.244.0.0/16"
    assert e["path"] == p.datapaths  # no names: the datapaths' uuids


def test_service_vip() -> None:
    p = parse(text("service-vip"))
    (lb,) = [s for s in p.steps if s.stage == "ls_in_lb"]
    assert lb.actions == ["reg0[1] = 0;", "ct_lb_mark(backends=10.244.0.5:5432);"]
    assert lb.match == "ct.new && ip4.dst == 10.96.0.20 && tcp.dst == 5432"
    assert next(s.section.title for s in p.steps if s.stage == "ls_in_acl_hint") == "ct_lb_mark"  # after conntrack
    e = explain(p, NoNames(), "10.96.0.20")
    (d,) = [d for d in e["decisions"] if d["kind"] == "lb"]
    assert (d["vip"], d["protocol"], [b["address"] for b in d["backends"]]) == ("10.96.0.20:5432", "tcp", ["10.244.0.5:5432"])
    assert d["service"] is None and "not the hub's" in d["text"]
    # the path leaves the switch for the router and comes back (the VIP is off-subnet)
    assert len(e["path"]) == 3 and e["path"][0] == e["path"][2]


def test_policy_drop() -> None:
    p = parse(text("policy-drop"))
    last = p.steps[-1]
    assert last.drops and (last.stage, last.priority, last.section.pipeline) == ("ls_out_acl", 2000, "egress")
    assert last.section.outport == "k8s/prod/pods/uid-db-0" and last.actions == ["drop;"]
    assert "_denyin && ip" in last.match
    e = explain(p, NoNames(), "10.244.0.5")
    assert e["verdict"] == "dropped" and e["delivered"] == []
    (drop,) = e["drops"]
    assert drop["why"] == f"an ACL flow (no stage-hint: one of ovn-northd's own): {last.match}"
    assert drop["flow"]["raw"] == last.raw()
    # a flow the hub cannot name is shown raw, never hidden
    e = explain(p, NoNames(hints=True), "10.244.0.5")
    assert e["drops"][0]["why"].startswith("an ACL flow (stage-hint deadbeef: no ACL of this hub)")
    raw = [d for d in e["decisions"] if d["kind"] == "flow"]
    assert raw and all(d["flow"]["raw"] in d["text"] and "stage-hint deadbeef" in d["text"] for d in raw)


def test_outside_arp_is_a_packet_the_router_made() -> None:
    p = parse(text("outside-arp"))
    made = [o for o in p.outputs if o.section.made]
    assert [(o.port, o.type, o.section.made, o.delivers) for o in made] == [
        ("ovn-hub/rtoe/uplink", "patch", "arp", False), ("ovn-hub/ext/uplink/localnet", "localnet", "arp", False)]
    assert ("arp", "arp.tpa = reg0;") in p.section_lines
    e = explain(p, NoNames(), "8.8.8.8")
    assert e["verdict"] == "arp" and e["delivered"] == []
    (route,) = [d for d in e["decisions"] if d["kind"] == "route"]
    assert (route["prefix"], route["nexthop"], route["outport"]) == ("0.0.0.0/0", "172.16.0.1", "ovn-hub/rtoe/uplink")


def test_outside_snat() -> None:
    p = parse(text("outside-snat"))
    (snat,) = [s for s in p.steps if s.stage == "lr_out_snat"]
    assert snat.actions == ["ct_snat_in_czone(172.16.0.10);"]
    e = explain(p, NoNames(), "8.8.8.8")
    assert e["verdict"] == "delivered" and [(d["port"], d["type"]) for d in e["delivered"]] == [
        ("ovn-hub/ext/uplink/localnet", "localnet")]
    (nat,) = [d for d in e["decisions"] if d["kind"] == "nat"]
    assert (nat["type"], nat["to"]) == ("snat", "172.16.0.10") and "not a NAT of the hub" in nat["text"]


def test_parse_keeps_what_it_does_not_know() -> None:
    title = 'ingress(dp="x", inport="p")'
    p = parse(f"# ip,reg14=0x1\n\n{title}\n{'-' * len(title)}\n"
              " 0. ls_in_check_port_sec (northd.c:1): 1, priority 50, uuid 0123abcd\n    next;\n"
              "*** no load balancing destination (use --lb-dst)\nsomething new\n"
              " 3. ls_in_l2_lkup: no match (implicit drop)\n")  # fmt: skip
    assert p.notes == ["*** no load balancing destination (use --lb-dst)", "something new"]
    assert [(s.stage, s.drops) for s in p.steps] == [("ls_in_check_port_sec", False), ("ls_in_l2_lkup", True)]
    e = explain(p, NoNames())
    assert e["verdict"] == "dropped" and e["drops"][0]["why"] == "no port of this switch has the destination MAC"
    assert e["notes"] == p.notes


# ---------------------------------------------------------------- the microflow
def test_microflow() -> None:
    assert microflow("k8s/prod/pods/a", "0a:58:0a:00:00:01", "0a:00:00:00:00:02", "10.0.0.1", "10.0.0.2", "tcp", 80) == (
        'inport == "k8s/prod/pods/a" && eth.src == 0a:58:0a:00:00:01 && eth.dst == 0a:00:00:00:00:02 && '
        "ip4.src == 10.0.0.1 && ip4.dst == 10.0.0.2 && ip.ttl == 64 && tcp.dst == 80 && tcp.src == 40000")
    v6 = microflow('s/c/n/we"ird', "0a:00:00:00:00:01", "0a:00:00:00:00:02", "fd00::1", "fd00::2", "icmp", None)
    assert v6.startswith('inport == "s/c/n/we\\"ird" && ') and "ip6.src == fd00::1 && ip6.dst == fd00::2" in v6
    assert v6.endswith("ip.ttl == 64 && icmp6.type == 128")
    assert microflow("p", "m", "n", "10.0.0.1", "10.0.0.2", "udp", 53).endswith("udp.dst == 53 && udp.src == 40000")


# ---------------------------------------------------------------- hubctl's text
def test_hubctl_text_of_a_drop_and_an_arp() -> None:
    lines = trace_lines(answer("policy-drop"))
    assert lines[0] == ("trace docker/local/default/web (10.1.0.2 on docker/local/blue) -> "
                        "k8s/prod/default/db-0 (10.244.0.5 on k8s/prod/pods), tcp/5432")  # fmt: skip
    assert lines[1] == ("DROPPED at k8s/prod/pods (egress, ls_out_acl): the default deny (ingress) of k8s/prod: "
                        "k8s/prod/default/db-0 is isolated by policy k8s/prod default/allow-db, and no rule of it allows this")  # fmt: skip
    assert lines[2] == "path: docker/local/blue -> ovn-hub/main -> k8s/prod/pods"
    assert lines[3] == "decided by:" and lines[-1].startswith("microflow: inport == ")
    lines = trace_lines(answer("outside-arp"))
    assert lines[1] == ("NOT SENT: the router knows no MAC for 172.16.0.1, so it sends an ARP request instead "
                        "(out of ovn-hub/ext/uplink/localnet on ovn-hub/ext/uplink); packets follow once that is answered")  # fmt: skip
    lines = trace_lines(answer("service-vip"))
    assert lines[0].endswith("-> k8s/prod/default/db (Service, VIP 10.96.0.20), tcp/5432")
    assert "  acl allow-related: policy k8s/prod default/allow-db rule ingress[0] (to-lport, priority 1001) " \
           "[k8s/prod/pods egress ls_out_acl]" in lines


# ---------------------------------------------------------------- the API
class View:
    def __init__(self, exc: Exception | None = None) -> None:
        self.exc = exc
        self.asked: list[Request] = []

    async def trace(self, request: Request) -> dict[str, Any]:
        self.asked.append(request)
        if self.exc is not None:
            raise self.exc
        return {"verdict": "delivered"}


async def get(view: View, query: str) -> tuple[int, Any]:
    api = ApiServer(view)  # type: ignore[arg-type]
    resp = await api.trace(make_mocked_request("GET", f"/v1/trace?{query}"))
    assert resp.body is not None
    return resp.status, json.loads(resp.body)  # type: ignore[arg-type]


async def test_api_trace_answers() -> None:
    v = View()
    assert await get(v, "src=a%2Fb%2Fc%2Fd&dst=10.0.0.1&port=80&proto=TCP&network=blue") == (200, {"verdict": "delivered"})
    assert v.asked == [Request(src="a/b/c/d", dst="10.0.0.1", port=80, proto="tcp", network="blue")]
    assert await get(View(), "src=x") == (400, {"error": "src and dst are required"})
    assert await get(View(), "src=x&dst=y&port=8o") == (400, {"error": "port '8o' is not a number"})
    assert await get(View(), "src=x&dst=y&bogus=1") == (400, {"error": "unknown parameter 'bogus'"})
    assert await get(View(TraceError("SRC x: no endpoint named a/b in c/d")), "src=x&dst=y") == (
        404, {"error": "SRC x: no endpoint named a/b in c/d"})
    assert await get(View(TraceFailed("ovn-trace did not answer within 20s")), "src=x&dst=y") == (
        502, {"error": "ovn-trace did not answer within 20s"})
