"""One port per workload (core/nb/desired.py): endpoints of several sources that
declare the same workload (label ``ovn-hub.io/workload``) are all kept, only the
winning source's are programmed, the others come back when the winner's go.

Pure, like test_plan.py: the desired state and the plan of a Programmer that
never connects."""

from __future__ import annotations

from typing import Any

import pytest

from core.model import (
    LABEL_WORKLOAD,
    Delete,
    Endpoint,
    Invalid,
    Network,
    Policy,
    Selector,
    Snapshot,
    Source,
    Upsert,
    validate,
    workload_rank,
)
from core.model.fabric import DnsSpec, Fabric, RouterSpec
from core.names import lsp_name
from core.nb import Programmer
from core.nb.kinds import PlanOp
from core.nb.plan import plan_batch
from core.nb.tables import LS, LSP, PG
from core.nb.tables.dns import TABLE as DNS
from core.nb.tables.port import lsp_columns
from core.nb.tables.switch import ls_columns
from tests.unit.nb.test_plan import nb

MESOS, DOCKER, CNI, K8S = Source("mesos", "prod"), Source("docker", "node1"), Source("cni", "node1"), Source("k8s", "x")
CID = "3b4d62e0-e955-4483-b1de-d48f127491ce"
HUB = "hub1"


def ep(src: Source, uid: str, net: str = "blue", ip: str = "10.1.0.5", workload: str = f"mesos:{CID}", **kw: Any) -> Endpoint:
    labels = {LABEL_WORKLOAD: workload} if workload else {}
    labels.update(kw.pop("labels", {}))
    return Endpoint(source=src, uid=uid, namespace="default", name=uid[:8], kind="container", network=net, ips=(ip,),
                    labels=labels, **kw)  # fmt: skip


def snap(src: Source, *objs: Endpoint | Network | Policy) -> Snapshot:
    return Snapshot(source=src, objects=tuple(objs))


def planned(p: Programmer) -> list[tuple[str, str, str]]:
    p._derive()
    ops: list[PlanOp]
    ops, _pulled, _deferred = plan_batch(p.view, {t: sorted(k) for t, k in p.dirty.items()})
    return [(o.op, o.table, o.name) for o in ops if o.table == LSP]


def ports(p: Programmer) -> set[str]:
    return set(p.desired.ports)


def test_ranks_scheduler_above_other_orchestrators_above_docker_above_cni() -> None:
    assert [workload_rank(ep(s, "u")) for s in (MESOS, K8S, DOCKER, CNI)] == [3, 2, 1, 0]
    assert workload_rank(ep(MESOS, "u", workload="k8s:pod-1")) == 2  # mesos did not schedule a k8s workload


def test_the_orchestrator_wins_over_docker_whichever_comes_first_and_docker_comes_back() -> None:
    p = Programmer("unix:/nonexistent", HUB)
    d, m = ep(DOCKER, "0a7ba4f24aec"), ep(MESOS, CID)
    p.apply(snap(DOCKER, d))
    assert ports(p) == {lsp_name(d)}
    assert planned(p) == [("insert", LSP, lsp_name(d))]
    p.apply(snap(MESOS, m))
    assert ports(p) == {lsp_name(m)} and p.desired.yielded == {lsp_name(d): d}
    assert set(planned(p)) == {("insert", LSP, lsp_name(m))}  # docker's port is not inserted at all
    p.apply(Delete(source=MESOS, kind="endpoint", key=m.key))  # the task is gone: docker's view comes back
    assert ports(p) == {lsp_name(d)} and not p.desired.yielded
    assert planned(p) == [("insert", LSP, lsp_name(d))]
    # the other order: mesos first, docker's endpoint yields on arrival
    q = Programmer("unix:/nonexistent", HUB)
    q.apply(snap(MESOS, m))
    q.apply(snap(DOCKER, d))
    assert ports(q) == {lsp_name(m)} and set(q.desired.yielded) == {lsp_name(d)}


def test_a_yielding_port_in_nb_is_deleted_once_its_source_listed() -> None:
    p = Programmer("unix:/nonexistent", HUB)
    d, m = ep(DOCKER, "0a7ba4f24aec"), ep(MESOS, CID)
    nb(p, LS, "ls-d", {**ls_columns(DOCKER, "blue", None, HUB), "ports": ()})
    nb(p, LSP, "p-d", lsp_columns(d, HUB))
    p.apply(snap(MESOS, m))
    p.apply(snap(DOCKER, d))
    assert ("delete", LSP, lsp_name(d)) in planned(p)
    assert ("insert", LSP, lsp_name(m)) in planned(p)


def test_every_endpoint_of_the_winning_source_is_programmed_and_a_tie_goes_to_the_lower_source() -> None:
    p = Programmer("unix:/nonexistent", HUB)
    a, b = ep(MESOS, CID, net="blue"), ep(MESOS, CID, net="red", ip="10.2.0.5")  # one task on two networks
    other = ep(Source("mesos", "aaa"), CID)  # the same cluster watched twice: a tie on rank
    d = ep(DOCKER, "0a7ba4f24aec")
    p.apply(snap(MESOS, a, b))
    p.apply(snap(DOCKER, d))
    p.apply(snap(other.source, other))
    assert ports(p) == {lsp_name(other)}  # "mesos/aaa" < "mesos/prod"
    p.apply(snap(other.source))
    assert ports(p) == {lsp_name(a), lsp_name(b)}
    p.apply(snap(MESOS, a))  # one attachment left: still the winner
    assert ports(p) == {lsp_name(a)}


