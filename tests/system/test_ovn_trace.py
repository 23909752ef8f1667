"""Services and NetworkPolicies proven on OVN's own logical flows (ovn-trace).

One NB + SB + ovn-northd for the module; every test programs its own source
(so its own switch) through a real Programmer, waits until ovn-northd compiled
it, traces packets, and removes everything again.  Each case asserts what
passes *and* what is dropped.

The cluster (namespaces prod/dev/other, all pods on one switch):

======  =====  ================  ===========  ============================
pod     ns     labels            ip           named ports
======  =====  ================  ===========  ============================
web1    prod   app=web           10.0.0.10    http=8080
web2    prod   app=web           10.0.0.11    http=9090
db      prod   app=db            10.0.0.30    pg=5432
c1      prod   role=client       10.0.0.20
c2      dev    role=client       10.0.0.21
c3      other  role=client       10.0.0.22
c4      dev    role=tool         10.0.0.23
======  =====  ================  ===========  ============================

Namespaces: prod {team: a, env: prod}, dev {team: a, env: dev}, other {team: b}.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.model import (
    Endpoint,
    Expr,
    LBRule,
    Namespace,
    Peer,
    Policy,
    PolicyPort,
    PortSpec,
    Rule,
    Selector,
    Service,
    Snapshot,
    Source,
    Upsert,
)
from core.model.fabric import DEFAULT_HAIRPIN_IP
from core.names import ls_name
from core.nb import Programmer
from core.nb.tables import ACL
from core.ovsdb import OvsdbClient
from hub.sandbox import OvnSandbox
from testkit.ovn_trace import Trace, arp_request, mac, sync, tcp, tcp_to, trace

NET = "pods"
_ids = itertools.count()


@pytest.fixture(scope="module")
def sb() -> Iterator[OvnSandbox]:
    d = Path(tempfile.mkdtemp(prefix="hubtr", dir="/tmp"))
    box = OvnSandbox(d / "ovn", northd=True)
    try:
        box.start()
        yield box
    finally:
        box.stop()
        shutil.rmtree(d, ignore_errors=True)


class Cluster:
    """One test's source: pods, namespaces, and a programmer writing them."""

    def __init__(self, sb: OvnSandbox) -> None:
        self.sb = sb
        self.src = Source("k8s", f"t{next(_ids)}")
        self.dp = ls_name(self.src, NET)
        self.ns = [
            Namespace(source=self.src, name="prod", labels={"team": "a", "env": "prod"}),
            Namespace(source=self.src, name="dev", labels={"team": "a", "env": "dev"}),
            Namespace(source=self.src, name="other", labels={"team": "b"}),
        ]
        self.web1 = self.pod("web1", "prod", "10.0.0.10", {"app": "web"}, (PortSpec(port=8080, name="http"),))
        self.web2 = self.pod("web2", "prod", "10.0.0.11", {"app": "web"}, (PortSpec(port=9090, name="http"),))
        self.db = self.pod("db", "prod", "10.0.0.30", {"app": "db"}, (PortSpec(port=5432, name="pg"),))
        self.c1 = self.pod("c1", "prod", "10.0.0.20", {"role": "client"})
        self.c2 = self.pod("c2", "dev", "10.0.0.21", {"role": "client"})
        self.c3 = self.pod("c3", "other", "10.0.0.22", {"role": "client"})
        self.c4 = self.pod("c4", "dev", "10.0.0.23", {"role": "tool"})
        self.pods = [self.web1, self.web2, self.db, self.c1, self.c2, self.c3, self.c4]
        self.prog: Programmer | None = None
        self.task: asyncio.Task[None] | None = None

    def pod(self, name: str, ns: str, ip: str, labels: dict[str, str], ports: tuple[PortSpec, ...] = ()) -> Endpoint:
        return Endpoint(
            source=self.src, uid=f"uid-{name}", namespace=ns, name=name, kind="pod", network=NET,
            ips=(ip,), labels=labels, ports=ports,
        )

    def policy(self, name: str, ns: str = "prod", selector: Selector | None = None, **kw: Any) -> Policy:
        return Policy(source=self.src, uid=f"pol-{name}", namespace=ns, name=name, pod_selector=selector or Selector(), **kw)

    def service(self, name: str, vip: str, port: int, backends: tuple[str, ...]) -> Service:
        rule = LBRule(vip=vip, port=port, backends=backends)
        return Service(source=self.src, uid=f"svc-{name}", namespace="prod", name=name, network=NET, rules=(rule,))

    async def start(self) -> Programmer:
        self.prog = Programmer(self.sb.nb_remote, "trace-hub")
        await self.prog.start()
        self.task = asyncio.create_task(self.prog.run())
        return self.prog

    async def program(self, *objs: Policy | Service) -> None:
        if self.prog is None:
            await self.start()
        assert self.prog is not None
        self.prog.apply(Snapshot(source=self.src, objects=(*self.ns, *self.pods, *objs)))
        await self.settle()

    async def settle(self) -> None:
        assert self.prog is not None
        await self.prog.flush(20)
        await asyncio.to_thread(sync, self.sb)

    def t(self, flow: str, *extra: str) -> Trace:
        return trace(self.sb, self.dp, flow, *extra)

    def passes(self, src: Endpoint, dst: Endpoint, port: int) -> bool:
        res = self.t(tcp_to(src, dst, port))
        return res.reaches(dst)

    async def close(self) -> None:
        if self.prog is not None and self.task is not None:
            with contextlib.suppress(Exception):
                self.prog.apply(Snapshot(source=self.src, objects=()))
                await self.prog.flush(20)
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            await self.prog.close()


