"""Shared networks, pure: one hub-wide switch for a network several sources declare shared.

Switch naming (``core.names.switch_of``, the one resolution), the desired rows of
a shared network declared by two sources, the conflict rule (lowest source name
wins, the other is rejected once), mirrors, the fabric joining the switch once, and
GC only once every expected source listed.  NB rows are fed to the replica as the
monitor would deliver them (as tests/unit/nb/test_plan.py does).
"""

from __future__ import annotations

from typing import Any

import pytest

from core.model import Delete, Endpoint, Invalid, LBRule, Network, Rejected, Service, Snapshot, Source, Upsert, validate
from core.model.fabric import FABRIC_SOURCE, Fabric, RouterSpec
from core.names import OWNER, SOURCE, ls_name, lsp_name, shared_network, switch_of
from core.nb import Programmer
from core.nb.kinds import PlanOp
from core.nb.plan import plan_batch
from core.nb.tables import LB, LS, LSP
from core.nb.tables.port import lsp_columns
from core.nb.tables.switch import ls_columns
from core.ovsdb.values import to_ovsdb

HUB = "hub1"
A = Source("docker", "a")
B = Source("docker", "b")
SHARED = "ovn-hub/net/green"


def green(src: Source, subnet: str = "10.60.0.0/24", gateway: str = "10.60.0.1", **kw: Any) -> Network:
    return Network(source=src, name="green", subnets=(subnet,), gateway=gateway, shared=True, **kw)


def ep(src: Source, uid: str, ip: str, net: str = "green") -> Endpoint:
    return Endpoint(source=src, uid=uid, namespace="default", name=uid, kind="container", network=net, ips=(ip,))


def nb(p: Programmer, table: str, uuid: str, cols: dict[str, Any]) -> None:
    p.replica.on_update({table: {uuid: {"initial": to_ovsdb(cols)}}})


def plan(p: Programmer) -> list[PlanOp]:
    p._derive()
    ops, _pulled, _deferred = plan_batch(p.view, {t: sorted(k) for t, k in p.dirty.items()})
    return ops


def summary(ops: list[PlanOp]) -> list[tuple[str, str, str]]:
    return [(o.op, o.table, o.name) for o in ops]


def rejections(p: Programmer) -> list[Rejected]:
    out = []
    while not p._status_q.empty():
        ev = p._status_q.get_nowait()
        if isinstance(ev, Rejected):
            out.append(ev)
    return out


# ---------------------------------------------------------------- naming
def test_switch_naming_resolves_a_shared_network_to_the_hub_wide_switch() -> None:
    own = Network(source=A, name="blue", subnets=("10.1.0.0/24",))
    nets = {"green": green(A), "blue": own}
    assert switch_of(A, "green", nets) == SHARED == ls_name(A, "green", shared=True)
    assert switch_of(A, "blue", nets) == "docker/a/blue" == ls_name(A, "blue")
    assert switch_of(A, "red", nets) == "docker/a/red"  # known from its endpoints only: the source's own
    assert switch_of(A, "green", None) == "docker/a/green"
    assert shared_network(SHARED) == "green" and shared_network("docker/a/green") == ""


def test_a_mirror_must_be_shared() -> None:
    with pytest.raises(Invalid, match="mirror but not shared"):
        validate(Network(source=A, name="green", mirror=True))
    validate(green(A, mirror=True))


# ---------------------------------------------------------------- desired rows
def test_two_sources_declaring_one_shared_network_give_one_switch_with_both_ports() -> None:
    p = Programmer("unix:/nonexistent", HUB)
    p.apply(Snapshot(source=A, objects=(green(A), ep(A, "a1", "10.60.0.2"))))
    p.apply(Snapshot(source=B, objects=(green(B), ep(B, "b1", "10.60.0.3"))))
    ops = plan(p)
    assert summary(ops) == [
        ("insert", LS, SHARED),
        ("insert", LSP, "docker/a/green/a1"),
        ("insert", LSP, "docker/b/green/b1"),
    ]
    sw = ops[0].columns
    assert sw["other_config"] == {"subnet": "10.60.0.0/24", "exclude_ips": "10.60.0.1"}
    assert sw["external_ids"][SOURCE] == str(FABRIC_SOURCE)  # collected under the fabric's rule
    assert sw["external_ids"]["ovn-hub:gateway"] == "10.60.0.1"
    assert {o.ref for o in ops[1:]} == {SHARED}  # both sources' ports hang from it
    assert p.switch_of(B, "green") == SHARED
    assert rejections(p) == []


