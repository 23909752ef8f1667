"""Two OVN hypervisors on one machine: real packets across a Geneve tunnel.

``TwoChassisOvn`` starts one :class:`OvnSandbox` (NB, SB, ovn-northd) and two
chassis.  Each chassis is a network namespace of its own (``<tag>-c1``,
``<tag>-c2``) holding an ``ovs-vswitchd --disable-system`` (userspace
datapath, ``datapath_type=netdev``) with its own Open_vSwitch ovsdb-server, and
an ``ovn-controller`` with its own ``system-id``.  Every process is a child of
this one on unix sockets in the temp dir, stopped by pid; every namespace is
deleted on stop, and with it every veth (their ends all live in namespaces we
created, none in the machine's).

The underlay: one veth pair joins the two chassis namespaces.  The userspace
datapath cannot hand a Geneve packet to the kernel's UDP stack: it builds the
outer headers itself (``tnl_push``) and must know, from its *own* route and
neighbour tables, which OVS bridge to send them out of.  So, as in Open
vSwitch's userspace-tunneling howto, each chassis has a bridge ``br-phy`` whose
port is its veth end and whose internal interface carries the encap address
(192.168.250.1/24 and .2/24, ``ovn-encap-ip``).  ovs-vswitchd caches the
kernel routes of the namespace it runs in (``ovs/route/show`` lists
192.168.250.0/24 via br-phy), and the peer's br-phy MAC is entered in its
tunnel neighbour table (``tnl/neigh/set``) so the first packet needs no ARP
round.  Inbound, a frame to br-phy's MAC and encap IP on UDP 6081 is popped
(``tnl_pop``) into br-int's Geneve port.  The underlay veth gets MTU 9000, so
an inner frame of 1500 bytes still fits after the Geneve header.

``add_port`` plugs an endpoint into one chassis as ``OneHostOvn.add_port``
does (netns + veth, ``iface-id`` = the port name, MAC from the endpoint);
``add_outside_host`` gives a chassis a provider network: ``br-ex`` with a veth
into an "outside host" namespace, ``ovn-bridge-mappings=<physnet>:br-ex`` and
``ovn-cms-options=enable-chassis-as-gw``; ``add_sandbox`` makes an empty netns for a
CNI plugin to plug (the node agent's veth goes between it and a chassis' br-int).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from core.model import Endpoint
from core.names import derived_mac, lsp_name
from hub.sandbox import OvnSandbox, SandboxError, _which
from testkit.dataplane import VSWITCH_SCHEMA, _run, delete_namespaces

UNDERLAY_NET = "192.168.250"  # encap IPs .1 and .2, only inside the two chassis namespaces
UNDERLAY_MTU = 9000


def _ethtool() -> str | None:
    return shutil.which("ethtool") or shutil.which("ethtool", path="/usr/sbin:/sbin")


def _wait(pred: Callable[[], bool], timeout: float, what: str, procs: dict[str, subprocess.Popen[bytes]]) -> None:
    """Poll ``pred`` until it holds; fail early when one of ``procs`` died."""
    deadline = time.monotonic() + timeout
    while not pred():
        for name, p in procs.items():
            if p.poll() is not None:
                raise SandboxError(f"{name} exited with {p.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise SandboxError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def ping(ns: str, dst: str, count: int = 2, wait: int = 2, interval: float = 0.2) -> bool:
    """``ping`` from inside netns ``ns``; True if a reply came back.  Echoes
    ``interval`` s apart rather than ping's 1 s: root may, and tests are faster."""
    res = subprocess.run(
        [_which("ip"), "netns", "exec", ns, "ping", "-c", str(count), "-i", str(interval), "-W", str(wait), dst],
        capture_output=True,
        text=True,
        timeout=count * wait + 10,
    )
    return res.returncode == 0


