"""The Docker network + IPAM driver without Docker: its IPAM, its answers, its state file,
adoption of what Docker holds, and the node's binding decisions (fakes for links and bridge)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.docker.driver import (
    GATEWAY_REQUEST,
    LOCAL_SPACE,
    DockerView,
    Driver,
    DriverError,
    DriverState,
    Endpoint,
    Net,
    endpoint_mac,
    handoff_names,
)
from adapters.docker.drivernode import I_CONTAINER, I_ENDPOINT, DriverNode, _holds
from core.vif.handoff import DRIVER_OWNER, FakeHandoff

POOL = f"{LOCAL_SPACE}/10.60.0.0/24"
GW = {"RequestAddressType": GATEWAY_REQUEST}
NID, EID = "n" * 64, "e" * 64


def addr(st: DriverState, pid: str = POOL, want: str = "", **opts: str) -> str:
    return st.request_address(pid, want, opts)


# ---------------------------------------------------------------- IPAM
def test_pools_are_counted_identical_requests_agree_and_overlaps_are_refused() -> None:
    st = DriverState()
    p = st.request_pool(LOCAL_SPACE, "10.60.0.7/24", "", False)
    assert (p.id, p.subnet, p.refs) == (POOL, "10.60.0.0/24", 1)
    assert st.request_pool(LOCAL_SPACE, "10.60.0.0/24", "", False) is p and p.refs == 2
    with pytest.raises(DriverError, match=r"overlaps pool 10\.60\.0\.0/24"):
        st.request_pool(LOCAL_SPACE, "10.60.0.0/16", "", False)
    assert st.request_pool("other", "10.60.0.0/16", "", False).id == "other/10.60.0.0/16"  # another space
    with pytest.raises(DriverError, match="give --subnet"):
        st.request_pool(LOCAL_SPACE, "", "", False)
    with pytest.raises(DriverError, match="needs a pool"):
        st.request_pool(LOCAL_SPACE, "", "10.60.0.0/25", False)
    with pytest.raises(DriverError, match="not inside pool"):
        st.request_pool(LOCAL_SPACE, "10.61.0.0/24", "10.62.0.0/25", False)
    with pytest.raises(DriverError, match="not a CIDR"):
        st.request_pool(LOCAL_SPACE, "ten", "", False)
    st.release_pool(POOL)
    assert POOL in st.pools
    st.release_pool(POOL)
    st.release_pool(POOL)  # released already: fine
    assert POOL not in st.pools


def test_addresses_gateway_first_then_serial_never_network_or_broadcast() -> None:
    st = DriverState()
    st.request_pool(LOCAL_SPACE, "10.60.0.0/29", "", False)  # hosts .1-.6
    pid = f"{LOCAL_SPACE}/10.60.0.0/29"
    assert addr(st, pid, **GW) == "10.60.0.1/29"
    assert addr(st, pid, "10.60.0.1", **GW) == "10.60.0.1/29"  # the gateway asked again
    assert [addr(st, pid) for _ in range(3)] == ["10.60.0.2/29", "10.60.0.3/29", "10.60.0.4/29"]
    st.release_address(pid, "10.60.0.2")
    assert addr(st, pid) == "10.60.0.5/29"  # serial: the freed .2 is not reused at once
    assert addr(st, pid) == "10.60.0.6/29"
    assert addr(st, pid) == "10.60.0.2/29"  # wrapped around
    with pytest.raises(DriverError, match="no free address left"):
        addr(st, pid)
    st.release_address(pid, "10.60.0.4/29")  # with a prefix, as Docker sends it
    with pytest.raises(DriverError, match="already in use"):
        addr(st, pid, "10.60.0.5")
    with pytest.raises(DriverError, match="network or broadcast"):
        addr(st, pid, "10.60.0.7")
    with pytest.raises(DriverError, match="not in pool"):
        addr(st, pid, "10.61.0.7")
    assert addr(st, pid, "10.60.0.4") == "10.60.0.4/29"


def test_a_sub_pool_bounds_allocation_and_the_gateway_may_be_chosen() -> None:
    st = DriverState()
    p = st.request_pool(LOCAL_SPACE, "10.60.0.0/24", "10.60.0.128/25", False)
    assert p.id == f"{LOCAL_SPACE}/10.60.0.0/24/10.60.0.128/25"
    assert addr(st, p.id, "10.60.0.254", **GW) == "10.60.0.254/24"
    assert addr(st, p.id) == "10.60.0.129/24"
    assert addr(st, p.id, "10.60.0.5") == "10.60.0.5/24"  # a --ip outside the range, inside the pool


def test_a_pool_the_state_lost_is_adopted_from_its_id() -> None:
    st = DriverState()
    assert addr(st) == "10.60.0.1/24"  # e.g. a damaged state file: the id says what the pool is
    assert st.pools[POOL].refs == 1
    with pytest.raises(DriverError, match="unknown pool"):
        addr(st, "somebody/else")


def test_ipv6_pools() -> None:
    st = DriverState()
    p = st.request_pool(LOCAL_SPACE, "fd00:60::/64", "", True)
    assert addr(st, p.id, **GW) == "fd00:60::1/64"
    assert addr(st, p.id) == "fd00:60::2/64"
    with pytest.raises(DriverError, match="not IPv6"):
        st.request_pool(LOCAL_SPACE, "10.9.0.0/24", "", True)


def test_state_file_round_trip_and_a_damaged_file_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    st = DriverState(str(path))
    st.request_pool(LOCAL_SPACE, "10.60.0.0/24", "", False)
    addr(st, **GW)
    st.save()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again = DriverState(str(path))
    assert again.pools[POOL].allocated.keys() == {"10.60.0.1"} and again.seq == st.seq
    path.write_text("{not json")
    fresh = DriverState(str(path))
    assert fresh.pools == {} and (tmp_path / "state.json.bad").exists() and not path.exists()


# ---------------------------------------------------------------- the protocol
async def network(d: Driver) -> None:
    await d.create_network({"NetworkID": NID, "IPv4Data": [{"AddressSpace": LOCAL_SPACE, "Pool": "10.60.0.0/24",
                                                            "Gateway": "10.60.0.1/24"}], "IPv6Data": []})  # fmt: skip


async def test_handshake_answers() -> None:
    d = Driver(DriverState(), FakeHandoff())
    assert await d.activate(None) == {"Implements": ["NetworkDriver", "IpamDriver"]}
    assert await d.capabilities({}) == {"Scope": "local", "ConnectivityScope": "local"}
    assert await d.ipam_capabilities({}) == {"RequiresMACAddress": False, "RequiresRequestReplay": False}
    assert (await d.address_spaces({}))["LocalDefaultAddressSpace"] == LOCAL_SPACE
    assert {"NetworkDriver.Join", "IpamDriver.RequestAddress", "NetworkDriver.DiscoverNew",
            "NetworkDriver.ProgramExternalConnectivity"} <= d.methods().keys()  # fmt: skip


async def test_endpoint_lifecycle_create_join_leave_delete() -> None:
    links = FakeHandoff()
    changed: list[str] = []
    deleted: list[str] = []
    d = Driver(DriverState(), links, on_change=changed.append, deleted=deleted.append)
    await network(d)
    out = await d.create_endpoint({"NetworkID": NID, "EndpointID": EID, "Interface": {"Address": "10.60.0.2/24"}})
    assert out == {"Interface": {"MacAddress": "0a:58:0a:3c:00:02"}}  # the MAC this driver gives
    dev, peer = handoff_names(EID)
    joined = await d.join({"NetworkID": NID, "EndpointID": EID, "SandboxKey": "/run/docker/netns/abc", "Options": {}})
    assert joined == {"InterfaceName": {"SrcName": peer, "DstPrefix": "eth"}, "StaticRoutes": [],
                      "Gateway": "10.60.0.1"}  # fmt: skip
    assert links.links == {dev: (peer, "0a:58:0a:3c:00:02")} and changed == [EID]
    assert d.state.endpoints[EID].joined and d.state.endpoints[EID].sandbox == "/run/docker/netns/abc"
    info = await d.endpoint_info({"NetworkID": NID, "EndpointID": EID})
    assert info["Value"]["ovs-interface"] == dev and info["Value"]["addresses"] == ["10.60.0.2"]
    links.ifaces[dev] = {DRIVER_OWNER: "h"}
    await d.leave({"NetworkID": NID, "EndpointID": EID})
    assert dev not in links.ifaces and dev in links.links  # off br-int; the veth goes with DeleteEndpoint
    await d.delete_endpoint({"NetworkID": NID, "EndpointID": EID})
    await d.delete_endpoint({"NetworkID": NID, "EndpointID": EID})  # idempotent
    assert links.links == {} and deleted == [EID] and d.state.endpoints == {}
    await d.delete_network({"NetworkID": NID})
    assert d.state.networks == {}


async def test_a_given_mac_is_kept_and_bad_requests_say_why() -> None:
    d = Driver(DriverState(), FakeHandoff())
    with pytest.raises(DriverError, match="unknown network"):
        await d.create_endpoint({"NetworkID": NID, "EndpointID": EID, "Interface": {"Address": "10.60.0.2/24"}})
    with pytest.raises(DriverError, match="needs an IPv4 subnet"):
        await d.create_network({"NetworkID": NID, "IPv4Data": [], "IPv6Data": []})
    with pytest.raises(DriverError, match="no NetworkID"):
        await d.create_network({"IPv4Data": []})
    with pytest.raises(DriverError, match="not a JSON object"):
        await d.create_network([])
    await network(d)
    given = {"Address": "10.60.0.9/24", "MacAddress": "0A:00:00:00:00:09"}
    assert await d.create_endpoint({"NetworkID": NID, "EndpointID": EID, "Interface": given}) == {}
    assert d.state.endpoints[EID].mac == "0a:00:00:00:00:09"
    with pytest.raises(DriverError, match="has no address"):
        await d.create_endpoint({"NetworkID": NID, "EndpointID": "x" * 64, "Interface": {}})
    with pytest.raises(DriverError, match="unknown endpoint"):
        await d.join({"NetworkID": NID, "EndpointID": "y" * 64, "SandboxKey": "/x"})


async def test_a_failed_join_leaves_the_endpoint_unjoined() -> None:
    links = FakeHandoff()
    d = Driver(DriverState(), links)
    await network(d)
    await d.create_endpoint({"NetworkID": NID, "EndpointID": EID, "Interface": {"Address": "10.60.0.2/24"}})
    links.fail("create", handoff_names(EID)[0])
    with pytest.raises(Exception, match="injected"):
        await d.join({"NetworkID": NID, "EndpointID": EID, "SandboxKey": "/x"})
    assert not d.state.endpoints[EID].joined


def test_endpoint_macs() -> None:
    assert endpoint_mac(EID, "10.60.0.2/24") == "0a:58:0a:3c:00:02"
    v6 = endpoint_mac(EID, "")
    assert v6.startswith("0a:") and len(v6) == 17 and v6 == endpoint_mac(EID, "")


# ---------------------------------------------------------------- adoption
def populated() -> DriverState:
    st = DriverState()
    st.request_pool(LOCAL_SPACE, "10.60.0.0/24", "", False)
    addr(st, **GW)
    addr(st)  # .2
    st.networks[NID] = Net(id=NID, pools=["10.60.0.0/24"], gateways=["10.60.0.1/24"], seq=st.tick())
    st.endpoints[EID] = Endpoint(id=EID, network=NID, address="10.60.0.2/24", mac="0a:58:0a:3c:00:02",
                                 joined=True, seq=st.tick())  # fmt: skip
    return st


def test_adopt_keeps_what_matches_and_releases_what_docker_no_longer_has() -> None:
    st = populated()
    view = DockerView(networks={NID: (["10.60.0.0/24"], ["10.60.0.1/24"])},
                      endpoints={EID: (NID, "10.60.0.2/24", "", "0a:58:0a:3c:00:02")},
                      pools={POOL: 1}, used={POOL: {"10.60.0.1", "10.60.0.2"}})  # fmt: skip
    before = st.seq
    gone: list[Endpoint] = []
    assert st.adopt(view, before, exists=lambda _d: True, gone=gone.append) == []
    # Docker forgot the endpoint (a long outage: it gave up on DeleteEndpoint): released, its address too
    view.endpoints.clear()
    view.used[POOL].discard("10.60.0.2")
    changes = st.adopt(view, st.seq, exists=lambda _d: True, gone=gone.append)
    assert [g.id for g in gone] == [EID] and EID not in st.endpoints
    assert "10.60.0.2" not in st.pools[POOL].allocated and "10.60.0.1" in st.pools[POOL].allocated
    assert any("released endpoint" in c for c in changes) and any("released address 10.60.0.2" in c for c in changes)


def test_adopt_does_not_collect_what_was_answered_while_docker_was_listed() -> None:
    st = populated()
    before = st.seq - 5  # the listing began before the network, endpoint and addresses were made
    empty = DockerView()
    assert st.adopt(empty, before, exists=lambda _d: True, gone=lambda _e: None) == []
    assert EID in st.endpoints and NID in st.networks and POOL in st.pools


def test_adopt_takes_over_what_docker_holds_and_the_state_lost() -> None:
    st = DriverState()  # a lost state file
    view = DockerView(networks={NID: (["10.60.0.0/24"], ["10.60.0.1/24"])},
                      endpoints={EID: (NID, "10.60.0.2/24", "", "0a:58:0a:3c:00:02"), "z" * 64: (NID, "10.60.0.3/24",
                                 "", "")}, pools={POOL: 2}, used={POOL: {"10.60.0.1", "10.60.0.2", "10.60.0.3"}})  # fmt: skip
    dev = handoff_names(EID)[0]
    changes = st.adopt(view, st.seq, exists=lambda d: d == dev, gone=lambda _e: None, recent=["z" * 64])
    assert st.networks[NID].pools == ["10.60.0.0/24"]
    assert list(st.endpoints) == [EID] and st.endpoints[EID].joined  # its veth is there; z was deleted meanwhile
    assert st.pools[POOL].refs == 1 and st.pools[POOL].allocated.keys() == {"10.60.0.1", "10.60.0.2", "10.60.0.3"}
    assert len(changes) == 6, changes
    with pytest.raises(DriverError, match="in use"):
        addr(st, want="10.60.0.3")


# ---------------------------------------------------------------- the node's binding
def node(links: FakeHandoff | None = None) -> DriverNode:
    return DriverNode(name="ovn-hub", socket="/nonexistent/x.sock", state_path="", hub_id="h",
                      nb_remote="unix:/nonexistent", docker_url="unix:///nonexistent", chassis="c1",
                      handoff=links or FakeHandoff())  # fmt: skip


def nb_port(n: DriverNode, cid: str, net: str, name: str) -> None:
    n.nb.ports[(cid, net)] = {"name": name, "uuid": "u", "addresses": ["x"], "dynamic_addresses": None,
                              "port_security": [], "external_ids": {}, "source": "docker/local"}  # fmt: skip


async def test_a_joined_endpoint_is_bound_once_nb_has_its_port_and_unbound_when_it_leaves() -> None:
    links = FakeHandoff()
    n = node(links)
    n.state.endpoints[EID] = Endpoint(id=EID, network=NID, address="10.60.0.2/24", mac="0a:58:0a:3c:00:02",
                                      joined=True)  # fmt: skip
    dev = handoff_names(EID)[0]
    await n.fix({EID})
    assert links.ifaces == {}  # which container: not known yet
    n.owners[EID] = ("c" * 64, "green")
    await n.fix({EID})
    assert links.ifaces == {}  # the hub has not written the port yet
    nb_port(n, "c" * 64, "green", "docker/local/green/" + "c" * 64)
    seen: list[tuple[str, str]] = []
    n.on_bound = lambda eid, port, _t: seen.append((eid, port))
    await n.fix({EID})
    assert links.ifaces[dev]["iface-id"] == "docker/local/green/" + "c" * 64
    assert links.ifaces[dev][DRIVER_OWNER] == "h" and links.ifaces[dev][I_CONTAINER] == "c" * 64
    assert seen == [(EID, "docker/local/green/" + "c" * 64)]
    # keys ovs-vswitchd or ovn-controller add are not ours to compare: no rebind
    n.bound[dev] = {**links.ifaces[dev], "ovn-installed": "true"}
    calls = len(links.calls)
    await n.fix({EID})
    assert len(links.calls) == calls
    n.state.endpoints[EID].joined = False
    await n.fix({EID})
    assert dev not in links.ifaces and dev not in n.bound


def test_holds_compares_only_the_drivers_keys() -> None:
    want = {"iface-id": "p", DRIVER_OWNER: "h", I_ENDPOINT: "e"}
    assert _holds({**want, "ovn-installed": "true"}, want)
    assert not _holds({**want, "ovn-hub:stale": "x"}, want)
    assert not _holds(None, want)


async def test_docker_view_folds_networks_endpoints_pools_and_owners() -> None:
    n = node()
    detail: dict[str, Any] = {
        "Id": NID, "Name": "green", "Driver": "ovn-hub",
        "IPAM": {"Driver": "ovn-hub", "Config": [{"Subnet": "10.60.0.0/24"}]},
        "Containers": {"c" * 64: {"EndpointID": EID, "MacAddress": "0A:58:0A:3C:00:02", "IPv4Address": "10.60.0.2/24",
                                  "IPv6Address": ""},
                       "ep-" + "z" * 64: {"EndpointID": "z" * 64, "IPv4Address": "10.60.0.3/24"}},
    }  # fmt: skip
    view = DockerView()
    owners: dict[str, tuple[str, str]] = {}
    n._fold_network(json.loads(json.dumps(detail)), view, owners, ours=True, our_ipam=True)
    assert view.networks == {NID: (["10.60.0.0/24"], ["10.60.0.1/24"])}  # the IPAM's rule: the first host
    assert view.endpoints[EID] == (NID, "10.60.0.2/24", "", "0a:58:0a:3c:00:02") and "z" * 64 in view.endpoints
    assert owners == {EID: ("c" * 64, "green")}  # "ep-…": an endpoint not (yet) in a sandbox
    assert view.pools == {POOL: 1} and view.used == {POOL: {"10.60.0.1", "10.60.0.2", "10.60.0.3"}}


async def test_a_burst_is_bound_in_one_transaction_and_a_bad_row_costs_only_itself() -> None:
    links = FakeHandoff()
    n = node(links)
    eids = [c * 64 for c in "abcd"]
    for i, eid in enumerate(eids):
        n.state.endpoints[eid] = Endpoint(id=eid, network=NID, address=f"10.60.0.{i + 2}/24", mac="0a:58:0a:3c:00:02",
                                          joined=True)  # fmt: skip
        n.owners[eid] = (str(i) * 64, "green")
        nb_port(n, str(i) * 64, "green", f"docker/local/green/{i}")
    await n.fix(set(eids[:3]))
    assert links.batches == [sorted(handoff_names(e)[0] for e in eids[:3])]
    links.batches.clear()
    links.fail("bind", handoff_names(eids[3])[0], times=2)
    n.state.endpoints[eids[0]].joined = False
    nb_port(n, "1" * 64, "green", "docker/local/green/renamed")
    await n.fix(set(eids))  # eids[1] rebinds, eids[3] fails: the batch, then each alone
    assert len(links.batches) == 3 and n.failures == 1
    assert links.ifaces[handoff_names(eids[1])[0]]["iface-id"] == "docker/local/green/renamed"
    assert handoff_names(eids[0])[0] not in links.ifaces and handoff_names(eids[3])[0] not in links.ifaces