def test_one_source_leaving_keeps_the_switch_and_both_gone_remove_it() -> None:
    p = Programmer("unix:/nonexistent", HUB)
    p.apply(Snapshot(source=A, objects=(green(A), ep(A, "a1", "10.60.0.2"))))
    p.apply(Snapshot(source=B, objects=(green(B),)))
    assert SHARED in p.desired.rows[LS]
    p.apply(Snapshot(source=A, objects=()))
    assert SHARED in p.desired.rows[LS]  # B still declares it
    p.apply(Delete(source=B, kind="network", key="green"))
    assert SHARED not in p.desired.rows[LS] and p.desired.shared == {}


def test_conflicting_subnets_are_rejected_once_and_the_lowest_source_name_wins_whatever_the_order() -> None:
    for first, second in ((A, B), (B, A)):
        p = Programmer("unix:/nonexistent", HUB)
        nets = {A: green(A), B: green(B, "10.61.0.0/24", "10.61.0.1")}
        objs = {first: (nets[first], ep(first, "x", "10.60.0.2")), second: (nets[second],)}
        p.apply(Snapshot(source=first, objects=objs[first]))
        p.apply(Snapshot(source=second, objects=objs[second]))
        cols = p.desired.rows[LS][SHARED].columns
        assert cols["other_config"]["subnet"] == "10.60.0.0/24"  # A's: docker/a < docker/b
        rej = rejections(p)
        assert [(r.source, r.reason, r.ref) for r in rej] == [(B, "shared-conflict", SHARED)]
        assert "10.61.0.0/24" in rej[0].message and "docker/a" in rej[0].message
        # the same again is not a new rejection; nothing else stopped
        p.apply(Snapshot(source=B, objects=objs[B]))
        assert rejections(p) == []
        assert f"docker/{first.cluster}/green/x" in p.desired.ports
    # agreeing clears the conflict; disagreeing again reports it again
    p.apply(Snapshot(source=B, objects=(green(B),)))
    assert p.desired.conflicts == {}
    p.apply(Upsert(obj=green(B, "10.62.0.0/24", "10.62.0.1")))
    assert [r.reason for r in rejections(p)] == ["shared-conflict"]


def test_a_mirror_keeps_the_switch_only_while_it_has_endpoints_and_never_wins() -> None:
    p = Programmer("unix:/nonexistent", HUB)
    p.apply(Snapshot(source=A, objects=(green(A),)))
    p.apply(Snapshot(source=Source("docker", "0"), objects=(green(Source("docker", "0"), "10.99.0.0/24", "10.99.0.1",
                                                                  mirror=True),)))  # fmt: skip
    assert p.desired.rows[LS][SHARED].columns["other_config"]["subnet"] == "10.60.0.0/24"  # a mirror yields
    p.apply(Snapshot(source=A, objects=()))
    assert SHARED not in p.desired.rows[LS]  # only a mirror declares it: gone
    p.apply(Snapshot(source=B, objects=(green(B, mirror=True), ep(B, "b1", "10.60.0.5"))))
    assert SHARED in p.desired.rows[LS]  # a mirror with an endpoint on it keeps it
    p.apply(Snapshot(source=B, objects=(green(B, mirror=True),)))
    assert SHARED not in p.desired.rows[LS]


def test_services_balance_on_the_shared_switch() -> None:
    p = Programmer("unix:/nonexistent", HUB)
    svc = Service(source=B, uid="s1", namespace="default", name="web", network="green",
                  rules=(LBRule(vip="10.96.0.10", port=80, backends=("10.60.0.3:80",)),))  # fmt: skip
    p.apply(Snapshot(source=B, objects=(green(B), svc)))
    p._derive()
    (lb,) = p.desired.rows[LB].values()
    assert lb.parent == SHARED


# ---------------------------------------------------------------- the fabric
def test_the_router_joins_a_shared_network_once_and_dns_holds_both_sources() -> None:
    p = Programmer("unix:/nonexistent", HUB)
    p.set_fabric(Fabric(routers=(RouterSpec(name="main"),)))
    p.expect([A, B])
    p.apply(Snapshot(source=A, objects=(green(A), ep(A, "a1", "10.60.0.2"))))
    p.apply(Snapshot(source=B, objects=(green(B), ep(B, "b1", "10.60.0.3"))))
    p._derive()
    assert p.fabric.switches("main") == (SHARED,) and p.fabric.problems == []
    assert [k for k in p.desired.rows[LSP] if k.startswith("ovn-hub/stor/")] == [f"ovn-hub/stor/{SHARED}"]
    dns = {r.key: r for r in p.desired.rows["DNS"].values()}
    records = {n for r in dns.values() for n in r.columns["records"]}
    assert records == {"a1.default.docker.a.hub", "b1.default.docker.b.hub"}
    assert {r.parent for r in dns.values()} == {SHARED}


