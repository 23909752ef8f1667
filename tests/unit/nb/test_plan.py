"""Pure plan tests: NB rows + desired state → the expected operations, no server.

The way ovn-kubernetes tests its controllers (an initial NB, the expected
writes): the replica is fed update2 ``initial`` rows exactly as the monitor
would deliver them, the desired state by canonical events, and
:func:`core.nb.plan.plan_batch` must return the operations, in order.
"""

from __future__ import annotations

from typing import Any

import msgspec

from core.model import Endpoint, LBRule, Network, Policy, Rule, Selector, Service, Snapshot, Source
from core.names import OWNER, SOURCE, ls_name, lsp_name
from core.nb import Programmer
from core.nb.kinds import KINDS, PlanOp
from core.nb.plan import plan_batch
from core.nb.tables import ACL, AS, LB, LS, LSP, PG
from core.nb.tables.load_balancer import lb_rows
from core.nb.tables.policy import policy_rows
from core.nb.tables.port import lsp_columns
from core.nb.tables.switch import ls_columns
from core.ovsdb.values import to_ovsdb

SRC = Source("docker", "local")
HUB = "hub1"


def ep(uid: str, ip: str, net: str = "blue", **kw: Any) -> Endpoint:
    return Endpoint(source=SRC, uid=uid, namespace="default", name=uid, kind="container", network=net, ips=(ip,), **kw)


NET = Network(source=SRC, name="blue", subnets=("10.1.0.0/16",))


def nb(p: Programmer, table: str, uuid: str, cols: dict[str, Any]) -> None:
    """One row as the monitor (or a port read) delivers it."""
    p.replica.on_update({table: {uuid: {"initial": to_ovsdb(cols)}}})


