"""Docker wrapper mode end to end, proven by packets.

A real private dockerd runs busybox containers with ``--network none`` and an
``ovn-hub.network`` label; ``hubd`` (docker adapter with OVN Hub networks)
programs their ports into a real NB; ``hubd --role node`` plugs them into the
one-host data plane (testkit/dataplane.py: ovs-vswitchd netdev + ovn-controller)
with the address NB holds (OVN dynamic IPAM, or the ``ovn-hub.ip`` label).
Then containers ping each other through OVN, stop/restart/adoption/orphan
cleanup converge, and ``ready`` reaches MQTT subscribers only after
ovn-controller set the port up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.docker.node import veth_name
from testkit.dataplane import OneHostOvn
from testkit.dockerd import PrivateDockerd, docker, docker_request
from testkit.hubd import Hubd
from testkit.mosquitto import Mosquitto
from testkit.nb import nb_rows, ovs_map, ovs_set
from testkit.wait import sync_wait_until

if os.geteuid() != 0 or not shutil.which("ovs-vswitchd") or not shutil.which("nsenter"):
    raise RuntimeError("the wrapper-mode tests need root, ovs-vswitchd and nsenter (make test installs them)")

HUB_ID = "wrap"


@pytest.fixture
def host() -> Iterator[OneHostOvn]:
    with OneHostOvn(chassis="node1") as h:
        yield h


def run_wrapped(d: PrivateDockerd, name: str, network: str, *labels: str) -> str:
    args = ["run", "-d", "--name", name, "--network", "none", "--label", f"ovn-hub.network={network}"]
    for lab in labels:
        args += ["--label", lab]
    return docker(d, *args, "busybox:hub", "sleep", "3600")


def hub_config(workdir: Path, host: OneHostOvn, d: PrivateDockerd, mqtt: Mosquitto | None = None) -> str:
    text = (
        f'[hub]\nid = "{HUB_ID}"\nstate_dir = "{workdir}"\n[ovn]\nnb = "{host.ovn.nb_remote}"\n'
        f'[api]\nlisten = "unix:{workdir}/api.sock"\n'
        f'[adapters.docker]\ntype = "docker"\ncluster = "local"\nurl = "{d.url}"\nnode = "node1"\n'
        '[adapters.docker.networks.blue]\nsubnet = "10.70.0.0/24"\ngateway = "10.70.0.1"\n'
        '[adapters.docker.networks.red]\nsubnet = "10.71.0.0/24"\n'
    )
    if mqtt is not None:
        text += f'[mqtt]\nenabled = true\nurl = "mqtt://127.0.0.1:{mqtt.port}"\n'
    return text


def node_config(workdir: Path, host: OneHostOvn, d: PrivateDockerd) -> str:
    return (
        f'[hub]\nid = "{HUB_ID}"\nstate_dir = "{workdir}"\n[ovn]\nnb = "{host.ovn.nb_remote}"\n'
        f'[node]\ndocker = "{d.url}"\novs = "{host.db_remote}"\nchassis = "node1"\n'
        f'switch_netns = "{host.sw_ns}"\nresync_interval = 5\nlisten = "unix:{workdir}/node.sock"\n'
    )


class Procs:
    """hubd processes of one test, each in a directory of its own; all stopped at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: list[Hubd] = []

    def start(self, name: str, config: str, *args: str) -> Hubd:
        workdir = self.root / f"{name}{len(self.made)}"
        workdir.mkdir()
        h = Hubd(workdir, config.replace("@DIR@", str(workdir)), args=args)
        self.made.append(h)
        h.start()
        return h

    @staticmethod
    def ready(h: Hubd, timeout: float = 60) -> None:
        try:
            h.wait_ready(timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- log of {h.dir.name}:\n{h.logtext()[-3000:]}") from None

    def close(self) -> None:
        for h in self.made:
            h.close()


@pytest.fixture
def procs(tmpdir_short: Path) -> Iterator[Procs]:
    p = Procs(tmpdir_short)
    try:
        yield p
    finally:
        p.close()


def ports(host: OneHostOvn) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in nb_rows(host.ovn, "Logical_Switch_Port")}


