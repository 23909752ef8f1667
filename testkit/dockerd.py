"""A private, throw-away dockerd for integration tests (not a test module).

Usage::

    d = PrivateDockerd()
    d.start()                      # waits until /_ping answers on d.sock
    try:
        image = import_busybox(d.sock)   # "busybox:hub", no registry needed
        ...  # aiodocker.Docker(url=d.url)
        d.restart()                # same data root: containers/networks survive
    finally:
        d.stop()                   # SIGTERM its pid only, SIGKILL after a timeout, unmount + rm -rf

Everything lives under one short ``/tmp/hubdkXXXX`` directory (unix socket
paths are limited to 108 bytes).  The daemon gets an empty ``--config-file``
so the machine's ``/etc/docker/daemon.json`` is ignored, and runs with
``--iptables=false --ip-masq=false --bridge=none --ip-forward=false`` so it
does not touch the host's firewall or default bridge.  Only processes this
object started are ever signalled.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Self

DOCKERD = "/usr/sbin/dockerd"
BUSYBOX = "/bin/busybox"
BUSYBOX_IMAGE = "busybox:hub"
BUSYBOX_APPLETS = ("sh", "sleep", "ping", "nc", "httpd", "ip", "cat", "nslookup", "wget")


class DockerdError(RuntimeError):
    pass


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, sock_path: str, timeout: float = 10.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.sock_path = sock_path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.sock_path)
        except OSError:
            s.close()
            raise
        self.sock = s


def docker_request(
    sock: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[int, bytes]:
    """One plain HTTP request to the Engine API over a unix socket."""
    conn = _UnixHTTPConnection(sock, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _ping(sock: str) -> bool:
    try:
        status, body = docker_request(sock, "GET", "/_ping", timeout=2.0)
    except OSError:
        return False
    return status == 200 and body.strip() == b"OK"


class PrivateDockerd:
    """One dockerd (and the containerd it manages) owned by a test session."""

    def __init__(
        self,
        *,
        dockerd: str = DOCKERD,
        start_timeout: float = 60.0,
        stop_timeout: float = 30.0,
        shutdown_timeout: int = 2,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.dockerd = dockerd
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.shutdown_timeout = shutdown_timeout
        self.extra_args = extra_args
        self.tmp = tempfile.mkdtemp(prefix="hubdk", dir="/tmp")
        self.sock = os.path.join(self.tmp, "docker.sock")
        self.url = f"unix://{self.sock}"
        self.data_root = os.path.join(self.tmp, "data")
        self.exec_root = os.path.join(self.tmp, "exec")
        self.pidfile = os.path.join(self.tmp, "dockerd.pid")
        self.config_file = os.path.join(self.tmp, "daemon.json")
        self.log_path = os.path.join(self.tmp, "dockerd.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self._cleaned = False
        Path(self.config_file).write_text("{}\n")

    # ------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def command(self) -> list[str]:
        return [
            self.dockerd,
            "--host", self.url,
            "--data-root", self.data_root,
            "--exec-root", self.exec_root,
            "--pidfile", self.pidfile,
            "--config-file", self.config_file,
            "--iptables=false",
            "--ip-masq=false",
            "--ip-forward=false",
            "--bridge=none",
            "--shutdown-timeout", str(self.shutdown_timeout),
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> None:
        """Start dockerd and wait until ``/_ping`` answers on the socket."""
        if self._cleaned:
            raise DockerdError("this PrivateDockerd was stopped and cleaned up; make a new one")
        if self.running:
            return
        log = open(self.log_path, "ab")  # handed to the child, closed right after Popen
        try:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: SIGKILL fallback hits only our tree
            )
        finally:
            log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DockerdError(f"dockerd exited with {self.proc.returncode}:\n{self.log_tail()}")
            if _ping(self.sock):
                return
            time.sleep(0.1)
        self._terminate()
        raise DockerdError(f"dockerd did not answer /_ping within {self.start_timeout}s:\n{self.log_tail()}")

    def _terminate(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                # Our own process group (start_new_session): dockerd and the
                # containerd it spawned; nothing else is in it.
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        else:
            proc.wait()
        self.proc = None
        self._kill_leftover_containerd()

    def _kill_leftover_containerd(self) -> None:
        """containerd started by *this* dockerd writes its pid under our exec root."""
        pidfile = Path(self.exec_root, "containerd", "containerd.pid")
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return
        if b"containerd" not in cmdline or self.exec_root.encode() not in cmdline:
            return  # pid reused by something else; never touch it
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not Path(f"/proc/{pid}").exists():
                    return
                time.sleep(0.05)

    def restart(self) -> None:
        """Stop (SIGTERM) and start again on the same data root and socket."""
        self._terminate()
        self.start()

    def stop(self, *, cleanup: bool = True) -> None:
        """Stop the daemon; with ``cleanup`` also unmount and delete everything."""
        try:
            self._terminate()
        finally:
            if cleanup and not self._cleaned:
                self._cleaned = True
                self._cleanup()

    def _cleanup(self) -> None:
        for mp in self._mounts_under(self.tmp):
            subprocess.run(["umount", "-l", mp], check=False, capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    @staticmethod
    def _mounts_under(root: str) -> list[str]:
        prefix = root.rstrip("/") + "/"
        out: list[str] = []
        try:
            lines = Path("/proc/self/mountinfo").read_text().splitlines()
        except OSError:
            return out
        for line in lines:
            fields = line.split()
            if len(fields) < 5:
                continue
            mp = fields[4].replace("\\040", " ")
            if mp == root or mp.startswith(prefix):
                out.append(mp)
        # deepest first
        return sorted(set(out), key=lambda p: p.count("/"), reverse=True)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------- image
def busybox_rootfs_tar(busybox: str = BUSYBOX, applets: tuple[str, ...] = BUSYBOX_APPLETS) -> bytes:
    """A minimal rootfs: /bin/busybox (static) plus applet symlinks."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "var", "www"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        data = Path(busybox).read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size = len(data)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(data))
        for name in applets:
            link = tarfile.TarInfo(f"bin/{name}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            link.mode = 0o777
            tar.addfile(link)
    return buf.getvalue()


def import_busybox(sock: str, repo: str = "busybox", tag: str = "hub") -> str:
    """``docker import`` a busybox rootfs into the daemon at ``sock``; returns ``repo:tag``."""
    body = busybox_rootfs_tar()
    status, out = docker_request(
        sock,
        "POST",
        f"/images/create?fromSrc=-&repo={repo}&tag={tag}",
        body=body,
        headers={"Content-Type": "application/x-tar", "Content-Length": str(len(body))},
        timeout=120.0,
    )
    if status != 200:
        raise DockerdError(f"image import failed: HTTP {status}: {out[:500]!r}")
    for line in out.splitlines():
        try:
            msg: Any = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict) and ("error" in msg or "errorDetail" in msg):
            raise DockerdError(f"image import failed: {msg}")
    return f"{repo}:{tag}"


def docker(d: PrivateDockerd, *args: str, check: bool = True) -> str:
    """The docker CLI against ``d``; AssertionError (with its stderr) if it fails and ``check``."""
    res = subprocess.run(["docker", "-H", d.url, *args], capture_output=True, text=True, timeout=120)
    if check and res.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {res.stderr}")
    return res.stdout.strip()
