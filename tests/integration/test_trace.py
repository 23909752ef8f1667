"""``hubctl trace``: ovn-trace through a real ovn-northd, answered in canonical terms.

One NB + SB + ovn-northd for the module; each test starts an in-process
Programmer with a fabric (router ``main`` on every network, out through
``uplink``) over the same world, waits until ovn-northd compiled it, and calls
the trace function the API serves.  The last test goes through a hubd
subprocess (``--sandbox``), its API and ``hubctl``.

The world:

=============  ==========================  ============  =====================
source         endpoint / service          address       network
=============  ==========================  ============  =====================
docker/local   web (app=web)               10.1.0.2      blue 10.1.0.0/24
k8s/prod       default/db-0 (app=db)       10.244.0.5    pods 10.244.0.0/16
k8s/prod       default/client (app=client) 10.244.0.6    pods
k8s/prod       Service default/db          10.96.0.20:5432 -> db-0:5432
k8s/prod       NetworkPolicy default/allow-db: app=db admits app=client on tcp/5432
static/lab     lab/vm1 (OVN's IPAM)        dynamic       vms 10.3.0.0/24
=============  ==========================  ============  =====================

``OVN_HUB_CAPTURE_TRACES=DIR`` writes each case's ovn-trace output and the
answer to DIR (how tests/fixtures/ovn-trace/ was made).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from core.model import Endpoint, LBRule, Network, Peer, Policy, PolicyPort, Rule, Selector, Service, Snapshot, Source
from core.model.fabric import AdminPolicy, AdminRule, ExternalSpec, Fabric, RouterSpec
from core.names import lsp_name, stable_mac
from core.nb import Programmer
from hub.sandbox import OvnSandbox
from hub.trace import Request, TraceError, trace
from testkit.hubd import Hubd
from testkit.ovn_trace import sync
from testkit.wait import wait_until

DOCKER = Source("docker", "local")
K8S = Source("k8s", "prod")
STATIC = Source("static", "lab")
EXT = ExternalSpec(name="uplink", router="main", cidr="172.16.0.0/24", ip="172.16.0.10", gateway="172.16.0.1",
                   chassis=("gw-1",))  # fmt: skip
FABRIC = Fabric(routers=(RouterSpec(name="main"),), externals=(EXT,))


def ep(src: Source, name: str, network: str, ip: str | None, ns: str = "default", **labels: str) -> Endpoint:
    return Endpoint(source=src, uid=f"uid-{name}", namespace=ns, name=name, kind="pod", network=network,
                    ips=(ip,) if ip else (), labels=labels)  # fmt: skip


WEB = ep(DOCKER, "web", "blue", "10.1.0.2", app="web")
DB = ep(K8S, "db-0", "pods", "10.244.0.5", app="db")
CLIENT = ep(K8S, "client", "pods", "10.244.0.6", app="client")
VM = ep(STATIC, "vm1", "vms", None, ns="lab")
DB_SVC = Service(source=K8S, uid="s-db", namespace="default", name="db", network="pods",
                 rules=(LBRule(vip="10.96.0.20", port=5432, backends=("10.244.0.5:5432",)),))  # fmt: skip
ALLOW_DB = Policy(source=K8S, uid="np-allow-db", namespace="default", name="allow-db",
                  pod_selector=Selector(match_labels={"app": "db"}),
                  ingress=(Rule(peers=(Peer(pod_selector=Selector(match_labels={"app": "client"})),),
                                ports=(PolicyPort(port=5432),)),))  # fmt: skip


def world() -> list[Snapshot]:
    return [
        Snapshot(source=DOCKER, objects=(Network(source=DOCKER, name="blue", subnets=("10.1.0.0/24",), gateway="10.1.0.1"), WEB)),
        Snapshot(source=K8S, objects=(Network(source=K8S, name="pods", subnets=("10.244.0.0/16",), gateway="10.244.0.1"),
                                      DB, CLIENT, DB_SVC, ALLOW_DB)),
        Snapshot(source=STATIC, objects=(Network(source=STATIC, name="vms", subnets=("10.3.0.0/24",)), VM)),
    ]


@pytest.fixture(scope="module")
def sb() -> Iterator[OvnSandbox]:
    d = Path(tempfile.mkdtemp(prefix="hubtc", dir="/tmp"))
    box = OvnSandbox(d / "ovn", northd=True)
    try:
        box.start()
        yield box
    finally:
        box.stop()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
async def prog(sb: OvnSandbox) -> AsyncIterator[Programmer]:
    p = Programmer(sb.nb_remote, "hub1")
    p.set_fabric(FABRIC)
    p.expect([DOCKER, K8S, STATIC])
    await p.start()
    task = asyncio.create_task(p.run())
    try:
        for s in world():
            p.apply(s)
        await p.flush(20)
        await wait_until(lambda: p.port_addresses(lsp_name(VM)) is not None, 10, "OVN allocated vm1's address")
        await p.flush(20)
        await asyncio.to_thread(sync, sb)
        yield p
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await p.close()


def capture(case: str, answer: dict[str, Any]) -> None:
    out = os.environ.get("OVN_HUB_CAPTURE_TRACES")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"{case}.txt").write_text(answer["trace"])
        (Path(out) / f"{case}.json").write_text(json.dumps(answer, indent=2) + "\n")


async def run(prog: Programmer, sb: OvnSandbox, case: str, src: str, dst: str, **kw: Any) -> dict[str, Any]:
    answer = await trace(prog, sb.sb_remote, Request(src=src, dst=dst, **kw))
    capture(case, answer)
    return answer


def sbctl(sb: OvnSandbox, *args: str) -> str:
    return subprocess.run(["ovn-sbctl", f"--db={sb.sb_remote}", *args], check=True, capture_output=True, text=True,
                          timeout=30).stdout  # fmt: skip


def kinds(answer: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [d for d in answer["decisions"] if d["kind"] == kind]


async def test_routed_ping_between_two_networks(prog: Programmer, sb: OvnSandbox) -> None:
    a = await run(prog, sb, "routed-ping", "docker/local/default/web", "k8s/prod/default/client")
    assert a["verdict"] == "delivered", a["drops"]
    assert [(d["endpoint"], d["port"]) for d in a["delivered"]] == [("k8s/prod/default/client", lsp_name(CLIENT))]
    assert a["path"] == ["docker/local/blue", "ovn-hub/main", "k8s/prod/pods"]
    (route,) = kinds(a, "route")
    assert (route["router"], route["prefix"], route["nexthop"], route["outport"]) == (
        "ovn-hub/main", "10.244.0.0/16", "", "ovn-hub/rtos/k8s/prod/pods")
    assert route["row"] == "ovn-hub/rtos/k8s/prod/pods"  # the connected route's stage-hint is its router port
    # the microflow: SRC's port, MAC and IP, the first hop is blue's router port, an echo request
    assert a["microflow"] == (
        f'inport == "docker/local/blue/uid-web" && eth.src == 0a:58:0a:01:00:02 && '
        f"eth.dst == {stable_mac('ovn-hub/rtos/docker/local/blue')} && ip4.src == 10.1.0.2 && ip4.dst == 10.244.0.6 && "
        "ip.ttl == 64 && icmp4.type == 8")
    assert a["src"] == {"kind": "endpoint", "name": "docker/local/default/web", "ip": "10.1.0.2", "port": lsp_name(WEB),
                        "network": "docker/local/blue", "mac": "0a:58:0a:01:00:02"}  # fmt: skip
    assert not kinds(a, "acl")  # client is selected by no policy
    # the same, by addresses; and from an endpoint whose address OVN allocated
    b = await run(prog, sb, "routed-ping-by-ip", "10.1.0.2", "10.244.0.6")
    assert b["delivered"] == a["delivered"] and b["microflow"] == a["microflow"]
    mac, ips = prog.port_addresses(lsp_name(VM)) or ("", ())
    c = await run(prog, sb, "dynamic-src", "static/lab/lab/vm1", "docker/local/default/web")
    assert c["verdict"] == "delivered" and c["delivered"][0]["endpoint"] == "docker/local/default/web"
    assert (c["src"]["mac"], c["src"]["ip"]) == (mac, ips[0]) and ips[0].startswith("10.3.0.")


async def test_tcp_to_a_service_vip(prog: Programmer, sb: OvnSandbox) -> None:
    a = await run(prog, sb, "service-vip", "k8s/prod/default/client", "k8s/prod/default/db")
    assert (a["dst"]["kind"], a["dst"]["ip"], a["proto"], a["port"]) == ("service", "10.96.0.20", "tcp", 5432)
    assert a["verdict"] == "delivered", a["drops"]
    assert [d["endpoint"] for d in a["delivered"]] == ["k8s/prod/default/db-0"]
    (lb,) = kinds(a, "lb")
    assert lb["service"] == {"source": "k8s/prod", "namespace": "default", "name": "db", "uid": "s-db"}
    assert lb["vip"] == "10.96.0.20:5432" and lb["chosen"] == "10.244.0.5:5432"
    assert lb["backends"] == [{"address": "10.244.0.5:5432", "endpoint": "k8s/prod/default/db-0"}]
    assert "service k8s/prod default/db: 10.96.0.20:5432 -> 10.244.0.5:5432 (k8s/prod/default/db-0)" in lb["text"]
    # the backend is isolated by allow-db, whose rule admits the client: the ACL says so
    allows = [d for d in kinds(a, "acl") if d["action"] == "allow-related"]
    assert [(d["policy"]["name"], d["policy"]["rule"]) for d in allows] == [("allow-db", "ingress[0]")]
    assert "acl allow-related: policy k8s/prod default/allow-db rule ingress[0]" in allows[0]["text"]
    # the VIP given as an address is the same Service
    b = await run(prog, sb, "service-vip-by-ip", "k8s/prod/default/client", "10.96.0.20", port=5432)
    assert b["dst"]["kind"] == "service" and b["dst"]["service"] == "k8s/prod/default/db"
    assert b["delivered"] == a["delivered"]


async def test_a_connection_dropped_by_a_network_policy(prog: Programmer, sb: OvnSandbox) -> None:
    a = await run(prog, sb, "policy-drop", "docker/local/default/web", "k8s/prod/default/db-0", port=5432)
    assert a["verdict"] == "dropped" and a["delivered"] == []
    (drop,) = a["drops"]
    assert drop["where"] == "k8s/prod/pods (egress, ls_out_acl)"
    (acl,) = [d for d in kinds(a, "acl") if d["action"] == "drop"]
    assert acl["policy"]["rule"] == "default-deny-in" and acl["direction"] == "to-lport"
    assert acl["isolated_by"] == [{"source": "k8s/prod", "namespace": "default", "name": "allow-db", "uid": "np-allow-db"}]
    assert drop["why"] == acl["why"]
    assert ("the default deny (ingress) of k8s/prod: k8s/prod/default/db-0 is isolated by policy k8s/prod "
            "default/allow-db, and no rule of it allows this") in acl["text"]  # fmt: skip
    # through the Service (the router's load-balancer group puts it on blue too): balanced, then dropped
    b = await run(prog, sb, "policy-drop-via-vip", "docker/local/default/web", "k8s/prod/default/db")
    assert b["verdict"] == "dropped"
    assert [lb["service"]["name"] for lb in kinds(b, "lb")] == ["db"]
    assert b["drops"][0]["why"] == acl["why"]
    # the client on another port: also dropped (the rule admits 5432 only)
    c = await run(prog, sb, "policy-drop-port", "k8s/prod/default/client", "k8s/prod/default/db-0", port=22)
    assert c["verdict"] == "dropped" and c["drops"][0]["why"] == acl["why"]


async def test_a_hub_policy_decides_before_the_network_policy(prog: Programmer, sb: OvnSandbox) -> None:
    web_to_db = AdminPolicy(name="web-to-db", priority=10, subject=Peer(pod_selector=Selector(match_labels={"app": "db"})),
                            ingress=(AdminRule(action="allow", peers=(Peer(pod_selector=Selector(match_labels={"app": "web"})),),
                                               ports=(PolicyPort(port=5432),)),))  # fmt: skip
    prog.set_fabric(msgspec.structs.replace(FABRIC, policies=(web_to_db,)))
    try:
        await prog.flush(20)
        await asyncio.to_thread(sync, sb)
        a = await run(prog, sb, "hub-policy-allow", "docker/local/default/web", "k8s/prod/default/db-0", port=5432)
    finally:
        prog.set_fabric(FABRIC)
        await prog.flush(20)
        await asyncio.to_thread(sync, sb)
    assert a["verdict"] == "delivered", a["drops"]
    (acl,) = kinds(a, "acl")
    assert (acl["action"], acl["why"]) == ("allow-related", "hub policy web-to-db rule ingress[0]")
    assert acl["policy"]["source"] == "ovn-hub/fabric" and acl["priority"] == 31999 - 10 * 30
    # with the hub policy gone, the NetworkPolicy's isolation is back
    b = await run(prog, sb, "policy-drop-again", "docker/local/default/web", "k8s/prod/default/db-0", port=5432)
    assert b["verdict"] == "dropped"


async def test_out_through_the_external_network_with_snat(prog: Programmer, sb: OvnSandbox) -> None:
    # the gateway's MAC is not known yet: the router asks for it instead of sending
    a = await run(prog, sb, "outside-arp", "docker/local/default/web", "8.8.8.8")
    assert a["verdict"] == "arp", a
    (route,) = kinds(a, "route")
    assert (route["prefix"], route["nexthop"], route["outport"]) == ("0.0.0.0/0", "172.16.0.1", "ovn-hub/rtoe/uplink")
    assert route["row"] == "ovn-hub/main/0.0.0.0/0" and "0.0.0.0/0 via 172.16.0.1 (static route)" in route["text"]
    assert [(m["packet"], m["type"]) for m in a["made"] if m["type"] != "patch"] == [("arp", "localnet")]
    # once the gateway answered (ovn-controller writes what it learned into SB MAC_Binding):
    # out through the localnet port, SNATed to the router's external address
    dp = sbctl(sb, "--bare", "--columns=_uuid", "find", "Datapath_Binding", "external_ids:name=ovn-hub/main").strip()
    mb = sbctl(sb, "create", "MAC_Binding", "logical_port=ovn-hub/rtoe/uplink", "ip=172.16.0.1",
               'mac="02:00:00:00:00:01"', f"datapath={dp}").strip()  # fmt: skip
    try:
        b = await run(prog, sb, "outside-snat", "docker/local/default/web", "8.8.8.8")
    finally:
        sbctl(sb, "destroy", "MAC_Binding", mb)
    assert b["verdict"] == "delivered", b["drops"]
    assert [(d["port"], d["type"], d["datapath"]) for d in b["delivered"]] == [
        ("ovn-hub/ext/uplink/localnet", "localnet", "ovn-hub/ext/uplink")]
    snat = [d for d in kinds(b, "nat") if d.get("nat")]
    assert [(d["nat"], d["nat_type"], d["logical_ip"], d["external_ip"]) for d in snat] == [
        ("ovn-hub/main/snat/10.1.0.0/24", "snat", "10.1.0.0/24", "172.16.0.10")]


async def test_what_cannot_be_traced_is_named(prog: Programmer, sb: OvnSandbox) -> None:
    async def refused(src: str, dst: str, **kw: Any) -> TraceError:
        with pytest.raises(TraceError) as exc:
            await trace(prog, sb.sb_remote, Request(src=src, dst=dst, **kw))
        return exc.value

    e = await refused("k8s/prod/default/nope", "k8s/prod/default/db-0")
    assert (e.status, str(e)) == (404, "SRC k8s/prod/default/nope: no endpoint named default/nope in k8s/prod")
    e = await refused("k8s/prd/default/db-0", "k8s/prod/default/db-0")
    assert e.status == 404 and str(e).startswith("SRC k8s/prd/default/db-0: no source k8s/prd (the hub knows: docker/local")
    e = await refused("10.9.9.9", "10.1.0.2")
    assert str(e) == "SRC 10.9.9.9: no endpoint has this address"
    e = await refused("k8s/prod/default/db", "10.1.0.2")
    assert e.status == 400 and "is a Service" in str(e)
    e = await refused("k8s/prod/default/client", "k8s/prod/default/nothing")
    assert str(e) == "DST k8s/prod/default/nothing: no endpoint or Service named default/nothing in k8s/prod"
    e = await refused("k8s/prod/default/client", "k8s/prod/default/db-0", proto="tcp")
    assert e.status == 400 and "--port is needed for tcp" in str(e)
    e = await refused("k8s/prod/default/client", "k8s/prod/default/db-0", port=80, proto="icmp")
    assert e.status == 400 and str(e) == "--port does not go with icmp"
    e = await refused("k8s/prod/default/client", "k8s/prod/default/db-0", network="blue")
    assert str(e) == "SRC k8s/prod/default/client is not on network blue (it is on k8s/prod/pods)"
    e = await refused("web", "10.1.0.2")
    assert e.status == 400 and "expected <orchestrator>/<cluster>/<namespace>/<name> or an IP address" in str(e)


# ---------------------------------------------------------------- through hubd and hubctl
def static_file(path: Path, objs: list[Any]) -> None:
    from core.model import encode

    path.write_text("".join(encode(o).decode() + "\n" for o in objs))


def test_hubctl_trace_through_hubd(tmpdir_short: Path, hubd_factory: Any) -> None:
    a, b = Source("static", "a"), Source("static", "b")
    static_file(tmpdir_short / "a.jsonl", [Network(source=a, name="blue", subnets=("10.5.0.0/24",)),
                                           ep(a, "vm1", "blue", "10.5.0.3", ns="lab")])  # fmt: skip
    static_file(tmpdir_short / "b.jsonl", [Network(source=b, name="green", subnets=("10.6.0.0/24",)),
                                           ep(b, "vm2", "green", "10.6.0.4", ns="lab")])  # fmt: skip
    cfg = (f'[hub]\nid = "trc"\nstate_dir = "{tmpdir_short}/state"\n[ovn]\nsandbox = true\n'
           f'[api]\nlisten = "unix:{tmpdir_short}/api.sock"\n[routers.main]\n'
           f'[adapters.a]\ntype = "static"\ncluster = "a"\npath = "{tmpdir_short}/a.jsonl"\n'
           f'[adapters.b]\ntype = "static"\ncluster = "b"\npath = "{tmpdir_short}/b.jsonl"\n')  # fmt: skip
    h: Hubd = hubd_factory(cfg)
    h.wait_ready(60)
    subprocess.run(["ovn-nbctl", f"--db=unix:{tmpdir_short}/state/ovn/nb.sock", "--timeout=20", "--wait=sb", "sync"],
                   check=True, capture_output=True, timeout=30)  # fmt: skip
    res = h.ctl("trace", "static/a/lab/vm1", "static/b/lab/vm2", check=False)
    assert res.returncode == 0, (res.stdout, res.stderr, h.logtext()[-2000:])
    lines = res.stdout.splitlines()
    assert lines[0] == "trace static/a/lab/vm1 (10.5.0.3 on static/a/blue) -> static/b/lab/vm2 (10.6.0.4 on static/b/green), icmp"
    assert lines[1] == "delivered to static/b/lab/vm2 (port static/b/green/uid-vm2 on static/b/green)"
    assert "path: static/a/blue -> ovn-hub/main -> static/b/green" in lines
    assert "  route on ovn-hub/main: 10.6.0.0/24 connected, out ovn-hub/rtos/static/b/green [ovn-hub/main ingress lr_in_ip_routing]" in lines
    assert lines[-1].startswith('microflow: inport == "static/a/blue/uid-vm1"')
    js = json.loads(h.ctl("trace", "10.5.0.3", "10.6.0.4", "--port", "22", "--json").stdout)
    assert (js["verdict"], js["proto"], js["port"]) == ("delivered", "tcp", 22)
    assert js["microflow"].endswith("tcp.dst == 22 && tcp.src == 40000")
    raw = h.ctl("trace", "static/a/lab/vm1", "10.6.0.4", "--raw").stdout
    assert "lr_in_ip_routing" in raw and "ingress(dp=" in raw
    # an unknown SRC: exit 2 and the message names it
    bad = h.ctl("trace", "static/a/lab/nope", "static/b/lab/vm2", check=False)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == "hubctl: trace: SRC static/a/lab/nope: no endpoint named lab/nope in static/a"
    bad = h.ctl("trace", "static/a/lab/vm1", "static/b/lab/vm2", "--port", "80", "--proto", "icmp", check=False)
    assert bad.returncode == 2 and "--port does not go with icmp" in bad.stderr