def port_of(host: OneHostOvn, cid: str) -> dict[str, Any] | None:
    return next((r for r in ports(host).values() if ovs_map(r["external_ids"]).get("ovn-hub:uid") == cid), None)


def nb_address(row: dict[str, Any]) -> tuple[str, str]:
    """(mac, ip) the port has in NB: static addresses, else northd's dynamic_addresses."""
    text = ovs_set(row["addresses"])[0]
    if "dynamic" in text:
        text = ovs_set(row["dynamic_addresses"])[0]
    mac, ip = text.split()[:2]
    return mac, ip


def bridge_ifaces(host: OneHostOvn) -> dict[str, dict[str, str]]:
    """Interfaces on br-int → external_ids (read with ovs-vsctl: the test's own view)."""
    out = json.loads(host.vsctl("--format=json", "--columns=name,external_ids", "list", "Interface"))
    rows = {r[0]: ovs_map(r[1]) for r in out["data"]}
    return {n: ids for n, ids in rows.items() if ids.get("ovn-hub:owner") == HUB_ID}


def iface_uuid(host: OneHostOvn, name: str) -> str:
    return host.vsctl("--bare", "--columns=_uuid", "find", "Interface", f"name={name}").strip()


def dev_exists(host: OneHostOvn, dev: str) -> bool:
    res = subprocess.run(["ip", "-n", host.sw_ns, "link", "show", "dev", dev], capture_output=True, timeout=10)
    return res.returncode == 0


def in_container(d: PrivateDockerd, name: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "-H", d.url, "exec", name, *argv], capture_output=True, text=True, timeout=30)


def can_ping(d: PrivateDockerd, name: str, ip: str, count: int = 2) -> bool:
    return in_container(d, name, "ping", "-c", str(count), "-W", "2", ip).returncode == 0


def plugged_up(host: OneHostOvn, cid: str) -> bool:
    row = port_of(host, cid)
    return row is not None and row["up"] is True


