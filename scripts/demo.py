"""make demo: OVN Hub in five minutes, proven by packets.

Starts, all in a temp dir and all stopped again at the end:
  * OVN on two chassis joined by a Geneve tunnel (testkit/chassis.py): NB, SB,
    ovn-northd, and per chassis an ovs-vswitchd (userspace datapath) and an
    ovn-controller in a network namespace of its own.  "demo-node" is the
    Docker host; "demo-gw" is the gateway, with a provider network and an
    outside host (172.16.0.1) on it;
  * a private dockerd with a busybox image;
  * hubd: the Docker adapter with two OVN Hub networks, "demo" and "red", and a
    policies file; a router joining every network; the external network
    "uplink" leaving from demo-gw; DNS.  And hubd --role node on demo-node,
    which plugs the --network none containers into br-int.
Then runs alpha and beta on "demo", gamma on "red", and shows by packets:
  1. alpha pings beta (same network);
  2. alpha looks gamma up by its DNS name (OVN answers at alpha's gateway) and
     pings it by that name, routed by the hub's router;
  3. alpha fetches a page from the outside host: across the tunnel to demo-gw
     and out SNATed, so the outside host sees the external address;
  4. a policy cuts beta off: the ping of step 1 is dropped;
and prints ovn-nbctl show and the policy's ACL.

Exit status 0 only if every step behaved as described.  ``--keep`` leaves it
running until Ctrl-C so you can look around.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.nb.tables.policy import deny_pg_name  # noqa: E402
from testkit.chassis import TwoChassisOvn  # noqa: E402
from testkit.dockerd import PrivateDockerd, import_busybox  # noqa: E402

BIN = Path(sys.executable).parent
BOLD, DIM, OFF = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")
NODE, GW = "demo-node", "demo-gw"  # the chassis' names (SB Chassis.name, the endpoints' node)
NETWORKS = {"demo": ("10.80.0.0/24", "10.80.0.1"), "red": ("10.81.0.0/24", "10.81.0.1")}
CONTAINERS = {"alpha": "demo", "beta": "demo", "gamma": "red"}
EXT_CIDR, EXT_IP, OUTSIDE_IP, OUTSIDE_PORT = "172.16.0.0/24", "172.16.0.10", "172.16.0.1", 8080
GAMMA_NAME = "gamma.default.docker.local.hub"  # <name>.<namespace>.<orchestrator>.<cluster>.<zone>
STEPS = (  # the demo is OK only if each of these was seen
    "alpha pings beta",
    "DNS answers gamma's address",
    "alpha pings gamma by name",
    "the outside host saw the external address",
    "through the tunnel to the gateway chassis",
    "the policy dropped alpha -> beta",
)

# The outside host's web server: answers each request with the address it came
# from, logs it, and exits by itself after argv[1] seconds whatever happens.
OUTSIDE_SERVER = """
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[1])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[2])))
s.listen(16)
s.settimeout(0.2)
print("listening", flush=True)
while time.monotonic() < deadline:
    try:
        c, peer = s.accept()
    except TimeoutError:
        continue
    with c:
        c.settimeout(2)
        try:
            c.recv(4096)
        except OSError:
            pass
        body = f"hello from the outside host: you came from {peer[0]}\\n".encode()
        head = f"HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: {len(body)}\\r\\n\\r\\n"
        c.sendall(head.encode() + body)
    print(f"outside host: a connection from {peer[0]}", flush=True)
