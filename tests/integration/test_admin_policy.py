"""Hub-level policies against a real NB + ovn-northd, proven by ovn-trace verdicts.

Three sources, each on its own switch, joined by the hub's own router
(``[routers.*]``): a Docker network, a Kubernetes pod network, a static
network of VMs.

=========  =================  ===========  ===========================
endpoint   source             ip           labels
=========  =================  ===========  ===========================
web        docker/local       10.1.0.10    app=web
other      docker/local       10.1.0.11    app=other
db         k8s/<test>         10.0.0.30    app=db (namespace default)
vm         static/vms         10.2.0.5     app=web
vm2        static/vms         10.2.0.6     app=web
=========  =================  ===========  ===========================

The hub policy on ``db`` allows Docker's ``app=web`` on TCP 5432 and denies
the rest; a static VM labelled ``app=web`` too is not Docker's (the implicit
``ovn-hub.io/orchestrator`` label tells them apart).  A ``pass`` rule hands the
static VMs to the Kubernetes NetworkPolicy on ``db``.  The compilation itself
(priorities, subtraction) is unit-tested in tests/unit/test_admin_policy.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from core.model import Endpoint, Namespace, Network, Peer, Policy, PolicyPort, Rule, Selector, Snapshot, Source
from core.model.fabric import LABEL_ORCHESTRATOR, AdminPolicy, AdminRule, Fabric, RouterSpec
from core.names import ls_name, stable_mac
from core.nb import Programmer
from core.nb.tables.admin_policy import acl_priority, pg_name
from core.nb.tables.router_port import lrp_name_for
from hub.sandbox import OvnSandbox
from testkit.nb import nb_rows, ovs_map
from testkit.ovn_trace import Trace, sync, tcp, trace

DOCKER = Source("docker", "local")
STATIC = Source("static", "vms")
_ids = itertools.count()
#: a routed packet may meet conntrack on both switches, in and out: more than the three answers testkit.ovn_trace gives
MORE_CT = ("--ct=new",) * 4


@pytest.fixture(scope="module")
def sb() -> Iterator[OvnSandbox]:
    d = Path(tempfile.mkdtemp(prefix="hubap", dir="/tmp"))
    box = OvnSandbox(d / "ovn", northd=True)
    try:
        box.start()
        yield box
    finally:
        box.stop()
        shutil.rmtree(d, ignore_errors=True)


def sel(**labels: str) -> Selector:
    return Selector(match_labels=labels)


class Fabrics:
    """Three sources on three switches, the hub's router between them, one programmer."""

    def __init__(self, sb: OvnSandbox) -> None:
        self.sb = sb
        self.k8s = Source("k8s", f"t{next(_ids)}")
        self.router = f"r-{self.k8s.cluster}"
        self.nets = {
            DOCKER: Network(source=DOCKER, name="net", subnets=("10.1.0.0/24",), gateway="10.1.0.1"),
            self.k8s: Network(source=self.k8s, name="pods", subnets=("10.0.0.0/24",), gateway="10.0.0.1"),
            STATIC: Network(source=STATIC, name="lan", subnets=("10.2.0.0/24",), gateway="10.2.0.1"),
        }
        self.web = self.ep(DOCKER, "web", "10.1.0.10", app="web")
        self.other = self.ep(DOCKER, "other", "10.1.0.11", app="other")
        self.db = self.ep(self.k8s, "db", "10.0.0.30", app="db")
        self.vm = self.ep(STATIC, "vm", "10.2.0.5", app="web")
        self.vm2 = self.ep(STATIC, "vm2", "10.2.0.6", app="web")
        self.router = RouterSpec(name=f"r-{self.k8s.cluster}", networks=tuple(f"{s}/{n.name}" for s, n in self.nets.items()))
        self.prog: Programmer | None = None
        self.task: asyncio.Task[None] | None = None

    def ep(self, src: Source, uid: str, ip: str, **labels: str) -> Endpoint:
        return Endpoint(source=src, uid=uid, namespace="default", name=uid, kind="pod", network=self.nets[src].name,
                        ips=(ip,), labels=labels)  # fmt: skip

    async def start(self, *k8s_policies: Policy) -> None:
        self.prog = Programmer(self.sb.nb_remote, "admin-hub")
        await self.prog.start()
        self.task = asyncio.create_task(self.prog.run())
        self.prog.set_fabric(Fabric(routers=(self.router,)))
        self.prog.apply(Snapshot(source=DOCKER, objects=(self.nets[DOCKER], self.web, self.other)))
        self.prog.apply(Snapshot(source=STATIC, objects=(self.nets[STATIC], self.vm, self.vm2)))
        self.program_k8s(*k8s_policies)
        await self.settle()

    def program_k8s(self, *policies: Policy) -> None:
        assert self.prog is not None
        ns = Namespace(source=self.k8s, name="default")
        self.prog.apply(Snapshot(source=self.k8s, objects=(self.nets[self.k8s], ns, self.db, *policies)))

    async def policies(self, *pols: AdminPolicy) -> None:
        assert self.prog is not None
        self.prog.set_fabric(Fabric(routers=(self.router,), policies=pols))
        await self.settle()

    async def settle(self) -> None:
        assert self.prog is not None
        await self.prog.flush(20)
        await asyncio.to_thread(sync, self.sb)

    def t(self, src: Endpoint, dst: Endpoint, port: int) -> Trace:
        router_mac = stable_mac(lrp_name_for(ls_name(src.source, src.network)))  # the router's leg on src's network
        flow = tcp(src, dst.ips[0], port, router_mac)
        return trace(self.sb, ls_name(src.source, src.network), flow, *MORE_CT)

    def passes(self, src: Endpoint, dst: Endpoint, port: int) -> bool:
        return self.t(src, dst, port).reaches(dst)

    async def close(self) -> None:
        if self.prog is not None and self.task is not None:
            with contextlib.suppress(Exception):
                self.prog.set_fabric(Fabric())
                for src in self.nets:
                    self.prog.apply(Snapshot(source=src, objects=()))
                await self.prog.flush(20)
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            await self.prog.close()