def test_patterns_name_a_shared_network_by_its_switch() -> None:
    p = Programmer("unix:/nonexistent", HUB)
    p.set_fabric(Fabric(routers=(RouterSpec(name="dock", networks=("docker/*",)),
                                 RouterSpec(name="shared", networks=("ovn-hub/net/*",)))))  # fmt: skip
    p.apply(Snapshot(source=A, objects=(green(A), Network(source=A, name="own", subnets=("10.7.0.0/24",)))))
    p._derive()
    assert p.fabric.router_of == {SHARED: "shared", "docker/a/own": "dock"}


# ---------------------------------------------------------------- GC: only once every expected source listed
def _nb_with_shared_switch(p: Programmer) -> None:
    a1, b1 = ep(A, "a1", "10.60.0.2"), ep(B, "b1", "10.60.0.3")
    nb(p, LS, "ls-green", {**ls_columns("ovn-hub/net", "green", green(A), HUB, shared=True), "ports": ("p-a1", "p-b1")})
    nb(p, LSP, "p-a1", lsp_columns(a1, HUB))
    nb(p, LSP, "p-b1", lsp_columns(b1, HUB))


def test_the_shared_switch_is_collected_only_after_every_expected_source_listed() -> None:
    p = Programmer("unix:/nonexistent", HUB)
    p.expect([A, B])
    _nb_with_shared_switch(p)
    p.apply(Snapshot(source=A, objects=()))  # A dropped green; B has not listed since the restart
    assert summary(plan(p)) == [("delete", LSP, "docker/a/green/a1")]  # B's port and the switch stay
    p.apply(Snapshot(source=B, objects=()))
    # now both ports go, and the switch with them, after them (referrers first, one transaction)
    assert summary(plan(p)) == [("delete", LSP, "docker/a/green/a1"), ("delete", LSP, "docker/b/green/b1"),
                                ("delete", LS, SHARED)]  # fmt: skip


def test_the_shared_switch_stays_while_a_source_that_has_not_listed_may_declare_it() -> None:
    p = Programmer("unix:/nonexistent", HUB)
    p.expect([A, B])
    nb(p, LS, "ls-green", {**ls_columns("ovn-hub/net", "green", green(A), HUB, shared=True), "ports": ()})
    p.apply(Snapshot(source=A, objects=()))
    assert plan(p) == []  # B may still declare it
    p.apply(Snapshot(source=B, objects=()))
    assert summary(plan(p)) == [("delete", LS, SHARED)]


def test_a_foreign_port_on_the_shared_switch_keeps_it() -> None:
    p = Programmer("unix:/nonexistent", HUB)
    p.expect([A])
    nb(p, LS, "ls-green", {**ls_columns("ovn-hub/net", "green", green(A), HUB, shared=True), "ports": ("p-x",)})
    nb(p, LSP, "p-x", {"name": "someone-elses", "external_ids": {OWNER: "other-hub"}})
    p.apply(Snapshot(source=A, objects=()))
    assert plan(p) == []
    assert lsp_name(ep(A, "a1", "10.60.0.2")) == "docker/a/green/a1"


# ---------------------------------------------------------------- hubctl trace
def test_trace_sees_endpoints_of_two_sources_on_one_shared_switch() -> None:
    from hub.trace import Request
    from hub.trace import plan as trace_plan

    p = Programmer("unix:/nonexistent", HUB)
    a1, b1 = ep(A, "a1", "10.60.0.2"), ep(B, "b1", "10.60.0.3")
    p.apply(Snapshot(source=A, objects=(green(A), a1)))
    p.apply(Snapshot(source=B, objects=(green(B), b1)))
    nb(p, LSP, "p-a1", lsp_columns(a1, HUB))
    nb(p, LSP, "p-b1", lsp_columns(b1, HUB))
    got = trace_plan(p, Request(src="docker/a/default/a1", dst="docker/b/default/b1", network=SHARED))
    assert (got.src.switch, got.dst.switch) == (SHARED, SHARED)
    assert got.eth_dst == "0a:58:0a:3c:00:03"  # the same L2 network: straight to b1's MAC, no router
