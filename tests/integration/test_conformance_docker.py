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
import shutil
import subprocess
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
        options = {"url": f"unix://{self.proxy.address[5:]}", "networks": {self.network: {"subnet": KIT_SUBNET}}}
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


def docker_factory(spec: AdapterSpec) -> Adapter:
    adapter = entry_point_factory("docker")(spec)
    adapter.backoff_initial = 0.05  # type: ignore[attr-defined]
    adapter.backoff_max = 0.5  # type: ignore[attr-defined]
    return adapter


class TestDockerConformance(AdapterConformance):
    faults = ()  # the fake has no fault hooks yet

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
