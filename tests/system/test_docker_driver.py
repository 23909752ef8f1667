"""The Docker network + IPAM driver end to end, with a real dockerd, proven by packets.

A private dockerd finds the driver through its plugin discovery (a spec file
``/etc/docker/plugins/<unique name>.spec`` naming the node agent's socket in a
temp dir, removed afterwards).  ``docker network create -d <driver>
--ipam-driver <driver> --subnet …`` makes hub networks: hubd's Docker adapter
maps them (and the containers on them) to switches and ports, the fabric's
router joins them; ``hubd --role node`` serves the plugin, hands Docker a veth
per endpoint and binds its host end to the hub's logical port on br-int of the
one-host data plane (testkit/dataplane.py).  Containers ping each other and
across the router through OVN; ``docker network rm``, container stop, engine
restart and agent restart each end with NB and br-int equal to what Docker has.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.docker.driver import handoff_names
from testkit import dockerplugin
from testkit.dataplane import OneHostOvn
from testkit.dockerd import PrivateDockerd, docker, docker_request
from testkit.hubd import Hubd
from testkit.nb import nb_rows, ovs_map, ovs_set
from testkit.wait import sync_wait_until

if os.geteuid() != 0 or not shutil.which("ovs-vswitchd"):
    raise RuntimeError("the Docker driver tests need root and ovs-vswitchd (make test installs them)")

HUB_ID = "drv"
GREEN, RED = "10.60.0.0/24", "10.61.0.0/24"


@pytest.fixture
def host() -> Iterator[OneHostOvn]:
    with OneHostOvn(chassis="node1") as h:
        yield h


class World:
    """hubd, the node agent (serving the driver) and the plugin's spec file, for one test."""

    def __init__(self, root: Path, host: OneHostOvn, d: PrivateDockerd, name: str) -> None:
        self.root, self.host, self.d, self.name = root, host, d, name
        self.socket = root / "plugin" / "driver.sock"
        self.made: list[Hubd] = []
        self.hub: Hubd | None = None
        self.node: Hubd | None = None

    def hub_config(self, workdir: Path) -> str:
        return (
            f'[hub]\nid = "{HUB_ID}"\nstate_dir = "{workdir}"\n[ovn]\nnb = "{self.host.ovn.nb_remote}"\n'
            f'[api]\nlisten = "unix:{workdir}/api.sock"\n'
            f'[adapters.docker]\ntype = "docker"\ncluster = "local"\nurl = "{self.d.url}"\nnode = "node1"\n'
            f'driver = "{self.name}"\n'
            '[routers.default]\nnetworks = ["*"]\n'
        )

    def node_config(self, workdir: Path) -> str:
        return (
            f'[hub]\nid = "{HUB_ID}"\nstate_dir = "{self.root}/nodestate"\n[ovn]\nnb = "{self.host.ovn.nb_remote}"\n'
            f'[node]\ndocker = "{self.d.url}"\novs = "{self.host.db_remote}"\nchassis = "node1"\n'
            f'switch_netns = "{self.host.sw_ns}"\nresync_interval = 5\nlisten = "unix:{workdir}/node.sock"\n'
            f'driver_socket = "{self.socket}"\ndriver_name = "{self.name}"\n'
        )

    def _start(self, what: str, args: tuple[str, ...] = ()) -> Hubd:
        workdir = self.root / f"{what}{len(self.made)}"
        workdir.mkdir()
        cfg = self.hub_config(workdir) if what == "hub" else self.node_config(workdir)
        h = Hubd(workdir, cfg, args=args)
        self.made.append(h)
        h.start()
        try:
            h.wait_ready(60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- log of {workdir.name}:\n{h.logtext()[-3000:]}") from None
        return h

    def start_hub(self) -> Hubd:
        self.hub = self._start("hub")
        return self.hub

    def start_node(self) -> Hubd:
        self.node = self._start("node", ("--role", "node"))
        return self.node

    def stop_node(self) -> None:
        assert self.node is not None
        self.node.signal(signal.SIGTERM)
        assert self.node.wait(30) == 0, self.node.logtext()[-2000:]

    def close(self) -> None:
        for h in self.made:
            h.close()

    def logs(self) -> str:
        return "\n".join(f"--- {h.dir.name}:\n{h.logtext()[-4000:]}" for h in self.made)

    # ------------------------------------------------------------ what NB, br-int and Docker hold
    def ports(self) -> dict[str, dict[str, Any]]:
        return {r["name"]: r for r in nb_rows(self.host.ovn, "Logical_Switch_Port") if r["type"] == ""}

    def switches(self) -> set[str]:
        return {r["name"] for r in nb_rows(self.host.ovn, "Logical_Switch")}

    def bridge(self) -> dict[str, dict[str, str]]:
        """br-int Interfaces the driver bound → external_ids (the test's own view, through ovs-vsctl)."""
        out = json.loads(self.host.vsctl("--format=json", "--columns=name,external_ids", "list", "Interface"))
        rows = {r[0]: ovs_map(r[1]) for r in out["data"]}
        return {n: ids for n, ids in rows.items() if ids.get("ovn-hub:docker-driver") == HUB_ID}

    def docker_endpoints(self) -> dict[str, tuple[str, str, str]]:
        """port name the hub should have → (MAC IP, endpoint id, network) for every running container on
        this driver's networks, from Docker's own inspect."""
        out = {}
        for line in docker(self.d, "ps", "-q", "--no-trunc").split():
            nets = json.loads(docker(self.d, "inspect", "--format", "{{json .NetworkSettings.Networks}}", line))
            for net, att in nets.items():
                drv = docker(self.d, "network", "inspect", "--format", "{{.Driver}}", att["NetworkID"])
                if drv == self.name:
                    out[f"docker/local/{net}/{line}"] = (f"{att['MacAddress']} {att['IPAddress']}",
                                                         att["EndpointID"], net)  # fmt: skip
        return out

    def converged(self) -> bool:
        """NB ports and br-int equal what Docker has: one up port per endpoint with Docker's MAC and IP,
        one bridge Interface per endpoint bound to it, nothing else."""
        want = self.docker_endpoints()
        ports = self.ports()
        if {n: ovs_set(r["addresses"]) for n, r in ports.items()} != {n: [a] for n, (a, _, _) in want.items()}:
            return False
        if not all(r["up"] is True for r in ports.values()):
            return False
        bound = {ids["iface-id"]: (dev, ids["ovn-hub:docker-endpoint"]) for dev, ids in self.bridge().items()}
        return bound == {n: (handoff_names(eid)[0], eid) for n, (_, eid, _) in want.items()}


@pytest.fixture
def world(dockerd: PrivateDockerd, host: OneHostOvn, tmpdir_short: Path) -> Iterator[World]:
    name = dockerplugin.unique_name()
    w = World(tmpdir_short, host, dockerd, name)
    containers = ("g1", "g2", "g3", "r1", "k1", "b1")
    with dockerplugin.installed(name, w.socket):
        try:
            yield w
        finally:
            if os.environ.get("OVN_HUB_TEST_LOGS"):  # a debugging aid: the processes' logs on stdout
                print(w.logs())
            docker(dockerd, "rm", "-f", *containers, check=False)
            for net in ("green", "red", "plainbr"):
                docker(dockerd, "network", "rm", net, check=False)
            w.close()


def create_network(w: World, name: str, subnet: str, *extra: str) -> str:
    return docker(w.d, "network", "create", "-d", w.name, "--ipam-driver", w.name, "--subnet", subnet, *extra, name)


def run(w: World, name: str, network: str, *extra: str) -> str:
    return docker(w.d, "run", "-d", "--name", name, "--network", network, *extra, "busybox:hub", "sleep", "3600")


def exec_in(w: World, name: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "-H", w.d.url, "exec", name, *argv], capture_output=True, text=True, timeout=30)