def test_wrapped_containers_get_addresses_from_nb_and_reach_each_other(
    dockerd: PrivateDockerd, host: OneHostOvn, procs: Procs
) -> None:
    d = dockerd
    names = ("b1", "b2", "r1", "plain", "n1", "k1")
    try:
        hub = procs.start("hub", hub_config(Path("@DIR@"), host, d))
        procs.ready(hub)
        node = procs.start("node", node_config(Path("@DIR@"), host, d), "--role", "node")
        procs.ready(node)

        b1 = run_wrapped(d, "b1", "blue")  # OVN allocates the address
        b2 = run_wrapped(d, "b2", "blue", "ovn-hub.ip=10.70.0.20", "ovn-hub.mac=0a:00:00:00:70:14")
        r1 = run_wrapped(d, "r1", "red")
        docker(d, "run", "-d", "--name", "plain", "--network", "none", "busybox:hub", "sleep", "3600")  # no label
        for cid in (b1, b2, r1):
            sync_wait_until(lambda c=cid: plugged_up(host, c), 30, f"{cid[:12]} plugged and up")

        # the addresses inside the containers are NB's: dynamic for b1 and r1, the labels' for b2
        mac1, ip1 = nb_address(port_of(host, b1) or {})
        assert ip1.startswith("10.70.0.") and ip1 != "10.70.0.1", ip1  # allocated, gateway excluded
        assert nb_address(port_of(host, b2) or {}) == ("0a:00:00:00:70:14", "10.70.0.20")
        _, ipr = nb_address(port_of(host, r1) or {})
        assert ipr.startswith("10.71.0."), ipr
        link = in_container(d, "b1", "ip", "-o", "link", "show", "eth0").stdout
        assert mac1 in link, link
        assert f"{ip1}/24" in in_container(d, "b1", "ip", "-o", "addr", "show", "eth0").stdout
        assert "default via 10.70.0.1 dev eth0" in in_container(d, "b1", "ip", "route").stdout
        assert "10.70.0.20/24" in in_container(d, "b2", "ip", "-o", "addr", "show", "eth0").stdout
        assert "default" not in in_container(d, "r1", "ip", "route").stdout  # red has no gateway
        assert "eth0" not in in_container(d, "plain", "ip", "-o", "link").stdout

        # the bridge holds one port per wrapped container, iface-id = its logical port
        ifaces = bridge_ifaces(host)
        assert {ids["ovn-hub:container"] for ids in ifaces.values()} == {b1, b2, r1}
        for cid in (b1, b2, r1):
            row = port_of(host, cid) or {}
            net = ovs_map(row["external_ids"])["ovn-hub:network"]
            assert ifaces[veth_name(cid, net)]["iface-id"] == row["name"]

        # the hub locks every port to its address: the labeled one, and OVN's allocation once northd made it
        for cid in (b1, b2):
            row = port_of(host, cid) or {}
            assert ovs_set(row["port_security"]) == [" ".join(nb_address(row))], row

        # packets: same network both ways; not across networks
        assert can_ping(d, "b1", "10.70.0.20"), "b1 -> b2 through OVN"
        # b1 claims an address OVN did not give it (from outside: the container has no CAP_NET_ADMIN)
        pid = docker(d, "inspect", "--format", "{{.State.Pid}}", "b1")
        subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "addr", "add", "10.70.0.99/24", "dev", "eth0"],
                       check=True, timeout=10)  # fmt: skip
        assert "10.70.0.99/24" in in_container(d, "b1", "ip", "-o", "addr", "show", "eth0").stdout
        spoofed = in_container(d, "b1", "ping", "-c", "1", "-W", "1", "-I", "10.70.0.99", "10.70.0.20")
        assert spoofed.returncode != 0, "a source address OVN did not allocate to b1 must be dropped"
        assert can_ping(d, "b1", "10.70.0.20", 1), "b1's own address still passes"
        assert can_ping(d, "b2", ip1), "b2 -> b1 through OVN"
        in_container(d, "r1", "ip", "route", "add", "10.70.0.0/24", "dev", "eth0")  # on-link: only OVN in the way
        assert not can_ping(d, "r1", "10.70.0.20", 1), "red -> blue must not pass: separate switches"

        # a stopped container loses its port and its veth; the hub deletes the logical port
        dev2 = veth_name(b2, "blue")
        assert dev_exists(host, dev2)
        docker(d, "stop", "-t", "1", "b2")
        sync_wait_until(lambda: dev2 not in bridge_ifaces(host) and not dev_exists(host, dev2), 30, "b2 unplugged")
        sync_wait_until(lambda: port_of(host, b2) is None, 30, "b2's logical port deleted")

        # a restarted container (new pid, new netns) is plugged again with the same address
        dev1 = veth_name(b1, "blue")
        before = iface_uuid(host, dev1)
        docker(d, "restart", "-t", "1", "b1")
        sync_wait_until(lambda: iface_uuid(host, dev1) not in ("", before), 30, "b1 re-plugged after restart")
        sync_wait_until(lambda: plugged_up(host, b1), 30, "b1 up again")
        assert nb_address(port_of(host, b1) or {}) == (mac1, ip1)
        docker(d, "start", "b2")
        sync_wait_until(lambda: plugged_up(host, b2), 30, "b2 back")
        assert can_ping(d, "b2", ip1), "b2 -> b1 after both restarted"

        # hub restart: ports, their addresses and the plumbing stay exactly as they are
        before_ports = {n: (r["_uuid"], r["port_security"], r["dynamic_addresses"]) for n, r in ports(host).items()}
        before_ifaces = {dev: iface_uuid(host, dev) for dev in bridge_ifaces(host)}
        hub.signal(signal.SIGTERM)
        assert hub.wait(30) == 0
        hub = procs.start("hub", hub_config(Path("@DIR@"), host, d))
        procs.ready(hub)
        assert {n: (r["_uuid"], r["port_security"], r["dynamic_addresses"]) for n, r in ports(host).items()} == (
            before_ports
        )
        assert {dev: iface_uuid(host, dev) for dev in bridge_ifaces(host)} == before_ifaces
        assert can_ping(d, "b2", ip1, 1), "b2 -> b1 after the hub restarted"

        # node restart: existing plumbing is adopted untouched; what changed while it was down converges
        adopted = iface_uuid(host, dev1)
        node.signal(signal.SIGTERM)
        assert node.wait(30) == 0
        assert dev_exists(host, dev1), "stopping the node leaves containers connected"
        docker(d, "rm", "-f", "r1")  # gone while the node is down: its port is an orphan
        n1 = run_wrapped(d, "n1", "blue")  # new while the node is down
        sync_wait_until(lambda: port_of(host, n1) is not None, 30, "hub programmed n1")
        node2 = procs.start("node", node_config(Path("@DIR@"), host, d), "--role", "node")
        procs.ready(node2)
        assert iface_uuid(host, dev1) == adopted, "b1's port was re-created instead of adopted"
        assert veth_name(r1, "red") not in bridge_ifaces(host), "orphan of r1 not removed"
        assert not dev_exists(host, veth_name(r1, "red"))
        sync_wait_until(lambda: plugged_up(host, n1), 30, "n1 plugged by the restarted node")
        _, ipn = nb_address(port_of(host, n1) or {})
        assert can_ping(d, "n1", ip1), "n1 -> b1"
        assert ipn != ip1
        assert "rejected" not in node2.logtext()

        # SIGHUP does not stop a node (systemd's default for an unhandled HUP would)
        node2.signal(signal.SIGHUP)
        sync_wait_until(lambda: "SIGHUP: a node reloads nothing" in node2.logtext(), 10, "SIGHUP logged")
        assert node2.proc is not None and node2.proc.poll() is None

        # the node's admin API: status lists what it plugged; metrics count it
        sock = str(node2.dir / "node.sock")
        code, body = docker_request(sock, "GET", "/v1/status")
        status = json.loads(body)
        assert code == 200 and status["ready"] and status["chassis"] == "node1"
        assert {p["container"] for p in status["plugged"]} == {b1, b2, n1}
        assert next(p for p in status["plugged"] if p["container"] == b2)["addresses"] == ["10.70.0.20/24"]
        code, body = docker_request(sock, "GET", "/metrics")
        assert code == 200 and b"ovn_hub_node_plugged_containers 3.0" in body, body[-2000:]
        assert b'ovn_hub_node_operations_total{result="plugged"}' in body

        # the Docker engine restarts under the node: containers without a restart policy are gone
        # (unplugged), one with --restart always comes back with a new pid (plugged again), the node recovers
        k1 = docker(d, "run", "-d", "--name", "k1", "--restart", "always", "--network", "none", "--label",
                    "ovn-hub.network=blue", "--label", "ovn-hub.ip=10.70.0.30", "busybox:hub", "sleep", "3600")  # fmt: skip
        sync_wait_until(lambda: plugged_up(host, k1), 30, "k1 plugged")
        old_pid = bridge_ifaces(host)[veth_name(k1, "blue")]["ovn-hub:pid"]
        d.restart()
        sync_wait_until(
            lambda: set(ids["ovn-hub:container"] for ids in bridge_ifaces(host).values()) == {k1}
            and bridge_ifaces(host)[veth_name(k1, "blue")]["ovn-hub:pid"] != old_pid,
            60, "only k1 plugged, with its new pid, after the engine restart",
        )  # fmt: skip
        sync_wait_until(lambda: plugged_up(host, k1), 30, "k1 up again")
        assert "10.70.0.30/24" in in_container(d, "k1", "ip", "-o", "addr", "show", "eth0").stdout
        assert node2.proc is not None and node2.proc.poll() is None
    finally:
        docker(d, "rm", "-f", *names, check=False)