@pytest.fixture
async def cl(sb: OvnSandbox) -> AsyncIterator[Cluster]:
    c = Cluster(sb)
    try:
        yield c
    finally:
        await c.close()


def sel(**labels: str) -> Selector:
    return Selector(match_labels=labels)


async def test_no_policy_pod_to_pod_passes_and_spoofing_drops(cl: Cluster) -> None:
    await cl.program()
    assert cl.passes(cl.c1, cl.web1, 8080)
    assert cl.passes(cl.c3, cl.db, 5432)
    # the same packet with another pod's source IP is dropped (port security):
    spoofed = tcp_to(cl.c1, cl.web1, 8080).replace("ip4.src == 10.0.0.20", "ip4.src == 10.0.0.21")
    assert cl.t(spoofed).outputs == []


async def test_service_vip_is_dnated_to_a_ready_backend(cl: Cluster) -> None:
    web = cl.service("web", "10.96.0.10", 80, ("10.0.0.10:8080",))
    empty = cl.service("nobody", "10.96.0.11", 80, ())
    await cl.program(web, empty)
    res = cl.t(tcp(cl.c1, "10.96.0.10", 80, mac(cl.web1)))
    assert res.backends == ["10.0.0.10:8080"]
    assert res.reaches(cl.web1)
    # a port the service does not define is not load balanced, and the VIP is
    # no pod's address: dropped at the backend port's egress port security
    miss = cl.t(tcp(cl.c1, "10.96.0.10", 81, mac(cl.web1)))
    assert miss.backends == [] and miss.outputs == []
    # a rule without ready backends is left out of the load balancer
    none = cl.t(tcp(cl.c1, "10.96.0.11", 80, mac(cl.web1)))
    assert none.backends == [] and none.outputs == []


async def test_default_deny_ingress(cl: Cluster) -> None:
    await cl.program(cl.policy("deny", selector=sel(app="web"), ingress=()))
    assert not cl.passes(cl.c1, cl.web1, 8080)
    assert not cl.passes(cl.db, cl.web2, 9090)
    assert cl.passes(cl.c1, cl.db, 5432)  # not selected
    assert cl.passes(cl.web1, cl.c1, 22)  # egress of a selected pod is not isolated
    # ARP to an isolated pod still works (the deny matches ip only)
    arp = cl.t(arp_request(cl.c1, cl.web1.ips[0]))
    assert arp.outputs, arp.text


async def test_allow_all_ingress_next_to_deny_all(cl: Cluster) -> None:
    await cl.program(
        cl.policy("deny-all", ingress=()),
        cl.policy("allow-web", selector=sel(app="web"), ingress=(Rule(),)),
    )
    assert cl.passes(cl.c3, cl.web1, 8080)
    assert cl.passes(cl.c2, cl.web2, 12345)
    assert not cl.passes(cl.c3, cl.db, 5432)
    assert not cl.passes(cl.web1, cl.c1, 80)  # c1 is in prod: selected by deny-all


async def test_default_deny_egress(cl: Cluster) -> None:
    await cl.program(cl.policy("no-out", selector=sel(role="client"), egress=()))
    assert not cl.passes(cl.c1, cl.web1, 8080)
    assert not cl.passes(cl.c1, cl.db, 5432)
    assert cl.passes(cl.c2, cl.web1, 8080)  # c2 is in dev: not selected
    assert cl.passes(cl.web1, cl.c1, 8080)  # ingress of c1 is not isolated
    assert cl.t(arp_request(cl.c1, cl.web1.ips[0])).outputs  # ARP leaves