def can_ping(w: World, name: str, ip: str, count: int = 2) -> bool:
    return exec_in(w, name, "ping", "-c", str(count), "-W", "2", ip).returncode == 0


def ip_of(w: World, name: str, net: str) -> str:
    return docker(w.d, "inspect", "--format", f'{{{{(index .NetworkSettings.Networks "{net}").IPAddress}}}}', name)


def wait_converged(w: World, what: str, timeout: float = 40) -> None:
    try:
        sync_wait_until(w.converged, timeout, what)
    except AssertionError:
        raise AssertionError(
            f"{what}: not converged\nNB {sorted(w.ports())}\nbr-int {w.bridge()}\nDocker {w.docker_endpoints()}\n"
            f"{w.logs()}"
        ) from None


def test_driver_networks_carry_packets_through_ovn(world: World) -> None:
    w = world
    w.start_hub()
    w.start_node()
    create_network(w, "green", GREEN)
    create_network(w, "red", RED, "--gateway", "10.61.0.254")
    # the hub maps them: switches with the IPAM subnet, the gateway (the IPAM's first host, or --gateway)
    sync_wait_until(lambda: {"ovn-hub/net/green", "ovn-hub/net/red"} <= w.switches(), 30, "switches")
    sw = {r["name"]: r for r in nb_rows(w.host.ovn, "Logical_Switch")}
    assert ovs_map(sw["ovn-hub/net/green"]["other_config"])["subnet"] == GREEN
    assert ovs_map(sw["ovn-hub/net/green"]["external_ids"])["ovn-hub:gateway"] == "10.60.0.1"
    assert ovs_map(sw["ovn-hub/net/red"]["external_ids"])["ovn-hub:gateway"] == "10.61.0.254"

    g1, g2 = run(w, "g1", "green"), run(w, "g2", "green")
    r1 = run(w, "r1", "red")
    wait_converged(w, "three containers plugged and up")
    # the driver's IPAM: serial from the first free host after the gateway; the MAC is 0a:58 + the IPv4
    assert (ip_of(w, "g1", "green"), ip_of(w, "g2", "green"), ip_of(w, "r1", "red")) == (
        "10.60.0.2", "10.60.0.3", "10.61.0.1")  # fmt: skip
    link = exec_in(w, "g1", "ip", "-o", "link", "show", "eth0").stdout
    assert "0a:58:0a:3c:00:02" in link, link
    assert "default via 10.60.0.1 dev eth0" in exec_in(w, "g1", "ip", "route").stdout
    assert "default via 10.61.0.254 dev eth0" in exec_in(w, "r1", "ip", "route").stdout
    port = w.ports()[f"docker/local/green/{g1}"]
    assert ovs_map(port["options"]) == {"requested-chassis": "node1"}
    assert ovs_set(port["port_security"]) == ["0a:58:0a:3c:00:02 10.60.0.2"]
    assert {g1, g2, r1} == {ids["ovn-hub:docker-container"] for ids in w.bridge().values()}

    # packets: same network, and across the fabric's router to the other network
    assert can_ping(w, "g1", "10.60.0.3"), "g1 -> g2 through OVN"
    assert can_ping(w, "g2", "10.60.0.2"), "g2 -> g1"
    assert can_ping(w, "g1", "10.61.0.1"), "g1 -> r1 through the router"
    assert can_ping(w, "r1", "10.60.0.3"), "r1 -> g2 through the router"

    # a running container connected to a second driver network: a second port, eth1, the same switch as r1
    docker(w.d, "network", "connect", "red", "g2")
    wait_converged(w, "g2 on red too")
    assert sorted(n.split("/")[2] for n in w.docker_endpoints() if n.endswith(g2)) == ["green", "red"]
    assert f"{ip_of(w, 'g2', 'red')}/24" in exec_in(w, "g2", "ip", "-o", "addr", "show", "eth1").stdout
    assert exec_in(w, "g2", "ping", "-c", "2", "-W", "2", "-I", "eth1", "10.61.0.1").returncode == 0, "on-link to r1"
    docker(w.d, "network", "disconnect", "red", "g2")
    wait_converged(w, "g2 off red")


