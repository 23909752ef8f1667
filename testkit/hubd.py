"""hubd as a subprocess for tests: its own config, notify socket (standing in for
systemd's NOTIFY_SOCKET) and admin API socket; stopped by its pid.

``BIN`` is the directory of the running interpreter's console scripts (``hubd``,
``hubctl``, ``lint-imports``: the venv the tests run in).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from hub.sandbox import stop_process

BIN = Path(sys.executable).parent
#: the tree this testkit is part of: hubd imports its code from here (PYTHONPATH), not from
#: wherever the venv's editable install points (another checkout, e.g. of a git worktree)
ROOT = Path(__file__).resolve().parent.parent


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return self.messages
            self.messages.extend(data.decode().split("\n"))

    def wait_for(self, line: str, timeout: float) -> float:
        """Wait until a message line starting with ``line`` arrives; returns when."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.drain()
            if any(m.startswith(line) for m in self.messages):
                return time.monotonic()
            time.sleep(0.02)
        raise AssertionError(f"no {line!r} on the notify socket within {timeout}s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


class Hubd:
    """A hubd subprocess with its own config, notify socket and API socket."""

    def __init__(self, workdir: Path, config: str, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.dir = workdir
        self.args = args  # extra hubd arguments, e.g. ("--role", "adapter")
        self.config_path = workdir / "hubd.toml"
        self.config_path.write_text(config)
        self.api = f"unix:{workdir}/api.sock"
        self.notify = NotifySocket(workdir / f"notify{time.monotonic_ns()}.sock")
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "NOTIFY_SOCKET": str(self.notify.path), "PYTHONPATH": path,
                    **(env or {})}
        self.log = open(workdir / "hubd.log", "ab")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "hubd"), "--config", str(self.config_path), *self.args],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir,
        )

    def wait_ready(self, timeout: float = 60) -> float:
        return self.notify.wait_for("READY=1", timeout)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 30)

    def logtext(self) -> str:
        self.log.flush()
        return (self.dir / "hubd.log").read_text(errors="replace")

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([str(BIN / "hubctl"), "--api", self.api, *args], capture_output=True, text=True, timeout=60)
        if check and res.returncode != 0:
            raise AssertionError(f"hubctl {args} failed ({res.returncode}): {res.stderr}")
        return res

    def close(self) -> None:
        self.stop()
        self.notify.close()
        self.log.close()
