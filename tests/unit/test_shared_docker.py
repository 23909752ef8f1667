"""The Docker side of shared networks, pure: the adapter maps driver networks as shared
(copies the agent made as mirrors), the agent's plan to follow NB's shared networks,
the hub's allocator for shared subnets, and the driver asking it for endpoint addresses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from adapters.docker.driver import (
    GATEWAY_REQUEST,
    LOCAL_SPACE,
    MIRROR_LABEL,
    DockerNet,
    Driver,
    DriverError,
    DriverState,
    mirror_plan,
)
from core.vif.handoff import FakeHandoff
from core.vif.nbview import NbView
from hub.ipam import IpamError, SharedIpam
from tests.unit.test_docker_adapter import make_adapter

POOL = f"{LOCAL_SPACE}/10.60.0.0/24"


# ---------------------------------------------------------------- the adapter
def _net(name: str, driver: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"Name": name, "Id": name * 4, "Driver": driver, "Labels": labels or {},
            "IPAM": {"Driver": driver, "Config": [{"Subnet": "10.60.0.0/24"}]}}  # fmt: skip


def test_driver_networks_are_shared_and_the_agents_copies_are_mirrors() -> None:
    a = make_adapter("unix:///x.sock")
    green = a._map_network(_net("green", "ovn-hub"))
    assert green is not None and (green.shared, green.mirror, green.gateway) == (True, False, "10.60.0.1")
    copy = a._map_network(_net("green", "ovn-hub", {MIRROR_LABEL: "hub1"}))
    assert copy is not None and (copy.shared, copy.mirror) == (True, True)
    own = make_adapter("unix:///x.sock", share_driver_networks=False)._map_network(_net("green", "ovn-hub"))
    assert own is not None and not own.shared
    bridge = make_adapter("unix:///x.sock", mirror_bridge_networks=True)._map_network(_net("br", "bridge"))
    assert bridge is not None and not bridge.shared  # Docker's own networks are never shared


# ---------------------------------------------------------------- the agent's plan
def test_mirror_plan_creates_what_the_engine_lacks_and_removes_only_its_own_copies() -> None:
    shared = {"green": ("10.60.0.0/24", "10.60.0.1"), "blue": ("10.70.0.0/24", ""), "v6": ("", "")}
    nets = [
        DockerNet(id="1", name="blue", driver="bridge"),  # a name taken by another network: left alone
        DockerNet(id="2", name="old", driver="ovn-hub", mirror_of="hub1"),  # its shared network is gone
        DockerNet(id="3", name="mine", driver="ovn-hub"),  # the user's, not a copy
        DockerNet(id="4", name="theirs", driver="ovn-hub", mirror_of="hub2"),  # another hub's copy
    ]
    create, remove = mirror_plan(shared, nets, driver="ovn-hub", hub_id="hub1")
    assert create == [("green", "10.60.0.0/24", "10.60.0.1")]
    assert [n.id for n in remove] == ["2"]
    create, _ = mirror_plan(shared, nets, driver="ovn-hub", hub_id="hub1", declined={"green"})
    assert create == []  # removed here by the engine's user while the hub has it: not copied back


def test_the_nb_view_lists_shared_switches_and_gives_their_subnet_to_any_source() -> None:
    from core.names import GATEWAY, OWNER, SOURCE, UID
    from core.ovsdb.values import to_ovsdb

    v = NbView()
    ids = {OWNER: "hub1", SOURCE: "ovn-hub/fabric", UID: "green", GATEWAY: "10.60.0.1"}
    v.apply({"Logical_Switch": {"u1": {"initial": to_ovsdb(
        {"name": "ovn-hub/net/green", "other_config": {"subnet": "10.60.0.0/24"}, "external_ids": ids})}}})  # fmt: skip
    assert v.shared() == {"green": ("10.60.0.0/24", "10.60.0.1")}
    assert v.switch("docker/b", "green") == ("10.60.0.0/24", "10.60.0.1")
    assert v.switch("docker/b", "red") == ("", "")


# ---------------------------------------------------------------- the hub's allocator
class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_hub_allocates_serially_around_what_is_taken_by_any_node_or_endpoint() -> None:
    used = ["10.60.0.3", "10.9.9.9", "not-an-ip"]
    ipam = SharedIpam(lambda: used, ttl=60, clock=(clock := Clock()))
    assert ipam.request("a", "10.60.0.0/24", exclude=["10.60.0.1"]) == "10.60.0.2"
    assert ipam.request("b", "10.60.0.0/24", exclude=["10.60.0.1"]) == "10.60.0.4"  # .2 node a's, .3 an endpoint's
    with pytest.raises(IpamError, match=r"already in use \(handed out to node a\)") as exc:
        ipam.request("b", "10.60.0.0/24", address="10.60.0.2")
    assert exc.value.status == 409
    assert ipam.request("a", "10.60.0.0/24", address="10.60.0.2") == "10.60.0.2"  # its own: asked again
    assert not ipam.release("b", "10.60.0.0/24", "10.60.0.2")  # only the node that holds it releases it
    assert ipam.release("a", "10.60.0.0/24", "10.60.0.2")
    assert ipam.request("b", "10.60.0.0/24", address="10.60.0.2") == "10.60.0.2"
    clock.now = 61  # reservations lapse: by then the adapters reported the containers
    assert ipam.reserved["10.60.0.0/24"] and ipam.request("c", "10.60.0.0/24", address="10.60.0.4") == "10.60.0.4"
    with pytest.raises(IpamError, match="not a host address"):
        ipam.request("a", "10.60.0.0/24", address="10.60.0.255")


def test_the_hub_allocator_honours_ranges_and_says_when_the_pool_is_full() -> None:
    ipam = SharedIpam(lambda: ())
    got = [ipam.request("a", "10.60.0.0/24", rng="10.60.0.128/30") for _ in range(4)]
    assert got == ["10.60.0.128", "10.60.0.129", "10.60.0.130", "10.60.0.131"]
    with pytest.raises(IpamError, match="no free address left") as exc:
        ipam.request("a", "10.60.0.0/24", rng="10.60.0.128/30")
    assert exc.value.status == 409
    assert ipam.handle("request", b'{"node": "a", "subnet": "10.61.0.0/30"}') == (200, {"address": "10.61.0.1"})
    assert ipam.handle("request", b'{"node": "a"}')[0] == 400
    assert ipam.handle("request", b'{"node": "a", "subnet": "10.61.0.0/24", "range": "10.1.0.0/24"}')[0] == 400
    assert ipam.handle("nope", b"{}")[0] == 404
    assert ipam.handle("release", b'{"node": "a", "subnet": "10.61.0.0/30", "address": "10.61.0.1"}') == (
        200, {"released": True})  # fmt: skip


# ---------------------------------------------------------------- the driver asks the hub
async def test_endpoint_addresses_come_from_the_hub_and_the_gateway_stays_local() -> None:
    ipam = SharedIpam(lambda: ())
    calls: list[tuple[str, ...]] = []

    async def allocate(subnet: str, sub: str, address: str, exclude: list[str]) -> str:
        calls.append((subnet, address, *exclude))
        status, body = ipam.handle("request", msgspec.json.encode(
            {"node": "a", "subnet": subnet, "range": sub, "address": address, "exclude": exclude}))  # fmt: skip
        if status != 200:
            raise DriverError(body["error"])
        return str(body["address"])

    async def release(subnet: str, address: str) -> None:
        ipam.release("a", subnet, address)

    d = Driver(DriverState(), FakeHandoff(), allocate=allocate, release=release)
    await d.request_pool({"AddressSpace": LOCAL_SPACE, "Pool": "10.60.0.0/24"})
    gw = await d.request_address({"PoolID": POOL, "Options": {"RequestAddressType": GATEWAY_REQUEST}})
    assert gw["Address"] == "10.60.0.1/24" and calls == []
    ipam.request("b", "10.60.0.0/24", exclude=["10.60.0.1"])  # another engine took .2 meanwhile
    got = await d.request_address({"PoolID": POOL})
    assert got["Address"] == "10.60.0.3/24" and calls == [("10.60.0.0/24", "", "10.60.0.1")]
    with pytest.raises(DriverError, match="already in use"):
        await d.request_address({"PoolID": POOL, "Address": "10.60.0.2"})  # node b's
    await d.release_address({"PoolID": POOL, "Address": "10.60.0.3/24"})
    assert "10.60.0.3" not in ipam.reserved["10.60.0.0/24"]


async def test_an_unreadable_hub_token_is_a_docker_error_naming_it(tmp_path: Path) -> None:
    from adapters.docker.drivernode import DriverNode

    def node(token: Path) -> DriverNode:
        return DriverNode(name="ovn-hub", socket=str(tmp_path / "x.sock"), state_path="", hub_id="hub1",
                          nb_remote="unix:/nonexistent", docker_url="unix:///nonexistent", handoff=FakeHandoff(),
                          hub_api=f"unix:{tmp_path}/api.sock", hub_token_file=str(token))  # fmt: skip

    n = node(tmp_path / "missing")
    await n.driver.request_pool({"AddressSpace": LOCAL_SPACE, "Pool": "10.60.0.0/24"})
    with pytest.raises(DriverError, match="cannot read the hub's ingest token"):
        await n.driver.request_address({"PoolID": POOL})
    assert n.state.pools[POOL].allocated == {}  # nothing handed out


def test_node_hub_api_needs_a_scheme_and_the_token() -> None:
    from hub.config import ConfigError, loads
    from hub.node import node_options

    ok = node_options(loads('[node]\nhub_api = "unix:/run/ovn-hub/api.sock"\nhub_token_file = "/etc/ovn-hub/t"\n'))
    assert (ok.hub_api, ok.hub_token_file) == ("unix:/run/ovn-hub/api.sock", "/etc/ovn-hub/t")
    with pytest.raises(ConfigError, match="hub_token_file"):
        node_options(loads('[node]\nhub_api = "unix:/run/ovn-hub/api.sock"\n'))
    with pytest.raises(ConfigError, match="must be unix"):
        node_options(loads('[node]\nhub_api = "hub:8080"\nhub_token_file = "/t"\n'))
