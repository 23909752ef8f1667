"""CNI without a socket or a process: the plugin's checks (hub/cniplugin.py) with the
spec's error codes, the result and CHECK of core/vif/cni.py, and the plugin's imports."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from core.model import Endpoint, Source, validate
from core.model.validate import NETWORK_NAME
from core.vif import Attachment
from core.vif.cni import check, dns_search, endpoint_uid, labels_of, result, static_address
from core.vif.link import LinkState
from hub import cniplugin as P

ROOT = Path(__file__).resolve().parents[2]
ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc123", "CNI_NETNS": "/var/run/netns/x", "CNI_IFNAME": "eth0",
       "CNI_PATH": "/opt/cni/bin"}  # fmt: skip


def conf(**kw: Any) -> bytes:
    base: dict[str, Any] = {"cniVersion": "1.0.0", "name": "hubnet", "type": "ovn-hub", "network": "blue"}
    base.update(kw)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


def code(env: dict[str, str], stdin: bytes) -> int:
    with pytest.raises(P.CniError) as info:
        P.parse(env, stdin)
    assert info.value.msg
    return info.value.code


def test_a_good_request_is_parsed() -> None:
    req = P.parse({**ENV, "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web;app=x"}, conf(timeout=5))
    assert req["command"] == "ADD" and req["container_id"] == "abc123" and req["ifname"] == "eth0"
    assert req["args"] == {"IgnoreUnknown": "1", "K8S_POD_NAME": "web", "app": "x"}
    assert req["conf"]["network"] == "blue" and req["conf"]["timeout"] == 5


def test_the_spec_error_codes() -> None:
    assert code(ENV, b"{nope") == P.DECODE_FAILURE == 6
    assert code(ENV, b'"a string"') == 6
    assert code(ENV, conf(cniVersion="0.2.0")) == P.INCOMPATIBLE_VERSION == 1
    assert code(ENV, conf(cniVersion=None)) == P.INVALID_CONFIG == 7
    assert code(ENV, conf(network=None)) == 7
    assert code(ENV, conf(network="no/slash")) == 7
    assert code(ENV, conf(type="bridge")) == 7
    assert code(ENV, conf(timeout=0)) == 7
    assert code(ENV, conf(timeout=True)) == 7
    assert code(ENV, conf(socket="relative.sock")) == 7
    assert code(ENV, conf(prevResult=[])) == 7
    assert code(ENV, conf(ipam={"type": "host-local"})) == P.UNSUPPORTED_FIELD == 2
    for key in ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"):
        assert code({k: v for k, v in ENV.items() if k != key}, conf()) == P.INVALID_ENV == 4
    assert code({**ENV, "CNI_COMMAND": "FROB"}, conf()) == 4
    assert code({**ENV, "CNI_CONTAINERID": "-leading-dash"}, conf()) == 4
    assert code({**ENV, "CNI_IFNAME": "a" * 16}, conf()) == 4
    assert code({**ENV, "CNI_IFNAME": "e/0"}, conf()) == 4
    assert code({**ENV, "CNI_NETNS": "relative"}, conf()) == 4
    assert code({**ENV, "CNI_ARGS": "novalue"}, conf()) == 4
    # CHECK needs 0.4.0, GC and STATUS 1.1.0
    assert code({**ENV, "CNI_COMMAND": "CHECK"}, conf(cniVersion="0.3.1")) == 1
    assert code({"CNI_COMMAND": "GC", "CNI_PATH": "/x"}, conf()) == 1
    assert P.parse({"CNI_COMMAND": "STATUS", "CNI_PATH": "/x"}, conf(cniVersion="1.1.0"))["command"] == "STATUS"


def test_del_needs_no_netns() -> None:
    env = {k: v for k, v in ENV.items() if k != "CNI_NETNS"}
    assert P.parse({**env, "CNI_COMMAND": "DEL"}, conf())["netns"] == ""


def test_version_and_errors_on_stdout_need_no_agent() -> None:
    status, out = P.run({"CNI_COMMAND": "VERSION"}, b'{"cniVersion": "0.4.0"}')
    assert status == 0 and out == {"cniVersion": "0.4.0", "supportedVersions": list(P.SUPPORTED_VERSIONS)}
    status, out = P.run(ENV, conf(network=None))
    assert status == 1 and out is not None and out["code"] == 7 and out["cniVersion"] == "1.0.0"
    assert set(out) <= {"cniVersion", "code", "msg", "details"}


def test_the_plugin_imports_only_the_standard_library() -> None:
    """It is exec'd per CNI call: no aiohttp, msgspec, ovsdbapp, not even typing at run time."""
    tree = ast.parse((ROOT / "hub" / "cniplugin.py").read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module.split(".")[0])
    assert top <= {"__future__", "json", "os", "re", "socket", "sys"}, top


