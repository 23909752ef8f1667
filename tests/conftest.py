"""Shared fixtures, thin wrappers over testkit: real OVN databases, hubd
subprocesses, a fake Kubernetes API, a private dockerd.

Every process a test starts is a child of the test, stopped by its pid in a
finally block; temp dirs live under /tmp with short names (unix socket paths).
The helpers themselves live in testkit (hubd, nb, wait, dockerd, k8s_fake, ...).
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401 - imported (and assertion-rewritten) now, not lazily by its plugin at the end
import pytest

from hub.sandbox import OvnSandbox
from testkit.dockerd import PrivateDockerd, import_busybox
from testkit.hubd import Hubd
from testkit.k8s_fake import FakeKubeApi

ROOT = Path(__file__).resolve().parents[1]


FIXTURES_DIR = ROOT / "tests" / "fixtures"  # real payloads, each folder with its SOURCES.md; the repo's own copy


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Run pending finalizers now.  On Python 3.11.2 a collection that runs a
    finalizer inside ast.parse (pytest's assertion rewriting of a module its
    summary imports) raises "AST constructor recursion depth mismatch"."""
    gc.collect()


LAYERS = ("unit", "integration", "system")  # tests/<layer>/conftest.py marks its tests; pyproject registers them


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test belongs to exactly one layer: a module outside tests/unit,
    tests/integration and tests/system is a usage error, not a silent extra."""
    stray = [i.nodeid for i in items if sum(i.get_closest_marker(m) is not None for m in LAYERS) != 1]
    if stray:
        raise pytest.UsageError(f"tests without exactly one layer marker {LAYERS}: {stray[:5]}")


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