def state_file(w: World) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((w.root / "nodestate" / f"docker-driver-{w.name}.json").read_text())
    return data


def dev_exists(w: World, dev: str) -> bool:
    res = subprocess.run(["ip", "-n", w.host.sw_ns, "link", "show", "dev", dev], capture_output=True, timeout=10)
    return res.returncode == 0


def test_stop_and_network_rm_leave_nb_and_the_bridge_equal_to_docker(world: World) -> None:
    w = world
    w.start_hub()
    w.start_node()
    nid = create_network(w, "green", GREEN)
    run(w, "g1", "green")
    g2 = run(w, "g2", "green")
    wait_converged(w, "two containers")
    eid2 = json.loads(docker(w.d, "inspect", "--format", "{{json .NetworkSettings.Networks}}", "g2"))["green"][
        "EndpointID"]  # fmt: skip
    dev2 = handoff_names(eid2)[0]
    assert dev_exists(w, dev2)
    # a plain bridge network beside it is Docker's: neither it nor its container is mirrored
    docker(w.d, "network", "create", "--subnet", "10.62.0.0/24", "plainbr")
    run(w, "b1", "plainbr")

    docker(w.d, "stop", "-t", "1", "g2")  # Leave (off br-int), DeleteEndpoint (veth), ReleaseAddress
    wait_converged(w, "g2 stopped")
    assert not dev_exists(w, dev2)
    assert f"docker/local/green/{g2}" not in w.ports()
    assert "docker/local/plainbr" not in w.switches()
    assert eid2 not in state_file(w)["endpoints"]
    docker(w.d, "start", "g2")  # a new endpoint, the next address (serial: the freed .3 is not reused at once)
    wait_converged(w, "g2 started again")
    assert ip_of(w, "g2", "green") == "10.60.0.4"
    assert can_ping(w, "g2", "10.60.0.2")

    docker(w.d, "rm", "-f", "g1", "g2")
    wait_converged(w, "containers removed")
    docker(w.d, "network", "rm", "green")
    sync_wait_until(lambda: "ovn-hub/net/green" not in w.switches(), 30, "the switch deleted")
    assert w.ports() == {} and w.bridge() == {}
    st = state_file(w)
    assert nid not in st["networks"] and st["endpoints"] == {} and st["pools"] == {}, st


