"""The static and Kubernetes adapters pass the conformance kit (testkit.conformance).

static: a JSON-lines file in a temp dir (broken = the file is moved away).
k8s: the in-repo fake API server (testkit/k8s_fake.py) behind a
testkit.proxy.BreakableProxy (broken = connections aborted and refused).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from core.adapter import Adapter, AdapterFactory, AdapterSpec
from core.model import Endpoint, Source, encode
from testkit.conformance import (
    AdapterConformance,
    FakeOrchestrator,
    Timeouts,
    check_relist,
    entry_point_factory,
    run_check,
)
from testkit.k8s_fake import FakeKubeApi, write_kubeconfig
from testkit.proxy import BreakableProxy
from tests.conftest import FIXTURES_DIR

K8S_FIXTURES = FIXTURES_DIR / "kubernetes"


# ---------------------------------------------------------------- static
class StaticFile:
    """The static adapter's orchestrator: its file."""

    def __init__(self) -> None:
        self.dir = Path(f"/tmp/hubkit{uuid.uuid4().hex[:10]}")  # made by start(): spec() alone leaves nothing behind
        self.path = self.dir / "objects.jsonl"
        self.source = Source("static", "kit")
        self.lines: dict[str, str] = {}
        self.broken = False
        self._n = 0
        self.torn = 0  # writes left torn (cut_mid_record) until heal()
        self._tearing = False

    async def start(self) -> None:
        self.dir.mkdir(mode=0o700)
        self._write()

    async def stop(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def spec(self) -> AdapterSpec:
        return AdapterSpec(
            name="static", type="static", cluster="kit", options={"path": str(self.path), "poll_interval": 0.02}
        )

    def _endpoint(self, name: str, label: str, ip: str) -> str:
        ep = Endpoint(
            source=self.source, uid=name, namespace="default", name=name, kind="vm", network="kitnet",
            ips=(ip,), labels={"v": label},
        )  # fmt: skip
        return encode(ep).decode()

    def _write(self) -> None:
        if self.broken:
            return
        text = "".join(line + "\n" for line in self.lines.values())
        if self._tearing and self.lines:  # a writer caught in the middle of its last line, in place
            last = list(self.lines.values())[-1]
            self.path.write_text(text[: len(text) - 1 - len(last) // 2])
            self.torn += 1
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)

    async def add(self, name: str) -> None:
        self._n += 1
        self.lines[name] = self._endpoint(name, "one", f"10.7.0.{self._n}")
        self._write()

    async def change(self, name: str) -> None:
        self.lines[name] = self.lines[name].replace('"v":"one"', '"v":"two"')
        self._write()

    async def touch(self, name: str) -> None:
        self._write()  # the same bytes, a new mtime: the adapter re-reads the file

    async def remove(self, name: str) -> None:
        del self.lines[name]
        self._write()

    async def add_bad(self, name: str) -> None:
        self.lines[name] = self._endpoint(name, "bad", "10.7.0.1").replace("10.7.0.1", "10.7.0.300")
        self._write()

    async def break_connection(self) -> None:
        self.broken = True
        os.replace(self.path, self.path.with_suffix(".away"))

    async def restore_connection(self) -> None:
        self.broken = False
        self._write()

    async def cut_mid_record(self) -> None:
        self._tearing = True  # every write leaves the file ending in half a line, until heal()

    async def heal(self) -> int:
        self._tearing = False
        self._write()
        return self.torn


class TestStaticConformance(AdapterConformance):
    normalizer = None  # static files are canonical already: no ovn_hub.normalizers entry point
    # a file has records but no stream, resume point or server: only a torn (half-written) last line applies
    faults = ("cut-mid-record",)

    @pytest.fixture
    def orchestrator(self) -> FakeOrchestrator:
        return StaticFile()


# ---------------------------------------------------------------- kubernetes
def mkpod(name: str, ip: str, label: str = "one") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "labels": {"app": label}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }


class KubeApi:
    """The fake API server; the adapter reaches it through a breakable proxy."""

    def __init__(self) -> None:
        self.fake = FakeKubeApi()
        self.proxy: BreakableProxy | None = None
        self.dir = Path(f"/tmp/hubkit{uuid.uuid4().hex[:10]}")  # made by start(): spec() alone leaves nothing behind
        self.kubeconfig = self.dir / "kubeconfig"
        self._n = 0

    async def start(self) -> None:
        self.dir.mkdir(mode=0o700)
        await self.fake.start()
        self.proxy = BreakableProxy(f"127.0.0.1:{self.fake.port}")
        await self.proxy.start()
        write_kubeconfig(self.kubeconfig, f"http://{self.proxy.address}")

    async def stop(self) -> None:
        try:
            if self.proxy is not None:
                await self.proxy.stop()
            await self.fake.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def spec(self) -> AdapterSpec:
        options = {
            "kubeconfig": str(self.kubeconfig), "backoff_max": 0.5,
            # a watch ends cleanly every second; 2 s of silence is a dead server (the black-hole fault)
            "watch_timeout": 1, "read_timeout": 2.0, "request_timeout": 2.0,
        }  # fmt: skip
        return AdapterSpec(name="k8s", type="k8s", cluster="kit", options=options)

    async def add(self, name: str) -> None:
        self._n += 1
        self.fake.add("Pod", mkpod(name, f"10.244.7.{self._n}"))

    async def change(self, name: str) -> None:
        pod = self.fake.get("Pod", name)
        pod["metadata"]["labels"] = {"app": "two"}
        self.fake.update("Pod", pod)

    async def touch(self, name: str) -> None:
        pod = self.fake.get("Pod", name)  # a MODIFIED with a new resourceVersion and annotation only
        pod["metadata"].setdefault("annotations", {})["kit/touched"] = str(self.fake.rv)
        self.fake.update("Pod", pod)

    async def remove(self, name: str) -> None:
        self.fake.delete("Pod", name)

    async def add_bad(self, name: str) -> None:
        self.fake.add("Pod", mkpod(name, "10.244.7.300"))

    async def break_connection(self) -> None:
        assert self.proxy is not None
        await self.proxy.break_connection()

    async def restore_connection(self) -> None:
        assert self.proxy is not None
        await self.proxy.restore_connection()

    # faults (testkit.conformance.FaultyOrchestrator)
    async def cut_mid_record(self) -> None:
        assert self.proxy is not None
        self.proxy.cut_mid_record()  # the next watch event arrives by half, then the connection drops

    async def expire(self) -> None:
        self.fake.expire_watches()  # ERROR 410 Expired on every open watch; older RVs compacted away

    async def duplicate_and_reorder(self) -> None:
        self.fake.duplicate_and_reorder(replay=8, seed=7)  # each event twice; re-watches replay older RVs
        self.fake.end_watches()  # clean ends: the adapter watches again from its RV and gets the replay

    async def black_hole(self) -> None:
        assert self.proxy is not None
        self.proxy.black_hole()

    async def heal(self) -> int:
        assert self.proxy is not None
        await self.proxy.wait_cut()  # an armed cut waits for its record
        if self.fake.replay is not None:
            # until a watch from the newest RV got a replay: older events (the kit's deletion, and the ADDED
            # before it) re-sent after the adapter applied them
            target = self.fake.rv
            async with asyncio.timeout(30):
                while self.fake.replay_since < target:
                    self.fake.end_watches()
                    await asyncio.sleep(0.05)
        hits = self.proxy.cuts + self.proxy.swallowed + self.proxy.silenced + self.fake.expired_sent
        hits += self.fake.duplicated
        self.proxy.heal()
        self.fake.stop_duplicating()
        return hits


def k8s_factory(spec: AdapterSpec) -> Adapter:
    adapter = entry_point_factory("k8s")(spec)
    adapter.backoff_initial = 0.05  # type: ignore[attr-defined]
    return adapter


class TestK8sConformance(AdapterConformance):
    @pytest.fixture
    def orchestrator(self) -> FakeOrchestrator:
        return KubeApi()

    @pytest.fixture
    def adapter_factory(self) -> AdapterFactory:
        return k8s_factory

    @pytest.fixture
    def normalizer_inputs(self) -> list[str]:
        files = sorted(p for p in K8S_FIXTURES.iterdir() if p.is_file() and p.name != "SOURCES.md")
        assert len(files) >= 10, K8S_FIXTURES
        return [p.read_text(errors="replace") for p in files]


def test_the_relist_check_takes_both_paths() -> None:
    """static raises when its file is gone (the raise → relist path); k8s
    reconnects by itself (the internal reconnect path) - both are exercised."""
    static = run_check(check_relist, entry_point_factory("static"), StaticFile(), Timeouts())
    assert static.raises and all("FileNotFoundError" in r for r in static.raises), static
    assert static.runs >= 2
    k8s = run_check(check_relist, k8s_factory, KubeApi(), Timeouts())
    assert k8s.raises == () and k8s.runs == 1, k8s


# ---------------------------------------------------------------- cloud foundry
class CFBbs:
    """The fake BBS (mutual TLS, protobuf SSE) behind a breakable proxy; no CC or
    policy server (names come from the records' metric_tags)."""

    def __init__(self) -> None:
        self.dir = Path(f"/tmp/hubkit{uuid.uuid4().hex[:10]}")  # made by start(): spec() alone leaves nothing behind
        self.bbs: Any = None
        self.proxy: BreakableProxy | None = None
        self._n = 0
        self.index: dict[str, int] = {}
        self.dropped = 0

    async def start(self) -> None:
        from testkit.cf_fake import FakeBBS, make_pki

        self.pki = make_pki(self.dir)
        self.bbs = FakeBBS(self.pki)
        await self.bbs.start()
        self.proxy = BreakableProxy(f"127.0.0.1:{self.bbs.port}")
        await self.proxy.start()

    async def stop(self) -> None:
        try:
            if self.proxy is not None:
                await self.proxy.stop()
            if self.bbs is not None:
                await self.bbs.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def spec(self) -> AdapterSpec:
        address = self.proxy.address if self.proxy is not None else "127.0.0.1:1"  # the normalizer check starts nothing
        d = self.dir  # make_pki's file names
        return AdapterSpec(name="cf", type="cloudfoundry", cluster="kit", options={
            "bbs_url": f"https://{address}", "bbs_ca": str(d / "ca.crt"), "bbs_cert": str(d / "client.crt"),
            "bbs_key": str(d / "client.key"), "backoff_max": 0.3, "evacuation_grace": 0.0,
            "request_timeout": 1.0, "stream_idle_timeout": 1.5,  # a BBS that never answers is left quickly
        })  # fmt: skip

    def _lrp(self, name: str, ip: str, app: str = "one") -> Any:
        from testkit.cf_fake import lrp

        tags = {"app_name": app, "space_name": "kit", "organization_name": "org", "process_type": "web"}
        return lrp(f"pg-{name}", 0, f"ig-{name}", "cell-1", ip, tags=tags)

    async def add(self, name: str) -> None:
        self._n += 1
        self.bbs.create(self._lrp(name, f"10.255.7.{self._n}"))

    async def change(self, name: str) -> None:
        cur = self.bbs.records[(f"pg-{name}", 0, "ORDINARY")]
        new = self._lrp(name, cur.actual_lrp_net_info.instance_address)
        new.actual_lrp_instance_key.cell_id = "cell-2"  # the instance's node changes
        self.bbs.change(new)

    async def touch(self, name: str) -> None:
        cur = self.bbs.records[(f"pg-{name}", 0, "ORDINARY")]
        cur.since += 1  # a changed event whose instance is the same
        self.bbs.change(cur)

    async def remove(self, name: str) -> None:
        self.bbs.remove((f"pg-{name}", 0, "ORDINARY"))

    async def add_bad(self, name: str) -> None:
        self.bbs.create(self._lrp(name, "10.255.7.300"))

    async def break_connection(self) -> None:
        assert self.proxy is not None
        await self.proxy.break_connection()

    async def restore_connection(self) -> None:
        assert self.proxy is not None
        await self.proxy.restore_connection()

    # faults (testkit.conformance.FaultyOrchestrator)
    async def cut_mid_record(self) -> None:
        assert self.proxy is not None
        self.proxy.cut_mid_record()  # half of the next TLS record of an event, then the connection drops

    async def expire(self) -> None:
        # the BBS event stream has no resume point: after any reconnect the adapter lists again
        self.dropped += len(self.bbs.streams)
        self.bbs.drop_connections()

    async def duplicate_and_reorder(self) -> None:
        self.bbs.duplicate_and_reorder()

    async def black_hole(self) -> None:
        assert self.proxy is not None
        self.proxy.black_hole()

    async def heal(self) -> int:
        assert self.proxy is not None
        await self.proxy.wait_cut()
        self.bbs.stop_duplicating()
        self.proxy.heal()
        return self.proxy.cuts + self.proxy.swallowed + self.proxy.silenced + self.dropped + self.bbs.duplicated


def cf_factory(spec: AdapterSpec) -> Adapter:
    adapter = entry_point_factory("cloudfoundry")(spec)
    adapter.backoff_initial = 0.05  # type: ignore[attr-defined]
    return adapter


class TestCloudFoundryConformance(AdapterConformance):
    @pytest.fixture
    def orchestrator(self) -> FakeOrchestrator:
        return CFBbs()

    @pytest.fixture
    def adapter_factory(self) -> AdapterFactory:
        return cf_factory

    @pytest.fixture
    def normalizer_inputs(self) -> list[str]:
        files = sorted(p for p in (FIXTURES_DIR / "cloudfoundry").iterdir() if p.is_file() and p.name != "SOURCES.md")
        assert len(files) >= 9
        return [p.read_text(errors="replace") for p in files]
