"""The fabric's NB rows against a real ovsdb-server: routers, their ports on
every routed network of every source, the load-balancer group, DNS records,
the external network's gateway port, SNAT and floating IPs; restarts write
nothing, config changes remove exactly what they must, and foreign fabric
rows stay byte-identical.  Packets through these rows: tests/system/test_fabric_dataplane.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import pytest

from core.model import Delete, Endpoint, LBRule, Network, Service, Snapshot, Source, Upsert
from core.model.fabric import LABEL_FLOATING_IP, ExternalSpec, Fabric, RouterSpec
from core.names import OWNER, SOURCE, lsp_name
from core.nb import Programmer
from hub.sandbox import OvnSandbox
from testkit.nb import nb_rows, ovs_map, ovs_set
from testkit.wait import wait_until

DOCKER = Source("docker", "local")
K8S = Source("k8s", "prod")
STATIC = Source("static", "lab")


def net(src: Source, name: str, subnet: str, gw: str | None = None) -> Network:
    return Network(source=src, name=name, subnets=(subnet,), gateway=gw)


def ep(src: Source, uid: str, network: str, ip: str, ns: str = "default", **labels: str) -> Endpoint:
    return Endpoint(source=src, uid=uid, namespace=ns, name=uid, kind="container", network=network, ips=(ip,), labels=labels)


def db_svc() -> Service:
    return Service(source=K8S, uid="s-db", namespace="default", name="db", network="pods",
                   rules=(LBRule(vip="10.96.0.20", port=5432, backends=("10.244.0.5:5432",)),))  # fmt: skip


def world() -> list[Snapshot]:
    return [
        Snapshot(source=DOCKER, objects=(net(DOCKER, "blue", "10.1.0.0/24", "10.1.0.1"),
                                         ep(DOCKER, "web", "blue", "10.1.0.2", app="web"),
                                         ep(DOCKER, "l2", "flat", "192.168.9.2"))),
        Snapshot(source=K8S, objects=(net(K8S, "pods", "10.244.0.0/16", "10.244.0.1"),
                                      ep(K8S, "db-0", "pods", "10.244.0.5", ns="default", app="db"), db_svc())),
        Snapshot(source=STATIC, objects=(net(STATIC, "vms", "10.3.0.0/24"), ep(STATIC, "vm1", "vms", "10.3.0.7"))),
    ]


EXT = ExternalSpec(name="uplink", router="main", cidr="172.16.0.0/24", ip="172.16.0.10", gateway="172.16.0.1",
                   chassis=("gw-1", "gw-2"))  # fmt: skip
FABRIC = Fabric(routers=(RouterSpec(name="main"),), externals=(EXT,))


@pytest.fixture
async def make_prog(ovn: OvnSandbox) -> AsyncIterator[Callable[..., Awaitable[Programmer]]]:
    made: list[tuple[Programmer, asyncio.Task[None]]] = []

    async def make(fabric: Fabric = FABRIC, hub_id: str = "hub1", **kw: Any) -> Programmer:
        p = Programmer(ovn.nb_remote, hub_id, **kw)
        p.set_fabric(fabric)
        p.expect([DOCKER, K8S, STATIC])
        await p.start()
        made.append((p, asyncio.create_task(p.run())))
        return p

    make.made = made  # type: ignore[attr-defined]
    try:
        yield make
    finally:
        for p, t in made:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
            await p.close()


async def stop(make_prog: Any, p: Programmer) -> None:
    for q, t in make_prog.made:
        if q is p:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
    await p.close()


def by_name(ovn: OvnSandbox, table: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in nb_rows(ovn, table)}


def names_of(ovn: OvnSandbox, table: str, value: Any) -> set[str]:
    found = {r["_uuid"][1]: r.get("name") or ovs_map(r["external_ids"]).get("ovn-hub:key") for r in nb_rows(ovn, table)}
    return {found[u[1]] for u in ovs_set(value)}


def nbctl(ovn: OvnSandbox, *args: str) -> str:
    return subprocess.run(["ovn-nbctl", f"--db={ovn.nb_remote}", *args], check=True, capture_output=True, text=True).stdout


async def test_routers_ports_groups_dns_and_nat(ovn: OvnSandbox, make_prog: Any) -> None:
    p = await make_prog()
    for s in world():
        p.apply(s)
    await p.flush(10)
    routers = by_name(ovn, "Logical_Router")
    assert set(routers) == {"ovn-hub/main"}
    lr = routers["ovn-hub/main"]
    assert ovs_map(lr["external_ids"])[OWNER] == "hub1"
    lrps = by_name(ovn, "Logical_Router_Port")
    assert names_of(ovn, "Logical_Router_Port", lr["ports"]) == set(lrps) == {
        "ovn-hub/rtos/docker/local/blue", "ovn-hub/rtos/k8s/prod/pods", "ovn-hub/rtos/static/lab/vms", "ovn-hub/rtoe/uplink"}
    # each router port sits at its network's gateway (the first host when the network names none)
    assert ovs_set(lrps["ovn-hub/rtos/docker/local/blue"]["networks"]) == ["10.1.0.1/24"]
    assert ovs_set(lrps["ovn-hub/rtos/k8s/prod/pods"]["networks"]) == ["10.244.0.1/16"]
    assert ovs_set(lrps["ovn-hub/rtos/static/lab/vms"]["networks"]) == ["10.3.0.1/24"]
    switches = by_name(ovn, "Logical_Switch")
    lsps = by_name(ovn, "Logical_Switch_Port")
    stor = lsps["ovn-hub/stor/docker/local/blue"]
    assert stor["type"] == "router" and ovs_map(stor["options"]) == {"router-port": "ovn-hub/rtos/docker/local/blue"}
    assert "ovn-hub/stor/docker/local/blue" in names_of(ovn, "Logical_Switch_Port", switches["docker/local/blue"]["ports"])
    # the L2-only network (no subnet) is on no router
    assert not any(n.endswith("/flat") for n in lrps) and "ovn-hub/stor/docker/local/flat" not in lsps
    # the group holds the k8s Service's balancer and is on every routed switch and on the router
    groups = by_name(ovn, "Load_Balancer_Group")
    assert set(groups) == {"ovn-hub/hub1/main"}
    assert names_of(ovn, "Load_Balancer", groups["ovn-hub/hub1/main"]["load_balancer"]) == {"k8s/prod/svc/default/db/s-db/tcp"}
    for sw in ("docker/local/blue", "k8s/prod/pods", "static/lab/vms"):
        assert names_of(ovn, "Load_Balancer_Group", switches[sw]["load_balancer_group"]) == {"ovn-hub/hub1/main"}, sw
    assert switches["docker/local/flat"]["load_balancer_group"] == ["set", []]
    assert names_of(ovn, "Load_Balancer_Group", lr["load_balancer_group"]) == {"ovn-hub/hub1/main"}
    lb = by_name(ovn, "Load_Balancer")["k8s/prod/svc/default/db/s-db/tcp"]
    assert ovs_map(lb["options"])["hairpin_snat_ip"] == "169.254.169.5"
    # DNS: one row per (router, source, namespace), on every routed switch
    dns = {ovs_map(r["external_ids"])["ovn-hub:key"]: r for r in nb_rows(ovn, "DNS")}
    assert ovs_map(dns["ovn-hub/dns/main/k8s/prod/default"]["records"]) == {
        "db.default.k8s.prod.hub": "10.96.0.20", "db-0.default.k8s.prod.hub": "10.244.0.5"}
    assert ovs_map(dns["ovn-hub/dns/main/docker/local/default"]["records"]) == {"web.default.docker.local.hub": "10.1.0.2"}
    assert ovs_map(dns["ovn-hub/dns/main/docker/local/default"]["external_ids"])[SOURCE] == "docker/local"
    for sw in ("docker/local/blue", "k8s/prod/pods", "static/lab/vms"):
        assert names_of(ovn, "DNS", switches[sw]["dns_records"]) == set(dns), sw
    # the outside: a localnet switch, a gateway port on an HA chassis group, a default route, SNAT
    assert lsps["ovn-hub/ext/uplink/localnet"]["type"] == "localnet"
    assert ovs_map(lsps["ovn-hub/ext/uplink/localnet"]["options"]) == {"network_name": "physnet"}
    gw = lrps["ovn-hub/rtoe/uplink"]
    assert ovs_set(gw["networks"]) == ["172.16.0.10/24"]
    hacg = by_name(ovn, "HA_Chassis_Group")["ovn-hub/uplink"]
    assert gw["ha_chassis_group"] == ["uuid", hacg["_uuid"][1]]
    prio = {r["chassis_name"]: r["priority"] for r in nb_rows(ovn, "HA_Chassis")}
    assert prio == {"gw-1": 20, "gw-2": 10}
    nat = {(r["type"], r["logical_ip"], r["external_ip"]) for r in nb_rows(ovn, "NAT")}
    assert nat == {("snat", "10.1.0.0/24", "172.16.0.10"), ("snat", "10.244.0.0/16", "172.16.0.10"),
                   ("snat", "10.3.0.0/24", "172.16.0.10")}  # fmt: skip
    routes = nb_rows(ovn, "Logical_Router_Static_Route")
    assert [(r["ip_prefix"], r["nexthop"]) for r in routes] == [("0.0.0.0/0", "172.16.0.1")]
    assert p.plan() == []
    # a floating IP for one endpoint, by label; a bad one is skipped (and nothing else lost)
    writes = p.writes
    p.apply(Upsert(obj=ep(STATIC, "vm1", "vms", "10.3.0.7", **{"ovn-hub.io/floating-ip": "172.16.0.50"})))
    p.apply(Upsert(obj=ep(STATIC, "vm2", "vms", "10.3.0.8", **{"ovn-hub.io/floating-ip": "8.8.8.8"})))
    await p.flush(10)
    assert p.writes > writes
    nat = {(r["type"], r["logical_ip"], r["external_ip"]) for r in nb_rows(ovn, "NAT")}
    assert ("dnat_and_snat", "10.3.0.7", "172.16.0.50") in nat and not any(x[2] == "8.8.8.8" for x in nat)
    p.apply(Delete(source=STATIC, kind="endpoint", key="vms/vm1"))
    await p.flush(10)
    assert not any(r["type"] == "dnat_and_snat" for r in nb_rows(ovn, "NAT"))
    # a restart writes nothing
    await stop(make_prog, p)
    q = await make_prog()
    for s in world()[:2]:
        q.apply(s)
    vm2 = ep(STATIC, "vm2", "vms", "10.3.0.8", **{"ovn-hub.io/floating-ip": "8.8.8.8"})
    q.apply(Snapshot(source=STATIC, objects=(net(STATIC, "vms", "10.3.0.0/24"), vm2)))  # vm1 was deleted
    await q.flush(10)
    assert q.writes == 0 and q.plan() == []


async def test_a_restart_before_every_source_listed_deletes_nothing(ovn: OvnSandbox, make_prog: Any) -> None:
    p = await make_prog()
    for s in world():
        p.apply(s)
    await p.flush(10)
    before = {t: nb_rows(ovn, t) for t in ("Logical_Router_Port", "Load_Balancer_Group", "DNS", "NAT")}
    await stop(make_prog, p)
    q = await make_prog()
    q.apply(world()[0])  # only docker has listed: k8s's router port, balancer membership and SNAT stay
    await q.flush(10)
    after = {t: nb_rows(ovn, t) for t in before}
    assert after == before
    assert q.writes == 0


async def test_config_changes_remove_their_rows_and_nothing_else(ovn: OvnSandbox, make_prog: Any) -> None:
    # 100 foreign routers, NAT rules and DNS rows: byte-identical at the end
    cmds: list[str] = []
    for i in range(100):
        cmds += ["--", "lr-add", f"foreign-{i}", "--", "lr-nat-add", f"foreign-{i}", "snat", "192.0.2.1", f"10.{i}.0.0/24"]
        cmds += ["--", "create", "DNS", f'records={{"f{i}.example"="192.0.2.{i % 250 + 1}"}}', "external_ids:owner=someone"]
    nbctl(ovn, *cmds[1:])
    foreign = {t: nb_rows(ovn, t) for t in ("Logical_Router", "NAT", "DNS")}
    p = await make_prog()
    for s in world():
        p.apply(s)
    await p.flush(10)
    # the docker network leaves the router: its port pair, SNAT and DNS attachment go, nothing else
    p.set_fabric(msgspec.structs.replace(FABRIC, routers=(RouterSpec(name="main", networks=("k8s/*", "static/*")),)))
    await p.flush(10)
    lrps = set(by_name(ovn, "Logical_Router_Port"))
    assert lrps == {"ovn-hub/rtos/k8s/prod/pods", "ovn-hub/rtos/static/lab/vms", "ovn-hub/rtoe/uplink"}
    assert "ovn-hub/stor/docker/local/blue" not in by_name(ovn, "Logical_Switch_Port")
    blue = by_name(ovn, "Logical_Switch")["docker/local/blue"]
    assert blue["load_balancer_group"] == ["set", []] and blue["dns_records"] == ["set", []]
    assert not any(r["logical_ip"] == "10.1.0.0/24" and ovs_map(r["external_ids"]).get(OWNER) for r in nb_rows(ovn, "NAT"))
    assert lsp_name(ep(DOCKER, "web", "blue", "10.1.0.2")) in by_name(ovn, "Logical_Switch_Port")  # the endpoint stays
    # no router configured: every fabric row goes
    p.set_fabric(Fabric())
    planned = {(o.op, o.table, o.name) for o in p.plan()}  # hubctl plan shows the fabric's rows like any other
    assert ("delete", "Logical_Router", "ovn-hub/main") in planned and ("delete", "NAT", "ovn-hub/main/snat/10.244.0.0/16") in planned
    await p.flush(10)
    ours = lambda t: [r for r in nb_rows(ovn, t) if ovs_map(r["external_ids"]).get(OWNER) == "hub1"]  # noqa: E731
    for t in ("Logical_Router", "Logical_Router_Port", "NAT", "DNS", "Load_Balancer_Group", "HA_Chassis_Group",
              "HA_Chassis", "Logical_Router_Static_Route"):  # fmt: skip
        assert ours(t) == [], t
    assert not any(n.startswith("ovn-hub/") for n in by_name(ovn, "Logical_Switch_Port"))
    assert not any(n.startswith("ovn-hub/") for n in by_name(ovn, "Logical_Switch"))
    assert {t: nb_rows(ovn, t) for t in foreign} == foreign
    assert json.dumps(p.plan(), default=str) == "[]"


async def test_an_ovn_allocated_address_gets_its_dns_record_and_floating_ip(ovn: OvnSandbox, make_prog: Any) -> None:
    """An endpoint left to OVN's IPAM (a Docker wrapper container), on a routed
    network of a source with no policies: once northd allocates its address,
    its DNS record and its floating IP's NAT follow (found by make demo: the
    last container to start had no record)."""
    p = await make_prog()
    dyn = Endpoint(source=DOCKER, uid="dyn", namespace="default", name="dyn", kind="container", network="blue",
                   labels={LABEL_FLOATING_IP: "172.16.0.50"})  # fmt: skip
    p.apply(Snapshot(source=DOCKER, objects=(net(DOCKER, "blue", "10.1.0.0/24", "10.1.0.1"), dyn)))
    await p.flush(10)

    def records() -> dict[str, str]:
        return {k: v for r in nb_rows(ovn, "DNS") for k, v in ovs_map(r["records"]).items()}

    def fips() -> dict[str, str]:
        return {r["external_ip"]: r["logical_ip"] for r in nb_rows(ovn, "NAT") if r["type"] == "dnat_and_snat"}

    assert "dyn.default.docker.local.hub" not in records() and fips() == {}  # no address yet
    # what northd writes when it allocates (no northd here: nothing else writes the column)
    nbctl(ovn, "set", "Logical_Switch_Port", lsp_name(dyn), 'dynamic_addresses="0a:00:00:01:00:07 10.1.0.7"')
    await wait_until(lambda: records().get("dyn.default.docker.local.hub") == "10.1.0.7", 10, "the DNS record")
    await wait_until(lambda: fips() == {"172.16.0.50": "10.1.0.7"}, 10, "the floating IP's NAT")
    # a reallocation: both follow again
    nbctl(ovn, "set", "Logical_Switch_Port", lsp_name(dyn), 'dynamic_addresses="0a:00:00:01:00:08 10.1.0.8"')
    await wait_until(lambda: records().get("dyn.default.docker.local.hub") == "10.1.0.8", 10, "the DNS record moved")
    await wait_until(lambda: fips() == {"172.16.0.50": "10.1.0.8"}, 10, "the floating IP's NAT moved")
    await p.flush(10)
    assert p.plan() == []