def test_ready_reaches_the_bus_only_after_the_port_is_up(
    dockerd: PrivateDockerd, host: OneHostOvn, procs: Procs, tmpdir_short: Path
) -> None:
    """An MQTT subscriber gets ``ready`` for a wrapped container only when NB
    already says ``up`` (checked the moment the message arrives); the
    ``programmed`` event comes first, while the port is still down."""
    import paho.mqtt.client as paho

    d = dockerd
    mq = Mosquitto(tmpdir_short / "mq")
    mq.start()
    try:
        hub = procs.start("hub", hub_config(Path("@DIR@"), host, d, mq))
        procs.ready(hub)
        seen: list[tuple[str, dict[str, Any], bool | None]] = []
        cid_box: list[str] = []
        got_ready = threading.Event()

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            try:
                body = json.loads(msg.payload)
            except ValueError:
                return
            kind = body.get("event", "")
            if (
                cid_box
                and body.get("kind") == "endpoint"
                and cid_box[0] in body.get("key", "")
                and kind
                in (
                    "programmed",
                    "ready",
                )
            ):
                row = port_of(host, cid_box[0])
                seen.append((kind, body, None if row is None else row["up"] is True))
                if kind == "ready":
                    got_ready.set()

        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="ready-watch")
        subscribed = threading.Event()
        client.on_message = on_message
        client.on_subscribe = lambda *_a: subscribed.set()
        client.connect("127.0.0.1", mq.port)
        client.subscribe(f"ovn-hub/v1/{HUB_ID}/events", qos=1)
        client.loop_start()
        try:
            assert subscribed.wait(10), "no SUBACK from mosquitto"
            cid_box.append(docker(d, "run", "-d", "--name", "w1", "--network", "none", "--label",
                                  "ovn-hub.network=blue", "busybox:hub", "sleep", "3600"))  # fmt: skip
            # the hub programs the port; no node runs yet, so it cannot come up
            sync_wait_until(lambda: bool(seen), 30, "programmed on the bus")
            assert {k for k, _, _ in seen} == {"programmed"}, seen
            assert all(up is False for _, _, up in seen)
            node = procs.start("node", node_config(Path("@DIR@"), host, d), "--role", "node")
            procs.ready(node)
            assert got_ready.wait(30), seen
            kinds = [k for k, _, _ in seen]
            # programmed again when the hub locks the port to OVN's allocation (port_security)
            assert kinds[-1] == "ready" and set(kinds[:-1]) == {"programmed"}, seen
            assert seen[-1][2] is True, "ready was published while NB still said the port was down"
        finally:
            client.loop_stop()
            client.disconnect()
            docker(d, "rm", "-f", "w1", check=False)
    finally:
        mq.close()


