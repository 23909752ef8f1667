"""Cloud Foundry by packets (issue 14): app instances attached through the CNI plugin as
Garden does, c2c policies and ASGs enforced by OVN, an ASG removed without a restart.

One deployment for the module:

* the fakes of testkit/cf_fake.py (the BBS over mutual TLS with protobuf SSE, UAA, the
  Cloud Controller v3, the policy server), on an event loop of their own thread;
* two userspace chassis joined by Geneve (testkit/chassis.py) named as Diego cells
  (``diego-cell-1`` is also the gateway chassis, with the provider network ``physnet`` and
  the outside host 172.16.0.1, which also holds 192.0.2.1: an address outside the ASG's CIDR);
* a real ``hubd`` with the cloudfoundry adapter against the fakes, ``[routers.default]`` (the
  adapter's networks) and ``[external.uplink]`` (SNAT of the overlay to 172.16.0.10, leaving from
  diego-cell-1);
* ``hubd --role node`` with ``[cni]`` on each cell: the socket ``ovn-hub-cni`` talks to, and the
  cell's own endpoints posted to the hub's ingest (``[cni.networks.apps]``: the adapter's network
  name, where a cell's endpoint would have its port while the hub does not know the instance;
  not routed).

The foundation: org ``acme``; space ``dev`` with app ``frontend`` (A, on cell 1), space
``prod`` with ``backend`` (B) and ``intruder`` (C), both on cell 2.  The policy server allows
A → B on TCP 8080; the ASG ``https-out`` (TCP 443 to 172.16.0.0/24, the outside host's
network) is bound to ``dev``'s running set.

Each instance goes the way Diego takes it: the rep claims the ActualLRP on its cell
(CLAIMED, no address: the adapter's port is dynamic, requesting that cell's chassis), the
executor asks Garden for the container, and garden-external-networker runs the conflist's
plugin with ``CNI_CONTAINERID`` = the instance guid, ``CNI_IFNAME=eth0`` and the Cloud
Controller's network properties injected as ``metadata`` (with ``runtimeConfig`` holding
``portMappings`` and ``netOutRules``).  The cell's endpoint of the container declares the
instance's workload (``ovn-hub.io/workload=cloudfoundry:<instance guid>``) and yields to the
adapter's: one port.  Then the BBS reports the instance RUNNING at the address the CNI result
gave, which the hub leaves as it is.

Servers answer each TCP connection with ``"<name> <peer address>"``, so a test sees who
answered and whom it saw (the SNAT address).  Synchronisation: the NB rows a change must give
(polled, bounded), ``hubctl plan`` empty, then ``ovn-nbctl --wait=hv sync``; no sleeps.
Traffic stays in namespaces this module made; every process it starts is stopped by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hub.sandbox import _which
from testkit.cf_fake import FakeBBS, FakeCC, FakePolicyServer, FakeUAA, lrp, make_pki
from testkit.chassis import TwoChassisOvn
from testkit.cni import conflist, invoke, plugin_conf, plugin_dir
from testkit.hubd import BIN, Hubd
from testkit.nb import nb_rows, ovs_map
from testkit.wait import sync_wait_until
from tests.system.test_cni import port_versions
from tests.system.test_fabric_dataplane import CLIENT, SERVER

_MISSING = [
    b
    for b in ("ovs-vswitchd", "ovn-controller", "ip", "ping", "ethtool")
    if not (shutil.which(b) or shutil.which(b, path="/usr/sbin:/sbin"))
]
if os.geteuid() != 0 or _MISSING:  # make test installs these and runs as root: a missing one is an error
    raise RuntimeError(f"the data-plane tests need root and {_MISSING or 'root'} (make test installs them)")

T = TypeVar("T")
HUB_ID = "cfdp"
CELLS = ("diego-cell-1", "diego-cell-2")  # the chassis' system-ids = the BBS's cell_id of what runs there
NETWORK, OVERLAY, OVERLAY_GW = "apps", "10.255.0.0/16", "10.255.0.1"  # the adapter's defaults
SNAT_IP, OUTSIDE_IP, BEYOND_IP = "172.16.0.10", "172.16.0.1", "192.0.2.1"
HTTPS, C2C_PORT, OTHER_PORT, HTTP_PORT = 443, 8080, 9090, 8080
WAIT = 30.0  # upper bound of every control-plane wait (the machine is shared: generous)
SERVER_LIFETIME = 300  # a server exits by itself after this, whatever happens to the module
DROPPED = 1.5  # seconds a connection that must be dropped is given


class Fakes:
    """The four fakes on an event loop of their own thread: the tests stay plain functions,
    and hubd's adapter is served whatever the test thread does."""

    def __init__(self, pki_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="cf-fakes", daemon=True)
        self.thread.start()
        self.pki = make_pki(pki_dir)
        self.bbs = FakeBBS(self.pki)
        self.uaa = FakeUAA(self.pki)
        self.cc = FakeCC(self.pki, self.uaa)
        self.ps = FakePolicyServer(self.pki)
        self.secret_file = pki_dir / "uaa-secret"
        self.started: list[Any] = []

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = WAIT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Any, *args: Any, **kw: Any) -> Any:
        """``fn(*args)`` on the fakes' loop (their streams and lists are that loop's)."""

        async def call() -> Any:
            return fn(*args, **kw)

        return self.run(call())

    def start(self) -> None:
        for s in (self.bbs, self.uaa, self.cc, self.ps):
            self.run(s.start())
            self.started.append(s)
        fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.uaa.secret)

    def adapter_toml(self) -> str:
        p = self.pki
        opts: dict[str, Any] = {
            "bbs_url": self.bbs.url, "bbs_ca": str(p.ca), "bbs_cert": str(p.client_cert), "bbs_key": str(p.client_key),
            "cc_url": self.cc.url, "uaa_url": self.uaa.url, "uaa_client_id": self.uaa.client_id,
            "uaa_client_secret_file": str(self.secret_file), "cc_ca": str(p.ca),
            "policy_server_url": self.ps.url, "policy_server_ca": str(p.ca), "policy_server_cert": str(p.client_cert),
            "policy_server_key": str(p.client_key), "network": NETWORK, "poll_interval": 0.5,
            "policy_poll_interval": 0.3, "asg_poll_interval": 0.3, "backoff_max": 1.0,
        }  # fmt: skip
        return "".join(f"{k} = {json.dumps(v)}\n" for k, v in opts.items())

    def stop(self) -> None:
        try:
            for s in reversed(self.started):
                with contextlib.suppress(Exception):
                    self.run(s.stop())
            with contextlib.suppress(Exception):
                self.run(asyncio.sleep(0.05))  # the cancelled connection tasks finish
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@dataclass
class Instance:
    """One app instance: its ActualLRP's keys, and what the CNI ADD gave it."""

    name: str  # frontend, backend, intruder
    app: str  # the app guid (= its web process guid)
    space: str
    org: str
    cell: int  # chassis index
    process_guid: str = ""
    instance_guid: str = field(default_factory=lambda: str(uuid.uuid4()))
    ns: str = ""
    ip: str = ""
    mac: str = ""
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def port(self) -> str:
        return f"cloudfoundry/prod/{NETWORK}/{self.instance_guid}"