def tcp(client_ns: str, server_ns: str, dst: str, port: int = 5000, timeout: float = 5.0) -> bool:
    """One TCP connection client -> server carrying a few bytes; True if they arrived."""
    server = (
        "import socket,sys;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
        f"s.bind(('0.0.0.0',{port}));s.listen();s.settimeout({timeout});print('L',flush=True);"
        "c,_=s.accept();c.settimeout(2);print(c.recv(100).decode(),flush=True)"
    )
    client = f"import socket;socket.create_connection(({dst!r},{port}),timeout={timeout}).sendall(b'hub-ok')"
    ip = _which("ip")
    srv = subprocess.Popen(
        [ip, "netns", "exec", server_ns, sys.executable, "-c", server],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert srv.stdout is not None
        if srv.stdout.readline().strip() != "L":  # listening before the client connects
            return False
        subprocess.run(
            [ip, "netns", "exec", client_ns, sys.executable, "-c", client], capture_output=True, timeout=timeout + 5
        )
        out, _ = srv.communicate(timeout=timeout + 5)
        return "hub-ok" in out
    except subprocess.TimeoutExpired:
        return False
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait(5)


class Chassis:
    """One hypervisor inside netns ``ns``: Open_vSwitch ovsdb-server, ovs-vswitchd
    (userspace), ovn-controller registering as ``name``.  Started and stopped by
    :class:`TwoChassisOvn`, which owns the namespace."""

    def __init__(self, state_dir: Path, name: str, ns: str, sb_remote: str, encap_ip: str) -> None:
        self.dir = state_dir
        self.name = name
        self.ns = ns
        self.sb_remote = sb_remote
        self.encap_ip = encap_ip
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.bridge_mappings: dict[str, str] = {}  # physnet -> bridge
        self.run_dir = state_dir / "run"
        self.env = dict(
            os.environ,
            OVS_RUNDIR=str(self.run_dir),
            OVS_DBDIR=str(self.run_dir),
            OVS_LOGDIR=str(self.run_dir),
            OVS_PKGDATADIR="/usr/share/openvswitch",
            OVN_RUNDIR=str(self.run_dir),
            OVN_DBDIR=str(self.run_dir),
            OVN_LOGDIR=str(self.run_dir),
        )

    @property
    def db_sock(self) -> Path:
        return self.run_dir / "conf.sock"

    @property
    def db_remote(self) -> str:
        """This chassis' Open_vSwitch database (``ovs-vsctl --db=...``)."""
        return f"unix:{self.db_sock}"

    def vsctl(self, *args: str) -> str:
        return _run([_which("ovs-vsctl"), f"--db={self.db_remote}", *args], timeout=30, env=self.env)

    def appctl(self, *args: str) -> str:
        """``ovs-appctl`` to this chassis' ovs-vswitchd (dpctl/..., ovs/route/..., tnl/...)."""
        return _run([_which("ovs-appctl"), f"--target={self.run_dir / 'vswitchd.ctl'}", *args], env=self.env)

    def in_ns(self, *argv: str, check: bool = True) -> str:
        return _run([_which("ip"), "netns", "exec", self.ns, *argv], check=check)

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.dir / f"{name}.out", "ab")
        try:
            self.procs[name] = subprocess.Popen(
                argv, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        finally:
            log.close()

    def _wait(self, pred: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            _wait(pred, timeout, f"{what} on {self.name}", self.procs)
        except SandboxError as exc:
            raise SandboxError(f"{exc}; see {self.dir}") from None

    def start_switch(self, underlay_dev: str, timeout: float) -> None:
        """ovsdb-server + ovs-vswitchd (in the namespace), br-int, and br-phy
        holding ``underlay_dev`` with the encap IP on its internal interface."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        conf = self.run_dir / "conf.db"
        _run([_which("ovsdb-tool"), "create", str(conf), str(VSWITCH_SCHEMA)])
        self._spawn(
            "ovsdb",
            [
                _which("ovsdb-server"),
                str(conf),
                f"--remote=punix:{self.db_sock}",
                f"--unixctl={self.run_dir / 'ovsdb.ctl'}",
                f"--pidfile={self.run_dir / 'ovsdb-server.pid'}",
                f"--log-file={self.run_dir / 'ovsdb-server.log'}",
                "-vconsole:off",
                "--no-chdir",
            ],
        )
        self._wait(self.db_sock.exists, timeout, "ovsdb-server (Open_vSwitch) socket")
        self.vsctl("--no-wait", "init")
        self._spawn(
            "vswitchd",
            [
                # "ip netns exec" execs ovs-vswitchd: the pid we hold is its own
                _which("ip"),
                "netns",
                "exec",
                self.ns,
                _which("ovs-vswitchd"),
                self.db_remote,
                "--disable-system",
                "--no-chdir",
                f"--unixctl={self.run_dir / 'vswitchd.ctl'}",
                f"--pidfile={self.run_dir / 'ovs-vswitchd.pid'}",
                f"--log-file={self.run_dir / 'ovs-vswitchd.log'}",
                "-vconsole:off",
            ],
        )
        self._wait((self.run_dir / "vswitchd.ctl").exists, timeout, "ovs-vswitchd control socket")
        self.vsctl(
            "--timeout=20",
            "add-br", "br-int",
            "--", "set", "Bridge", "br-int", "datapath_type=netdev", "fail-mode=secure",
            "other-config:disable-in-band=true",
            "--", "add-br", "br-phy",
            "--", "set", "Bridge", "br-phy", "datapath_type=netdev", "other-config:disable-in-band=true",
            "--", "add-port", "br-phy", underlay_dev,
        )  # fmt: skip
        # br-phy's internal interface is a tap in our namespace: the encap IP goes there,
        # and the kernel route it implies is what ovs-vswitchd's route table caches
        self.in_ns("ip", "link", "set", "br-phy", "mtu", str(UNDERLAY_MTU))
        self.in_ns("ip", "addr", "add", f"{self.encap_ip}/24", "dev", "br-phy")
        self.in_ns("ip", "link", "set", "br-phy", "up")
        self._wait(self._route_cached, timeout, f"ovs-vswitchd to route {UNDERLAY_NET}.0/24 via br-phy")

    def _route_cached(self) -> bool:
        out = self.appctl("ovs/route/show")
        return any(f"{UNDERLAY_NET}.0/24" in line and "br-phy" in line for line in out.splitlines())

    def start_controller(self, timeout: float) -> None:
        self.vsctl(
            "set", "Open_vSwitch", ".",
            f"external_ids:system-id={self.name}",
            f"external_ids:ovn-remote={self.sb_remote}",
            "external_ids:ovn-encap-type=geneve",
            f"external_ids:ovn-encap-ip={self.encap_ip}",
            "external_ids:ovn-bridge=br-int",
        )  # fmt: skip
        self._spawn(
            "controller",
            [
                # in the namespace, as on a hypervisor: it opens netdevs by name (br-phy, for
                # QoS on egress interfaces) and warns when they are not there
                _which("ip"),
                "netns",
                "exec",
                self.ns,
                # no --unixctl in 23.03: its control socket is $OVN_RUNDIR/ovn-controller.<pid>.ctl
                _which("ovn-controller"),
                self.db_remote,
                "--no-chdir",
                f"--pidfile={self.run_dir / 'ovn-controller.pid'}",
                f"--log-file={self.run_dir / 'ovn-controller.log'}",
                "-vconsole:off",
            ],
        )

    def br_mac(self, bridge: str = "br-phy") -> str:
        return self.in_ns("cat", f"/sys/class/net/{bridge}/address").strip()

    def tunnel_ports(self) -> dict[str, str]:
        """Geneve interfaces ovn-controller made on br-int: name -> remote_ip."""
        out = json.loads(self.vsctl("--format=json", "--columns=name,options", "find", "Interface", "type=geneve"))
        return {row[0]: dict(row[1][1]).get("remote_ip", "") for row in out["data"]}

    def tunnel_flow_packets(self) -> tuple[int, int]:
        """Packets the datapath encapsulated (``tnl_push`` with a Geneve header)
        and decapsulated (``tnl_pop``), summed over its current flows
        (``dpctl/dump-flows``).  The userspace Geneve vport (``genev_sys_6081``)
        keeps no packet counters, and the Interface statistics column is only
        refreshed every few seconds; a datapath flow counts at once, and lives
        for 10 s after its last packet."""
        pushed = popped = 0
        for line in self.appctl("dpctl/dump-flows").splitlines():
            m = re.search(r"packets:(\d+)", line)
            if not m:
                continue
            if "tnl_push(" in line and "geneve(" in line:
                pushed += int(m.group(1))
            elif "tnl_pop(" in line:
                popped += int(m.group(1))
        return pushed, popped

    def stop(self) -> list[str]:
        errors: list[str] = []
        for name in ("controller", "vswitchd", "ovsdb"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    errors.append(f"{self.name} {name} pid {proc.pid} did not exit")
        return errors


class TwoChassisOvn:
    """NB + SB + northd and two chassis joined by a Geneve tunnel.  Use as a context manager.

    ``chassis_names`` are the chassis' system-ids (SB ``Chassis.name``): give an
    endpoint ``node=<one of them>`` and the hub's ``options:requested-chassis``
    binds its port there.  ``nb_remote`` is the NB socket for a hubd."""

    def __init__(self, state_dir: str | Path | None = None, chassis_names: tuple[str, str] | None = None) -> None:
        self._own_dir = state_dir is None
        self.dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="dp2", dir="/tmp"))
        self.tag = "hubt-" + secrets.token_hex(3)  # 11 chars: room for "-c1" and 4-char veth suffixes
        names = chassis_names or (f"{self.tag}-c1", f"{self.tag}-c2")
        self.ovn = OvnSandbox(self.dir / "ovn", northd=True)
        self.chassis = [
            Chassis(
                self.dir / f"c{i + 1}", names[i], f"{self.tag}-c{i + 1}", self.ovn.sb_remote, f"{UNDERLAY_NET}.{i + 1}"
            )
            for i in range(2)
        ]
        self.namespaces: list[str] = []  # created, in order
        self.ports: dict[str, tuple[int, str]] = {}  # lsp name -> (chassis index, netns)
        self._n = 0

    @property
    def chassis_names(self) -> tuple[str, str]:
        return (self.chassis[0].name, self.chassis[1].name)

    @property
    def nb_remote(self) -> str:
        return self.ovn.nb_remote

    @property
    def sb_remote(self) -> str:
        return self.ovn.sb_remote

    # ------------------------------------------------------------------ start
    def start(self, timeout: float = 30.0) -> None:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _add_ns(self, ns: str) -> None:
        if not ns.startswith("hubt-"):
            raise ValueError(f"netns {ns!r} must start with 'hubt-'")
        _run([_which("ip"), "netns", "add", ns])
        self.namespaces.append(ns)
        _run([_which("ip"), "netns", "exec", ns, "ip", "link", "set", "lo", "up"])

    def _start(self, timeout: float) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ovn.start(timeout)
        for ch in self.chassis:
            self._add_ns(ch.ns)
        c1, c2 = self.chassis
        u1, u2 = f"{self.tag}u1", f"{self.tag}u2"
        c1.in_ns("ip", "link", "add", u1, "mtu", str(UNDERLAY_MTU), "type", "veth",
                 "peer", "name", u2, "mtu", str(UNDERLAY_MTU), "netns", c2.ns)  # fmt: skip
        for ch, dev in ((c1, u1), (c2, u2)):
            ch.in_ns("ip", "link", "set", dev, "up")
            ch.start_switch(dev, timeout)
        # the peer's br-phy MAC, known now: no ARP round (and no lost first packet) on the underlay
        for ch, peer in ((c1, c2), (c2, c1)):
            ch.appctl("tnl/neigh/set", "br-phy", peer.encap_ip, peer.br_mac())
        for ch in self.chassis:
            ch.start_controller(timeout)
        procs = {f"{ch.name} {n}": p for ch in self.chassis for n, p in ch.procs.items()}
        _wait(self._chassis_registered, timeout, "both ovn-controllers to register their chassis", procs)
        # each controller makes a Geneve port on br-int towards the other's encap IP
        _wait(self._tunnels_made, timeout, "the Geneve ports between the chassis", procs)

    def _chassis_registered(self) -> bool:
        out = _run(
            [_which("ovn-sbctl"), f"--db={self.ovn.sb_remote}", "--bare", "--columns=name", "list", "Chassis"],
            check=False,
        )  # check=False: the SB may not answer yet
        return set(self.chassis_names) <= set(out.split())

    def _tunnels_made(self) -> bool:
        c1, c2 = self.chassis
        return c2.encap_ip in c1.tunnel_ports().values() and c1.encap_ip in c2.tunnel_ports().values()

    # ------------------------------------------------------------------ ports
    def add_port(
        self, chassis_index: int, ep: Endpoint, ns_name: str | None = None, prefix: int = 24, gateway: str | None = None
    ) -> str:
        """Plug ``ep`` into chassis ``chassis_index`` (0 or 1): a netns with one end
        of a veth (ep's MAC and IPs), the other end on that chassis' br-int with
        ``iface-id`` = the endpoint's port name.  IPs without a "/" get ``prefix``
        (IPv4) or /64 (IPv6).  ``gateway``: the netns' default route goes via that
        address (a router port of the network).  Returns the netns name.

        ``options:requested-chassis`` is the NB's business (the hub writes the
        endpoint's node): plugging a port on the other chassis leaves it down."""
        ch = self.chassis[chassis_index]
        self._n += 1
        ns = ns_name or f"{self.tag}-{self._n}"
        host, peer = f"{self.tag}h{self._n}", f"{self.tag}p{self._n}"
        if len(host) > 15:
            raise ValueError(f"veth name {host!r} is too long")
        self._add_ns(ns)
        ip = _which("ip")
        ch.in_ns(ip, "link", "add", host, "type", "veth", "peer", "name", peer, "netns", ns)
        in_ns = [ip, "netns", "exec", ns]
        _run([*in_ns, ip, "link", "set", peer, "name", "eth0"])
        _run([*in_ns, ip, "link", "set", "eth0", "address", ep.mac or derived_mac(ep)])
        for addr in ep.ips:
            cidr = addr if "/" in addr else f"{addr}/{64 if ':' in addr else prefix}"
            _run([*in_ns, ip, "addr", "add", cidr, "dev", "eth0"])
        _run([*in_ns, ip, "link", "set", "eth0", "up"])
        if gateway:
            family = "-6" if ":" in gateway else "-4"
            _run([*in_ns, ip, family, "route", "add", "default", "via", gateway, "dev", "eth0"])
        ch.in_ns(ip, "link", "set", host, "up")
        if ethtool := _ethtool():  # AF_PACKET netdev: checksums left to offload never get filled in (TCP/UDP)
            _run([*in_ns, ethtool, "-K", "eth0", "tx", "off"], check=False)
            ch.in_ns(ethtool, "-K", host, "tx", "off", check=False)
        name = lsp_name(ep)
        ch.vsctl("add-port", "br-int", host, "--", "set", "Interface", host, f"external_ids:iface-id={name}")
        self.ports[name] = (chassis_index, ns)
        return ns

    def add_sandbox(self) -> str:
        """An empty network namespace of this deployment (``lo`` up), deleted on stop: a
        container runtime's sandbox, for a CNI plugin to plug (``CNI_NETNS=/var/run/netns/<it>``)."""
        self._n += 1
        ns = f"{self.tag}-s{self._n}"
        self._add_ns(ns)
        return ns

    def add_outside_host(
        self, chassis_index: int, physnet: str, ip_cidr: str, mac: str | None = None, bridge: str = "br-ex"
    ) -> str:
        """A provider network on chassis ``chassis_index``: an OVS bridge (``br-ex``,
        made on first use) whose uplink is a veth into a new "outside host" netns
        holding ``ip_cidr``; ``ovn-bridge-mappings`` gets ``<physnet>:<bridge>`` and
        the chassis becomes a gateway (``ovn-cms-options=enable-chassis-as-gw``).  A
        localnet port with ``network_name=<physnet>`` then reaches that host.

        A second host on the same physnet joins the same bridge (one outside LAN);
        another physnet needs a bridge of its own, or the two LANs would be one.
        Returns the netns."""
        ch = self.chassis[chassis_index]
        bridge = ch.bridge_mappings.get(physnet, bridge)
        if any(b == bridge and p != physnet for p, b in ch.bridge_mappings.items()):
            raise ValueError(f"{bridge} already carries another physnet on {ch.name}: pass bridge=")
        self._n += 1
        ns = f"{self.tag}-x{self._n}"
        up, out = f"{self.tag}x{self._n}", f"{self.tag}y{self._n}"
        if len(up) > 15:
            raise ValueError(f"veth name {up!r} is too long")
        self._add_ns(ns)
        ip = _which("ip")
        ch.in_ns(ip, "link", "add", up, "type", "veth", "peer", "name", out, "netns", ns)
        in_ns = [ip, "netns", "exec", ns]
        _run([*in_ns, ip, "link", "set", out, "name", "eth0"])
        if mac:
            _run([*in_ns, ip, "link", "set", "eth0", "address", mac])
        _run([*in_ns, ip, "addr", "add", ip_cidr, "dev", "eth0"])
        _run([*in_ns, ip, "link", "set", "eth0", "up"])
        ch.in_ns(ip, "link", "set", up, "up")
        if ethtool := _ethtool():
            _run([*in_ns, ethtool, "-K", "eth0", "tx", "off"], check=False)
            ch.in_ns(ethtool, "-K", up, "tx", "off", check=False)
        ch.vsctl(
            "--may-exist", "add-br", bridge,
            "--", "set", "Bridge", bridge, "datapath_type=netdev", "other-config:disable-in-band=true",
            "--", "add-port", bridge, up,
        )  # fmt: skip
        ch.bridge_mappings[physnet] = bridge
        mappings = ",".join(f"{p}:{b}" for p, b in sorted(ch.bridge_mappings.items()))
        ch.vsctl(
            "set", "Open_vSwitch", ".",
            f'external_ids:ovn-bridge-mappings="{mappings}"',
            "external_ids:ovn-cms-options=enable-chassis-as-gw",
        )  # fmt: skip
        return ns

    def port_up(self, port_name: str) -> bool:
        out = self.ovn.nbctl("--format=json", "--columns=up", "find", "Logical_Switch_Port", f'name="{port_name}"')
        data = json.loads(out)["data"]
        return bool(data) and data[0][0] is True

    def wait_up(self, port_name: str, timeout: float = 20.0) -> None:
        procs = {f"{ch.name} {n}": p for ch in self.chassis for n, p in ch.procs.items()}
        _wait(lambda: self.port_up(port_name), timeout, f"{port_name} up", procs)

    def sbctl(self, *args: str) -> str:
        """Run ovn-sbctl against the SB; returns stdout."""
        return _run([_which("ovn-sbctl"), f"--db={self.ovn.sb_remote}", *args])

    def bound_chassis(self, port_name: str) -> str | None:
        """The SB Port_Binding's chassis name for ``port_name`` (None while unbound)."""
        uuid = self.sbctl("--bare", "--columns=chassis", "find", "Port_Binding", f'logical_port="{port_name}"').strip()
        return self.sbctl("--bare", "--columns=name", "list", "Chassis", uuid).strip() or None if uuid else None

    def ns_run(self, ns: str, *argv: str, check: bool = True) -> str:
        """Run a command inside one of our namespaces (an endpoint's, a chassis', an outside host's)."""
        if ns not in self.namespaces:
            raise ValueError(f"{ns} is not a namespace of this deployment")
        return _run([_which("ip"), "netns", "exec", ns, *argv], check=check)

    def ping(self, ns: str, dst: str, count: int = 2, wait: int = 2) -> bool:
        """Ping ``dst`` from netns ``ns``; True if a reply came back."""
        return ping(ns, dst, count, wait)

    def tcp(self, client_ns: str, server_ns: str, dst: str, port: int = 5000, timeout: float = 5.0) -> bool:
        """One TCP connection from ``client_ns`` to a server in ``server_ns``; True if its bytes arrived."""
        return tcp(client_ns, server_ns, dst, port, timeout)

    # ------------------------------------------------------------------- stop
    def stop(self) -> None:
        errors: list[str] = []
        for ch in self.chassis:
            errors += ch.stop()
        errors += delete_namespaces(self.namespaces)
        try:
            self.ovn.stop()
        except Exception as exc:  # noqa: BLE001 - keep cleaning up
            errors.append(f"ovn sandbox: {exc}")
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise SandboxError("; ".join(errors))

    def __enter__(self) -> TwoChassisOvn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