def test_node_config_is_checked(tmp_path: Path) -> None:
    from testkit.hubd import BIN

    def check(text: str) -> subprocess.CompletedProcess[str]:
        cfg = tmp_path / "n.toml"
        cfg.write_text(text)
        return subprocess.run(
            [str(BIN / "hubd"), "--config", str(cfg), "--role", "node", "--check"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    ok = check('[node]\ndocker = "unix:///x.sock"\nchassis = "n1"\n')
    assert ok.returncode == 0 and "config OK (node)" in ok.stdout, ok.stderr
    root = Path(__file__).resolve().parents[2]
    ok = check((root / "packaging" / "hubd-node.toml.example").read_text())
    assert ok.returncode == 0 and "config OK (node)" in ok.stdout, ok.stderr
    bad = check('[node]\nbrige = "br-int"\n')
    assert bad.returncode == 2 and "node: " in bad.stderr and "brige" in bad.stderr, bad.stderr
    bad = check("[node]\nresync_interval = \"soon\"\n")
    assert bad.returncode == 2 and "resync_interval" in bad.stderr, bad.stderr
    bad = check('[node]\nlisten = "0.0.0.0:9000"\n')
    assert bad.returncode == 2 and "node.listen" in bad.stderr and "loopback" in bad.stderr, bad.stderr


def test_a_container_waiting_for_its_port_is_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    from adapters.docker.node import DockerNode, NodeOptions

    node = DockerNode(NodeOptions(chassis="node9"), hub_id=HUB_ID, nb_remote="unix:/nonexistent")
    cid = "c" * 64
    node._note_waiting(cid, "blue")  # first seen now: too early to warn
    assert not caplog.records
    node._waiting[cid] -= 31
    node._note_waiting(cid, "blue")
    node._note_waiting(cid, "blue")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "requesting chassis 'node9'" in warnings[0] and "node = 'node9'" in warnings[0]
