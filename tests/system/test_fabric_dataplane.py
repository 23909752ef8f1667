"""The fabric by packets: real traffic through the rows the hub derives from a
:class:`~core.model.fabric.Fabric` (tests/integration/test_fabric.py checks the rows).

One two-chassis deployment (testkit/chassis.py) for the module: NB, SB,
ovn-northd and two userspace chassis joined by Geneve; chassis 1 is also the
gateway chassis, with the provider network ``physnet`` (``br-ex``) and an
outside host at 172.16.0.1 on it.  An in-process :class:`~core.nb.Programmer`
(on its own event loop in a thread, so the tests stay plain functions) holds the
fabric — one router ``main`` on every network, the external network
``uplink`` leaving from chassis 1 — and three sources' snapshots:

* docker/local ``blue`` 10.1.0.0/24 (gateway 10.1.0.1): ``web`` 10.1.0.2 on chassis 1
* k8s/prod ``pods`` 10.244.0.0/16 (gateway 10.244.0.1): ``db-0`` 10.244.0.5 on
  chassis 2, the backend of Service ``db`` (10.96.0.20:5432)
* static/lab ``vms`` 10.3.0.0/24 (no gateway given: the router port takes the
  first host, 10.3.0.1): ``vm1`` 10.3.0.7 on chassis 1, ``vm2`` 10.3.0.8 on
  chassis 2 with the floating IP 172.16.0.50

Every endpoint's netns has its network's gateway as default route, as the
orchestrator would have configured it.  Servers answer each TCP connection with
``"<name> <peer address>"``, so a test sees who answered and whom it saw (SNAT,
hairpin SNAT, DNAT).  Synchronisation: the programmer's ``flush`` (NB holds the
rows), then ``ovn-nbctl --wait=hv sync`` (both ovn-controllers installed the
flows); bounded waits only.  All traffic stays inside namespaces this module
created; every process it starts is stopped by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
import pytest

from core.model import (
    Endpoint,
    InputEvent,
    LBRule,
    Network,
    Peer,
    Policy,
    PolicyPort,
    Rule,
    Selector,
    Service,
    Snapshot,
    Source,
)
from core.model.fabric import (
    LABEL_FLOATING_IP,
    LABEL_ORCHESTRATOR,
    AdminPolicy,
    AdminRule,
    ExternalSpec,
    Fabric,
    RouterSpec,
)
from core.names import lsp_name
from core.nb import Programmer
from hub.sandbox import _which
from testkit.chassis import TwoChassisOvn

_MISSING = [
    b
    for b in ("ovs-vswitchd", "ovn-controller", "ip", "ping", "ethtool")
    if not (shutil.which(b) or shutil.which(b, path="/usr/sbin:/sbin"))
]
if os.geteuid() != 0 or _MISSING:  # make test installs these and runs as root: a missing one is an error
    raise RuntimeError(f"the data-plane tests need root and {_MISSING or 'root'} (make test installs them)")

T = TypeVar("T")
DOCKER, K8S, STATIC = Source("docker", "local"), Source("k8s", "prod"), Source("static", "lab")
VIP, DB_PORT, HTTP_PORT = "10.96.0.20", 5432, 8080
SNAT_IP, FIP, OUTSIDE_IP, HAIRPIN_IP = "172.16.0.10", "172.16.0.50", "172.16.0.1", "169.254.169.5"
BUSYBOX = "/bin/busybox"
WAIT = 20.0  # upper bound of every control-plane wait
SERVER_LIFETIME = 120  # a server exits by itself after this, whatever happens to the test

# Listens on every port given; answers each connection with "<name> <peer ip>" and
# closes it.  Prints "L" once listening.
SERVER = """
import selectors, socket, sys, time
name, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
sel = selectors.DefaultSelector()
for p in sys.argv[3:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(p)))
    s.listen(64)
    sel.register(s, selectors.EVENT_READ)
print("L", flush=True)
while time.monotonic() < deadline:
    for key, _ in sel.select(0.2):
        c, peer = key.fileobj.accept()
        with c:
            c.sendall(f"{name} {peer[0]}".encode())
