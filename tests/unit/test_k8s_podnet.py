"""The pod network's subnets and gateway (adapters/k8s/podnet.py) and a node's
podCIDRs (normalize.node_pod_cidrs): pure functions, no server.

Node payloads: the only Node fixture is the GKE one (tests/fixtures/kubernetes,
``spec.podCIDR: 10.0.0.1/24``); every other Node here is TEST-BUILT from the
core/v1 Node shape (``metadata.name``, ``spec.podCIDR``, ``spec.podCIDRs``)."""

from __future__ import annotations

import ipaddress
import itertools
from typing import Any

import pytest
import yaml

from adapters.k8s.normalize import node_pod_cidrs
from adapters.k8s.podnet import (
    cap,
    collapse,
    first_host,
    parse_pod_cidr,
    parse_pod_gateway,
    pod_network,
    pod_subnet,
)
from core.model import LIMITS, Invalid, Network, Source, validate
from core.nb.tables.switch import ls_columns
from tests.conftest import FIXTURES_DIR

SRC = Source("k8s", "test")
FIXTURE_NODE = FIXTURES_DIR / "kubernetes" / "node.apimachinery-managedfields.yaml"


def mknode(name: str, *cidrs: str, old: bool = False) -> dict[str, Any]:
    """A TEST-BUILT Node (core/v1 shape): ``spec.podCIDRs`` (``old``: only
    ``spec.podCIDR``, as nodes from before dual-stack have it)."""
    spec: dict[str, Any] = {}
    if cidrs:
        spec["podCIDR"] = cidrs[0]
        if not old:
            spec["podCIDRs"] = list(cidrs)
    return {"kind": "Node", "apiVersion": "v1", "metadata": {"name": name}, "spec": spec}


def derive(*nodes: dict[str, Any]) -> Network:
    """What the adapter derives from these nodes (without the pod_cidr option)."""
    return pod_network(SRC, "default", cap(collapse(c for n in nodes for c in node_pod_cidrs(n)))[0])


