"""Remote adapters: ``hubd --role adapter`` publishes canonical events to the
broker, the core hubd ingests its ``[remote.<name>]`` sources.  Real mosquitto,
real NB, hubd subprocesses.  The config and the ingest's checks without a
broker are in tests/unit/test_remote.py."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from core.model import Source, Upsert, encode
from hub.config import MqttSection
from hub.mqttwire import client_kwargs
from hub.remote import ingest_topic
from hub.sandbox import OvnSandbox
from testkit.hubd import Hubd
from testkit.mosquitto import Mosquitto, free_port
from testkit.wait import sync_wait_until, wait_until
from tests.integration.test_hubd import config, ports, write_objects
from tests.unit.test_remote import HUB, SRC, ep


@pytest.fixture
def broker(tmpdir_short: Path) -> Iterator[Mosquitto]:
    m = Mosquitto(tmpdir_short / "mq")
    m.start()
    try:
        yield m
    finally:
        m.close()


# ---------------------------------------------------------------- end to end
def core_config(ovn: OvnSandbox, d: Path, url: str) -> str:
    return (config(ovn, d, {}) + f'[mqtt]\nurl = "{url}"\n'
            '[remote.siteb]\norchestrator = "static"\ncluster = "b"\nusername = "site-b"\n')


def adapter_config(d: Path, data: Path, url: str) -> str:
    return (f'[hub]\nid = "{HUB}"\nstate_dir = "{d}"\n[api]\nlisten = "unix:{d}/api.sock"\n'
            f'[adapters.b]\ntype = "static"\ncluster = "b"\npath = "{data}"\npoll_interval = 0.2\n'
            f'[mqtt]\nurl = "{url}"\n')


def metrics(h: Hubd) -> str:
    return subprocess.run(["curl", "-s", "--unix-socket", str(h.dir / "api.sock"), "http://h/metrics"],
                          capture_output=True, text=True, check=True, timeout=30).stdout


def b_ports(ovn: OvnSandbox) -> set[str]:
    return {p for p in ports(ovn) if p.startswith("static/b/")}


async def wait_ports(ovn: OvnSandbox, n: int, timeout: float = 30) -> None:
    await wait_until(lambda: len(b_ports(ovn)) == n, timeout, f"{n} static/b ports in NB", interval=0.2)


async def wait_log(h: Hubd, text: str, timeout: float = 30) -> None:
    await wait_until(lambda: text in h.logtext(), timeout, f"{text!r} in the hubd log")


async def test_remote_adapter_drives_nb_through_the_broker(ovn: OvnSandbox, tmpdir_short: Path,
                                                           broker: Mosquitto) -> None:
    core_dir, ad_dir = tmpdir_short / "core", tmpdir_short / "adapter"
    core_dir.mkdir()
    ad_dir.mkdir()
    data = tmpdir_short / "b.jsonl"
    write_objects(data, "b", 5)
    core = Hubd(core_dir, core_config(ovn, core_dir, broker.url))
    adapter = Hubd(ad_dir, adapter_config(ad_dir, data, broker.url), args=("--role", "adapter"))
    core2: Hubd | None = None
    try:
        core.start()
        # the core is up and subscribed, but READY waits for the remote source's first snapshot
        await wait_log(core, "remote ingest subscribed")
        await asyncio.to_thread(core.notify.wait_for, "STATUS=waiting for first snapshot of static/b", 30)
        core.notify.drain()
        assert not any(m.startswith("READY=1") for m in core.notify.messages), core.logtext()
        assert b_ports(ovn) == set()

        adapter.start()
        adapter.wait_ready(30)
        core.wait_ready(30)
        assert len(b_ports(ovn)) == 5  # at READY, NB holds the remote snapshot

        write_objects(data, "b", 8)  # the file changes: the remote adapter's new snapshot propagates
        await wait_ports(ovn, 8)

        # bad input from the test: a payload failing the schema, an unconfigured source, a foreign source
        async with aiomqtt.Client(**client_kwargs(MqttSection(url=broker.url)), timeout=10) as c:
            await c.publish(ingest_topic(HUB, SRC), b'{"type": "upsert", "obj": {"type": "endpoint"}}', qos=1)
            zzz = Source("static", "zzz")
            await c.publish(ingest_topic(HUB, zzz), encode(Upsert(obj=ep("z", src=zzz))), qos=1)
            await c.publish(ingest_topic(HUB, SRC), encode(Upsert(obj=ep("z", src=zzz))), qos=1)
        await wait_until(lambda: 'ovn_hub_rejected_total{reason="unauthorized-source",source="static/zzz"} 1.0'
                         in metrics(core), 20, "the unconfigured source rejected", interval=0.2)
        text = metrics(core)
        assert 'ovn_hub_rejected_total{reason="schema",source="static/b"} 1.0' in text
        assert 'ovn_hub_rejected_total{reason="unauthorized-source",source="static/b"} 1.0' in text
        assert not any("zzz" in p for p in ports(ovn))
        assert core.proc is not None and core.proc.poll() is None

        write_objects(data, "b", 3)  # valid traffic goes on; deletes are collected
        await wait_ports(ovn, 3)

        # GC follows the snapshot rules: a restarted core keeps the remote source's rows until
        # that source's fresh snapshot reaches this process
        adapter.signal(signal.SIGTERM)
        assert adapter.wait(30) == 0
        core.signal(signal.SIGTERM)
        assert core.wait(30) == 0
        assert "stopped cleanly" in adapter.logtext()
        write_objects(data, "b", 2)
        core_dir2 = tmpdir_short / "core2"
        core_dir2.mkdir()
        core2 = Hubd(core_dir2, core_config(ovn, core_dir2, broker.url))
        core2.start()
        await wait_log(core2, "remote ingest subscribed")
        await asyncio.to_thread(core2.notify.wait_for, "STATUS=waiting for first snapshot of static/b", 30)
        assert len(b_ports(ovn)) == 3
        core2.notify.drain()
        assert not any(m.startswith("READY=1") for m in core2.notify.messages)
        adapter.start()
        core2.wait_ready(30)
        assert len(b_ports(ovn)) == 2
    finally:
        for h in (adapter, core, core2):
            if h is not None:
                h.close()


def test_adapter_role_waits_for_the_broker_and_exits_on_sigterm(tmpdir_short: Path) -> None:
    data = tmpdir_short / "b.jsonl"
    write_objects(data, "b", 2)
    url = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there
    h = Hubd(tmpdir_short, adapter_config(tmpdir_short, data, url), args=("--role", "adapter"))
    try:
        h.start()
        # no broker: it retries (twice, at least), never READY
        sync_wait_until(lambda: h.logtext().count("reconnecting") >= 2, 30, "two reconnect attempts")
        h.notify.drain()
        assert not any(m.startswith("READY=1") for m in h.notify.messages), h.logtext()
        h.signal(signal.SIGTERM)
        assert h.wait(30) == 0
    finally:
        h.close()
    bad = Hubd(tmpdir_short, adapter_config(tmpdir_short, data, url) + '[remote.x]\norchestrator = "a"\ncluster = "b"\n',
               args=("--role", "adapter"))
    try:
        bad.start()
        assert bad.wait(30) == 2
    finally:
        bad.close()


async def test_a_core_started_after_the_adapter_gets_its_snapshot(ovn: OvnSandbox, tmpdir_short: Path,
                                                                  broker: Mosquitto) -> None:  # fmt: skip
    """The adapter published its snapshot before any core listened (not retained):
    the core asks for a resync when it subscribes, and the adapter, still running,
    publishes its snapshots again; so does a core restart."""
    core_dir, ad_dir = tmpdir_short / "core", tmpdir_short / "adapter"
    core_dir.mkdir()
    ad_dir.mkdir()
    data = tmpdir_short / "b.jsonl"
    write_objects(data, "b", 4)
    adapter = Hubd(ad_dir, adapter_config(ad_dir, data, broker.url), args=("--role", "adapter"))
    cores: list[Hubd] = []
    try:
        adapter.start()
        adapter.wait_ready(30)  # its first snapshot is acknowledged by the broker: nobody received it
        for k in range(2):
            d = tmpdir_short / f"core{k}"
            d.mkdir()
            core = Hubd(d, core_config(ovn, d, broker.url))
            cores.append(core)
            core.start()
            core.wait_ready(30)
            assert len(b_ports(ovn)) == (4 if k == 0 else 6)  # at READY: the snapshot arrived
            if k == 0:
                write_objects(data, "b", 6)
                await wait_ports(ovn, 6)
                core.signal(signal.SIGTERM)
                assert core.wait(30) == 0
        assert adapter.proc is not None and adapter.proc.poll() is None
        assert "a core asked for a resync" in adapter.logtext()
        await wait_ports(ovn, 6)
    finally:
        for h in (adapter, *cores):
            h.close()