def test_the_plugin_and_the_model_agree_on_network_names() -> None:
    assert P.NETWORK_NAME.pattern == NETWORK_NAME.pattern


A = Attachment(key="c/eth0", network="blue", netns_path="/var/run/netns/x", ifname="eth0", port="cni/n1/blue/c-eth0",
               mac="0a:00:00:00:00:05", addrs=("10.80.0.5/24",), gateway="10.80.0.1")  # fmt: skip


def test_result_in_the_versions_shapes() -> None:
    res = result("1.0.0", A, host_mac="0a:00:00:00:ff:01", search=["default.cni.n1.hub"])
    assert res == {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": A.dev, "mac": "0a:00:00:00:ff:01"},
                       {"name": "eth0", "mac": "0a:00:00:00:00:05", "sandbox": "/var/run/netns/x"}],
        "ips": [{"address": "10.80.0.5/24", "interface": 1, "gateway": "10.80.0.1"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.80.0.1"}],
        "dns": {"nameservers": ["10.80.0.1"], "search": ["default.cni.n1.hub"]},
    }  # fmt: skip
    assert result("0.3.1", A)["ips"][0]["version"] == "4"
    no_gw = result("1.0.0", Attachment(**{**{f: getattr(A, f) for f in A.__struct_fields__}, "gateway": ""}))
    assert "routes" not in no_gw and "dns" not in no_gw and "gateway" not in no_gw["ips"][0]


def test_check_names_every_difference() -> None:
    good = LinkState("0a:00:00:00:00:05", ("10.80.0.5/24",), ("10.80.0.1",), True)
    assert check(A, good, None) == []
    assert check(A, good, result("1.0.0", A)) == []
    assert check(A, None, None) == ["interface eth0 is gone from /var/run/netns/x"]
    bad = LinkState("0a:00:00:00:99:99", (), (), False)
    problems = check(A, bad, None)
    assert [p.split()[1] for p in problems] == ["has", "lacks", "is", "default"], problems
    other = {"ips": [{"address": "10.80.0.9/24"}], "interfaces": [{"name": "net1", "sandbox": "/x"}]}
    assert len(check(A, good, other)) == 2


def test_endpoints_of_runtimes_without_an_adapter() -> None:
    uid = endpoint_uid("f00d" * 16, "eth0")
    assert uid == "f00d" * 16 + "-eth0"
    assert " " not in endpoint_uid("a b", "x") and len(endpoint_uid("a" * 300, "eth0")) == 253
    labels = labels_of({"IgnoreUnknown": "1", "K8S_POD_NAME": "p", "IP": "10.0.0.1", "app": "web"},
                       {"labels": {"tier": "db"}})  # fmt: skip
    assert labels == {"app": "web", "tier": "db"}
    assert static_address({"IP": "10.80.0.7"}, {}) == (("10.80.0.7",), None)
    assert static_address({}, {"ips": ["10.80.0.8/24"], "mac": "0A:00:00:00:00:01"}) == (("10.80.0.8",), "0a:00:00:00:00:01")
    with pytest.raises(ValueError):
        static_address({"IP": "nope"}, {})
    with pytest.raises(ValueError):
        static_address({"MAC": "01:00:00:00:00:01"}, {})  # multicast
    ep = Endpoint(source=Source("cni", "node1"), uid=uid, namespace="default", name="p", kind="container",
                  network="blue", labels=labels)  # fmt: skip
    validate(ep)
    assert dns_search("default", "cni/node1", "hub") == ["default.cni.node1.hub"]
    assert dns_search("default", "cni/node1", "") == []