# ---------------------------------------------------------------- collapse
def test_collapse_merges_adjacent_and_nested_slices_only() -> None:
    assert collapse(["10.244.1.0/24", "10.244.0.0/24"]) == ("10.244.0.0/23",)
    assert collapse(["10.244.0.0/16", "10.244.7.0/24"]) == ("10.244.0.0/16",)
    # not contiguous: never a covering supernet (10.244.0.0/22 would claim 10.244.1.0/24 and 10.244.2.0/24)
    assert collapse(["10.244.0.0/24", "10.244.3.0/24"]) == ("10.244.0.0/24", "10.244.3.0/24")
    # 1, 2, 3: 2 and 3 make an aligned /23, 1 stays
    assert collapse(["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]) == ("10.244.1.0/24", "10.244.2.0/23")
    assert collapse([]) == ()


def test_collapse_is_a_sorted_set_v4_first() -> None:
    cidrs = ["fd00:10:244:1::/64", "10.244.3.0/24", "10.0.0.1/24", "fd00:10:244::/64", "10.244.1.0/24", "10.0.0.0/24"]
    want = ("10.0.0.0/24", "10.244.1.0/24", "10.244.3.0/24", "fd00:10:244::/63")
    for perm in itertools.permutations(cidrs):
        assert collapse(perm) == want  # the order of the nodes never matters; duplicates are one
    nets = [ipaddress.ip_network(s) for s in want]
    assert nets == sorted(nets, key=lambda n: (n.version, n))


# ---------------------------------------------------------------- cap
def test_cap_keeps_the_lowest_of_each_family() -> None:
    small = ("10.0.0.0/24", "fd00::/64")
    assert cap(small) == (small, ())
    v4 = [f"10.{i}.0.0/24" for i in range(20)]
    kept, dropped = cap(v4)
    assert kept == tuple(v4[:16]) and dropped == tuple(v4[16:])
    # a family with few subnets keeps them all; the other one gets the rest
    kept, dropped = cap([*v4, "fd00::/64", "fd01::/64"])
    assert kept == (*v4[:14], "fd00::/64", "fd01::/64") and dropped == tuple(v4[14:])
    v6 = [f"fd{i:02x}::/64" for i in range(20)]
    kept, dropped = cap([*v4, *v6])
    assert kept == (*v4[:8], *v6[:8]) and len(dropped) == 24
    assert len(cap([*v4, *v6], 5)[0]) == 5
    assert LIMITS["subnets"] == 16


# ---------------------------------------------------------------- gateway, Network
def test_first_host() -> None:
    assert first_host("10.244.0.0/16") == "10.244.0.1"
    assert first_host("fd00:10:244::/56") == "fd00:10:244::1"


def test_pod_network_gateway_is_in_the_subnet_the_switch_takes() -> None:
    net = pod_network(SRC, "default", collapse(["fd00::/64", "10.244.3.0/24", "10.244.1.0/24"]))
    assert net.subnets == ("10.244.1.0/24", "10.244.3.0/24", "fd00::/64") and net.gateway == "10.244.1.1"
    validate(net)
    cols = ls_columns(SRC, "default", net, "hub")
    # the switch's one IPv4 subnet is the gateway's, and the gateway is excluded from its IPAM
    assert cols["other_config"] == {"subnet": "10.244.1.0/24", "exclude_ips": "10.244.1.1", "ipv6_prefix": "fd00::"}
    assert ipaddress.ip_address(net.gateway) in ipaddress.ip_network(cols["other_config"]["subnet"])
    v6 = pod_network(SRC, "default", ("fd00:10:244::/56",))
    assert v6.gateway == "fd00:10:244::1"
    assert pod_network(SRC, "default", ()) == Network(source=SRC, name="default")
    assert pod_network(SRC, "default", ("10.244.0.0/16",), "10.244.0.254").gateway == "10.244.0.254"


# ---------------------------------------------------------------- node podCIDRs
def test_fixture_node_pod_cidr() -> None:
    node = yaml.safe_load(FIXTURE_NODE.read_text())
    assert node["spec"]["podCIDR"] == "10.0.0.1/24"  # the API server accepts host bits
    assert node_pod_cidrs(node) == ("10.0.0.0/24",)
    assert derive(node) == Network(source=SRC, name="default", subnets=("10.0.0.0/24",), gateway="10.0.0.1")


def test_node_pod_cidrs_shapes() -> None:
    assert node_pod_cidrs(mknode("a", "10.244.1.0/24", "fd00:10:244:1::/64")) == ("10.244.1.0/24", "fd00:10:244:1::/64")
    assert node_pod_cidrs(mknode("a", "10.244.1.0/24", old=True)) == ("10.244.1.0/24",)
    assert node_pod_cidrs(mknode("a")) == ()  # not allocated yet
    assert node_pod_cidrs({"metadata": {"name": "a"}}) == ()
    # spec.podCIDRs wins over spec.podCIDR (the API server keeps podCIDR == podCIDRs[0])
    both = {"kind": "Node", "metadata": {"name": "a"}, "spec": {"podCIDR": "10.9.0.0/24", "podCIDRs": ["10.1.0.0/24"]}}
    assert node_pod_cidrs(both) == ("10.1.0.0/24",)
    assert node_pod_cidrs(mknode("a", "FD00:10:244:1:0::/64")) == ("fd00:10:244:1::/64",)  # canonical


@pytest.mark.parametrize(
    ("node", "reason", "words"),
    [
        (mknode("a", "banana"), "bad-subnet", "spec.podCIDRs[0] 'banana' is not a CIDR"),
        (mknode("a", "banana", old=True), "bad-subnet", "spec.podCIDR 'banana' is not a CIDR"),
        (mknode("a", "10.244.1.0"), "bad-subnet", "no prefix length"),
        (mknode("a", "10.244.1.0/33"), "bad-subnet", "is not a CIDR"),
        (mknode("a", "10.244.1.0/24", "10.244.2.0/24"), "bad-subnet", "two IPv4 CIDRs"),
        (mknode("a", "fd00::/64", "fd01::/64"), "bad-subnet", "two IPv6 CIDRs"),
        (mknode("a", "10.244.1.0/31"), "bad-subnet", "too small"),
        (mknode("a", "fd00::/127"), "bad-subnet", "too small"),
        (mknode("a", "224.0.0.0/24"), "bad-subnet", "not a range pods can have"),
        (mknode("a", "127.0.0.0/8"), "bad-subnet", "not a range pods can have"),
        (mknode("a", "169.254.0.0/16"), "bad-subnet", "not a range pods can have"),
        (mknode("a", "0.0.0.0/0"), "bad-subnet", "not a range pods can have"),
        (mknode("a", "::/64"), "bad-subnet", "not a range pods can have"),
        (mknode("a", "10.244.1.0/24\n"), "bad-subnet", "is not a CIDR"),
        (mknode("a", "fe80::1%eth0/64"), "bad-subnet", "is not a CIDR"),
        ({"kind": "Node", "metadata": {"name": "a"}, "spec": {"podCIDRs": "10.0.0.0/24"}}, "bad-field", "expected a list"),
        ({"kind": "Node", "metadata": {"name": "a"}, "spec": {"podCIDRs": [7]}}, "bad-field", "expected a string"),
        ({"kind": "Node", "metadata": {"name": "a"}, "spec": {"podCIDR": 7}}, "bad-field", "expected a string"),
        ({"kind": "Node", "metadata": {"name": "a"}, "spec": []}, "bad-field", "expected an object"),
        ({"kind": "Pod", "metadata": {"name": "a"}}, "wrong-kind", "is not Node"),
    ],
)
def test_bad_node_pod_cidrs(node: dict[str, Any], reason: str, words: str) -> None:
    with pytest.raises(Invalid) as info:
        node_pod_cidrs(node)
    assert info.value.reason == reason and words in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


def test_derivation_follows_the_nodes() -> None:
    """The Network over nodes coming and going: a stable sorted set, the gateway
    the first address of the lowest IPv4 slice (it moves when that node goes)."""
    n0 = mknode("n0", "10.244.0.0/24", "fd00:10:244::/64")
    n1 = mknode("n1", "10.244.1.0/24", "fd00:10:244:1::/64")
    n3 = mknode("n3", "10.244.3.0/24", old=True)  # an old single-stack node in a dual-stack cluster
    net = derive(n0, n1, n3)
    assert net.subnets == ("10.244.0.0/23", "10.244.3.0/24", "fd00:10:244::/63") and net.gateway == "10.244.0.1"
    assert derive(n3, n1, n0) == net, "the order of the nodes does not matter"
    assert derive(n1, n3) == Network(
        source=SRC, name="default", subnets=("10.244.1.0/24", "10.244.3.0/24", "fd00:10:244:1::/64"), gateway="10.244.1.1"
    )
    assert derive(mknode("v6", "fd00:10:244:7::/64")).gateway == "fd00:10:244:7::1"
    assert derive() == Network(source=SRC, name="default")
    # a cluster whose slices no longer collapse to 16: the lowest ones are kept (the adapter logs it)
    scattered = [mknode(f"n{i}", f"10.244.{2 * i}.0/24") for i in range(20)]
    net = derive(*scattered)
    assert len(net.subnets) == 16 and net.subnets[0] == "10.244.0.0/24" and net.subnets[-1] == "10.244.30.0/24"
    validate(net)


# ---------------------------------------------------------------- the options
@pytest.mark.parametrize(
    ("value", "subnets"),
    [
        ("10.244.0.0/16", ("10.244.0.0/16",)),
        ("fd00:10:244::/56, 10.244.0.0/16", ("10.244.0.0/16", "fd00:10:244::/56")),
        (["fd00:10:244::/56", "10.244.0.0/16"], ("10.244.0.0/16", "fd00:10:244::/56")),
        ("10.245.0.0/16,10.244.0.0/16", ("10.244.0.0/15",)),  # adjacent: one subnet, as for nodes
        ("10.0.0.0/8,192.168.0.0/16", ("10.0.0.0/8", "192.168.0.0/16")),
        ("FD00::/8", ("fd00::/8",)),
    ],
)
def test_pod_cidr_option(value: str | list[str], subnets: tuple[str, ...]) -> None:
    assert parse_pod_cidr(value) == subnets


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("banana", "entry 1 'banana' is not a CIDR"),
        ("10.244.0.1/16", "entry 1 '10.244.0.1/16' has host bits set (the network is 10.244.0.0/16)"),
        ("10.244.0.0/16,", "entry 2 is empty"),
        ("10.244.0.0/16;fd00::/56", "is not a CIDR"),
        (["10.244.0.0/16", ""], "entry 2 is empty"),
        ("10.244.0.0", "no prefix length"),
        ("10.0.0.0/8,10.244.0.0/16", "10.244.0.0/16 overlaps 10.0.0.0/8"),
        ("10.244.0.0/16,10.244.0.0/16", "overlaps"),
        ("10.244.0.0/31", "too small for pods"),
        ("224.0.0.0/4", "not a range pods can have"),
        (",".join(f"10.{2 * i}.0.0/16" for i in range(17)), "17 subnets, more than a network may have (16)"),
    ],
)
def test_bad_pod_cidr_option(value: str | list[str], words: str) -> None:
    with pytest.raises(Invalid) as info:
        parse_pod_cidr(value)
    assert words in str(info.value), str(info.value)


