"""core.vif.NbView from update2 notifications as ovsdb-server sends them (no server)."""

from __future__ import annotations

import json

from core.vif import NbAddress, NbView


def ls(subnet: str, gateway: str = "") -> dict[str, object]:
    ids = [["ovn-hub:source", "docker/local"], ["ovn-hub:uid", "blue"]]
    if gateway:
        ids.append(["ovn-hub:gateway", gateway])
    return {"name": "hub-blue", "other_config": ["map", [["subnet", subnet]]], "external_ids": ["map", ids]}


def lsp(addresses: str, dynamic: str = "", security: str = "") -> dict[str, object]:
    ids = [["ovn-hub:uid", "c1"], ["ovn-hub:network", "blue"], ["ovn-hub:source", "docker/local"]]
    return {
        "name": "p-c1",
        "addresses": addresses,
        "dynamic_addresses": ["set", [dynamic] if dynamic else []],
        "port_security": ["set", [security] if security else []],
        "external_ids": ["map", ids],
    }


def test_monitor_is_conditioned_on_owner_and_chassis() -> None:
    spec = NbView.monitor_spec("hub1", "node1")
    where = json.loads(json.dumps(spec["Logical_Switch_Port"][0]["where"]))  # as it goes on the wire
    assert ["external_ids", "includes", ["map", [["ovn-hub:owner", "hub1"]]]] in where
    assert ["options", "includes", ["map", [["requested-chassis", "node1"]]]] in where


def test_static_dynamic_prefix_gateway_and_deletes() -> None:
    v = NbView()
    assert v.apply({"Logical_Switch": {"s1": {"initial": ls("10.9.0.0/24", "10.9.0.1")}}}) == set()
    assert v.apply({"Logical_Switch_Port": {"p1": {"insert": lsp("dynamic")}}}) == {"c1"}
    assert v.address("c1", "blue") is None  # not allocated yet
    v.apply({"Logical_Switch_Port": {"p1": {"modify": {"dynamic_addresses": "0a:00:00:00:00:07 10.9.0.7"}}}})
    assert v.address("c1", "blue") is None  # allocated, but the hub has not locked port_security to it
    dirty = v.apply({"Logical_Switch_Port": {"p1": {"modify": {"port_security": "0a:00:00:00:00:07 10.9.0.7"}}}})
    assert dirty == {"c1"}
    assert v.address("c1", "blue") == NbAddress("p-c1", "0a:00:00:00:00:07", ("10.9.0.7/24",), "10.9.0.1")
    # the switch's gateway goes away (a map diff removes an equal pair): the port is dirty again
    dirty = v.apply({"Logical_Switch": {"s1": {"modify": {"external_ids": ["map", [["ovn-hub:gateway", "10.9.0.1"]]]}}}})
    assert dirty == {"c1"} and v.address("c1", "blue") == NbAddress("p-c1", "0a:00:00:00:00:07", ("10.9.0.7/24",), "")
    assert v.apply({"Logical_Switch_Port": {"p1": {"delete": None}}}) == {"c1"}
    assert v.address("c1", "blue") is None and v.ports == {}


def test_static_v4_without_subnet_and_v6() -> None:
    v = NbView()
    v.apply({"Logical_Switch_Port": {"p1": {"initial": lsp("0a:00:00:00:00:09 10.1.2.3 fd00::9")}}})
    assert v.address("c1", "blue") == NbAddress("p-c1", "0a:00:00:00:00:09", ("10.1.2.3/32", "fd00::9/64"), "")
    v.apply({"Logical_Switch_Port": {"p1": {"modify": {"addresses": ["set", ["0a:00:00:00:00:09 10.1.2.3 fd00::9",
                                                                             "0a:00:00:00:00:09"]]}}}})  # fmt: skip
    assert v.address("c1", "blue") is None  # a MAC-only port: nothing to configure
    v.clear()
    assert v.ports == {} and v.switches == {}
