"""What Mesos' network/cni isolator passes to ovn-hub-cni (core/vif/cni.py)."""

from __future__ import annotations

from typing import Any

import pytest

from core.vif.cni import mesos_network_info, network_info_labels


def test_the_isolators_args_are_read() -> None:
    """cni.cpp: ``networkConfigJSON["args"]["org.apache.mesos"]["network_info"] = JSON::protobuf(networkInfo)``."""
    info = {"name": "blue", "labels": {"labels": [{"key": "tier", "value": "api"}, {"key": "flag"}]},
            "port_mappings": [{"host_port": 8080, "container_port": 80, "protocol": "tcp"}]}  # fmt: skip
    conf = {"cniVersion": "0.3.1", "name": "blue", "type": "ovn-hub", "args": {"org.apache.mesos": {"network_info": info}}}
    assert mesos_network_info(conf) == info
    assert network_info_labels(info) == {"tier": "api", "flag": ""}


@pytest.mark.parametrize(
    "conf",
    [{}, {"args": 3}, {"args": {"org.apache.mesos": []}}, {"args": {"org.apache.mesos": {"network_info": "x"}}},
     {"args": {"cni": {"labels": []}}}],
)  # fmt: skip
def test_anything_else_is_not_mesos(conf: dict[str, Any]) -> None:
    assert mesos_network_info(conf) is None


def test_malformed_labels_are_left_out() -> None:
    assert network_info_labels({"labels": {"labels": [{"key": 5}, "x", {"key": "n", "value": 7}, {"key": ""}]}}) == {"n": "7"}
    assert network_info_labels({"labels": "x"}) == {} and network_info_labels({}) == {}
