"""One OVN hypervisor in a temp dir: real packets between network namespaces.

``OneHostOvn`` starts an :class:`OvnSandbox` (NB, SB, ovn-northd), its own
Open_vSwitch database, ``ovs-vswitchd --disable-system`` (userspace datapath,
``datapath_type=netdev``) and ``ovn-controller``, all children of this process
on unix sockets in the temp dir, stopped by pid.

Isolation: ovs-vswitchd runs inside a network namespace of its own
(``hubt-<rand>-sw``), so br-int's internal tap and the switch ends of every veth
live there, never in the machine's namespace; each endpoint gets a namespace
``hubt-<rand>-<n>`` holding the other end of its veth.  Deleting the switch
namespace destroys every veth pair.  ``OVS_RUNDIR``/``OVN_RUNDIR`` etc. point
at the temp dir, so nothing is written to /var/run.

ICMP works over the AF_PACKET netdevs as is; TCP/UDP may need TX checksum
offload turned off on the namespace end (``ethtool -K <dev> tx off``), which
:meth:`OneHostOvn.add_port` does when ethtool is installed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.model import Endpoint
from core.names import derived_mac, lsp_name
from hub.sandbox import OvnSandbox, SandboxError, _which

VSWITCH_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")


def _run(argv: list[str], timeout: float = 20.0, check: bool = True, env: dict[str, str] | None = None) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if check and res.returncode != 0:
        raise SandboxError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res.stdout


def delete_namespaces(namespaces: list[str]) -> list[str]:
    """Delete the network namespaces this harness created, newest first (their veths go with
    them); empties the list and returns what failed, so a teardown can go on."""
    errors = []
    for ns in reversed(namespaces):
        res = subprocess.run([_which("ip"), "netns", "delete", ns], capture_output=True, text=True, timeout=20)
        if res.returncode != 0 and "No such file" not in res.stderr:
            errors.append(f"netns {ns}: {res.stderr.strip()}")
    namespaces.clear()
    return errors


class OneHostOvn:
    """A single-chassis OVN deployment.  Use as a context manager."""

    def __init__(self, state_dir: str | Path | None = None, chassis: str | None = None) -> None:
        self._own_dir = state_dir is None
        self.dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="dp", dir="/tmp"))
        self.tag = "hubt-" + secrets.token_hex(3)  # 11 chars: room for "-sw" / "-NN" and veth names
        self.chassis = chassis or self.tag
        self.sw_ns = f"{self.tag}-sw"
        self.ovn = OvnSandbox(self.dir / "ovn", northd=True)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.namespaces: list[str] = []  # created, in order
        self.ports: dict[str, str] = {}  # lsp name -> netns
        self._n = 0
        run = self.dir / "run"
        self.env = dict(
            os.environ,
            OVS_RUNDIR=str(run),
            OVS_DBDIR=str(run),
            OVS_LOGDIR=str(run),
            OVS_PKGDATADIR="/usr/share/openvswitch",
            OVN_RUNDIR=str(run),
            OVN_DBDIR=str(run),
            OVN_LOGDIR=str(run),
        )

    @property
    def db_sock(self) -> Path:
        return self.dir / "run" / "conf.sock"

    @property
    def db_remote(self) -> str:
        return f"unix:{self.db_sock}"

    # ------------------------------------------------------------------ start
    def start(self, timeout: float = 30.0) -> None:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        run = self.dir / "run"
        run.mkdir(parents=True, exist_ok=True)
        self.ovn.start(timeout)
        conf = run / "conf.db"
        _run([_which("ovsdb-tool"), "create", str(conf), str(VSWITCH_SCHEMA)])
        self._spawn(
            "ovsdb",
            [
                _which("ovsdb-server"),
                str(conf),
                f"--remote=punix:{self.db_sock}",
                f"--unixctl={run / 'ovsdb.ctl'}",
                f"--pidfile={run / 'ovsdb-server.pid'}",
                f"--log-file={run / 'ovsdb-server.log'}",
                "-vconsole:off",
                "--no-chdir",
            ],
        )
        self._wait(lambda: self.db_sock.exists(), timeout, "ovsdb-server (Open_vSwitch) socket", "ovsdb")
        self.vsctl("--no-wait", "init")
        _run([_which("ip"), "netns", "add", self.sw_ns])
        self.namespaces.append(self.sw_ns)
        _run([_which("ip"), "netns", "exec", self.sw_ns, "ip", "link", "set", "lo", "up"])
        self._spawn(
            "vswitchd",
            [
                _which("ip"),
                "netns",
                "exec",
                self.sw_ns,
                _which("ovs-vswitchd"),
                self.db_remote,
                "--disable-system",
                "--no-chdir",
                f"--unixctl={run / 'vswitchd.ctl'}",
                f"--pidfile={run / 'ovs-vswitchd.pid'}",
                f"--log-file={run / 'ovs-vswitchd.log'}",
                "-vconsole:off",
            ],
        )
        self._wait(lambda: (run / "vswitchd.ctl").exists(), timeout, "ovs-vswitchd control socket", "vswitchd")
        self.vsctl(
            "--timeout=20",
            "add-br",
            "br-int",
            "--",
            "set",
            "Bridge",
            "br-int",
            "datapath_type=netdev",
            "fail-mode=secure",
            "other-config:disable-in-band=true",
        )
        self.vsctl(
            "set",
            "Open_vSwitch",
            ".",
            f"external_ids:system-id={self.chassis}",
            f"external_ids:ovn-remote={self.ovn.sb_remote}",
            "external_ids:ovn-encap-type=geneve",
            "external_ids:ovn-encap-ip=127.0.0.1",
            "external_ids:ovn-bridge=br-int",
        )
        self._spawn(
            "controller",
            [
                # no --unixctl in 23.03: its control socket goes to $OVN_RUNDIR/ovn-controller.<pid>.ctl
                _which("ovn-controller"),
                self.db_remote,
                "--no-chdir",
                f"--pidfile={run / 'ovn-controller.pid'}",
                f"--log-file={run / 'ovn-controller.log'}",
                "-vconsole:off",
            ],
        )
        self._wait(self._chassis_registered, timeout, "ovn-controller to register its chassis", "controller")

    def _chassis_registered(self) -> bool:
        out = _run(
            [_which("ovn-sbctl"), f"--db={self.ovn.sb_remote}", "--bare", "--columns=name", "list", "Chassis"],
            check=False,
        )
        return self.chassis in out.split()

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.dir / f"{name}.out", "ab")
        try:
            self.procs[name] = subprocess.Popen(
                argv,
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        finally:
            log.close()

    def _wait(self, pred, timeout: float, what: str, proc: str | None = None) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not pred():
            p = self.procs.get(proc) if proc else None
            if p is not None and p.poll() is not None:
                raise SandboxError(f"{proc} exited with {p.returncode} while waiting for {what}; see {self.dir}")
            if time.monotonic() > deadline:
                raise SandboxError(f"timed out after {timeout}s waiting for {what}; see {self.dir}")
            time.sleep(0.05)

    def vsctl(self, *args: str) -> str:
        return _run([_which("ovs-vsctl"), f"--db={self.db_remote}", *args], timeout=30, env=self.env)

    # ------------------------------------------------------------------ ports
    def add_port(self, ep: Endpoint, ns_name: str | None = None, prefix: int = 24) -> str:
        """Plug ``ep`` in: a netns with one end of a veth (ep's MAC and IPs), the
        other end on br-int with ``iface-id`` = the endpoint's port name.
        IPs without a "/" get ``prefix`` (IPv4) or /64 (IPv6).  Returns the netns name."""
        self._n += 1
        ns = ns_name or f"{self.tag}-{self._n}"
        if not ns.startswith("hubt-"):
            raise ValueError(f"netns {ns!r} must start with 'hubt-'")
        host, peer = f"{self.tag}h{self._n}", f"{self.tag}p{self._n}"
        if len(host) > 15:
            raise ValueError(f"veth name {host!r} is too long")
        ip = _which("ip")
        _run([ip, "netns", "add", ns])
        self.namespaces.append(ns)
        in_sw = [ip, "netns", "exec", self.sw_ns]
        _run([*in_sw, ip, "link", "add", host, "type", "veth", "peer", "name", peer, "netns", ns])
        in_ns = [ip, "netns", "exec", ns]
        _run([*in_ns, ip, "link", "set", "lo", "up"])
        _run([*in_ns, ip, "link", "set", peer, "name", "eth0"])
        _run([*in_ns, ip, "link", "set", "eth0", "address", ep.mac or derived_mac(ep)])
        for addr in ep.ips:
            _run(
                [
                    *in_ns,
                    ip,
                    "addr",
                    "add",
                    addr if "/" in addr else f"{addr}/{64 if ':' in addr else prefix}",
                    "dev",
                    "eth0",
                ]
            )
        _run([*in_ns, ip, "link", "set", "eth0", "up"])
        _run([*in_sw, ip, "link", "set", host, "up"])
        ethtool = shutil.which("ethtool") or shutil.which("ethtool", path="/usr/sbin:/sbin")
        if ethtool:  # AF_PACKET netdev: checksums left to offload never get filled in (TCP/UDP)
            _run([*in_ns, ethtool, "-K", "eth0", "tx", "off"], check=False)
            _run([*in_sw, ethtool, "-K", host, "tx", "off"], check=False)
        name = lsp_name(ep)
        self.vsctl("add-port", "br-int", host, "--", "set", "Interface", host, f"external_ids:iface-id={name}")
        self.ports[name] = ns
        return ns

    def port_up(self, port_name: str) -> bool:
        out = self.ovn.nbctl("--format=json", "--columns=up", "find", "Logical_Switch_Port", f'name="{port_name}"')
        data = json.loads(out)["data"]
        return bool(data) and data[0][0] is True

    def wait_up(self, port_name: str, timeout: float = 20.0) -> None:
        self._wait(lambda: self.port_up(port_name), timeout, f"{port_name} up", "controller")

    def ns_run(self, ns: str, *argv: str, check: bool = True) -> str:
        """Run a command inside one of our namespaces."""
        if ns not in self.namespaces:
            raise ValueError(f"{ns} is not a namespace of this host")
        return _run([_which("ip"), "netns", "exec", ns, *argv], check=check)

    def ping(self, ns: str, dst: str, count: int = 2, wait: int = 2) -> bool:
        res = subprocess.run(
            [_which("ip"), "netns", "exec", ns, "ping", "-c", str(count), "-W", str(wait), dst],
            capture_output=True,
            text=True,
            timeout=count * wait + 10,
        )
        return res.returncode == 0

    def tcp(self, client_ns: str, server_ns: str, dst: str, port: int = 5000, timeout: float = 5.0) -> bool:
        """One TCP connection client -> server carrying a few bytes; True if they arrived.
        Needs TX checksum offload off (ethtool): otherwise the AF_PACKET netdev
        forwards segments whose checksum was never filled in and they are dropped."""
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
                [ip, "netns", "exec", client_ns, sys.executable, "-c", client],
                capture_output=True,
                timeout=timeout + 5,
            )
            out, _ = srv.communicate(timeout=timeout + 5)
            return "hub-ok" in out
        except subprocess.TimeoutExpired:
            return False
        finally:
            if srv.poll() is None:
                srv.kill()
                srv.wait(5)

    # ------------------------------------------------------------------- stop
    def stop(self) -> None:
        errors: list[str] = []
        for name in ("controller", "vswitchd", "ovsdb"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            # vswitchd runs under "ip netns exec", which execs it: the pid is ovs-vswitchd's own
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    errors.append(f"{name} pid {proc.pid} did not exit")
        errors += delete_namespaces(self.namespaces)
        try:
            self.ovn.stop()
        except Exception as exc:  # noqa: BLE001 - keep cleaning up
            errors.append(f"ovn sandbox: {exc}")
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise SandboxError("; ".join(errors))

    def __enter__(self) -> OneHostOvn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