async def test_namespace_and_pod_selector_in_one_peer_is_and(cl: Cluster) -> None:
    peer = Peer(namespace_selector=sel(team="a"), pod_selector=sel(role="client"))
    await cl.program(cl.policy("and", selector=sel(app="web"), ingress=(Rule(peers=(peer,)),)))
    assert cl.passes(cl.c1, cl.web1, 8080)  # prod (team a), client
    assert cl.passes(cl.c2, cl.web1, 8080)  # dev (team a), client
    assert not cl.passes(cl.c3, cl.web1, 8080)  # client, but team b
    assert not cl.passes(cl.c4, cl.web1, 8080)  # team a, but not a client


async def test_namespace_or_pod_selector_in_two_peers_is_or(cl: Cluster) -> None:
    peers = (Peer(namespace_selector=sel(env="dev")), Peer(pod_selector=sel(role="client")))
    await cl.program(cl.policy("or", selector=sel(app="web"), ingress=(Rule(peers=peers),)))
    assert cl.passes(cl.c4, cl.web1, 8080)  # any pod of dev
    assert cl.passes(cl.c1, cl.web1, 8080)  # a client of the policy's namespace
    assert not cl.passes(cl.c3, cl.web1, 8080)  # a client, but of another namespace
    assert not cl.passes(cl.db, cl.web1, 8080)  # prod, not a client


async def test_ipblock_with_except(cl: Cluster) -> None:
    block = Peer(cidr="10.0.0.16/29", except_cidrs=("10.0.0.22/32",))
    await cl.program(cl.policy("block", selector=sel(app="web"), ingress=(Rule(peers=(block,)),)))
    assert cl.passes(cl.c1, cl.web1, 8080)  # .20
    assert cl.passes(cl.c4, cl.web1, 8080)  # .23
    assert not cl.passes(cl.c3, cl.web1, 8080)  # .22: the exception
    assert not cl.passes(cl.db, cl.web1, 8080)  # .30: outside the block


async def test_named_port_resolves_per_destination_pod(cl: Cluster) -> None:
    rule = Rule(ports=(PolicyPort(port="http"),))
    await cl.program(cl.policy("named", selector=sel(app="web"), ingress=(rule,)))
    assert cl.passes(cl.c1, cl.web1, 8080)
    assert not cl.passes(cl.c1, cl.web1, 9090)
    assert cl.passes(cl.c1, cl.web2, 9090)
    assert not cl.passes(cl.c1, cl.web2, 8080)


async def test_named_port_in_egress_resolves_against_peers(cl: Cluster) -> None:
    rule = Rule(peers=(Peer(pod_selector=sel(app="web")),), ports=(PolicyPort(port="http"),))
    await cl.program(cl.policy("named-out", selector=sel(role="client"), egress=(rule,)))
    assert cl.passes(cl.c1, cl.web1, 8080)
    assert cl.passes(cl.c1, cl.web2, 9090)
    assert not cl.passes(cl.c1, cl.web2, 8080)
    assert not cl.passes(cl.c1, cl.db, 5432)


async def test_end_port_range(cl: Cluster) -> None:
    rule = Rule(ports=(PolicyPort(port=8000, end_port=8100),))
    await cl.program(cl.policy("range", selector=sel(app="web"), ingress=(rule,)))
    assert cl.passes(cl.c1, cl.web1, 8000)
    assert cl.passes(cl.c1, cl.web1, 8080)
    assert cl.passes(cl.c1, cl.web1, 8100)
    assert not cl.passes(cl.c1, cl.web1, 7999)
    assert not cl.passes(cl.c1, cl.web1, 8101)


async def test_two_policies_add_up(cl: Cluster) -> None:
    from_clients = Rule(peers=(Peer(pod_selector=sel(role="client")),), ports=(PolicyPort(port=8080),))
    from_db = Rule(peers=(Peer(pod_selector=sel(app="db")),))
    await cl.program(
        cl.policy("p1", selector=sel(app="web"), ingress=(from_clients,)),
        cl.policy("p2", selector=Selector(match_expressions=(Expr(key="app", operator="In", values=("web",)),)), ingress=(from_db,)),
    )
    assert cl.passes(cl.c1, cl.web1, 8080)  # p1
    assert cl.passes(cl.db, cl.web1, 6000)  # p2
    assert not cl.passes(cl.c1, cl.web1, 6000)  # neither
    assert not cl.passes(cl.c4, cl.web1, 8080)  # neither (dev, and not a prod client)


