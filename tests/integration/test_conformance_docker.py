"""The Docker adapter passes the conformance kit against a REAL private dockerd
(testkit/dockerd.py, the module-scoped ``dockerd`` fixture of conftest), reached
through a testkit.proxy.BreakableProxy on a unix socket (broken = the adapter's
connections aborted and refused; the docker CLI still talks to dockerd directly).

The orchestrator's objects are busybox containers in wrapper mode (``--network
none`` labelled for the adapter's OVN Hub network ``kitnet``: the adapter's
default configuration maps them, and a container on a network of Docker's own
bridge driver it does not): change = ``docker rename`` (the endpoint's name),
touch = ``docker kill -s WINCH`` (a ``kill`` event the adapter re-inspects;
nothing canonical changes), bad = a ``--network none`` container labelled for
an OVN Hub network the adapter does not have (rejected as ``unknown-network``)."""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.adapter import Adapter, AdapterFactory, AdapterSpec
from testkit.conformance import (
    AdapterConformance,
    FakeOrchestrator,
    Timeouts,
    check_relist,
    entry_point_factory,
    run_check,
)
from testkit.dockerd import PrivateDockerd, docker
from testkit.proxy import BreakableProxy
from tests.conftest import FIXTURES_DIR

DOCKER_FIXTURES = FIXTURES_DIR / "docker"
IMAGE = "busybox:hub"


KIT_SUBNET = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}.0/24"
_SINCE = re.compile(rb"([?&]since=)[0-9.]+")


class EventRepeater:
    """A filter for dockerd's ``GET /events`` answer (HTTP head, then one chunk per
    event): every event chunk goes out twice, and two events that arrive together
    go out swapped (the daemon's order is per container anyway; the adapter
    re-inspects on each)."""

    def __init__(self) -> None:
        self.buf = b""
        self.head = False
        self.repeated = 0

    def __call__(self, data: bytes) -> bytes:
        self.buf += data
        out = bytearray()
        if not self.head:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return b""
            out += self.buf[: end + 4]
            self.buf, self.head = self.buf[end + 4 :], True
        events: list[bytes] = []
        while (nl := self.buf.find(b"\r\n")) >= 0:
            size = int(self.buf[:nl].split(b";")[0], 16)
            end = nl + 2 + size + 2
            if len(self.buf) < end:
                break
            chunk, self.buf = self.buf[:end], self.buf[end:]
            if size == 0:  # the last chunk: what is pending, then the end
                out += b"".join(e + e for e in reversed(events)) + chunk
                events = []
                continue
            events.append(chunk)
        self.repeated += len(events)
        out += b"".join(e + e for e in reversed(events))
        return bytes(out)


@pytest.fixture(scope="module")
def kitnet() -> Iterator[str]:
    """The adapter's OVN Hub network (it exists only in OVN: nothing to create in Docker)."""
    yield "kitnet"


