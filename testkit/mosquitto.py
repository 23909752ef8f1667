"""A real mosquitto on free loopback ports, from a generated config in a temp dir.

Optional password file (``mosquitto_passwd``) and a TLS listener with
``require_certificate`` and a CA / server / client certificate from
:func:`testkit.pki.make_pki`.  Stopped by its pid (``stop``/``kill``); ``restart`` keeps
the ports (persistence is off: a restart loses every retained message).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from hub.sandbox import stop_process
from testkit.pki import make_pki

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    def __init__(self, workdir: Path, users: dict[str, str] | None = None, tls: bool = False) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        self.certs = make_pki(workdir / "certs") if tls else None
        self.users = users or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = workdir / "mosquitto.conf"
        lines = ["per_listener_settings true", "persistence false", "user root", "log_dest stderr",
                 "log_type error", "log_type warning", "log_type notice",
                 f"listener {self.port} 127.0.0.1"]
        if self.users:
            pw = workdir / "passwd"
            pw.write_text("")
            for user, password in self.users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(pw), user, password], check=True, capture_output=True, timeout=30)
            pw.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines += ["allow_anonymous true"]
        if self.certs is not None:
            lines += [f"listener {self.tls_port} 127.0.0.1", "allow_anonymous true", f"cafile {self.certs.ca}",
                      f"certfile {self.certs.server_cert}", f"keyfile {self.certs.server_key}", "require_certificate true"]
        self.conf.write_text("\n".join(lines) + "\n")
        self.log = open(workdir / "mosquitto.log", "ab")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.tls_port}"

    def start(self, timeout: float = 10) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        for port in [p for p in (self.port, self.tls_port) if p]:
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"mosquitto exited {self.proc.returncode}: {self.logtext()}")
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"mosquitto not listening on {port} within {timeout}s: {self.logtext()}") from None
                    time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no clean disconnects, retained messages lost (no persistence)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def logtext(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return (self.dir / "mosquitto.log").read_text(errors="replace")

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.log.close()