"""


def say(text: str) -> None:
    print(f"\n{BOLD}==> {text}{OFF}", flush=True)


def show(
    argv: list[str], check: bool = False, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    print(f"{DIM}$ {' '.join(argv)}{OFF}", flush=True)
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        print(f"(no answer within {timeout:.0f}s)", flush=True)
        return subprocess.CompletedProcess(argv, 124, "", "")
    out = (res.stdout + res.stderr).rstrip()
    if out:
        print(out, flush=True)
    if check and res.returncode != 0:
        raise SystemExit(f"demo: {argv[0]} failed ({res.returncode})")
    return res


def wait(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


class Daemon:
    """A hubd subprocess that reports READY=1 on its own notify socket."""

    def __init__(self, workdir: Path, name: str, config: str, *args: str) -> None:
        self.dir = workdir / name
        self.dir.mkdir()
        (self.dir / "hubd.toml").write_text(config)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.dir / "notify.sock"))
        self.sock.settimeout(0.2)
        self.log = open(self.dir / "hubd.log", "ab")
        # PYTHONPATH: hubd runs this tree's code, also from a git worktree of the venv's checkout
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = dict(os.environ, NOTIFY_SOCKET=str(self.dir / "notify.sock"), PYTHONUNBUFFERED="1", PYTHONPATH=path)
        argv = [str(BIN / "hubd"), "--config", str(self.dir / "hubd.toml"), *args]
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"demo: hubd exited ({self.proc.returncode}); see {self.dir / 'hubd.log'}")
            try:
                if b"READY=1" in self.sock.recv(4096):
                    return
            except TimeoutError:
                pass
        raise SystemExit(f"demo: hubd not ready after {timeout:.0f}s; see {self.dir / 'hubd.log'}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.sock.close()
        self.log.close()


def configs(work: Path, nb: str, docker_url: str, policies: Path, pair: TwoChassisOvn) -> tuple[str, str]:
    """hubd's config and the node agent's."""
    common = f'[hub]\nid = "demo"\nstate_dir = "{work}"\n[ovn]\nnb = "{nb}"\n'
    hub_cfg = common + (
        f'[api]\nlisten = "unix:{work}/hubd.sock"\n'
        f'[adapters.docker]\ntype = "docker"\ncluster = "local"\nurl = "{docker_url}"\nnode = "{NODE}"\n'
        f'policies = "{policies}"\n'
    )
    for net, (subnet, gateway) in NETWORKS.items():
        hub_cfg += f'[adapters.docker.networks.{net}]\nsubnet = "{subnet}"\ngateway = "{gateway}"\n'
    hub_cfg += (
        '[routers.default]\nnetworks = ["*"]\n'
        f'[external.uplink]\nrouter = "default"\ncidr = "{EXT_CIDR}"\nip = "{EXT_IP}"\ngateway = "{OUTSIDE_IP}"\n'
        f'physnet = "physnet"\nchassis = ["{GW}"]\n'
    )
    node = pair.chassis[0]
    node_cfg = common + (
        f'[node]\ndocker = "{docker_url}"\novs = "{node.db_remote}"\nchassis = "{NODE}"\n'
        f'switch_netns = "{node.ns}"\n'
    )
    return hub_cfg, node_cfg


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # through main's finally: everything is cleaned up


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="keep everything running until Ctrl-C")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("demo: run as root (network namespaces, ovs-vswitchd, dockerd)", file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
    work = Path(tempfile.mkdtemp(prefix="ovn-hub-demo-", dir="/tmp"))
    daemons: list[Daemon] = []
    dockerd = PrivateDockerd()
    pair = TwoChassisOvn(work / "ovn", chassis_names=(NODE, GW))
    outside: subprocess.Popen[bytes] | None = None
    steps: dict[str, bool] = {}
    ok = False
    try:
        say(f"Starting OVN on two chassis joined by a Geneve tunnel: {NODE} (the Docker host) and {GW} (the gateway)")
        print("NB, SB, ovn-northd; per chassis ovs-vswitchd (userspace datapath) and ovn-controller in a netns")
        pair.start()
        say(f"Giving {GW} a provider network 'physnet' (br-ex) with an outside host {OUTSIDE_IP} on it")
        outside_ns = pair.add_outside_host(1, "physnet", f"{OUTSIDE_IP}/24")
        outside_log = work / "outside.log"
        with open(outside_log, "wb") as log:
            outside = subprocess.Popen(
                ["ip", "netns", "exec", outside_ns, sys.executable, "-c", OUTSIDE_SERVER,
                 str(86400 if args.keep else 600), str(OUTSIDE_PORT)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait(lambda: "listening" in outside_log.read_text() or outside.poll() is not None, 20, "the outside host")
        if outside.poll() is not None:
            raise SystemExit(f"demo: the outside host's server exited; see {outside_log}")
        print(f"the outside host (netns {outside_ns}) serves http://{OUTSIDE_IP}:{OUTSIDE_PORT}/")

        say("Starting a private dockerd")
        dockerd.start()
        import_busybox(dockerd.sock)
        denv = dict(os.environ, DOCKER_HOST=dockerd.url)
        nbctl = ["ovn-nbctl", f"--db={pair.nb_remote}"]
        policies = work / "policies.json"
        policies.write_text("[]\n")
        hub_cfg, node_cfg = configs(work, pair.nb_remote, dockerd.url, policies, pair)
        say("Starting hubd (Docker adapter with OVN Hub networks 'demo' and 'red', a router on every network, "
            f"the external network 'uplink' leaving from {GW}, DNS) and hubd --role node on {NODE}")  # fmt: skip
        print(hub_cfg.rstrip())
        daemons.append(Daemon(work, "hub", hub_cfg))
        daemons[-1].wait_ready()
        daemons.append(Daemon(work, "node", node_cfg, "--role", "node"))
        daemons[-1].wait_ready()

        say("Running alpha and beta on network demo, gamma on network red: --network none, labeled "
            "ovn-hub.network=<network> (OVN assigns their IPs); --dns <their gateway>")  # fmt: skip
        for name, net in CONTAINERS.items():
            show(["docker", "run", "-d", "--name", name, "--network", "none", "--label", f"ovn-hub.network={net}",
                  "--label", f"app={name}", "--dns", NETWORKS[net][1], "busybox:hub", "sleep", "3600"],
                 check=True, env=denv)  # fmt: skip

        def up(name: str) -> bool:
            out = subprocess.run(
                [*nbctl, "--format=json", "--columns=up,external_ids", "find", "Logical_Switch_Port",
                 f'external_ids:"ovn-hub:name"={name}'], capture_output=True, text=True, timeout=30,
            ).stdout  # fmt: skip
            data = json.loads(out)["data"] if out else []
            return bool(data) and data[0][0] is True

        def ip_of(name: str) -> str:
            addr = subprocess.run(["docker", "exec", name, "ip", "-o", "-4", "addr", "show", "eth0"],
                                  capture_output=True, text=True, timeout=30, env=denv).stdout  # fmt: skip
            return addr.split()[3].split("/")[0]

        def dns_record(name: str) -> str:
            out = subprocess.run([*nbctl, "--format=json", "--columns=records", "list", "DNS"],
                                 capture_output=True, text=True, timeout=30).stdout  # fmt: skip
            for row in json.loads(out)["data"] if out else []:
                records = dict(row[0][1])
                if name in records:
                    return str(records[name])
            return ""

        wait(lambda: all(up(n) for n in CONTAINERS), 60, "the containers' ports up")
        ips = {name: ip_of(name) for name in CONTAINERS}
        # OVN allocated gamma's address: the hub writes its DNS record once northd did
        wait(lambda: dns_record(GAMMA_NAME) == ips["gamma"], 30, f"the DNS record {GAMMA_NAME}")
        subprocess.run([*nbctl, "--wait=hv", "--timeout=30", "sync"], capture_output=True, timeout=60)
        show(["docker", "exec", "beta", "ip", "addr", "show", "eth0"], env=denv)
        show(["docker", "exec", "alpha", "ip", "route"], env=denv)

        say(f"1. alpha pings beta ({ips['beta']}) through OVN")
        before = show(["docker", "exec", "alpha", "ping", "-c", "3", "-W", "2", ips["beta"]], env=denv)
        steps["alpha pings beta"] = before.returncode == 0

        say(f"2. alpha looks up gamma (network red) by its DNS name: OVN answers at alpha's gateway "
            f"{NETWORKS['demo'][1]}")  # fmt: skip
        show(["docker", "exec", "alpha", "cat", "/etc/resolv.conf"], env=denv)
        res = show(["docker", "exec", "alpha", "nslookup", "-type=a", GAMMA_NAME, NETWORKS["demo"][1]],
                   env=denv, timeout=30)  # fmt: skip
        steps["DNS answers gamma's address"] = res.returncode == 0 and f"Address: {ips['gamma']}" in res.stdout
        say("   ... and pings gamma by name, routed by the hub's router between demo and red")
        # -4: an A query only (OVN 23.03 leaves the AAAA query of an IPv4-only name unanswered)
        res = show(["docker", "exec", "alpha", "ping", "-4", "-c", "3", "-W", "2", GAMMA_NAME], env=denv, timeout=60)
        steps["alpha pings gamma by name"] = res.returncode == 0 and f"({ips['gamma']})" in res.stdout

        say(f"3. alpha fetches a page from the outside host {OUTSIDE_IP}: through the Geneve tunnel to {GW}, "
            f"out of the router's gateway port SNATed to {EXT_IP}")  # fmt: skip
        pushed0, _ = pair.chassis[0].tunnel_flow_packets()
        _, popped0 = pair.chassis[1].tunnel_flow_packets()
        url = f"http://{OUTSIDE_IP}:{OUTSIDE_PORT}/"
        # no -T: this busybox's wget crashes with it (SIGSEGV); the exec's timeout bounds it
        res = show(["docker", "exec", "alpha", "wget", "-q", "-O", "-", url], env=denv, timeout=30)
        pushed = pair.chassis[0].tunnel_flow_packets()[0] - pushed0
        popped = pair.chassis[1].tunnel_flow_packets()[1] - popped0
        seen = [line for line in outside_log.read_text().splitlines() if "connection from" in line]
        print("\n".join(seen[-1:]))
        print(f"Geneve: {NODE}'s datapath encapsulated {pushed} packets, {GW}'s decapsulated {popped}")
        steps["the outside host saw the external address"] = (
            f"you came from {EXT_IP}" in res.stdout and bool(seen) and seen[-1].endswith(EXT_IP)
        )
        steps["through the tunnel to the gateway chassis"] = pushed > 0 and popped > 0

        say("4. Applying a policy: beta accepts no incoming traffic (default deny ingress for app=beta)")
        pol = [{"uid": "isolate-beta", "namespace": "default", "name": "isolate-beta",
                "pod_selector": {"match_labels": {"app": "beta"}}, "ingress": []}]  # fmt: skip
        policies.write_text(json.dumps(pol, indent=2) + "\n")
        print(policies.read_text().rstrip())

        def has_acl() -> bool:
            out = subprocess.run([*nbctl, "--bare", "--columns=_uuid", "list", "ACL"], capture_output=True,
                                 text=True, timeout=30).stdout  # fmt: skip
            return bool(out.strip())

        wait(has_acl, 30, "the policy's ACLs in NB")
        subprocess.run([*nbctl, "--wait=hv", "--timeout=30", "sync"], capture_output=True, timeout=60)

        say("   alpha pings beta again: dropped by OVN")
        after = show(["docker", "exec", "alpha", "ping", "-c", "3", "-W", "1", ips["beta"]], env=denv)

        say("What hubd wrote to OVN Northbound")
        show([*nbctl, "show"])
        show([*nbctl, "acl-list", deny_pg_name("docker/local", "in")])
        # the drop is the policy's doing: beta is still plugged and up, and in the deny group
        deny = deny_pg_name("docker/local", "in")
        members = subprocess.run([*nbctl, "--bare", "--columns=ports", "find", "Port_Group", f"name={deny}"],
                                 capture_output=True, text=True, timeout=30).stdout.split()  # fmt: skip
        beta_uuid = subprocess.run(
            [*nbctl, "--bare", "--columns=_uuid", "find", "Logical_Switch_Port", 'external_ids:"ovn-hub:name"=beta'],
            capture_output=True, text=True, timeout=30,
        ).stdout.strip()  # fmt: skip
        in_group = bool(beta_uuid) and beta_uuid in members
        print(f"beta's port is up: {up('beta')}; in {deny}: {in_group}")
        steps["the policy dropped alpha -> beta"] = after.returncode != 0 and up("beta") and in_group

        say("Summary")
        for what, passed in steps.items():
            print(f"  {'ok  ' if passed else 'FAIL'}  {what}")
        ok = set(steps) == set(STEPS) and all(steps.values())
        say(
            "Demo OK: same network, by DNS name across networks, out through SNAT; then the policy dropped the ping"
            if ok
            else "Demo FAILED: " + ", ".join(w for w, p in steps.items() if not p)
        )
        if args.keep:
            say("Everything keeps running; Ctrl-C to stop. Try:")
            print(f"  export DOCKER_HOST={dockerd.url}\n  {' '.join(nbctl)} show\n"
                  f"  docker exec -it alpha sh   (nslookup -type=a {GAMMA_NAME} {NETWORKS['demo'][1]}; wget -qO- {url})\n"
                  f"  {BIN / 'hubctl'} --api unix:{work}/hubd.sock endpoints\n"
                  f"  edit {policies}  (hubd re-reads it)\n  logs: {work}/hub/hubd.log {work}/node/hubd.log")  # fmt: skip
            signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # cleanup is bounded: let it finish
            signal.signal(sig, signal.SIG_IGN)
        say("Cleaning up")

        def rm_containers() -> None:
            subprocess.run(["docker", "-H", dockerd.url, "rm", "-f", *CONTAINERS], capture_output=True, timeout=60)
            # let the node agent unplug them before it is stopped: a SIGTERM in the middle of its
            # Open_vSwitch transaction costs its shutdown 15 s (ovsdbapp's timeout, hub/node.py)
            node = pair.chassis[0]
            if len(daemons) == 2 and daemons[1].proc.poll() is None:
                plugged = ("--bare", "--columns=name", "find", "Interface", 'external_ids:"ovn-hub:owner"=demo')
                deadline = time.monotonic() + 10
                while node.vsctl(*plugged).strip() and time.monotonic() < deadline:
                    time.sleep(0.05)

        def stop_outside() -> None:
            if outside is not None:  # ip netns exec execs: the pid is the server's own
                if outside.poll() is None:
                    outside.kill()
                outside.wait(10)

        steps_down = [
            ("containers", rm_containers),
            *((f"hubd {d.dir.name}", d.stop) for d in reversed(daemons)),
            ("dockerd", dockerd.stop),
            ("the outside host's server", stop_outside),
            ("OVN and the chassis' namespaces", pair.stop),
        ]
        for what, step in steps_down:  # each one, whatever the one before did
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - report it, and go on cleaning up
                ok = False
                print(f"demo: cleaning up {what} failed: {exc}", file=sys.stderr)
        if ok:
            subprocess.run(["rm", "-rf", str(work)], check=False)
        else:
            print(f"logs kept in {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