class DockerEngine:
    def __init__(self, dockerd: PrivateDockerd, network: str) -> None:
        self.d = dockerd
        self.network = network
        self.dir = Path(f"/tmp/hubkit{uuid.uuid4().hex[:10]}")  # made by start(): spec() alone leaves nothing behind
        self.proxy = BreakableProxy(f"unix:{dockerd.sock}", listen=f"unix:{self.dir}/docker.sock")
        self.ids: dict[str, str] = {}
        self.prefix = f"k{random.randrange(16**6):06x}"
        self.rewritten = 0
        self.repeaters: list[EventRepeater] = []

    async def _docker(self, *args: str) -> str:
        return await asyncio.to_thread(docker, self.d, *args)

    def _name(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    async def start(self) -> None:
        self.dir.mkdir(mode=0o700)
        await self.proxy.start()

    async def stop(self) -> None:
        try:
            await self.proxy.stop()
            if self.ids:
                await asyncio.to_thread(
                    subprocess.run,
                    ["docker", "-H", self.d.url, "rm", "-f", *self.ids.values()],
                    capture_output=True,
                    timeout=120,
                )
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def spec(self) -> AdapterSpec:
        options = {
            "url": f"unix://{self.proxy.address[5:]}", "networks": {self.network: {"subnet": KIT_SUBNET}},
            "request_timeout": 1.0, "stream_idle_timeout": 0.5,  # a daemon that never answers is left quickly
        }  # fmt: skip
        return AdapterSpec(name="docker", type="docker", cluster="kit", options=options)

    async def _run(self, name: str, *args: str) -> None:
        cid = await self._docker("run", "-d", "--init", "--name", self._name(name), *args, IMAGE, "sleep", "3600")
        self.ids[name] = cid

    async def add(self, name: str) -> None:
        await self._run(name, "--network", "none", "--label", f"ovn-hub.network={self.network}")

    async def change(self, name: str) -> None:
        await self._docker("rename", self.ids[name], self._name(name) + "-renamed")

    async def touch(self, name: str) -> None:
        await self._docker("kill", "--signal", "WINCH", self.ids[name])

    async def remove(self, name: str) -> None:
        await self._docker("rm", "-f", self.ids.pop(name))

    async def add_bad(self, name: str) -> None:
        await self._run(name, "--network", "none", "--label", "ovn-hub.network=nowhere")

    async def break_connection(self) -> None:
        await self.proxy.break_connection()

    async def restore_connection(self) -> None:
        await self.proxy.restore_connection()

    # faults (testkit.conformance.FaultyOrchestrator)
    async def cut_mid_record(self) -> None:
        self.proxy.cut_mid_record()  # the next event's chunk by half, then the connection drops

    def _forget_history(self, data: bytes) -> bytes:
        """An events request resumes from now, not from where the adapter asked (the daemon's
        event history is gone, as after a daemon restart)."""
        if b"/events?" not in data:
            return data
        new = _SINCE.sub(lambda m: m.group(1) + f"{time.time():.9f}".encode(), data, count=1)
        self.rewritten += new != data
        return new

    async def expire(self) -> None:
        # no resume: the adapter is cut off, the daemon changes meanwhile, and its reconnect's
        # `since` finds no history - only its relist can see what happened
        await self.proxy.break_connection()
        self.proxy.rewrite = self._forget_history

    def _repeat(self, data: bytes) -> EventRepeater | None:
        if b"/events?" not in data:
            return None
        self.repeaters.append(EventRepeater())
        return self.repeaters[-1]

    async def duplicate_and_reorder(self) -> None:
        # from the next events stream on; the adapter's current stream is dropped to get there
        self.proxy.filters = self._repeat
        await self.proxy.break_connection()
        await self.proxy.restore_connection()

    async def black_hole(self) -> None:
        self.proxy.black_hole()

    async def heal(self) -> int:
        await self.proxy.wait_cut()
        if self.proxy.broken:
            await self.proxy.restore_connection()
            async with asyncio.timeout(30):  # the reconnect (its `since` rewritten) before the rewrite stops
                while not self.rewritten:
                    await asyncio.sleep(0.02)
        if self.proxy.filters is not None:
            async with asyncio.timeout(30):  # the duplicated events reached the adapter
                while not sum(r.repeated for r in self.repeaters):
                    await asyncio.sleep(0.02)
        self.proxy.rewrite = self.proxy.filters = None
        self.proxy.heal()
        hits = self.proxy.cuts + self.proxy.swallowed + self.proxy.silenced + self.rewritten
        return hits + sum(r.repeated for r in self.repeaters)


def docker_factory(spec: AdapterSpec) -> Adapter:
    adapter = entry_point_factory("docker")(spec)
    adapter.backoff_initial = 0.05  # type: ignore[attr-defined]
    adapter.backoff_max = 0.5  # type: ignore[attr-defined]
    return adapter


class TestDockerConformance(AdapterConformance):
    @pytest.fixture
    def orchestrator(self, dockerd: PrivateDockerd, kitnet: str) -> FakeOrchestrator:
        return DockerEngine(dockerd, kitnet)

    @pytest.fixture
    def adapter_factory(self) -> AdapterFactory:
        return docker_factory

    @pytest.fixture
    def normalizer_inputs(self) -> list[str]:
        files = sorted(p for p in DOCKER_FIXTURES.iterdir() if p.is_file() and p.name != "SOURCES.md")
        assert len(files) >= 5, DOCKER_FIXTURES
        return [p.read_text(errors="replace") for p in files]


def test_docker_reconnects_by_itself(dockerd: PrivateDockerd, kitnet: str) -> None:
    report = run_check(check_relist, docker_factory, DockerEngine(dockerd, kitnet), Timeouts())
    assert report.raises == () and report.runs == 1, report
