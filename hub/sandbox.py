"""A private OVN control plane (NB + SB ovsdb-server, ovn-northd) in a state dir.

``hubd --sandbox`` uses it to try the hub on one machine; the tests and
benchmarks use the same class.  Everything runs from the Debian binaries, on
unix sockets inside ``state_dir``, as children of this process; ``stop`` signals
only the pids it started.  The databases survive a stop, so a restarted hub
finds what it programmed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

SCHEMA_DIR = Path(os.environ.get("OVN_SCHEMA_DIR", "/usr/share/ovn"))


class SandboxError(RuntimeError):
    pass


def stop_process(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM, ``grace`` seconds to exit, then SIGKILL; reaped either way (a process already gone: nothing)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace)


def _which(binary: str) -> str:
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        raise SandboxError(f"{binary} not found: install the Debian packages ovn-central and openvswitch-switch")
    return path


class OvnSandbox:
    def __init__(self, state_dir: str | Path, *, northd: bool = True, sb: bool = True) -> None:
        self.dir = Path(state_dir)
        self.northd = northd
        self.sb = sb or northd
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def nb_sock(self) -> Path:
        return self.dir / "nb.sock"

    @property
    def sb_sock(self) -> Path:
        return self.dir / "sb.sock"

    @property
    def nb_remote(self) -> str:
        return f"unix:{self.nb_sock}"

    @property
    def sb_remote(self) -> str:
        return f"unix:{self.sb_sock}"

    def start(self, timeout: float = 20.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if len(str(self.nb_sock)) > 100:
            raise SandboxError(f"state dir {self.dir} is too long for a unix socket path")
        try:
            self._db("nb", "ovn-nb.ovsschema", timeout)
            if self.sb:
                self._db("sb", "ovn-sb.ovsschema", timeout)
            if self.northd:
                self._spawn(
                    "northd",
                    [
                        _which("ovn-northd"),
                        f"--ovnnb-db={self.nb_remote}",
                        f"--ovnsb-db={self.sb_remote}",
                        f"--unixctl={self.dir / 'northd.ctl'}",
                        f"--log-file={self.dir / 'northd.log'}",
                        "-vconsole:off",
                    ],
                )
        except BaseException:
            self.stop()
            raise

    def _db(self, name: str, schema: str, timeout: float) -> None:
        db = self.dir / f"{name}.db"
        schema_path = SCHEMA_DIR / schema
        if not db.exists():
            subprocess.run([_which("ovsdb-tool"), "create", str(db), str(schema_path)], check=True)
        else:
            res = subprocess.run(
                [_which("ovsdb-tool"), "needs-conversion", str(db), str(schema_path)], capture_output=True, text=True
            )
            if res.stdout.strip() == "yes":
                subprocess.run([_which("ovsdb-tool"), "convert", str(db), str(schema_path)], check=True)
        sock = self.dir / f"{name}.sock"
        sock.unlink(missing_ok=True)
        self._spawn(
            name,
            [
                _which("ovsdb-server"),
                str(db),
                f"--remote=punix:{sock}",
                f"--unixctl={self.dir / f'{name}.ctl'}",
                f"--log-file={self.dir / f'{name}.log'}",
                "-vconsole:off",
            ],
        )
        deadline = time.monotonic() + timeout
        while not sock.exists():
            proc = self.procs[name]
            if proc.poll() is not None:
                raise SandboxError(f"ovsdb-server for {name} exited with {proc.returncode}; see {self.dir}/{name}.log")
            if time.monotonic() > deadline:
                raise SandboxError(f"ovsdb-server for {name} did not create {sock} in {timeout}s")
            time.sleep(0.02)

    def _spawn(self, name: str, argv: list[str]) -> None:
        # A session of their own: Ctrl-C on `make run` reaches hubd only, which drains its NB
        # writes into a still running sandbox and then stops it (stop() below).
        self.procs[name] = subprocess.Popen(
            argv, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one of our children (for fault tests)."""
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(10)

    def restart(self, name: str) -> None:
        self.kill(name, signal.SIGTERM)
        if name in ("nb", "sb"):
            self._db(name, f"ovn-{name}.ovsschema", 20.0)

    def stop(self) -> None:
        for name in ("northd", "sb", "nb"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                stop_process(proc)

    def nbctl(self, *args: str) -> str:
        """Run ovn-nbctl against this NB; returns stdout."""
        res = subprocess.run(
            [_which("ovn-nbctl"), f"--db={self.nb_remote}", *args], capture_output=True, text=True, timeout=60
        )
        if res.returncode != 0:
            raise SandboxError(f"ovn-nbctl {' '.join(args)} failed: {res.stderr.strip()}")
        return res.stdout

    def __enter__(self) -> OvnSandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
