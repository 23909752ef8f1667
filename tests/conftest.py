"""Shared fixtures: real OVN databases, hubd subprocesses, a notify socket.

Every process a test starts is a child of the test, stopped by its pid in a
finally block; temp dirs live under /tmp with short names (unix socket paths).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401 - imported (and assertion-rewritten) now, not lazily by its plugin at the end
import pytest

from hub.sandbox import OvnSandbox
from testkit.dockerd import PrivateDockerd, import_busybox
from testkit.k8s_fake import FakeKubeApi

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


FIXTURES_DIR = ROOT / "tests" / "fixtures"  # real payloads, each folder with its SOURCES.md; the repo's own copy


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Run pending finalizers now.  On Python 3.11.2 a collection that runs a
    finalizer inside ast.parse (pytest's assertion rewriting of a module its
    summary imports) raises "AST constructor recursion depth mismatch"."""
    gc.collect()


@pytest.fixture
def tmpdir_short() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="hub", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def ovn(tmpdir_short: Path) -> Iterator[OvnSandbox]:
    """NB (+SB) ovsdb-server without northd: rows only."""
    sb = OvnSandbox(tmpdir_short / "ovn", northd=False, sb=False)
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


def nb_rows(sb: OvnSandbox, table: str) -> list[dict[str, Any]]:
    """All rows of a table as ovn-nbctl's JSON (columns → plain values)."""
    out = json.loads(sb.nbctl("--format=json", "list", table))
    heads = out["headings"]
    return [dict(zip(heads, row, strict=True)) for row in out["data"]]


def ovs_map(value: Any) -> dict[str, str]:
    return {k: v for k, v in value[1]} if isinstance(value, list) and value[0] == "map" else {}


def ovs_set(value: Any) -> list[Any]:
    if isinstance(value, list) and value and value[0] == "set":
        return list(value[1])
    return [value]


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
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", NOTIFY_SOCKET=str(self.notify.path), **(env or {}))
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
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()

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


@pytest.fixture
def hubd_factory(tmpdir_short: Path) -> Iterator[Any]:
    made: list[Hubd] = []

    def make(config: str, env: dict[str, str] | None = None, start: bool = True) -> Hubd:
        h = Hubd(tmpdir_short, config, env)
        made.append(h)
        if start:
            h.start()
        return h

    try:
        yield make
    finally:
        for h in made:
            h.close()


async def wait_until(pred: Any, timeout: float, what: str = "condition", interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = pred()
        if asyncio.iscoroutine(res):
            res = await res
        if res:
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def sync_wait_until(pred: Any, timeout: float, what: str = "condition", interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
async def no_leaked_tasks() -> AsyncIterator[None]:
    before = set(asyncio.all_tasks())
    yield
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    assert not leaked, f"leaked tasks: {leaked}"


@pytest.fixture
async def fake() -> AsyncIterator[FakeKubeApi]:
    """An in-repo Kubernetes API server (testkit/k8s_fake.py) on loopback."""
    server = FakeKubeApi()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="module")
def dockerd() -> Iterator[PrivateDockerd]:
    """A private dockerd (testkit/dockerd.py) with busybox:hub, one per test module."""
    d = PrivateDockerd()
    try:
        d.start()
        import_busybox(d.sock)
        yield d
    finally:
        d.stop()
