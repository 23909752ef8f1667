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


# ---------------------------------------------------------------- networks: the hub's driver, Docker's own
def _net(name: str, driver: str, config: list[dict[str, str]]) -> dict[str, Any]:
    return {"Name": name, "Id": name * 4, "Driver": driver, "IPAM": {"Driver": driver, "Config": config}}


def test_networks_of_the_hub_driver_are_mapped_and_dockers_own_are_not_by_default() -> None:
    a = make_adapter("unix:///x.sock")
    assert (a.options.driver, a.options.mirror_bridge_networks) == ("ovn-hub", False)
    green = a._map_network(_net("green", "ovn-hub", [{"Subnet": "10.60.0.0/24"}]))
    assert green is not None and (green.subnets, green.gateway) == (("10.60.0.0/24",), "10.60.0.1")
    red = a._map_network(_net("red", "ovn-hub", [{"Subnet": "10.61.0.0/24", "Gateway": "10.61.0.254"}]))
    assert red is not None and red.gateway == "10.61.0.254"
    assert a._map_network(_net("br", "bridge", [{"Subnet": "10.62.0.0/24"}])) is None
    assert a._map_network(_net("mv", "macvlan", [{"Subnet": "10.63.0.0/24"}])) is None
    assert a._map_network(_net("host", "host", [])) is None
    assert a._unmirrored() == frozenset({"br", "mv"})
    mirror = make_adapter("unix:///x.sock", mirror_bridge_networks=True, driver="ovn-hub-test")
    br = mirror._map_network(_net("br", "bridge", [{"Subnet": "10.62.0.0/24"}]))
    assert br is not None and br.gateway is None  # Docker's network, as Docker's inspect says it
    assert mirror._unmirrored() == frozenset()
    other = mirror._map_network(_net("green", "ovn-hub", [{"Subnet": "10.60.0.0/24"}]))
    assert other is not None and other.gateway is None  # not this adapter's driver: no gateway rule


def test_containers_on_networks_docker_serves_are_left_out() -> None:
    from adapters.docker.normalize import normalize_container

    inspect = {
        "Id": "c" * 64, "Name": "/web", "State": {"Running": True, "Status": "running"},
        "Config": {"Labels": {}}, "HostConfig": {"NetworkMode": "green"},
        "NetworkSettings": {"Networks": {
            "green": {"IPAddress": "10.60.0.2", "MacAddress": "0a:58:0a:3c:00:02", "NetworkID": "g"},
            "br": {"IPAddress": "10.62.0.2", "MacAddress": "02:42:0a:3e:00:02", "NetworkID": "b"}}},
    }  # fmt: skip
    src = Source("docker", "test")
    assert {e.network for e in normalize_container(inspect, src)} == {"green", "br"}
    (ep,) = normalize_container(inspect, src, skip_networks={"br"})
    assert (ep.network, ep.ips, ep.mac) == ("green", ("10.60.0.2",), "0a:58:0a:3c:00:02")


def test_node_driver_options_are_checked() -> None:
    from hub.config import ConfigError, loads
    from hub.node import node_options

    ok = node_options(loads('[node]\ndriver_socket = "/run/docker/plugins/ovn-hub.sock"\n'))
    assert (ok.driver_socket, ok.driver_name) == ("/run/docker/plugins/ovn-hub.sock", "ovn-hub")
    with pytest.raises(ConfigError, match=r"node\.driver_socket.*absolute"):
        node_options(loads('[node]\ndriver_socket = "ovn-hub.sock"\n'))
    with pytest.raises(ConfigError, match=r"node\.driver_name"):
        node_options(loads('[node]\ndriver_name = "OVN Hub"\n'))