"""

# One connection; prints the reply ("" when the connection failed or timed out).
CLIENT = """
import socket, sys
data = b""
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as c:
        while chunk := c.recv(100):
            data += chunk
except OSError:
    pass
print(data.decode())
"""


def net(src: Source, name: str, subnet: str, gw: str | None = None) -> Network:
    return Network(source=src, name=name, subnets=(subnet,), gateway=gw)


def ep(src: Source, uid: str, network: str, ip: str, node: str, **labels: str) -> Endpoint:
    return Endpoint(source=src, uid=uid, namespace="default", name=uid, kind="container", network=network, ips=(ip,),
                    node=node, labels=labels)  # fmt: skip


def fabric(c1: str, networks: tuple[str, ...] = ("*",)) -> Fabric:
    ext = ExternalSpec(name="uplink", router="main", cidr="172.16.0.0/24", ip=SNAT_IP, gateway=OUTSIDE_IP,
                       physnet="physnet", chassis=(c1,))  # fmt: skip
    return Fabric(routers=(RouterSpec(name="main", networks=networks),), externals=(ext,))


class HubThread:
    """A :class:`Programmer` running on an event loop of its own thread: the tests
    hand it events and wait for its writes from plain (blocking) code."""

    def __init__(self, nb_remote: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.prog = Programmer(nb_remote, "fabdp")
        self.thread = threading.Thread(target=self.loop.run_forever, name="fabdp-hub", daemon=True)
        self.task: asyncio.Task[None] | None = None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = WAIT + 5) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, fab: Fabric, sources: list[Source]) -> None:
        self.thread.start()

        async def start() -> None:
            self.prog.set_fabric(fab)
            self.prog.expect(sources)
            await self.prog.start(WAIT)
            self.task = asyncio.create_task(self.prog.run())

        self.call(start())

    def apply(self, *events: InputEvent) -> None:
        async def apply() -> None:
            for e in events:
                self.prog.apply(e)

        self.call(apply())

    def set_fabric(self, fab: Fabric) -> None:
        async def set_fabric() -> None:
            self.prog.set_fabric(fab)

        self.call(set_fabric())

    def flush(self) -> None:
        self.call(self.prog.flush(WAIT))

    def stop(self) -> None:
        if not self.thread.is_alive():
            self.loop.close()
            return

        async def stop() -> None:
            if self.task is not None:
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.task
            await self.prog.close()

        try:
            self.call(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@dataclass
class World:
    pair: TwoChassisOvn
    hub: HubThread
    c1: str
    c2: str
    outside: str = ""
    eps: dict[str, Endpoint] = field(default_factory=dict)
    ns: dict[str, str] = field(default_factory=dict)  # endpoint name (or "outside") -> netns
    servers: list[subprocess.Popen[str]] = field(default_factory=list)

    def snapshots(self) -> list[Snapshot]:
        e = self.eps
        db = Service(source=K8S, uid="s-db", namespace="default", name="db", network="pods",
                     rules=(LBRule(vip=VIP, port=DB_PORT, backends=(f"{e['db-0'].ips[0]}:{DB_PORT}",)),))  # fmt: skip
        return [
            Snapshot(source=DOCKER, objects=(net(DOCKER, "blue", "10.1.0.0/24", "10.1.0.1"), e["web"])),
            Snapshot(source=K8S, objects=(net(K8S, "pods", "10.244.0.0/16", "10.244.0.1"), e["db-0"], db)),
            Snapshot(source=STATIC, objects=(net(STATIC, "vms", "10.3.0.0/24"), e["vm1"], e["vm2"])),
        ]

    def hv_sync(self) -> None:
        self.pair.ovn.nbctl(f"--timeout={int(WAIT)}", "--wait=hv", "sync")

    def serve(self, who: str, *ports: int) -> None:
        srv = subprocess.Popen(
            [_which("ip"), "netns", "exec", self.ns[who], sys.executable, "-c", SERVER, who, str(SERVER_LIFETIME),
             *map(str, ports)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.servers.append(srv)
        assert srv.stdout is not None
        assert srv.stdout.readline().strip() == "L", f"{who}'s server did not start"

    def connect(self, who: str, ip: str, port: int, timeout: float = 3.0) -> str:
        """One TCP connection from ``who``'s netns: the server's answer, "" if none."""
        res = subprocess.run(
            [_which("ip"), "netns", "exec", self.ns[who], sys.executable, "-c", CLIENT, ip, str(port), str(timeout)],
            capture_output=True, text=True, timeout=timeout + 10,
        )  # fmt: skip
        return res.stdout.strip()

    def ping(self, who: str, ip: str) -> bool:
        return self.pair.ping(self.ns[who], ip)

    def nslookup(self, who: str, name: str, server: str) -> str:
        """busybox's answer to an A query.  Only A: ovn-controller answers a query
        from the switch's records of that type and leaves any other unanswered
        (an IPv4-only name's AAAA query times out after 5 s; busybox asks both by
        default).  OVN 23.09's ``DNS options:ovn-owned`` would refuse it at once;
        this NB schema (7.0.0, OVN 23.03) has no such column."""
        res = subprocess.run(
            [_which("ip"), "netns", "exec", self.ns[who], BUSYBOX, "nslookup", "-type=a", name, server],
            capture_output=True, text=True, timeout=15,
        )  # fmt: skip
        return res.stdout + res.stderr


PLACES = {  # endpoint -> (source, network, ip, chassis index, prefix, gateway, labels)
    "web": (DOCKER, "blue", "10.1.0.2", 0, 24, "10.1.0.1", {"app": "web"}),
    "db-0": (K8S, "pods", "10.244.0.5", 1, 16, "10.244.0.1", {"app": "db"}),
    "vm1": (STATIC, "vms", "10.3.0.7", 0, 24, "10.3.0.1", {"app": "web"}),  # app=web too: but not Docker's
    "vm2": (STATIC, "vms", "10.3.0.8", 1, 24, "10.3.0.1", {LABEL_FLOATING_IP: FIP}),
}


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    pair = TwoChassisOvn()
    pair.start()
    hub = HubThread(pair.nb_remote)
    c1, c2 = pair.chassis_names
    w = World(pair, hub, c1, c2)
    try:
        # the provider network first: the gateway chassis maps physnet before the gateway port exists
        w.outside = w.ns["outside"] = pair.add_outside_host(0, "physnet", f"{OUTSIDE_IP}/24")
        for name, (src, network, ip, idx, _, _, labels) in PLACES.items():
            w.eps[name] = ep(src, name, network, ip, (c1, c2)[idx], **labels)
        hub.start(fabric(c1), [DOCKER, K8S, STATIC])
        hub.apply(*w.snapshots())
        hub.flush()
        for name, (_, _, _, idx, prefix, gw, _) in PLACES.items():
            w.ns[name] = pair.add_port(idx, w.eps[name], prefix=prefix, gateway=gw)
        for e in w.eps.values():
            pair.wait_up(lsp_name(e), WAIT)
        w.hv_sync()
        w.serve("db-0", DB_PORT, DB_PORT + 1)
        w.serve("vm2", HTTP_PORT)
        w.serve("outside", HTTP_PORT)
        yield w
    finally:
        for srv in w.servers:
            if srv.poll() is None:
                srv.kill()
            srv.wait(5)
        try:
            hub.stop()
        finally:
            pair.stop()


# ------------------------------------------------------------------ 1. reachability
def test_routed_networks_reach_each_other_across_the_tunnel(world: World) -> None:
    w = world
    # each endpoint's node is the chassis its port is bound on (the hub's requested-chassis)
    assert {n: w.pair.bound_chassis(lsp_name(e)) for n, e in w.eps.items()} == {n: e.node for n, e in w.eps.items()}
    before = [ch.tunnel_flow_packets() for ch in w.pair.chassis]
    assert w.pair.ping(w.ns["web"], "10.244.0.5", count=5), "docker web (chassis 1) -> k8s db-0 (chassis 2)"
    assert w.pair.ping(w.ns["db-0"], "10.1.0.2", count=5), "k8s db-0 (chassis 2) -> docker web (chassis 1)"
    after = [ch.tunnel_flow_packets() for ch in w.pair.chassis]
    for i, ((push0, pop0), (push1, pop1)) in enumerate(zip(before, after, strict=True)):
        # five echoes each way: a datapath flow does not count the packet whose upcall made it,
        # so at least 4 of the 10 each tunnel end sends (and receives) show in its counters
        assert push1 - push0 >= 4, f"chassis {i + 1} encapsulated {push1 - push0} packets"
        assert pop1 - pop0 >= 4, f"chassis {i + 1} decapsulated {pop1 - pop0} packets"
    assert w.ping("web", "10.3.0.7"), "docker web -> static vm1"
    assert w.ping("db-0", "10.3.0.7"), "k8s db-0 -> static vm1 (across the tunnel)"
    # each at its own gateway: the router port (the first host of vms, which names none)
    for who, gw in (("web", "10.1.0.1"), ("db-0", "10.244.0.1"), ("vm1", "10.3.0.1"), ("vm2", "10.3.0.1")):
        assert w.ping(who, gw), f"{who} -> its gateway {gw}"


# ------------------------------------------------------------------ 2. services
def test_a_service_vip_answers_from_another_orchestrator_and_hairpins(world: World) -> None:
    # the docker container reaches the k8s ClusterIP: DNAT to db-0, routed, across the tunnel
    assert world.connect("web", VIP, DB_PORT) == "db-0 10.1.0.2"
    # db-0 through its own Service: answered by itself, SNATed to the hairpin address
    assert world.connect("db-0", VIP, DB_PORT) == f"db-0 {HAIRPIN_IP}"


# ------------------------------------------------------------------ 3. egress
def test_egress_is_snated_to_the_external_address_on_the_gateway_chassis(world: World) -> None:
    # the distributed gateway port's chassis-redirect port lives on the HA group's chassis
    assert world.pair.bound_chassis("cr-ovn-hub/rtoe/uplink") == world.c1
    assert world.connect("db-0", OUTSIDE_IP, HTTP_PORT) == f"outside {SNAT_IP}", "from chassis 2"
    assert world.connect("web", OUTSIDE_IP, HTTP_PORT) == f"outside {SNAT_IP}", "from chassis 1"


def test_a_floating_ip_is_reachable_from_outside_and_is_its_source(world: World) -> None:
    assert world.connect("outside", FIP, HTTP_PORT) == f"vm2 {OUTSIDE_IP}"
    assert world.connect("vm2", OUTSIDE_IP, HTTP_PORT) == f"outside {FIP}"
    assert world.ping("outside", FIP)


# ------------------------------------------------------------------ 4. DNS
def test_ovn_answers_dns_for_services_and_endpoints_of_every_source(world: World) -> None:
    out = world.nslookup("web", "db.default.k8s.prod.hub", "10.1.0.1")
    assert f"Address: {VIP}" in out, out
    out = world.nslookup("db-0", "web.default.docker.local.hub", "10.244.0.1")
    assert "Address: 10.1.0.2" in out, out
    out = world.nslookup("vm1", "db-0.default.k8s.prod.hub", "10.3.0.1")
    assert "Address: 10.244.0.5" in out, out


# ------------------------------------------------------------------ 5. lifecycle
def test_a_network_leaving_the_router_loses_its_routes(world: World) -> None:
    w = world
    w.hub.set_fabric(fabric(w.c1, networks=("k8s/*", "static/*")))
    try:
        w.hub.flush()
        w.hv_sync()
        assert not w.pair.ping(w.ns["web"], "10.244.0.5", count=1, wait=1), "docker left the router"
        assert not w.pair.ping(w.ns["db-0"], "10.1.0.2", count=1, wait=1), "the router has no route to docker"
        assert w.ping("db-0", "10.3.0.7"), "k8s -> static still routed"
    finally:
        w.hub.set_fabric(fabric(w.c1))
        w.hub.flush()
    w.hv_sync()
    assert w.ping("web", "10.244.0.5"), "docker is back on the router"


# ------------------------------------------------------------------ 6. one policy model across orchestrators
ALLOW_WEB = AdminRule(action="allow", name="web", ports=(PolicyPort(port=DB_PORT),),
                      peers=(Peer(pod_selector=Selector(match_labels={"app": "web", LABEL_ORCHESTRATOR: "docker"})),))  # fmt: skip
DENY = AdminRule(action="deny", name="rest")
PASS_STATIC = AdminRule(action="pass", name="vms", peers=(Peer(pod_selector=Selector(match_labels={LABEL_ORCHESTRATOR: "static"})),))


def db_policy(*rules: AdminRule) -> AdminPolicy:
    return AdminPolicy(name="db", priority=10, subject=Peer(pod_selector=Selector(match_labels={"app": "db"})), ingress=rules)


def test_a_hub_policy_admits_docker_web_to_k8s_db_on_5432_only(world: World) -> None:
    w = world
    assert w.connect("vm1", "10.244.0.5", DB_PORT) == "db-0 10.3.0.7"  # nothing isolates db yet
    w.hub.set_fabric(msgspec.structs.replace(fabric(w.c1), policies=(db_policy(ALLOW_WEB, DENY),)))
    try:
        w.hub.flush()
        w.hv_sync()
        assert w.connect("web", "10.244.0.5", DB_PORT) == "db-0 10.1.0.2", "docker app=web -> k8s app=db:5432"
        assert w.connect("web", VIP, DB_PORT) == "db-0 10.1.0.2", "and through the Service"
        assert w.connect("web", "10.244.0.5", DB_PORT + 1, timeout=1.5) == "", "another port is dropped"
        assert w.connect("vm1", "10.244.0.5", DB_PORT, timeout=1.5) == "", "a static VM (also app=web) is dropped"
        assert not w.pair.ping(w.ns["vm1"], "10.244.0.5", count=1, wait=1), "and so is its ping"
        assert w.connect("db-0", VIP, DB_PORT) == f"db-0 {HAIRPIN_IP}", "db still reaches itself through its Service"
        assert w.ping("db-0", "10.3.0.7"), "db is isolated on the way in only"
    finally:
        w.hub.set_fabric(fabric(w.c1))
        w.hub.flush()
    w.hv_sync()
    assert w.connect("vm1", "10.244.0.5", DB_PORT) == "db-0 10.3.0.7", "the policy gone, so is the isolation"


def test_pass_leaves_the_decision_to_the_kubernetes_policy(world: World) -> None:
    w = world
    # Kubernetes isolates db: only vm1 (by ipBlock: a routed address of another orchestrator) on 5432
    np = Policy(source=K8S, uid="np", namespace="default", name="db-from-vm1", pod_selector=Selector(match_labels={"app": "db"}),
                ingress=(Rule(peers=(Peer(cidr="10.3.0.7/32"),), ports=(PolicyPort(port=DB_PORT),)),))  # fmt: skip
    k8s = w.snapshots()[1]
    w.hub.apply(msgspec.structs.replace(k8s, objects=(*k8s.objects, np)))
    w.hub.set_fabric(msgspec.structs.replace(fabric(w.c1), policies=(db_policy(ALLOW_WEB, PASS_STATIC, DENY),)))
    try:
        w.hub.flush()
        w.hv_sync()
        assert w.connect("vm1", "10.244.0.5", DB_PORT) == "db-0 10.3.0.7", "passed, and Kubernetes allows vm1"
        assert w.connect("vm2", "10.244.0.5", DB_PORT, timeout=1.5) == "", "passed, and Kubernetes' isolation drops vm2"
        assert w.connect("vm1", "10.244.0.5", DB_PORT + 1, timeout=1.5) == "", "passed, a port Kubernetes does not allow"
        assert w.connect("web", "10.244.0.5", DB_PORT) == "db-0 10.1.0.2", "the hub's allow beats Kubernetes' isolation"
    finally:
        w.hub.apply(k8s)
        w.hub.set_fabric(fabric(w.c1))
        w.hub.flush()
    w.hv_sync()
    assert w.connect("vm2", "10.244.0.5", DB_PORT) == "db-0 10.3.0.8", "both policies gone"