def test_pod_gateway_option() -> None:
    dual = parse_pod_cidr("10.244.0.0/16,fd00:10:244::/56")
    assert parse_pod_gateway("10.244.255.254", dual) == "10.244.255.254"
    assert parse_pod_gateway("fd00:10:244::fe", ("fd00:10:244::/56",)) == "fd00:10:244::fe"
    two = parse_pod_cidr("10.244.1.0/24,10.244.0.0/24")
    assert two == ("10.244.0.0/23",) and parse_pod_gateway("10.244.1.1", two) == "10.244.1.1"
    for bad, words in (
        ("10.96.0.1", "not in 10.244.0.0/16, the gateway subnet"),
        ("fd00:10:244::1", "not in 10.244.0.0/16"),  # dual-stack: the IPv4 subnet is the switch's
        ("10.244.0.0", "network or broadcast address"),
        ("10.244.255.255", "network or broadcast address"),
        ("gw", "is not an IPv4 or IPv6 address"),
        ("10.244.0.01", "is not an IPv4 or IPv6 address"),
    ):
        with pytest.raises(Invalid) as info:
            parse_pod_gateway(bad, dual)
        assert words in str(info.value), (bad, str(info.value))


def test_pod_subnet_strictness() -> None:
    assert str(pod_subnet("10.0.0.1/24")) == "10.0.0.0/24"  # a node's, as the API server accepts it
    with pytest.raises(Invalid, match="host bits"):
        pod_subnet("10.0.0.1/24", strict=True)  # an option the operator wrote