@dataclass
class World:
    root: Path
    fakes: Fakes
    pair: TwoChassisOvn
    spaces: dict[str, str] = field(default_factory=dict)
    apps: dict[str, Instance] = field(default_factory=dict)
    hub: Hubd | None = None
    nodes: list[Hubd] = field(default_factory=list)
    socks: list[str] = field(default_factory=list)
    cni_path: Path | None = None
    outside: str = ""
    servers: list[subprocess.Popen[str]] = field(default_factory=list)
    seen: dict[str, Any] = field(default_factory=dict)  # what the attachment showed (fixture → first test)

    # ------------------------------------------------------------ the foundation
    def garden_conf(self, inst: Instance) -> dict[str, Any]:
        """What garden-external-networker hands the plugin: the conflist's plugin with the
        container's network properties as ``metadata`` and the legacy ``runtimeConfig``."""
        base = conflist("cni-wrapper", NETWORK, self.socks[inst.cell], timeout=WAIT, version="0.3.1")
        metadata = {"policy_group_id": inst.app, "app_id": inst.app, "space_id": inst.space, "org_id": inst.org,
                    "ports": str(C2C_PORT), "container_workload": "app"}  # fmt: skip
        runtime = {"portMappings": [{"host_port": 61000, "container_port": C2C_PORT}],
                   "netOutRules": [{"protocol": 1, "networks": [{"start": "172.16.0.0", "end": "172.16.0.255"}],
                                    "ports": [{"start": HTTPS, "end": HTTPS}]}]}  # fmt: skip
        return plugin_conf(base, metadata=metadata, runtimeConfig=runtime)

    def cni(self, command: str, inst: Instance) -> tuple[int, dict[str, Any] | None, str]:
        assert self.cni_path is not None
        return invoke(self.cni_path, command, self.garden_conf(inst), container_id=inst.instance_guid,
                      netns=f"/var/run/netns/{inst.ns}", ifname="eth0", timeout=WAIT + 10)  # fmt: skip

    def lrp(self, inst: Instance, state: str) -> Any:
        cell = CELLS[inst.cell]
        if state == "CLAIMED":  # claimed by the cell's rep: no container yet, so no net info
            m = lrp(inst.process_guid, 0, inst.instance_guid, cell, "", state="CLAIMED", ports=())
            m.ClearField("actual_lrp_net_info")
            return m
        return lrp(inst.process_guid, 0, inst.instance_guid, cell, inst.ip, state=state, ports=(C2C_PORT,))

    # ------------------------------------------------------------ NB and the hub
    def ports(self) -> dict[str, dict[str, Any]]:
        return {r["name"]: r for r in nb_rows(self.pair.ovn, "Logical_Switch_Port")}

    @staticmethod
    def allocated(row: dict[str, Any]) -> str:
        """A port's dynamic_addresses ("MAC IP"), "" while northd has allocated nothing."""
        dyn = row.get("dynamic_addresses")
        return dyn if isinstance(dyn, str) else ""

    def acl_matches(self) -> list[str]:
        return [str(r["match"]) for r in nb_rows(self.pair.ovn, "ACL")]

    def settle(self, pred: Any, what: str) -> None:
        """Wait (bounded) for NB to show ``pred``, for the hub to have nothing left to write,
        for both chassis to have installed the flows, and flush their datapath flow caches.

        The flush: OVS 3.1.0's userspace datapath was seen (3 of ~25 runs of this module) to keep a
        megaflow dropping A's SYNs to the outside (after the conntrack recirculation) when the ASG
        allowing them came back, while NB, the SB logical flows and the OpenFlow tables all had the
        allow; the client's retries kept it alive, and ``ovs-appctl revalidator/purge`` cleared it.
        That is the switch's cache, not what the hub programs: each check here starts from the
        OpenFlow tables."""
        sync_wait_until(pred, WAIT, what)
        assert self.hub is not None
        sync_wait_until(lambda: json.loads(self.hub.ctl("plan", "--json").stdout) == [],
                        WAIT, f"nothing left to write after {what}")  # fmt: skip
        self.hv_sync()
        for ch in self.pair.chassis:
            ch.appctl("revalidator/purge")

    def hv_sync(self) -> None:
        self.pair.ovn.nbctl(f"--timeout={int(WAIT)}", "--wait=hv", "sync")

    def node_status(self, i: int) -> dict[str, Any]:
        """A node agent's /v1/status (its CNI agent's attachments and posts to the hub's ingest)."""
        res = subprocess.run([str(BIN / "hubctl"), "--api", f"unix:{self.nodes[i].dir}/node.sock", "status", "--json"],
                             capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
        return json.loads(res.stdout)  # type: ignore[no-any-return]

    def pids(self) -> list[int]:
        procs = [h.proc for h in (self.hub, *self.nodes) if h is not None]
        assert all(p is not None and p.poll() is None for p in procs), "a hubd exited"
        return [p.pid for p in procs if p is not None]

    # ------------------------------------------------------------ packets
    def serve(self, ns: str, who: str, *ports: int) -> None:
        srv = subprocess.Popen(
            [_which("ip"), "netns", "exec", ns, sys.executable, "-c", SERVER, who, str(SERVER_LIFETIME),
             *map(str, ports)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.servers.append(srv)
        assert srv.stdout is not None
        assert srv.stdout.readline().strip() == "L", f"{who}'s server did not start"

    def connect(self, who: str, ip: str, port: int, timeout: float = 3.0) -> str:
        """One TCP connection from app ``who``'s instance (or "outside"): the answer, "" if none."""
        ns = self.outside if who == "outside" else self.apps[who].ns
        res = subprocess.run(
            [_which("ip"), "netns", "exec", ns, sys.executable, "-c", CLIENT, ip, str(port), str(timeout)],
            capture_output=True, text=True, timeout=timeout + 10,
        )  # fmt: skip
        return res.stdout.strip()

    def ping(self, who: str, ip: str) -> bool:
        return self.pair.ping(self.apps[who].ns, ip, count=1, wait=1)


def hub_config(d: Path, nb: str, fakes: Fakes) -> str:
    return (
        f'[hub]\nid = "{HUB_ID}"\nstate_dir = "{d}"\n[ovn]\nnb = "{nb}"\n[api]\nlisten = "unix:{d}/api.sock"\n'
        f'[adapters.cf]\ntype = "cloudfoundry"\ncluster = "prod"\n{fakes.adapter_toml()}'
        '[routers.default]\nnetworks = ["cloudfoundry/*"]\n'  # the cells' networks overlap the overlay: not routed
        f'[external.uplink]\nrouter = "default"\ncidr = "172.16.0.0/24"\nip = "{SNAT_IP}"\ngateway = "{OUTSIDE_IP}"\n'
        f'physnet = "physnet"\nchassis = ["{CELLS[0]}"]\n'
    )


def node_config(d: Path, nb: str, pair: TwoChassisOvn, i: int, sock: str, hub: Path) -> str:
    ch = pair.chassis[i]
    return (
        f'[hub]\nid = "{HUB_ID}"\nstate_dir = "{d}"\n[ovn]\nnb = "{nb}"\n'
        f'[node]\ndocker = ""\novs = "{ch.db_remote}"\nchassis = "{ch.name}"\nswitch_netns = "{ch.ns}"\n'
        f'listen = "unix:{d}/node.sock"\n'
        f'[cni]\nenabled = true\nsocket = "{sock}"\nhub_api = "unix:{hub}/api.sock"\n'
        f'hub_token_file = "{hub}/ingest.token"\nresync_interval = 2\n'
        f'[cni.networks.{NETWORK}]\nsubnet = "{OVERLAY}"\ngateway = "{OVERLAY_GW}"\n'
    )


def start(d: Path, config: str, *args: str) -> Hubd:
    d.mkdir()
    h = Hubd(d, config, args=args)
    h.start()
    try:
        h.wait_ready(90)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- log of {d.name}:\n{h.logtext()[-3000:]}") from None
    return h


def setup(w: World) -> None:
    f, pair = w.fakes, w.pair
    f.start()
    org = f.call(f.cc.add_org, "acme")
    w.spaces = {"dev": f.call(f.cc.add_space, "dev", org), "prod": f.call(f.cc.add_space, "prod", org)}
    for name, space, cell in (("frontend", "dev", 0), ("backend", "prod", 1), ("intruder", "prod", 1)):
        guid = f.call(f.cc.add_app, name, w.spaces[space])
        w.apps[name] = Instance(name, guid, w.spaces[space], org, cell, process_guid=f"{guid}-{uuid.uuid4()}")
    a, b = w.apps["frontend"], w.apps["backend"]
    f.call(f.ps.allow, a.app, b.app, C2C_PORT)
    f.call(f.ps.add_group, "https-out", [{"protocol": "tcp", "destination": "172.16.0.0/24", "ports": str(HTTPS)}],
           running=(w.spaces["dev"],))  # fmt: skip
    for inst in w.apps.values():  # the reps claim the instances on their cells
        f.call(f.bbs.create, w.lrp(inst, "CLAIMED"))

    pair.start()
    # the provider network first: the gateway chassis maps physnet before the gateway port exists
    w.outside = pair.add_outside_host(0, "physnet", f"{OUTSIDE_IP}/24")
    pair.ns_run(w.outside, "ip", "addr", "add", f"{BEYOND_IP}/32", "dev", "eth0")
    nb = pair.nb_remote
    w.hub = start(w.root / "hub", hub_config(w.root / "hub", nb, f))
    for i in range(2):
        sock = str(w.root / f"cell{i + 1}.sock")
        w.socks.append(sock)
        d = w.root / f"node{i + 1}"
        w.nodes.append(start(d, node_config(d, nb, pair, i, sock, w.root / "hub"), "--role", "node"))
    w.cni_path = plugin_dir(w.root / "bin")
    attach(w)


def attach(w: World) -> None:
    """Diego's order: the claimed instances' ports, the CNI ADDs of their containers, RUNNING;
    what NB and the hub showed on the way is kept in ``w.seen`` for the first test."""
    assert w.hub is not None
    ports = {i.name: i.port for i in w.apps.values()}

    def claimed() -> bool:
        rows = w.ports()
        return all(i.port in rows and w.allocated(rows[i.port]) for i in w.apps.values())

    sync_wait_until(claimed, WAIT, "the claimed instances' dynamic ports, allocated")
    w.seen["claimed"] = w.ports()
    # garden-external-networker's Up: ADD with the instance guid as the container id and the CC's metadata
    for inst in w.apps.values():
        inst.ns = w.pair.add_sandbox()
        rc, res, err = w.cni("ADD", inst)
        assert rc == 0 and res is not None, (res, err, w.nodes[inst.cell].logtext()[-2000:])
        inst.result = res
        inst.ip, inst.mac = res["ips"][0]["address"].split("/")[0], res["interfaces"][1]["mac"]
    w.seen["allocated"] = {n: w.allocated(r) for n, r in w.ports().items()}
    w.seen["versions_added"] = port_versions(w.pair, ports)

    def cells_posted() -> bool:
        """Each node's snapshot with its endpoint(s) taken by the hub's ingest (after the last ADD), and
        applied: the cell's network (the source cni/<cell>) is a switch in NB."""
        switches = {ovs_map(r["external_ids"]).get("ovn-hub:source") for r in nb_rows(w.pair.ovn, "Logical_Switch")}
        for i in range(2):
            cni = w.node_status(i)["cni"]
            if not (cni["hub"]["in_sync"] and not cni["hub"]["last_error"] and f"cni/{CELLS[i]}" in switches):
                return False
            w.seen.setdefault("node_status", {})[i] = cni
        return True

    # the cells' endpoints of the containers reach the hub (the node agents' ingest) and yield
    w.settle(cells_posted, "the cells' endpoints at the hub")
    w.seen["added"] = w.ports()
    w.seen["hub_status"] = json.loads(w.hub.ctl("status", "--json").stdout)
    w.seen["endpoints"] = json.loads(w.hub.ctl("endpoints", "--json").stdout)
    w.seen["versions_yielded"] = port_versions(w.pair, ports)
    # the BBS reports them RUNNING at the address Garden got from the result
    for inst in w.apps.values():
        w.fakes.call(w.fakes.bbs.change, w.lrp(inst, "RUNNING"))

    def running() -> bool:
        eps = {e["uid"]: e for e in json.loads(w.hub.ctl("endpoints", "--json").stdout)}
        return all(eps.get(i.instance_guid, {}).get("ips") == [i.ip] for i in w.apps.values())

    w.settle(running, "the adapter has the instances' addresses")
    w.seen["versions_running"] = port_versions(w.pair, ports)
    w.seen["running"] = {i.port: w.ports()[i.port] for i in w.apps.values()}
    for inst in w.apps.values():
        w.pair.wait_up(inst.port, WAIT)
    w.hv_sync()
    # servers: B on its policy port and another; the outside host on 443 and 8080 (both its addresses)
    w.serve(w.apps["backend"].ns, "backend", C2C_PORT, OTHER_PORT)
    w.serve(w.outside, "outside", HTTPS, HTTP_PORT)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    root = Path(tempfile.mkdtemp(prefix="hub", dir="/tmp"))
    fakes = Fakes(root / "pki")
    w = World(root, fakes, TwoChassisOvn(root / "ovn", chassis_names=CELLS))
    try:
        setup(w)
        yield w
    finally:
        teardown(w)


def teardown(w: World) -> None:
    """Every step runs whatever the one before did; what this module started is stopped by pid."""
    for srv in w.servers:
        if srv.poll() is None:
            srv.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            srv.wait(5)
    # Garden's Down: DEL, so each node unplugs before it stops (a SIGTERM amid an OVS transaction costs 15 s)
    for inst in w.apps.values():
        if inst.result and w.cni_path is not None:
            with contextlib.suppress(Exception):
                w.cni("DEL", inst)
    plugged = ("--bare", "--columns=name", "find", "Interface", f'external_ids:"ovn-hub:owner"={HUB_ID}')
    errors: list[BaseException] = []
    for i, h in [*enumerate(w.nodes), (-1, w.hub)]:
        try:
            if i >= 0:
                with contextlib.suppress(Exception):
                    sync_wait_until(lambda i=i: not w.pair.chassis[i].vsctl(*plugged).strip(), 10, "unplugged")
            if h is not None:
                h.close()
        except Exception as exc:  # noqa: BLE001 - stop the others first
            errors.append(exc)
    try:
        w.pair.stop()
    finally:
        w.fakes.stop()
        shutil.rmtree(w.root, ignore_errors=True)
    if errors:
        raise errors[0]


# ------------------------------------------------------------------ 1. the attachment
def test_a_cell_attaches_each_instance_through_the_cni_plugin_as_garden_does(world: World) -> None:
    w = world
    seen = w.seen
    # the adapter's ports of the claimed instances: dynamic (no address yet), each requesting its cell
    for inst in w.apps.values():
        row = seen["claimed"][inst.port]
        assert row["addresses"] == "dynamic", row
        assert ovs_map(row["options"]) == {"requested-chassis": CELLS[inst.cell]}
        ids = ovs_map(row["external_ids"])
        assert ids["ovn-hub:uid"] == inst.instance_guid and ids["ovn-hub:source"] == "cloudfoundry/prod"
    # the results of garden-external-networker's ADDs: OVN's allocation of those ports, in 0.3.1's shape
    for inst in w.apps.values():
        res = inst.result
        assert res["cniVersion"] == "0.3.1"
        host_if, sbx = res["interfaces"]
        assert host_if["name"].startswith("ovh") and sbx == {"name": "eth0", "mac": inst.mac,
                                                             "sandbox": f"/var/run/netns/{inst.ns}"}  # fmt: skip
        (ip,) = res["ips"]
        assert ip == {"version": "4", "address": f"{inst.ip}/16", "gateway": OVERLAY_GW, "interface": 1}, ip
        assert res["routes"] == [{"dst": "0.0.0.0/0", "gw": OVERLAY_GW}]
        assert seen["allocated"][inst.port] == f"{inst.mac} {inst.ip}"
        assert inst.mac in w.pair.ns_run(inst.ns, "ip", "link", "show", "eth0")
    assert len({i.ip for i in w.apps.values()}) == 3
    # one port per instance, the adapter's: each cell's endpoint of the container declares the same workload
    # and yields (no port of its own, and the adapter's port not written for it)
    by_uid: dict[str, list[str]] = {}
    for name, row in seen["added"].items():
        by_uid.setdefault(ovs_map(row["external_ids"]).get("ovn-hub:uid", ""), []).append(name)
    assert {i.instance_guid: by_uid.get(i.instance_guid) for i in w.apps.values()} == {
        i.instance_guid: [i.port] for i in w.apps.values()}  # fmt: skip
    assert not [n for n in seen["added"] if n.startswith("cni/")]
    assert not [n for n in w.ports() if n.startswith("cni/")], "nor later"
    assert {i: (st["attachments"], st["hub"]["posts"] > 0) for i, st in seen["node_status"].items()} == {
        0: (1, True), 1: (2, True)}  # fmt: skip
    assert not (seen["hub_status"].get("rejections") or {}).get("distinct"), seen["hub_status"]["rejections"]
    # what the hub programs: the adapter's endpoints only (a yielded endpoint has no port)
    assert {(e["source"], e["uid"], e["port"], e["programmed"]) for e in seen["endpoints"]} == {
        ("cloudfoundry/prod", i.instance_guid, i.port, True) for i in w.apps.values()}  # fmt: skip
    assert seen["versions_yielded"] == seen["versions_added"]
    # the BBS then reported them RUNNING at those addresses (Garden's container-ip): NB was not written
    assert seen["versions_running"] == seen["versions_added"]
    assert all(row["addresses"] == "dynamic" for row in seen["running"].values())
    assert {i.port: w.pair.bound_chassis(i.port) for i in w.apps.values()} == {
        i.port: CELLS[i.cell] for i in w.apps.values()}  # fmt: skip


# ------------------------------------------------------------------ 2. container-to-container policy
def test_app_a_reaches_app_b_on_its_policy_port_only(world: World) -> None:
    w = world
    a, b, c = (w.apps[n] for n in ("frontend", "backend", "intruder"))
    # A (cell 1, space dev) -> B (cell 2, space prod) on the policy's port: across the tunnel, unNATed
    assert w.connect("frontend", b.ip, C2C_PORT) == f"backend {a.ip}"
    # A -> B on another port, and C (B's own space, no policy) -> B: dropped
    assert w.connect("frontend", b.ip, OTHER_PORT, timeout=DROPPED) == ""
    assert w.connect("intruder", b.ip, C2C_PORT, timeout=DROPPED) == ""
    # ... by the policies, not for want of a path: C is plugged (its gateway answers), B listens on both ports
    assert w.ping("intruder", OVERLAY_GW) and w.ping("frontend", OVERLAY_GW)
    for port in (C2C_PORT, OTHER_PORT):
        out = w.pair.ns_run(b.ns, sys.executable, "-c", CLIENT, b.ip, str(port), "2")
        assert out.strip() == f"backend {b.ip}", (port, out)

    # a policy C -> B added at the policy server: applied at the adapter's next poll, C passes; removed, dropped again
    c2c = f"tcp.dst == {C2C_PORT}"
    before = sum(c2c in m for m in w.acl_matches())
    w.fakes.call(w.fakes.ps.allow, c.app, b.app, C2C_PORT)
    try:
        w.settle(lambda: sum(c2c in m for m in w.acl_matches()) > before, "the policy C -> B")
        assert w.connect("intruder", b.ip, C2C_PORT) == f"backend {c.ip}"
        assert w.connect("frontend", b.ip, OTHER_PORT, timeout=DROPPED) == "", "A's port range is still its own"
    finally:
        w.fakes.call(lambda: w.fakes.ps.policies.pop())
        w.settle(lambda: sum(c2c in m for m in w.acl_matches()) == before, "the policy C -> B gone")
    assert w.connect("intruder", b.ip, C2C_PORT, timeout=DROPPED) == ""
    assert w.connect("frontend", b.ip, C2C_PORT) == f"backend {a.ip}"


# ------------------------------------------------------------------ 3. application security groups
def test_an_asg_passes_tcp_443_to_the_outside_through_snat_and_nothing_else(world: World) -> None:
    w = world
    # A's space has https-out: TCP 443 to the outside host's network, SNATed to the external address
    assert w.connect("frontend", OUTSIDE_IP, HTTPS) == f"outside {SNAT_IP}"
    # nothing else: another port of that host, the same port on an address outside the CIDR, ICMP
    assert w.connect("frontend", OUTSIDE_IP, HTTP_PORT, timeout=DROPPED) == ""
    assert w.connect("frontend", BEYOND_IP, HTTPS, timeout=DROPPED) == ""
    assert not w.ping("frontend", OUTSIDE_IP)
    # and not from a space the ASG is not bound to
    assert w.connect("intruder", OUTSIDE_IP, HTTPS, timeout=DROPPED) == ""


def test_removing_the_asg_cuts_it_without_a_restart(world: World) -> None:
    w = world
    a = w.apps["frontend"]
    assert w.connect("frontend", OUTSIDE_IP, HTTPS) == f"outside {SNAT_IP}"
    pids = w.pids()
    versions = port_versions(w.pair, {i.name: i.port for i in w.apps.values()})
    ifindex = w.pair.ns_run(a.ns, "cat", "/sys/class/net/eth0/ifindex")
    lists = w.fakes.call(lambda: [r for r in w.fakes.bbs.requests if r.endswith("/v1/actual_lrps/list")])
    https = f"tcp.dst == {HTTPS}"
    try:
        # the policy server no longer has it; the adapter's next poll takes it out of asg-running
        w.fakes.call(w.fakes.ps.remove_group, "https-out")
        w.settle(lambda: not any(https in m for m in w.acl_matches()), "the ASG's ACL gone")
        assert w.connect("frontend", OUTSIDE_IP, HTTPS, timeout=DROPPED) == "", "the ASG is cut"
        # nothing restarted: the same processes, no new BBS session, the instance's port and interface untouched
        assert w.pids() == pids
        assert w.fakes.call(lambda: [r for r in w.fakes.bbs.requests if r.endswith("/v1/actual_lrps/list")]) == lists
        assert port_versions(w.pair, {i.name: i.port for i in w.apps.values()}) == versions
        assert w.pair.ns_run(a.ns, "cat", "/sys/class/net/eth0/ifindex") == ifindex

        # the drops were the ASGs': a platform-wide group opening the outside to every running app passes them
        w.fakes.call(w.fakes.ps.add_group, "open", [{"protocol": "all", "destination": f"172.16.0.0/24,{BEYOND_IP}"}],
                     running_default=True)  # fmt: skip
        w.settle(lambda: sum(f"{BEYOND_IP}" in m for m in w.acl_matches()) >= 2, "the platform-wide ASG's ACLs")
        assert w.connect("frontend", OUTSIDE_IP, HTTP_PORT) == f"outside {SNAT_IP}"
        assert w.connect("frontend", BEYOND_IP, HTTPS) == f"outside {SNAT_IP}"
        assert w.connect("intruder", OUTSIDE_IP, HTTPS) == f"outside {SNAT_IP}", "from cell 2, through cell 1"
        assert w.ping("frontend", OUTSIDE_IP)
        w.fakes.call(w.fakes.ps.remove_group, "open")
        w.settle(lambda: not any(BEYOND_IP in m for m in w.acl_matches()), "the platform-wide ASG gone")
        assert w.connect("intruder", OUTSIDE_IP, HTTPS, timeout=DROPPED) == ""
        assert w.pids() == pids
    finally:  # the module's foundation again: https-out bound to dev
        w.fakes.call(w.fakes.ps.remove_group, "open")
        if not any(g["name"] == "https-out" for g in w.fakes.call(lambda: list(w.fakes.ps.groups))):
            w.fakes.call(w.fakes.ps.add_group, "https-out",
                         [{"protocol": "tcp", "destination": "172.16.0.0/24", "ports": str(HTTPS)}],
                         running=(w.spaces["dev"],))  # fmt: skip
        w.settle(lambda: any(https in m for m in w.acl_matches()), "https-out back")
    assert w.connect("frontend", OUTSIDE_IP, HTTPS) == f"outside {SNAT_IP}", "bound again, passed again"