@pytest.fixture
async def fab(sb: OvnSandbox) -> AsyncIterator[Fabrics]:
    f = Fabrics(sb)
    try:
        yield f
    finally:
        await f.close()


def docker_web() -> Peer:
    return Peer(pod_selector=sel(**{"app": "web", LABEL_ORCHESTRATOR: "docker"}))


def db_policy(*rules: AdminRule) -> AdminPolicy:
    return AdminPolicy(name="db", priority=10, subject=Peer(pod_selector=sel(app="db")), ingress=rules)


ALLOW_WEB = AdminRule(action="allow", name="web", peers=(docker_web(),), ports=(PolicyPort(port=5432),))
DENY = AdminRule(action="deny", name="rest")


async def test_hub_policy_admits_docker_web_to_k8s_db_on_5432_only(fab: Fabrics) -> None:
    await fab.start()
    # the hub's router joins the three networks and nothing isolates db yet: everyone reaches it
    assert fab.passes(fab.web, fab.db, 5432) and fab.passes(fab.vm, fab.db, 5432) and fab.passes(fab.other, fab.db, 22)
    await fab.policies(db_policy(ALLOW_WEB, DENY))
    pg = pg_name("db")
    acls = {(r["priority"], r["action"]) for r in nb_rows(fab.sb, "ACL") if ovs_map(r["external_ids"]).get("ovn-hub:parent") == pg}
    assert acls == {(acl_priority(10, 0), "allow-related"), (acl_priority(10, 1), "drop")}
    assert fab.passes(fab.web, fab.db, 5432)
    assert not fab.passes(fab.web, fab.db, 5433)  # another port
    assert not fab.passes(fab.other, fab.db, 5432)  # another Docker container
    assert not fab.passes(fab.vm, fab.db, 5432)  # a static VM, labelled app=web as well
    assert fab.passes(fab.db, fab.vm, 22)  # db itself is isolated on the way in only
    # the policies go: so does the isolation
    await fab.policies()
    assert fab.passes(fab.vm, fab.db, 5432)
    assert not [r for r in nb_rows(fab.sb, "Port_Group") if r["name"].startswith("hubf_")]


async def test_pass_leaves_the_decision_to_the_kubernetes_policy(fab: Fabrics) -> None:
    # Kubernetes isolates db: only 10.2.0.5 (vm) on 5432
    np = Policy(source=fab.k8s, uid="np", namespace="default", name="db-from-vm", pod_selector=sel(app="db"),
                ingress=(Rule(peers=(Peer(cidr="10.2.0.5/32"),), ports=(PolicyPort(port=5432),)),))  # fmt: skip
    await fab.start(np)
    assert fab.passes(fab.vm, fab.db, 5432) and not fab.passes(fab.vm2, fab.db, 5432) and not fab.passes(fab.web, fab.db, 5432)
    # the hub tier decides first: its allow beats Kubernetes' isolation, its deny Kubernetes' allow
    await fab.policies(db_policy(ALLOW_WEB, DENY))
    assert fab.passes(fab.web, fab.db, 5432)
    assert not fab.passes(fab.vm, fab.db, 5432)
    # pass the static VMs: for them Kubernetes' policy decides again, for the rest the hub does
    static = Peer(pod_selector=sel(**{LABEL_ORCHESTRATOR: "static"}))
    await fab.policies(db_policy(ALLOW_WEB, AdminRule(action="pass", name="vms", peers=(static,)), DENY))
    assert fab.passes(fab.vm, fab.db, 5432)  # passed, and the Kubernetes policy allows it
    assert not fab.passes(fab.vm2, fab.db, 5432)  # passed, and Kubernetes' isolation drops it
    assert not fab.passes(fab.vm, fab.db, 22)  # passed, a port Kubernetes does not allow
    assert fab.passes(fab.web, fab.db, 5432)  # still the hub's allow
    assert not fab.passes(fab.other, fab.db, 5432)  # still the hub's deny
    # without the Kubernetes policy, what is passed is simply allowed (nothing isolates db)
    fab.program_k8s()
    await fab.settle()
    assert fab.passes(fab.vm2, fab.db, 22)
    assert not fab.passes(fab.other, fab.db, 5432)
