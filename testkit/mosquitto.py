"""A real mosquitto on free loopback ports, from a generated config in a temp dir.

Optional password file (``mosquitto_passwd``) and a TLS listener with
``require_certificate`` and a CA / server / client certificate generated here
(``cryptography``).  Stopped by its pid (``stop``/``kill``); ``restart`` keeps
the ports (persistence is off: a restart loses every retained message).
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import subprocess
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    path.chmod(0o600)
    return key


def _cert(path: Path, cn: str, key: ec.EllipticCurvePrivateKey, issuer_key: ec.EllipticCurvePrivateKey,
          issuer: x509.Name | None, ca: bool = False, server: bool = False) -> x509.Name:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    if server:
        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                         x509.DNSName("localhost")]), critical=False)
    path.write_bytes(b.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return name


class Certs:
    """ca.pem, server.pem/server.key (SAN 127.0.0.1), client.pem/client.key, all signed by the CA."""

    def __init__(self, d: Path) -> None:
        d.mkdir(parents=True, exist_ok=True)
        self.ca, self.server, self.server_key = d / "ca.pem", d / "server.pem", d / "server.key"
        self.client, self.client_key = d / "client.pem", d / "client.key"
        ca_key = _key(d / "ca.key")
        ca_name = _cert(self.ca, "ovn-hub test CA", ca_key, ca_key, None, ca=True)
        _cert(self.server, "localhost", _key(self.server_key), ca_key, ca_name, server=True)
        _cert(self.client, "hubd", _key(self.client_key), ca_key, ca_name)


class Mosquitto:
    def __init__(self, workdir: Path, users: dict[str, str] | None = None, tls: bool = False) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        self.certs = Certs(workdir / "certs") if tls else None
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
                      f"certfile {self.certs.server}", f"keyfile {self.certs.server_key}", "require_certificate true"]
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
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

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