async def test_ingress_and_egress_together_and_egress_after_load_balancing(cl: Cluster) -> None:
    out = Rule(peers=(Peer(pod_selector=sel(app="web")),), ports=(PolicyPort(port=8080),))
    pol = cl.policy("both", selector=sel(role="client"), ingress=(), egress=(out,))
    web = cl.service("web", "10.96.0.10", 80, ("10.0.0.10:8080",))
    dbs = cl.service("db", "10.96.0.20", 5432, ("10.0.0.30:5432",))
    await cl.program(pol, web, dbs)
    assert cl.passes(cl.c1, cl.web1, 8080)  # egress allowed
    assert not cl.passes(cl.c1, cl.db, 5432)  # egress denied
    assert not cl.passes(cl.web1, cl.c1, 8080)  # ingress to c1 denied
    assert cl.passes(cl.c2, cl.web1, 8080)  # c2 (dev) unaffected
    # through the VIP: judged against the backend it is DNATed to
    via_vip = cl.t(tcp(cl.c1, "10.96.0.10", 80, mac(cl.web1)))
    assert via_vip.backends == ["10.0.0.10:8080"] and via_vip.reaches(cl.web1)
    to_db = cl.t(tcp(cl.c1, "10.96.0.20", 5432, mac(cl.db)))
    assert to_db.backends == ["10.0.0.30:5432"] and not to_db.reaches(cl.db)


class TxnSpy:
    """Records every transaction the programmer sends (ops, in order)."""

    def __init__(self, client: OvsdbClient) -> None:
        self.txns: list[list[dict[str, Any]]] = []
        real = client.transact

        async def transact(ops: list[dict[str, Any]], timeout: float | None = 300.0) -> list[Any]:
            self.txns.append(ops)
            return await real(ops, timeout)

        client.transact = transact  # type: ignore[method-assign]


def acl_ops(txn: list[dict[str, Any]], pred: Callable[[dict[str, Any]], bool]) -> list[int]:
    return [i for i, op in enumerate(txn) if op.get("table") == ACL and pred(op)]


async def test_policy_change_has_no_window(cl: Cluster) -> None:
    """Allowed before and after = allowed throughout: the new allow ACLs and
    address sets are written in the same transaction as, and before, the
    removal of the old ones."""
    v1 = cl.policy(
        "move", selector=sel(app="web"),
        ingress=(Rule(peers=(Peer(pod_selector=sel(role="client")),), ports=(PolicyPort(port=8080),)),),
    )
    await cl.program(v1)
    assert cl.passes(cl.c1, cl.web1, 8080) and not cl.passes(cl.c1, cl.web1, 9090)
    assert not cl.passes(cl.db, cl.web1, 8080)
    prog = cl.prog
    assert prog is not None and prog._client is not None
    spy = TxnSpy(prog._client)
    old_acls = {k for k, r in prog.rows(ACL).items() if r.cols["priority"] == 1001 and DEFAULT_HAIRPIN_IP not in r.cols["match"]}
    v2 = cl.policy(
        "move", selector=sel(app="web"),
        ingress=(
            Rule(
                peers=(Peer(pod_selector=sel(role="client")), Peer(pod_selector=sel(app="db"))),
                ports=(PolicyPort(port=8080), PolicyPort(port=9090)),
            ),
        ),
    )
    prog.apply(Upsert(obj=v2))
    await cl.settle()
    assert len(spy.txns) == 1, "a policy change must be one transaction"
    txn = spy.txns[0]
    inserted = acl_ops(txn, lambda op: op["op"] == "insert")
    deleted = acl_ops(txn, lambda op: op["op"] == "delete")
    assert inserted and deleted
    assert max(inserted) < min(deleted), "the new allow must come before the old one goes"
    old_uuids = {prog.rows(ACL)[k].uuid for k in old_acls if k in prog.rows(ACL)}
    assert not old_uuids, "the old allow ACL is gone"
    assert cl.passes(cl.c1, cl.web1, 8080)  # allowed before and after
    assert cl.passes(cl.c1, cl.web1, 9090)  # newly allowed
    assert cl.passes(cl.db, cl.web1, 8080)  # newly allowed peer
    assert not cl.passes(cl.c4, cl.web1, 8080)  # still denied
