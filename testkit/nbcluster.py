"""OVN Northbound as production runs it: a 3-member RAFT cluster, or one server over SSL.

:class:`NbCluster` creates the cluster with ``ovsdb-tool create-cluster`` /
``join-cluster`` and runs one ``ovsdb-server`` per member on loopback: the raft
port and the client port (``ptcp:`` or, with a :class:`~testkit.pki.Pki`,
``pssl:``) of each are free ports picked here.  Every member also listens on a
unix socket of its own (``ovn-nbctl`` and the tests read through it).  Members
can be killed, restarted and asked who leads (``cluster/status``), and the
leader can be made to hand leadership over, as OVS's RAFT does before every
snapshot it writes (:meth:`NbCluster.transfer_leadership`).

Everything lives in a directory the test owns; :meth:`NbCluster.stop` signals
only the pids it started.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from hub.sandbox import SCHEMA_DIR, SandboxError, _which, stop_process
from testkit.pki import Pki

DB = "OVN_Northbound"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class NbCluster:
    def __init__(self, directory: Path, *, members: int = 3, pki: Pki | None = None) -> None:
        self.dir = directory
        self.n = members
        self.pki = pki
        self.raft_ports = [free_port() for _ in range(members)]
        self.client_ports = [free_port() for _ in range(members)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    # ------------------------------------------------------------ addresses
    def remote(self, i: int) -> str:
        return f"{'ssl' if self.pki else 'tcp'}:127.0.0.1:{self.client_ports[i]}"

    @property
    def remotes(self) -> str:
        """Every member, comma-separated (``ovn.nb``)."""
        return ",".join(self.remote(i) for i in range(self.n))

    def sock(self, i: int) -> Path:
        return self.dir / f"nb{i}.sock"

    def unix(self, i: int) -> str:
        return f"unix:{self.sock(i)}"

    def ctl(self, i: int) -> Path:
        return self.dir / f"nb{i}.ctl"

    # ------------------------------------------------------------ life
    def start(self, timeout: float = 30.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tool = _which("ovsdb-tool")
        schema = str(SCHEMA_DIR / "ovn-nb.ovsschema")
        for i in range(self.n):
            db = self.dir / f"nb{i}.db"
            if db.exists():
                continue
            local = f"tcp:127.0.0.1:{self.raft_ports[i]}"
            if i == 0:
                subprocess.run([tool, "create-cluster", str(db), schema, local], check=True)
            else:
                subprocess.run([tool, "join-cluster", str(db), DB, local, f"tcp:127.0.0.1:{self.raft_ports[0]}"],
                               check=True)  # fmt: skip
        try:
            for i in range(self.n):
                self.start_member(i, wait=False)
            self.wait_leader(timeout)
        except BaseException:
            self.stop()
            raise

    def start_member(self, i: int, *, wait: bool = True, timeout: float = 60.0) -> None:
        argv = [
            _which("ovsdb-server"), str(self.dir / f"nb{i}.db"),
            f"--remote=punix:{self.sock(i)}", f"--unixctl={self.ctl(i)}",
            f"--log-file={self.dir / f'nb{i}.log'}", "-vconsole:off", "-vfile:raft:dbg",
        ]  # fmt: skip
        if self.pki is not None:
            argv += [
                f"--remote=pssl:{self.client_ports[i]}:127.0.0.1",
                f"--private-key={self.pki.server_key}", f"--certificate={self.pki.server_cert}",
                f"--ca-cert={self.pki.ca}",
            ]  # fmt: skip
        else:
            argv.append(f"--remote=ptcp:{self.client_ports[i]}:127.0.0.1")
        self.sock(i).unlink(missing_ok=True)
        self.procs[i] = subprocess.Popen(argv, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self.sock(i).exists():
            if self.procs[i].poll() is not None:
                raise SandboxError(f"NB member {i} exited with {self.procs[i].returncode}; see {self.dir}/nb{i}.log")
            if time.monotonic() > deadline:
                raise SandboxError(f"NB member {i} did not listen within {timeout}s")
            time.sleep(0.02)
        if wait:
            self.wait_leader(timeout)

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(i, None)
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(10)

    def stop(self) -> None:
        for i in list(self.procs):
            stop_process(self.procs.pop(i))

    # ------------------------------------------------------------ the cluster
    def appctl(self, i: int, *args: str, timeout: float = 10.0) -> str:
        res = subprocess.run([_which("ovs-appctl"), "-t", str(self.ctl(i)), *args], capture_output=True, text=True,
                             timeout=timeout)  # fmt: skip
        if res.returncode != 0:
            raise SandboxError(f"ovs-appctl {' '.join(args)} on member {i}: {res.stderr.strip()}")
        return res.stdout

    def role(self, i: int) -> str:
        """``leader``, ``follower`` or ``candidate`` (``""`` if the member does not answer)."""
        if i not in self.procs:
            return ""
        try:
            out = self.appctl(i, "cluster/status", DB, timeout=5.0)
        except (SandboxError, subprocess.TimeoutExpired):
            return ""
        for line in out.splitlines():
            if line.startswith("Role:"):
                return line.split(":", 1)[1].strip()
        return ""

    def leader(self) -> int | None:
        leaders = [i for i in self.procs if self.role(i) == "leader"]
        return leaders[0] if len(leaders) == 1 else None

    def wait_leader(self, timeout: float = 60.0, *, not_: int | None = None) -> int:
        """The member that leads (once every running member agrees there is one)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lead = self.leader()
            if lead is not None and lead != not_ and all(self.role(i) in ("leader", "follower") for i in self.procs):
                return lead
            time.sleep(0.1)
        raise SandboxError(f"no NB cluster leader within {timeout}s: {[self.role(i) for i in range(self.n)]}")

    def transfer_leadership(self, timeout: float = 30.0) -> tuple[int, int]:
        """Make the leader hand leadership over, as it does before writing a
        snapshot (``raft_transfer_leadership``; a manual ``ovsdb-server/compact``
        does not, so the test hook of the same code path is used).  Returns
        (old leader, new leader)."""
        old = self.wait_leader(timeout)
        for attempt in range(3):  # a transfer to a member that is behind is refused: ask again
            self.appctl(old, "cluster/failure-test", "transfer-leadership")
            try:
                return old, self.wait_leader(timeout / 3, not_=old)
            except SandboxError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def nbctl(self, *args: str, member: int | None = None) -> str:
        i = member if member is not None else self.wait_leader()
        res = subprocess.run([_which("ovn-nbctl"), f"--db={self.unix(i)}", *args], capture_output=True, text=True,
                             timeout=60)  # fmt: skip
        if res.returncode != 0:
            raise SandboxError(f"ovn-nbctl {' '.join(args)} failed: {res.stderr.strip()}")
        return res.stdout
