"""make demo: OVN Hub in five minutes, proven by packets.

Starts, all in a temp dir and all stopped again at the end:
  * a one-host OVN (NB, SB, ovn-northd, ovs-vswitchd with the userspace
    datapath inside a private network namespace, ovn-controller);
  * a private dockerd with a busybox image;
  * hubd (Docker adapter with an OVN Hub network "demo" and a policies file)
    and hubd --role node (plugs --network none containers into br-int).
Then runs two containers, shows them pinging through OVN, writes a policy
that cuts them off, shows the drop, and prints ovn-nbctl show.

Exit status 0 only if everything behaved as described.  ``--keep`` leaves it
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
from testkit.dataplane import OneHostOvn  # noqa: E402
from testkit.dockerd import PrivateDockerd, import_busybox  # noqa: E402

BIN = Path(sys.executable).parent
BOLD, DIM, OFF = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def say(text: str) -> None:
    print(f"\n{BOLD}==> {text}{OFF}", flush=True)


def show(argv: list[str], check: bool = False, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    print(f"{DIM}$ {' '.join(argv)}{OFF}", flush=True)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
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
        env = dict(os.environ, NOTIFY_SOCKET=str(self.dir / "notify.sock"), PYTHONUNBUFFERED="1")
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="keep everything running until Ctrl-C")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("demo: run as root (network namespaces, ovs-vswitchd, dockerd)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="ovn-hub-demo-", dir="/tmp"))
    daemons: list[Daemon] = []
    dockerd = PrivateDockerd()
    host = OneHostOvn(work / "ovn", chassis="demo-node")
    ok = False
    try:
        say("Starting a one-host OVN (NB, SB, northd, ovs-vswitchd netdev, ovn-controller) and a private dockerd")
        host.start()
        dockerd.start()
        import_busybox(dockerd.sock)
        denv = dict(os.environ, DOCKER_HOST=dockerd.url)
        nbctl = ["ovn-nbctl", f"--db={host.ovn.nb_remote}"]
        policies = work / "policies.json"
        policies.write_text("[]\n")
        common = f'[hub]\nid = "demo"\nstate_dir = "{work}"\n[ovn]\nnb = "{host.ovn.nb_remote}"\n'
        hub_cfg = common + (
            f'[api]\nlisten = "unix:{work}/hubd.sock"\n'
            f'[adapters.docker]\ntype = "docker"\ncluster = "local"\nurl = "{dockerd.url}"\nnode = "demo-node"\n'
            f'policies = "{policies}"\n'
            '[adapters.docker.networks.demo]\nsubnet = "10.80.0.0/24"\ngateway = "10.80.0.1"\n'
        )
        node_cfg = common + (
            f'[node]\ndocker = "{dockerd.url}"\novs = "{host.db_remote}"\nchassis = "demo-node"\n'
            f'switch_netns = "{host.sw_ns}"\n'
        )
        say("Starting hubd (Docker adapter, OVN Hub network 'demo' 10.80.0.0/24) and hubd --role node")
        print(hub_cfg.rstrip())
        daemons.append(Daemon(work, "hub", hub_cfg))
        daemons[-1].wait_ready()
        daemons.append(Daemon(work, "node", node_cfg, "--role", "node"))
        daemons[-1].wait_ready()

        say("Running two containers with --network none, labeled ovn-hub.network=demo (OVN assigns their IPs)")
        for name in ("alpha", "beta"):
            show(["docker", "run", "-d", "--name", name, "--network", "none", "--label", "ovn-hub.network=demo",
                  "--label", f"app={name}", "busybox:hub", "sleep", "3600"], check=True, env=denv)  # fmt: skip

        def up(name: str) -> bool:
            out = subprocess.run(
                [*nbctl, "--format=json", "--columns=up,external_ids", "find", "Logical_Switch_Port",
                 f'external_ids:"ovn-hub:name"={name}'], capture_output=True, text=True, timeout=30,
            ).stdout  # fmt: skip
            data = json.loads(out)["data"] if out else []
            return bool(data) and data[0][0] is True

        wait(lambda: up("alpha") and up("beta"), 60, "both ports up")
        addr = subprocess.run(["docker", "exec", "beta", "ip", "-o", "-4", "addr", "show", "eth0"],
                              capture_output=True, text=True, timeout=30, env=denv).stdout  # fmt: skip
        beta_ip = addr.split()[3].split("/")[0]
        show(["docker", "exec", "beta", "ip", "addr", "show", "eth0"], env=denv)
        show(["docker", "exec", "beta", "ip", "route"], env=denv)

        say(f"alpha pings beta ({beta_ip}) through OVN")
        before = show(["docker", "exec", "alpha", "ping", "-c", "3", "-W", "2", beta_ip], env=denv)

        say("Applying a policy: beta accepts no incoming traffic (default deny ingress for app=beta)")
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

        say("alpha pings beta again: dropped by OVN")
        after = show(["docker", "exec", "alpha", "ping", "-c", "3", "-W", "1", beta_ip], env=denv)

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
        ok = before.returncode == 0 and after.returncode != 0 and up("beta") and in_group
        say(
            "Demo OK: ping passed, then the policy dropped it"
            if ok
            else f"Demo FAILED: ping before policy rc={before.returncode}, after rc={after.returncode}"
        )
        if args.keep:
            say("Everything keeps running; Ctrl-C to stop. Try:")
            print(f"  export DOCKER_HOST={dockerd.url}\n  {' '.join(nbctl)} show\n"
                  f"  {BIN / 'hubctl'} --api unix:{work}/hubd.sock endpoints\n"
                  f"  edit {policies}  (hubd re-reads it)\n  logs: {work}/hub/hubd.log {work}/node/hubd.log")  # fmt: skip
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
    finally:
        say("Cleaning up")
        subprocess.run(["docker", "-H", dockerd.url, "rm", "-f", "alpha", "beta"], capture_output=True, timeout=60)
        for d in reversed(daemons):
            d.stop()
        dockerd.stop()
        host.stop()
        if ok:
            subprocess.run(["rm", "-rf", str(work)], check=False)
        else:
            print(f"logs kept in {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
