"""DockerAdapter without a daemon: options and hub-network validation, malformed
event lines, the event stream's framing.  The adapter against a REAL private
dockerd, which shares this module's helpers, is in
tests/integration/test_docker_adapter.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from adapters.docker import DockerAdapter, DockerOptions, create
from core.adapter import AdapterSpec, OptionsError
from core.model import InputEvent, Network, Rejected, Snapshot, Source

WAIT = 30.0  # upper bound of every wait on the daemon / the adapter


class Sink:
    """Collects every event; ``wait_for`` finds the next match after an index."""

    def __init__(self) -> None:
        self.events: list[InputEvent] = []
        self._changed = asyncio.Event()

    async def emit(self, event: InputEvent) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, pred: Callable[[InputEvent], bool], start: int = 0, timeout: float = WAIT) -> int:
        async with asyncio.timeout(timeout):
            while True:
                for i in range(start, len(self.events)):
                    if pred(self.events[i]):
                        return i
                self._changed.clear()
                await self._changed.wait()

    async def wait_until(self, cond: Callable[[], bool], timeout: float = WAIT) -> None:
        async with asyncio.timeout(timeout):
            while not cond():
                self._changed.clear()
                await self._changed.wait()

    def snapshots(self) -> list[int]:
        return [i for i, e in enumerate(self.events) if isinstance(e, Snapshot)]


def make_adapter(url: str, **options: Any) -> DockerAdapter:
    spec = AdapterSpec(name="dk", type="docker", cluster="test", options={"url": url, **options})
    adapter = create(spec)
    assert isinstance(adapter, DockerAdapter)
    adapter.backoff_initial = 0.05
    adapter.backoff_max = 0.5
    return adapter


# ---------------------------------------------------------------- unit-ish (no daemon)
def test_options_are_validated() -> None:
    adapter = create(AdapterSpec(name="d1", type="docker", cluster="c", options={}))
    assert isinstance(adapter, DockerAdapter)
    assert adapter.options == DockerOptions()
    assert adapter.options.url == "unix:///var/run/docker.sock"
    ok = create(AdapterSpec(name="d1", type="docker", cluster="c", options={"resync_interval": 5, "node": "n"}))
    assert isinstance(ok, DockerAdapter) and ok.options.resync_interval == 5.0 and ok.node == "n"
    with pytest.raises(OptionsError, match=r"adapters\.d1\.resync_interval"):
        create(AdapterSpec(name="d1", type="docker", cluster="c", options={"resync_interval": "soon"}))
    with pytest.raises(OptionsError, match=r"adapters\.d1\.resync_interval"):
        create(AdapterSpec(name="d1", type="docker", cluster="c", options={"resync_interval": 0}))
    with pytest.raises(OptionsError, match=r"adapters\.d1"):
        create(AdapterSpec(name="d1", type="docker", cluster="c", options={"urll": "x"}))
    with pytest.raises(OptionsError, match=r"adapters\.d1\.url"):
        create(AdapterSpec(name="d1", type="docker", cluster="c", options={"url": "/var/run/docker.sock"}))


async def test_malformed_line_rejected_and_processing_continues() -> None:
    adapter = make_adapter("unix:///nonexistent.sock")
    sink = Sink()

    class NoDocker:  # a bad line never reaches the daemon
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"docker.{name} used for a malformed line")

    docker: Any = NoDocker()
    bad = [
        b"garbage",
        b'{"Type":"container","Action":"start","Actor":{"ID":"abc"',  # truncated
        b"[1,2]",
        b'{"Type":"container"}',
        b"\xff\xfe",
    ]
    for line in bad:
        await adapter.handle_line(line, sink, docker)
    await adapter.handle_line(b"   ", sink, docker)  # blank: ignored, not rejected
    # an event that concerns no container (image pull) is harmless
    await adapter.handle_line(b'{"Type":"image","Action":"pull","Actor":{"ID":"x"},"time":1}', sink, docker)
    assert [type(e) for e in sink.events] == [Rejected] * 5
    reasons = [e.reason for e in sink.events if isinstance(e, Rejected)]
    assert reasons == ["bad-json", "bad-json", "not-object", "missing-field", "bad-encoding"]
    assert adapter.rejected == {"bad-json": 2, "not-object": 1, "missing-field": 1, "bad-encoding": 1}
    for e in sink.events:
        assert isinstance(e, Rejected) and e.source == Source("docker", "test") and e.message


async def test_stream_framing_bad_lines_and_eof() -> None:
    """_read_events: lines split across chunks, bad and over-long lines, then EOF."""
    from adapters.docker.adapter import _MAX_LINE, _StreamEnded

    adapter = make_adapter("unix:///nonexistent.sock")
    adapter.cache.upsert(Network(source=adapter.source, name="gone"))
    sink = Sink()
    destroy = b'{"Type":"network","Action":"destroy","Actor":{"ID":"n1","Attributes":{"name":"gone"}},"timeNano":5}'
    chunks = [
        b'{"Type":"image","Action":"pull","Actor":{"ID":"a"},"time":1}\n{"Type":"cont',
        b'ainer","Act\n',  # a line split over two chunks, and bad
        b"x" * (_MAX_LINE + 10),  # over-long line, no newline yet
        b"yyy\n" + destroy[:40],
        destroy[40:] + b"\n" + destroy + b"\n",  # the duplicate is ignored
    ]

    class Content:
        async def readany(self) -> bytes:
            return chunks.pop(0) if chunks else b""

    class Resp:
        content = Content()

    with pytest.raises(_StreamEnded):
        await adapter._read_events(None, Resp(), sink)  # type: ignore[arg-type]
    kinds = [(type(e).__name__, getattr(e, "reason", getattr(e, "key", ""))) for e in sink.events]
    assert kinds == [("Rejected", "bad-json"), ("Rejected", "too-long"), ("Delete", "gone")]
    assert adapter.rejected == {"bad-json": 1, "too-long": 1}


# ---------------------------------------------------------------- wrapper mode and the policies file
WRAP_NETS = {"blue": {"subnet": "10.70.0.0/24", "gateway": "10.70.0.1"}, "red": {"subnet": "10.71.0.0/24"}}


def test_hub_network_options_are_validated() -> None:
    def make(nets: Any) -> Any:
        return create(AdapterSpec(name="d1", type="docker", cluster="c", options={"networks": nets}))

    adapter = make(WRAP_NETS)
    assert isinstance(adapter, DockerAdapter)
    assert adapter.hub_networks["blue"] == Network(
        source=Source("docker", "c"), name="blue", subnets=("10.70.0.0/24",), gateway="10.70.0.1",
        labels={"ovn-hub.wrapper": "true"},
    )  # fmt: skip
    for nets, where in (
        ({"blue": {"subnet": "10.70.0.0/33"}}, r"adapters\.d1\.networks\.blue\.subnet"),
        ({"blue": {"subnet": "10.70.0.0/24", "gateway": "10.80.0.1"}}, r"networks\.blue\.gateway: .* not a host"),
        ({"blue": {"subnet": "10.70.0.0/24", "gateway": "10.70.0.0"}}, r"networks\.blue\.gateway"),
        ({"blue": {"gateway": "10.70.0.1"}}, r"adapters\.d1\.networks\.blue"),  # subnet missing
        ({"bridge": {"subnet": "10.70.0.0/24"}}, r"networks\.bridge: 'bridge' is a Docker network"),
        ({"bad name!": {"subnet": "10.70.0.0/24"}}, r"networks\.bad name!"),
    ):
        with pytest.raises(OptionsError, match=where):
            make(nets)
