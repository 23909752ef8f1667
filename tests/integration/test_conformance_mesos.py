"""The Mesos adapter passes the conformance kit (testkit.conformance): the fake master
(testkit/mesos_fake.py, RecordIO re-chunked at random) behind a
testkit.proxy.BreakableProxy (broken = connections aborted and refused)."""

from __future__ import annotations

import uuid

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
from testkit.mesos_fake import FakeMesosMaster
from testkit.mosquitto import free_port
from testkit.proxy import BreakableProxy
from tests.conftest import FIXTURES_DIR

MESOS_FIXTURES = FIXTURES_DIR / "mesos"


class MesosMaster:
    """The fake master; tasks of one framework on network ``kitnet``."""

    def __init__(self) -> None:
        self.master = FakeMesosMaster(heartbeat=0.5, seed=11)
        self.proxy: BreakableProxy | None = None
        self.listen = f"127.0.0.1:{free_port()}"  # known before start(): spec() is asked first
        self.tids: dict[str, str] = {}
        self._n = 0
        self.dropped = 0

    async def start(self) -> None:
        await self.master.start()
        self.master.add_agent("a1", "node-1")
        self.master.add_framework("fw", "kit")
        self.proxy = BreakableProxy(self.master.address, listen=self.listen)
        await self.proxy.start()

    async def stop(self) -> None:
        if self.proxy is not None:
            await self.proxy.stop()
        await self.master.stop()

    def spec(self) -> AdapterSpec:
        return AdapterSpec(name="mesos", type="mesos", cluster="kit",
                           options={"masters": [f"http://{self.listen}"], "backoff_max": 0.5,
                                    "connect_timeout": 0.5})  # fmt: skip

    async def add(self, name: str) -> None:
        self._n += 1
        self.tids[name] = self.master.launch("fw", name, network="kitnet", ip=f"10.7.0.{self._n}",
                                             container_id=str(uuid.uuid4()))  # fmt: skip

    async def change(self, name: str) -> None:
        self._n += 1
        self.master.update(self.tids[name], "TASK_RUNNING", ip=f"10.7.1.{self._n}")  # a new address

    async def touch(self, name: str) -> None:
        self.master.update(self.tids[name], "TASK_RUNNING")  # a status update (a health check) that changes nothing

    async def remove(self, name: str) -> None:
        self.master.kill(self.tids.pop(name))

    async def add_bad(self, name: str) -> None:
        self.tids[name] = self.master.launch("fw", name, network="kitnet", ip="10.7.0.300")

    async def break_connection(self) -> None:
        assert self.proxy is not None
        await self.proxy.break_connection()

    async def restore_connection(self) -> None:
        assert self.proxy is not None
        await self.proxy.restore_connection()

    # faults (testkit.conformance.FaultyOrchestrator)
    async def cut_mid_record(self) -> None:
        assert self.proxy is not None
        self.proxy.cut_mid_record()  # the next bytes of the subscription by half (a record or a heartbeat)

    async def expire(self) -> None:
        # Mesos has no resume point: every subscription starts over from SUBSCRIBED's full state
        self.dropped += len(self.master.streams)
        self.master.drop_streams()

    async def duplicate_and_reorder(self) -> None:
        self.master.duplicate_and_reorder()

    async def black_hole(self) -> None:
        assert self.proxy is not None
        self.proxy.black_hole()  # the subscription falls silent (heartbeats too); SUBSCRIBE is never answered

    async def heal(self) -> int:
        assert self.proxy is not None
        await self.proxy.wait_cut()
        self.master.stop_duplicating()
        self.proxy.heal()
        return self.proxy.cuts + self.proxy.swallowed + self.proxy.silenced + self.dropped + self.master.duplicated


def mesos_factory(spec: AdapterSpec) -> Adapter:
    adapter = entry_point_factory("mesos")(spec)
    adapter.backoff_initial = 0.05  # type: ignore[attr-defined]
    return adapter


class TestMesosConformance(AdapterConformance):
    @pytest.fixture
    def orchestrator(self) -> FakeOrchestrator:
        return MesosMaster()

    @pytest.fixture
    def adapter_factory(self) -> AdapterFactory:
        return mesos_factory

    @pytest.fixture
    def normalizer_inputs(self) -> list[str]:
        files = sorted(p for p in MESOS_FIXTURES.iterdir() if p.is_file() and p.name != "SOURCES.md")
        assert len(files) >= 10, MESOS_FIXTURES
        return [p.read_text(errors="replace") for p in files]


def test_the_mesos_adapter_reconnects_by_itself() -> None:
    """Like k8s: a broken subscription is re-subscribed inside run(), which never raises."""
    report = run_check(check_relist, mesos_factory, MesosMaster(), Timeouts())
    assert report.raises == () and report.runs == 1, report