def test_changing_or_dropping_the_label_moves_the_endpoint_between_workloads() -> None:
    p = Programmer("unix:/nonexistent", HUB)
    d, m = ep(DOCKER, "0a7ba4f24aec"), ep(MESOS, CID)
    p.apply(snap(MESOS, m))
    p.apply(snap(DOCKER, d))
    assert ports(p) == {lsp_name(m)}
    plain = ep(DOCKER, "0a7ba4f24aec", workload="")
    p.apply(Upsert(obj=plain))  # no longer claims the task: an ordinary container, programmed
    assert ports(p) == {lsp_name(m), lsp_name(d)} and not p.desired.yielded
    p.apply(Upsert(obj=ep(DOCKER, "0a7ba4f24aec", workload="mesos:another")))
    assert ports(p) == {lsp_name(m), lsp_name(d)}  # a workload no one else claims
    assert set(p.desired.claims) == {f"mesos:{CID}", "mesos:another"}
    p.apply(Upsert(obj=d))
    assert ports(p) == {lsp_name(m)} and set(p.desired.claims) == {f"mesos:{CID}"}
    p.apply(Delete(source=DOCKER, kind="endpoint", key=d.key))
    p.apply(Delete(source=MESOS, kind="endpoint", key=m.key))
    assert not ports(p) and not p.desired.yielded and not p.desired.claims


def test_a_yielded_endpoint_leaves_its_sources_dns_records_and_policy_groups() -> None:
    p = Programmer("unix:/nonexistent", HUB)
    p.set_fabric(Fabric(routers=(RouterSpec(name="main", networks=("*",)),), dns=DnsSpec(zone="hub")))
    blue = Network(source=DOCKER, name="blue", subnets=("10.1.0.0/24",))
    d = ep(DOCKER, "0a7ba4f24aec", labels={"app": "web"})
    web = ep(DOCKER, "1b8cb5f35bfd", ip="10.1.0.6", workload="", labels={"app": "web"})
    pol = Policy(source=DOCKER, uid="p1", namespace="default", name="web", pod_selector=Selector(match_labels={"app": "web"}),
                 ingress=())  # fmt: skip
    p.apply(snap(DOCKER, blue, d, web, pol))
    p._derive()

    def docker_rows(table: str) -> list[Any]:
        return [r for r in p.desired.rows[table].values() if r.source == str(DOCKER)]

    assert any("10.1.0.5" in str(r.columns["records"]) for r in docker_rows(DNS))
    assert any(lsp_name(d) in r.members for r in docker_rows(PG))
    p.apply(snap(MESOS, ep(MESOS, CID)))
    p._derive()
    assert not any("10.1.0.5" in str(r.columns["records"]) for r in docker_rows(DNS))
    assert not any(lsp_name(d) in r.members for r in docker_rows(PG))
    assert any(lsp_name(web) in r.members for r in docker_rows(PG))
    p.apply(snap(MESOS))
    p._derive()
    assert any(lsp_name(d) in r.members for r in docker_rows(PG))


@pytest.mark.parametrize("value", ["mesos", ":x", "Mesos:x", "mesos:", "mesos:a b", "mesos:" + "x" * 300])
def test_a_malformed_workload_label_is_rejected(value: str) -> None:
    with pytest.raises(Invalid, match="workload") as exc:
        validate(ep(MESOS, CID, workload=value))
    assert exc.value.reason == "bad-label"
    validate(ep(MESOS, CID))


def test_a_winner_without_a_mac_takes_the_one_the_runtime_plugged() -> None:
    """The CNI source plugged the task's interface with a MAC; the Mesos adapter's endpoint knows none."""
    p = Programmer("unix:/nonexistent", HUB)
    cni = ep(CNI, CID, mac="0a:12:34:56:78:9a")
    m = ep(MESOS, CID)
    p.apply(snap(CNI, cni))
    p.apply(snap(MESOS, m))
    assert p.desired.ports[lsp_name(m)].mac == "0a:12:34:56:78:9a" and lsp_name(cni) in p.desired.yielded
    assert p.desired.sources[str(MESOS)].endpoints[m.key].mac is None, "the adapter's own object is unchanged"
    p.apply(Upsert(obj=ep(CNI, CID, mac="0a:12:34:56:78:9b")))  # the runtime's view changes: the port follows
    assert p.desired.ports[lsp_name(m)].mac == "0a:12:34:56:78:9b"
    assert lsp_name(m) in p.dirty[LSP]
    other_net = ep(CNI, "x", net="red", mac="0a:00:00:00:00:01")
    p.apply(snap(CNI, other_net))  # only the same network name counts
    assert p.desired.ports[lsp_name(m)].mac is None
    own = ep(MESOS, CID, mac="02:42:0a:01:00:05")
    p.apply(snap(CNI, cni))
    p.apply(snap(MESOS, own))  # the orchestrator's own MAC wins
    assert p.desired.ports[lsp_name(own)].mac == "02:42:0a:01:00:05"