def test_engine_restart_ends_equal_to_docker(world: World) -> None:
    w = world
    w.start_hub()
    w.start_node()
    create_network(w, "green", GREEN)
    run(w, "g1", "green")
    run(w, "k1", "green", "--restart", "always")
    wait_converged(w, "g1 and k1")
    old = w.docker_endpoints()
    w.d.restart()  # stops both (Leave/DeleteEndpoint on the way down); k1 comes back with a new endpoint
    sync_wait_until(lambda: docker(w.d, "inspect", "--format", "{{.State.Running}}", "k1") == "true", 60, "k1 back")
    wait_converged(w, "after the engine restart", 60)
    now = w.docker_endpoints()
    assert [n.split("/")[2] for n in now] == ["green"] and len(now) == 1
    assert set(now) <= set(old) and next(iter(now.values()))[1] not in {e for _, e, _ in old.values()}
    run(w, "g3", "green")
    wait_converged(w, "g3 after the restart")
    assert can_ping(w, "g3", ip_of(w, "k1", "green"))


def test_agent_restart_adopts_and_removes_orphans(world: World) -> None:
    w = world
    w.start_hub()
    w.start_node()
    create_network(w, "green", GREEN)
    run(w, "g1", "green")
    run(w, "g2", "green")
    wait_converged(w, "g1 and g2")
    uuids = {dev: w.host.vsctl("--bare", "--columns=_uuid", "find", "Interface", f"name={dev}").strip()
             for dev in w.bridge()}  # fmt: skip

    # a short outage: Docker retries its calls (for ~30 s) until the agent answers again
    w.stop_node()
    assert can_ping(w, "g1", ip_of(w, "g2", "green")), "stopping the agent leaves containers connected"
    stopper = subprocess.Popen(["docker", "-H", w.d.url, "stop", "-t", "1", "g2"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    # an orphan, as a longer outage leaves one (Docker gave up on DeleteEndpoint): the state file and the bridge
    # know an endpoint Docker never heard of
    ghost = "f" * 64
    st_path = w.root / "nodestate" / f"docker-driver-{w.name}.json"
    st = json.loads(st_path.read_text())
    nid = next(iter(st["networks"]))
    st["endpoints"][ghost] = {"id": ghost, "network": nid, "address": "10.60.0.200/24", "mac": "0a:58:0a:3c:00:c8",
                              "joined": True, "seq": 1}  # fmt: skip
    st["pools"][f"ovn-hub-local/{GREEN}"]["allocated"]["10.60.0.200"] = 1
    st_path.write_text(json.dumps(st))
    gdev, gpeer = handoff_names(ghost)
    w.host.ns_run(w.host.sw_ns, "ip", "link", "add", gdev, "type", "veth", "peer", "name", gpeer)
    w.host.vsctl("add-port", "br-int", gdev, "--", "set", "Interface", gdev,
                 f"external_ids:ovn-hub\\:docker-driver={HUB_ID}", f"external_ids:ovn-hub\\:docker-endpoint={ghost}",
                 "external_ids:iface-id=docker/local/green/ghost")  # fmt: skip
    w.start_node()
    try:
        assert stopper.wait(60) == 0
    finally:
        if stopper.poll() is None:
            stopper.kill()
            stopper.wait(10)
    wait_converged(w, "after the agent restart")
    assert not dev_exists(w, gdev) and ghost not in state_file(w)["endpoints"]
    after = {dev: w.host.vsctl("--bare", "--columns=_uuid", "find", "Interface", f"name={dev}").strip()
             for dev in w.bridge()}  # fmt: skip
    assert after and all(uuids[dev] == u for dev, u in after.items()), "g1's port was re-created, not adopted"
    assert "10.60.0.200" not in state_file(w)["pools"][f"ovn-hub-local/{GREEN}"]["allocated"]
    log = w.node.logtext() if w.node is not None else ""
    assert f"released endpoint {ghost[:12]} (gone from Docker)" in log, log[-3000:]
    assert f"released address 10.60.0.200 of ovn-hub-local/{GREEN}" in log
    run(w, "g3", "green")
    wait_converged(w, "g3 after the agent restart")
    assert can_ping(w, "g3", ip_of(w, "g1", "green"))
    assert w.node is not None
    code, body = docker_request(str(w.node.dir / "node.sock"), "GET", "/v1/status")
    status = json.loads(body)
    assert code == 200 and status["driver"]["ready"], status
    assert {e["container"] for e in status["driver"]["endpoints"]} == {
        docker(w.d, "inspect", "--format", "{{.Id}}", n) for n in ("g1", "g3")}  # fmt: skip