def owned(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {OWNER: HUB, SOURCE: str(SRC), **(extra or {})}


def everything(p: Programmer) -> dict[str, list[str]]:
    p._derive()
    return {t: sorted(k) for t, k in p.dirty.items()}


def plan(p: Programmer) -> list[PlanOp]:
    ops, _pulled, _deferred = plan_batch(p.view, everything(p))
    return ops


def summary(ops: list[PlanOp]) -> list[tuple[str, str, str]]:
    return [(o.op, o.table, o.name) for o in ops]


def test_empty_nb_gets_the_switch_first_then_its_ports() -> None:
    p = Programmer("unix:/nonexistent", HUB)
    p.apply(Snapshot(source=SRC, objects=(NET, ep("a", "10.1.0.2"), ep("b", "10.1.0.3"))))
    ops = plan(p)
    assert summary(ops) == [
        ("insert", LS, "docker/local/blue"),
        ("insert", LSP, "docker/local/blue/a"),
        ("insert", LSP, "docker/local/blue/b"),
    ]
    assert ops[1].ref == "docker/local/blue"  # the port hangs from its switch
    assert ops[0].columns["other_config"] == {"subnet": "10.1.0.0/16"}


def test_rows_equal_to_desired_plan_nothing_and_a_changed_port_is_updated() -> None:
    p = Programmer("unix:/nonexistent", HUB)
    a, b = ep("a", "10.1.0.2"), ep("b", "10.1.0.3")
    nb(p, LS, "ls-1", {**ls_columns(SRC, "blue", NET, HUB), "ports": ()})
    nb(p, LSP, "p-a", lsp_columns(a, HUB))
    nb(p, LSP, "p-b", lsp_columns(ep("b", "10.1.0.99"), HUB))  # drifted
    p.apply(Snapshot(source=SRC, objects=(NET, a, b)))
    ops = plan(p)
    assert summary(ops) == [("update", LSP, "docker/local/blue/b")]
    assert ops[0].columns["addresses"] == (f"{b.mac or '0a:58:0a:01:00:03'} 10.1.0.3",)


def test_no_gc_before_the_snapshot_then_ports_before_their_switch() -> None:
    p = Programmer("unix:/nonexistent", HUB)
    old = ep("old", "10.1.0.9")
    nb(p, LSP, "p-old", lsp_columns(old, HUB))
    nb(p, LS, "ls-1", {**ls_columns(SRC, "blue", NET, HUB), "ports": ("p-old",)})
    assert plan(p) == []  # the source sent no snapshot yet: nothing is collected (Calico #5044)
    p.apply(Snapshot(source=SRC, objects=()))
    # both go in one batch: the port (a referrer) before its switch
    assert summary(plan(p)) == [("delete", LSP, "docker/local/blue/old"), ("delete", LS, "docker/local/blue")]


def test_a_switch_holding_a_foreign_port_is_never_deleted_and_an_owned_one_waits() -> None:
    p = Programmer("unix:/nonexistent", HUB)
    nb(p, LS, "ls-1", {**ls_columns(SRC, "blue", NET, HUB), "ports": ("p-foreign",)})
    p.apply(Snapshot(source=SRC, objects=()))
    assert plan(p) == []  # rule 3: the operator's port keeps the switch
    q = Programmer("unix:/nonexistent", HUB)
    kept = ep("kept", "10.1.0.5")
    nb(q, LSP, "p-kept", lsp_columns(kept, HUB))
    nb(q, LS, "ls-1", {**ls_columns(SRC, "blue", NET, HUB), "ports": ("p-kept",)})
    q.apply(Snapshot(source=SRC, objects=()))
    ops, _, deferred = plan_batch(q.view, {LS: ["docker/local/blue"]})  # the port is not in this batch
    assert ops == [] and deferred == {(LS, "docker/local/blue")}  # rule 2: it waits for its port


def pol(uid: str, sel: dict[str, str]) -> Policy:
    return Policy(source=SRC, uid=uid, namespace="default", name=uid, pod_selector=Selector(match_labels=sel),
                  ingress=(Rule(),))  # fmt: skip


def test_a_policy_is_written_in_rank_order_and_removed_referrers_first() -> None:
    p = Programmer("unix:/nonexistent", HUB)
    web = ep("web", "10.1.0.2", labels={"app": "web"})
    p.apply(Snapshot(source=SRC, objects=(NET, web, pol("p1", {"app": "web"}))))
    ops = plan(p)
    tables = [o.table for o in ops]
    assert tables == sorted(tables, key=list(KINDS).index)  # inserts by rank: LS, LSP, (AS), PG, ACL
    pg = next(o for o in ops if o.table == PG and o.members)
    assert pg.members == (lsp_name(web),)  # a member inserted in the same transaction
    assert {o.op for o in ops} == {"insert"}
    # NB now holds exactly those rows; the policy goes away: ACLs before their port groups
    q = Programmer("unix:/nonexistent", HUB)
    rows = policy_rows(SRC, [web], {}, [pol("p1", {"app": "web"})], HUB)
    nb(q, LSP, "p-web", lsp_columns(web, HUB))
    nb(q, LS, "ls-1", {**ls_columns(SRC, "blue", NET, HUB), "ports": ("p-web",)})
    acl_uuids: dict[str, list[str]] = {}
    for i, r in enumerate(r for r in rows if r.table == ACL):
        nb(q, ACL, f"acl-{i}", r.columns)
        acl_uuids.setdefault(r.parent, []).append(f"acl-{i}")
    for r in rows:
        if r.table == PG:
            nb(q, PG, f"pg-{r.key}", {**r.columns, "ports": ("p-web",), "acls": tuple(acl_uuids.get(r.key, ()))})
    q.apply(Snapshot(source=SRC, objects=(NET, web)))
    ops = plan(q)
    dels = [o for o in ops if o.op == "delete"]
    n_acls = sum(len(v) for v in acl_uuids.values())
    assert n_acls == 3 and [o.table for o in dels] == [ACL] * n_acls + [PG] * 2  # the policy's allow, the deny, the hairpin allow
    assert all(o.op == "delete" for o in ops)


def test_an_address_set_named_by_a_remaining_acl_waits() -> None:
    p = Programmer("unix:/nonexistent", HUB)
    nb(p, AS, "as-1", {"name": "hub_x_in0_v4", "addresses": ("10.1.0.2",), "external_ids": owned()})
    nb(p, ACL, "acl-1", {"priority": 1001, "direction": "to-lport", "match": "ip4.src == $hub_x_in0_v4",
                         "action": "allow-related", "options": {}, "external_ids": owned({"ovn-hub:acl": "acl_k"})})  # fmt: skip
    p.apply(Snapshot(source=SRC, objects=()))
    ops, _, deferred = plan_batch(p.view, {AS: ["hub_x_in0_v4"]})
    assert ops == [] and deferred == {(AS, "hub_x_in0_v4")}
    ops, _, deferred = plan_batch(p.view, {AS: ["hub_x_in0_v4"], ACL: ["acl_k"]})
    assert summary(ops) == [("delete", ACL, "acl_k"), ("delete", AS, "hub_x_in0_v4")] and not deferred


def test_a_load_balancer_pulls_its_missing_switch_in_and_leaves_a_wrong_one() -> None:
    svc = Service(source=SRC, uid="s1", namespace="default", name="web", network="blue",
                  rules=(LBRule(vip="10.96.0.1", port=80, backends=("10.1.0.2:8080",)),))  # fmt: skip
    p = Programmer("unix:/nonexistent", HUB)
    p.apply(Snapshot(source=SRC, objects=(svc,)))
    p._derive()
    name = lb_rows(svc, HUB)[0].key
    ops, pulled, _ = plan_batch(p.view, {LB: [name]})
    assert summary(ops) == [("insert", LS, ls_name(SRC, "blue")), ("insert", LB, name)]  # rule 1
    assert pulled == [(LS, ls_name(SRC, "blue"))]
    q = Programmer("unix:/nonexistent", HUB)
    row = lb_rows(svc, HUB)[0]
    nb(q, LB, "lb-1", row.columns)
    nb(q, LS, "ls-blue", {**ls_columns(SRC, "blue", None, HUB), "load_balancer": ()})
    nb(q, LS, "ls-red", {**ls_columns(SRC, "red", None, HUB), "load_balancer": ("lb-1",)})  # attached to the wrong one
    q.apply(Snapshot(source=SRC, objects=(svc, ep("x", "10.1.0.7", net="red"))))
    q._derive()
    ops, _, _ = plan_batch(q.view, {LB: [name]})
    assert len(ops) == 1 and ops[0].op == "update" and ops[0].detach == ("ls-red",) and ops[0].ref == ls_name(SRC, "blue")


# ---------------------------------------------------------------- the fabric: several parents, rule 4 for memberships
def _fabric_prog() -> Programmer:
    from core.model.fabric import Fabric, RouterSpec

    p = Programmer("unix:/nonexistent", HUB)
    p.set_fabric(Fabric(routers=(RouterSpec(name="main"),)))
    p.expect([SRC, OTHER])
    return p


OTHER = Source("k8s", "prod")
PODS = Network(source=OTHER, name="pods", subnets=("10.244.0.0/16",))


def test_a_row_with_several_parents_is_attached_to_each_and_leaves_only_listed_ones() -> None:
    """A DNS row hangs from every switch of its router.  A switch of a source that
    has not listed keeps its attachment (rule 4); a listed one that left the
    router loses it."""
    p = _fabric_prog()
    pods_ls = ls_columns(OTHER, "pods", PODS, HUB)
    nb(p, LS, "ls-blue", {**ls_columns(SRC, "blue", NET, HUB), "ports": (), "dns_records": ("dns-1",)})
    nb(p, LS, "ls-pods", {**pods_ls, "ports": (), "dns_records": ("dns-1",)})
    key = "ovn-hub/dns/main/docker/local/default"
    nb(p, "DNS", "dns-1", {"records": {"a.default.docker.local.hub": "10.1.0.2"},
                           "external_ids": {OWNER: HUB, SOURCE: str(SRC), "ovn-hub:key": key, "ovn-hub:kind": "dns",
                                            "ovn-hub:uid": key, "ovn-hub:namespace": "default", "ovn-hub:name": key}})  # fmt: skip
    p.apply(Snapshot(source=SRC, objects=(NET, ep("a", "10.1.0.2"))))
    p.desired.state(SRC).synced = True
    ops = [o for o in plan(p) if o.table == "DNS"]
    assert ops == [], ops  # k8s has not listed: its switch keeps the row, and nothing else differs
    # k8s lists without its pod network: the row leaves that switch (now a listed source's)
    p.apply(Snapshot(source=OTHER, objects=()))
    p.desired.state(OTHER).synced = True
    ops = [o for o in plan(p) if o.table == "DNS"]
    assert [(o.op, o.name, o.detach) for o in ops] == [("update", key, ("ls-pods",))]


def test_members_of_a_source_that_has_not_listed_stay_in_the_group() -> None:
    from core.nb.tables.lb_group import group_name

    p = _fabric_prog()
    svc = Service(source=OTHER, uid="s1", namespace="default", name="db", network="pods",
                  rules=(LBRule(vip="10.96.0.1", port=80, backends=("10.244.0.5:80",)),))  # fmt: skip
    lb = lb_rows(svc, HUB, "169.254.169.5")[0]
    nb(p, LS, "ls-blue", {**ls_columns(SRC, "blue", NET, HUB), "ports": ()})
    nb(p, LB, "lb-1", lb.columns)
    nb(p, "Load_Balancer_Group", "g-1", {"name": group_name("main", HUB), "load_balancer": ("lb-1",)})
    p.apply(Snapshot(source=SRC, objects=(NET,)))
    p.desired.state(SRC).synced = True
    ops = {o.table: o for o in plan(p)}
    group = ops["Load_Balancer_Group"]  # attached to the blue switch, and the k8s balancer stays a member
    assert group.op == "update" and group.members == ("k8s/prod/svc/default/db/s1/tcp",), group
    # a foreign group (another hub's name) is never in the replica
    nb(p, "Load_Balancer_Group", "g-2", {"name": "ovn-hub/other-hub/main", "load_balancer": ()})
    assert set(p.replica.stores["Load_Balancer_Group"].keys()) == {group_name("main", HUB)}


def test_an_orchestrator_reporting_the_allocated_address_leaves_the_dynamic_port_alone() -> None:
    """A pod plugged by CNI from its dynamic port (OVN allocated MAC and IP); the kubelet then
    reports that IP in podIPs: nothing is written (the port keeps its MAC, dynamic and locked).
    Another IP, or another MAC, is a change."""
    p = Programmer("unix:/nonexistent", HUB)
    pending = Endpoint(source=SRC, uid="a", namespace="default", name="a", kind="pod", network="blue")
    dyn = "0a:00:00:00:00:07 10.1.0.7"
    cols = lsp_columns(pending, HUB)
    nb(p, LS, "ls-1", {**ls_columns(SRC, "blue", NET, HUB), "ports": ()})
    nb(p, LSP, "p-a", {**cols, "port_security": (dyn,), "dynamic_addresses": dyn})
    p.apply(Snapshot(source=SRC, objects=(NET, pending)))
    assert plan(p) == []
    p.apply(Snapshot(source=SRC, objects=(NET, msgspec.structs.replace(pending, ips=("10.1.0.7",)))))
    assert plan(p) == []
    p.apply(Snapshot(source=SRC, objects=(NET, msgspec.structs.replace(pending, ips=("10.1.0.7",),
                                                                       mac="0a:00:00:00:00:07"))))
    assert plan(p) == []
    p.apply(Snapshot(source=SRC, objects=(NET, msgspec.structs.replace(pending, ips=("10.1.0.8",)))))
    ops = plan(p)
    assert summary(ops) == [("update", LSP, "docker/local/blue/a")]
    assert ops[0].columns["addresses"] == ("0a:58:0a:01:00:08 10.1.0.8",)
    p.apply(Snapshot(source=SRC, objects=(NET, msgspec.structs.replace(pending, ips=("10.1.0.7",),
                                                                       mac="0a:00:00:00:00:99"))))
    assert summary(plan(p)) == [("update", LSP, "docker/local/blue/a")]
