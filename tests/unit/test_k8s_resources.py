"""Kubernetes Services + EndpointSlices, NetworkPolicies and Namespaces →
canonical model (pure functions and the offline normalizer, no server)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from adapters.k8s.normalize import (
    DEFAULT_AFFINITY_TIMEOUT,
    SERVICE_NAME_LABEL,
    EndpointSliceInfo,
    SlicePort,
    node_internal_ips,
    normalize_namespace,
    normalize_policy,
    normalize_service,
    parse_endpoint_slice,
)
from adapters.k8s.offline import normalize_text
from core.model import (
    Delete,
    Expr,
    Invalid,
    LBRule,
    Namespace,
    Peer,
    Policy,
    PolicyPort,
    Rule,
    Selector,
    Service,
    Source,
    validate,
)
from tests.conftest import FIXTURES_DIR

FIXTURES = FIXTURES_DIR / "kubernetes"
SRC = Source("k8s", "test")
SVC_UID = "a6c11186-fd24-11e6-b53c-480fcf4a5275"  # the service fixture's uid

if not FIXTURES.is_dir():  # a missing fixture dir is an error, never a silent skip
    raise RuntimeError(f"{FIXTURES} missing")


def load(name: str) -> dict[str, Any]:
    text = (FIXTURES / name).read_text()
    obj: dict[str, Any] = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    return obj


def svc(name: str = "web", *cluster_ips: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]}
    ips = cluster_ips or ("10.96.0.10",)
    s["clusterIP"], s["clusterIPs"] = ips[0], list(ips)
    s.update(spec)
    return {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "spec": s,
    }


def eps(
    name: str,
    service: str = "web",
    *addresses: str | tuple[str, Any],
    family: str = "IPv4",
    ports: list[dict[str, Any]] | None = None,
    namespace: str = "default",
) -> dict[str, Any]:
    endpoints: list[dict[str, Any]] = []
    for a in addresses:
        if isinstance(a, tuple):
            endpoints.append({"addresses": [a[0]], "conditions": {"ready": a[1]}})
        else:
            endpoints.append({"addresses": [a]})  # no conditions: ready
    return {
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "labels": {SERVICE_NAME_LABEL: service}},
        "addressType": family,
        "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }


def backends(s: Service | None) -> dict[tuple[str, str, int], tuple[str, ...]]:
    assert s is not None
    validate(s)
    return {(r.protocol, r.vip, r.port): r.backends for r in s.rules}


# ---------------------------------------------------------------- namespaces
def test_namespace_fixture_and_bad_namespaces() -> None:
    ns = normalize_namespace(load("namespace.doc-fixture.json"), SRC)
    assert ns == Namespace(source=SRC, name="development", labels={"name": "development"})
    assert normalize_namespace({"kind": "Namespace", "metadata": {"name": "x"}}, SRC).labels == {}
    for bad, reason in (
        ({"kind": "Namespace", "metadata": {"name": "x", "labels": {"a": 1}}}, "bad-label"),
        ({"kind": "Namespace", "metadata": {}}, "missing-field"),
        ({"kind": "Pod", "metadata": {"name": "x"}}, "wrong-kind"),
    ):
        with pytest.raises(Invalid) as info:
            normalize_namespace(bad, SRC)
        assert info.value.reason == reason


# ---------------------------------------------------------------- services
def test_service_fixture() -> None:
    s = normalize_service(load("service.kubectl-edit-testdata.json"), [], [], SRC)
    assert s == Service(
        source=SRC,
        uid=SVC_UID,
        namespace="edit-test",
        name="svc1",
        network="default",
        rules=(LBRule(protocol="tcp", vip="10.0.0.204", port=80, backends=()),),
        affinity_timeout=0,
    )
    validate(s)
    assert s.key == SVC_UID
    # offline: no slices in the input → rules without backends
    assert list(normalize_text((FIXTURES / "service.kubectl-edit-testdata.json").read_text(), SRC)) == [s]
    # joined with a slice of its own (port named "80", numeric targetPort 80 used as is)
    sl = eps("svc1-x", "svc1", "10.244.0.7", ("10.244.0.8", False), namespace="edit-test", ports=[])
    joined = normalize_service(load("service.kubectl-edit-testdata.json"), [sl], [], SRC, "blue")
    assert joined is not None and joined.network == "blue"
    assert backends(joined) == {("tcp", "10.0.0.204", 80): ("10.244.0.7:80",)}


def test_endpointslice_fixture_joined_to_a_matching_service() -> None:
    info = parse_endpoint_slice(load("endpointslice-v1.k8s-docs-example.yaml"))
    assert info == EndpointSliceInfo(
        namespace="default",
        name="example-abc",
        service="example",
        family=4,
        ports=(SlicePort(name="http", port=80, protocol="tcp"),),
        addresses=("10.1.2.3",),
    )
    named = svc("example", "10.96.5.5")
    assert backends(normalize_service(named, [info], [], SRC)) == {("tcp", "10.96.5.5", 80): ("10.1.2.3:80",)}
    numeric = svc("example", "10.96.5.5", ports=[{"name": "http", "port": 8000, "targetPort": 9376}])
    assert backends(normalize_service(numeric, [info], [], SRC)) == {("tcp", "10.96.5.5", 8000): ("10.1.2.3:9376",)}
    # raw slices are accepted too; a service of another name or namespace does not see it
    raw = load("endpointslice-v1.k8s-docs-example.yaml")
    assert backends(normalize_service(named, [raw], [], SRC)) == {("tcp", "10.96.5.5", 80): ("10.1.2.3:80",)}
    assert backends(normalize_service(svc("other", "10.96.5.6"), [raw], [], SRC)) == {("tcp", "10.96.5.6", 80): ()}
    assert backends(normalize_service(svc("example", "10.96.5.7", namespace="x"), [raw], [], SRC)) == {
        ("tcp", "10.96.5.7", 80): ()
    }
    # offline: the slice alone is validated and emits nothing; with the service in the same input they join
    slice_text = (FIXTURES / "endpointslice-v1.k8s-docs-example.yaml").read_text()
    assert list(normalize_text(slice_text, SRC)) == []
    out = list(normalize_text(yaml.safe_dump(named) + "---\n" + slice_text, SRC))
    assert len(out) == 1 and isinstance(out[0], Service)
    assert backends(out[0]) == {("tcp", "10.96.5.5", 80): ("10.1.2.3:80",)}


def test_ready_condition_and_backend_order() -> None:
    slices = [
        eps("a", "web", "10.244.1.9", ("10.244.1.2", True), ("10.244.1.3", False), ("10.244.1.4", None)),
        eps("b", "web", "10.244.1.10", "10.244.1.9"),  # the same pod in two slices: one backend
    ]
    expected = ("10.244.1.2:8080", "10.244.1.4:8080", "10.244.1.9:8080", "10.244.1.10:8080")
    assert backends(normalize_service(svc(), slices, [], SRC)) == {("tcp", "10.96.0.10", 80): expected}
    assert normalize_service(svc(), slices, [], SRC) == normalize_service(svc(), slices[::-1], [], SRC)
    # serving/terminating do not matter, only ready
    s = eps("c", "web", "10.244.1.5")
    s["endpoints"][0]["conditions"] = {"serving": True, "terminating": True}
    assert backends(normalize_service(svc(), [s], [], SRC))[("tcp", "10.96.0.10", 80)] == ("10.244.1.5:8080",)


def test_dual_stack_backends_match_the_vip_family() -> None:
    s = svc("web", "10.96.0.10", "fd00:96:0::000a")
    slices = [
        eps("v4", "web", "10.244.1.5"),
        eps("v6", "web", "fd00:10:244::5", family="IPv6"),
        eps("fq", "web", "pod.example.com", family="FQDN"),
    ]
    assert backends(normalize_service(s, slices, [], SRC)) == {
        ("tcp", "10.96.0.10", 80): ("10.244.1.5:8080",),
        ("tcp", "fd00:96::a", 80): ("[fd00:10:244::5]:8080",),
    }
    info = parse_endpoint_slice(slices[2])
    assert (info.family, info.addresses) == (0, ())


def test_named_target_port_resolution() -> None:
    ports = [
        {"name": "http", "port": 80, "targetPort": "web"},
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
        {"name": "metrics", "port": 9090, "targetPort": "metrics"},
    ]
    slices = [
        eps(
            "a",
            "web",
            "10.244.1.5",
            ports=[{"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"}],
        ),
        eps("b", "web", "10.244.1.6", ports=[{"name": "http", "port": 8081}, {"name": "dns", "port": 5353}]),  # dns/TCP
    ]
    assert backends(normalize_service(svc(ports=ports), slices, [], SRC)) == {
        ("tcp", "10.96.0.10", 80): ("10.244.1.5:8080", "10.244.1.6:8081"),  # per slice, by the service port's name
        ("udp", "10.96.0.10", 53): ("10.244.1.5:5353",),  # the protocol must match too
        ("tcp", "10.96.0.10", 9090): (),  # no slice has it: no backend
    }


def test_node_ports_external_ips_and_affinity() -> None:
    node_ips = node_internal_ips(load("node.apimachinery-managedfields.yaml"))
    assert node_ips == ("10.0.0.1",)  # ExternalIP and Hostname are not node IPs for NodePorts
    ports = [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}]
    spec: dict[str, Any] = {
        "type": "NodePort",
        "ports": ports,
        "externalIPs": ["192.0.2.10"],
        "sessionAffinity": "ClientIP",
    }
    slices = [eps("a", "web", "10.244.1.5"), eps("b", "web", "fd00::5", family="IPv6")]
    s = normalize_service(svc(**spec), slices, [*node_ips, "10.0.0.2", "fd00:1::2", "10.0.0.1"], SRC)
    assert s is not None and s.affinity_timeout == DEFAULT_AFFINITY_TIMEOUT == 10800
    assert backends(s) == {
        ("tcp", "10.96.0.10", 80): ("10.244.1.5:8080",),
        ("tcp", "192.0.2.10", 80): ("10.244.1.5:8080",),
        ("tcp", "10.0.0.1", 30080): ("10.244.1.5:8080",),
        ("tcp", "10.0.0.2", 30080): ("10.244.1.5:8080",),
        ("tcp", "fd00:1::2", 30080): ("[fd00::5]:8080",),
    }
    lb = normalize_service(svc(**{**spec, "type": "LoadBalancer"}), slices, ["10.0.0.1"], SRC)
    assert ("tcp", "10.0.0.1", 30080) in backends(lb)
    cluster_ip = normalize_service(svc(**{**spec, "type": "ClusterIP"}), slices, ["10.0.0.1"], SRC)
    assert ("tcp", "10.0.0.1", 30080) not in backends(cluster_ip)
    timed = svc(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}})
    assert normalize_service(timed, [], [], SRC).affinity_timeout == 600  # type: ignore[union-attr]
    # an external IP equal to the cluster IP: one rule
    assert len(normalize_service(svc(externalIPs=["10.96.0.10"]), [], [], SRC).rules) == 1  # type: ignore[union-attr]


def test_headless_and_external_name_services_are_nothing() -> None:
    assert normalize_service(svc("h", "None"), [eps("a", "h", "10.244.1.5")], [], SRC) is None
    headless = svc("h")
    headless["spec"] = {"clusterIP": "None", "ports": [{"port": 80}]}
    assert normalize_service(headless, [], [], SRC) is None
    ext = {
        "kind": "Service",
        "metadata": {"name": "e", "uid": "u"},
        "spec": {"type": "ExternalName", "externalName": "x.io"},
    }
    assert normalize_service(ext, [], [], SRC) is None
    assert list(normalize_text(json.dumps([headless, ext]), SRC)) == []
    ext["spec"] = {"type": "ExternalName"}
    with pytest.raises(Invalid) as info:
        normalize_service(ext, [], [], SRC)
    assert info.value.reason == "missing-field"


def _with(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    node: Any = obj
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if value is ...:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return obj


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("metadata.uid", ..., "missing-field"),
        ("metadata.name", "has space", "bad-name"),
        ("spec", ..., "missing-field"),
        ("spec.type", "Magic", "bad-field"),
        ("spec.clusterIPs", ["10.96.0.300"], "bad-ip"),
        ("spec.clusterIPs", "10.96.0.10", "bad-field"),
        ("spec.externalIPs", ["224.0.0.1"], "bad-ip"),
        ("spec.ports.0.port", 0, "bad-port"),
        ("spec.ports.0.port", "80", "bad-port"),
        ("spec.ports.0.port", True, "bad-port"),
        ("spec.ports.0.targetPort", 70000, "bad-port"),
        ("spec.ports.0.targetPort", "has space", "bad-port"),
        ("spec.ports.0.nodePort", -1, "bad-port"),
        ("spec.ports.0.protocol", "HTTP", "bad-protocol"),
        ("spec.ports", {"port": 80}, "bad-field"),
        ("spec.sessionAffinity", "Sticky", "bad-affinity"),
        ("spec.sessionAffinityConfig", {"clientIP": {"timeoutSeconds": 0}}, "bad-affinity"),
        ("spec.sessionAffinityConfig", {"clientIP": {"timeoutSeconds": 86401}}, "bad-affinity"),
    ],
)
def test_bad_services_are_rejected(path: str, value: Any, reason: str) -> None:
    base = svc(sessionAffinity="ClientIP") if path.startswith("spec.sessionAffinityConfig") else svc()
    with pytest.raises(Invalid) as info:
        normalize_service(_with(base, path, value), [], [], SRC)
    assert info.value.reason == reason, info.value
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("addressType", "IPv5", "bad-field"),
        ("addressType", ..., "missing-field"),
        ("endpoints.0.addresses", ["fd00::1"], "bad-ip"),  # an IPv6 address in an IPv4 slice
        ("endpoints.0.addresses", ["10.0.0.300"], "bad-ip"),
        ("endpoints.0.conditions", {"ready": "yes"}, "bad-field"),
        ("ports.0.port", 0, "bad-port"),
        ("ports.0.protocol", "ICMP", "bad-protocol"),
        ("metadata.labels", {SERVICE_NAME_LABEL: 5}, "bad-label"),
        ("endpoints", {}, "bad-field"),
    ],
)
def test_bad_endpoint_slices_are_rejected(path: str, value: Any, reason: str) -> None:
    with pytest.raises(Invalid) as info:
        parse_endpoint_slice(_with(eps("a", "web", "10.244.1.5"), path, value))
    assert info.value.reason == reason, info.value


def test_bad_node_address() -> None:
    node = load("node.apimachinery-managedfields.yaml")
    node["status"]["addresses"][0]["address"] = "not-an-ip"
    with pytest.raises(Invalid) as info:
        node_internal_ips(node)
    assert info.value.reason == "bad-ip"
    out = list(normalize_text(yaml.safe_dump(node), SRC))
    assert len(out) == 1 and isinstance(out[0], Invalid) and out[0].reason == "bad-ip"


# ---------------------------------------------------------------- network policies
def policy(spec: dict[str, Any], name: str = "p", namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "spec": spec,
    }


def website() -> dict[str, Any]:
    obj = load("networkpolicy.k8s-website-example.yaml")
    obj["metadata"]["uid"] = "uid-website"
    return obj


def test_website_example_policy() -> None:
    pol = normalize_policy(website(), SRC)
    assert pol == Policy(
        source=SRC,
        uid="uid-website",
        namespace="default",
        name="test-network-policy",
        pod_selector=Selector(match_labels={"role": "db"}),
        ingress=(
            Rule(
                peers=(
                    Peer(cidr="172.17.0.0/16", except_cidrs=("172.17.1.0/24",)),
                    Peer(namespace_selector=Selector(match_labels={"project": "myproject"})),
                    Peer(pod_selector=Selector(match_labels={"role": "frontend"})),
                ),
                ports=(PolicyPort(protocol="tcp", port=6379),),
            ),
        ),
        egress=(Rule(peers=(Peer(cidr="10.0.0.0/24"),), ports=(PolicyPort(protocol="tcp", port=5978),)),),
    )
    validate(pol)
    assert pol.key == "uid-website"
    # offline: the fixture has no uid (like the pod fixture): rejected; with one, the Policy
    out = list(normalize_text((FIXTURES / "networkpolicy.k8s-website-example.yaml").read_text(), SRC))
    assert len(out) == 1 and isinstance(out[0], Invalid) and out[0].reason == "missing-field"
    assert "metadata.uid" in str(out[0])
    assert list(normalize_text(yaml.safe_dump(website()), SRC)) == [pol]


ALL = Selector()


@pytest.mark.parametrize(
    ("spec", "ingress", "egress"),
    [
        # default deny all ingress
        ({"podSelector": {}, "policyTypes": ["Ingress"]}, (), None),
        # allow all ingress
        ({"podSelector": {}, "ingress": [{}]}, (Rule(),), None),
        # default deny all egress
        ({"podSelector": {}, "policyTypes": ["Egress"]}, None, ()),
        # allow all egress
        ({"podSelector": {}, "egress": [{}], "policyTypes": ["Egress"]}, None, (Rule(),)),
        # default deny all ingress and all egress
        ({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, (), ()),
        # no policyTypes: Ingress, plus Egress when there are egress rules (k8s defaulting)
        (
            {"podSelector": {}, "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]},
            (),
            (Rule(ports=(PolicyPort(protocol="udp", port=53),)),),
        ),
        ({"podSelector": {}, "egress": []}, (), None),
        ({"podSelector": {}, "policyTypes": []}, (), None),
        # rules of a direction not in policyTypes are ignored
        ({"podSelector": {}, "ingress": [{}], "policyTypes": ["Egress"]}, None, ()),
        # podSelector absent = {} (all pods)
        ({"ingress": [{}]}, (Rule(),), None),
    ],
)
def test_documentation_policy_shapes(spec: dict[str, Any], ingress: Any, egress: Any) -> None:
    pol = normalize_policy(policy(spec), SRC)
    assert (pol.pod_selector, pol.ingress, pol.egress) == (ALL, ingress, egress)
    validate(pol)


def test_and_versus_or_peers() -> None:
    alice = {"matchLabels": {"user": "alice"}}
    client = {"matchLabels": {"role": "client"}}
    and_pol = normalize_policy(
        policy({"ingress": [{"from": [{"namespaceSelector": alice, "podSelector": client}]}]}), SRC
    )
    or_pol = normalize_policy(
        policy({"ingress": [{"from": [{"namespaceSelector": alice}, {"podSelector": client}]}]}), SRC
    )
    a, c = Selector(match_labels={"user": "alice"}), Selector(match_labels={"role": "client"})
    assert and_pol.ingress == (Rule(peers=(Peer(pod_selector=c, namespace_selector=a),)),)
    assert or_pol.ingress == (Rule(peers=(Peer(namespace_selector=a), Peer(pod_selector=c))),)
    # an empty namespaceSelector: every pod of every namespace
    every = normalize_policy(policy({"ingress": [{"from": [{"namespaceSelector": {}}]}]}), SRC)
    assert every.ingress == (Rule(peers=(Peer(namespace_selector=ALL),)),)


def test_ports_end_port_named_and_protocols() -> None:
    pol = normalize_policy(
        policy(
            {
                "podSelector": {"matchLabels": {"role": "db"}},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}],
                        "ports": [
                            {"protocol": "TCP", "port": 32000, "endPort": 32768},
                            {"port": "http"},
                            {"protocol": "UDP"},
                            {"protocol": "SCTP", "port": 9999},
                        ],
                    }
                ],
            }
        ),
        SRC,
    )
    assert pol.egress is not None
    assert pol.egress[0].ports == (
        PolicyPort(protocol="tcp", port=32000, end_port=32768),
        PolicyPort(protocol="tcp", port="http"),
        PolicyPort(protocol="udp"),
        PolicyPort(protocol="sctp", port=9999),
    )
    validate(pol)


def test_match_expressions() -> None:
    sel = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "k8s.io/managed", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist", "values": []},
        ],
    }
    pol = normalize_policy(policy({"podSelector": sel, "ingress": [{"from": [{"podSelector": sel}]}]}), SRC)
    expected = Selector(
        match_labels={"app": "web"},
        match_expressions=(
            Expr(key="tier", operator="In", values=("a", "b")),
            Expr(key="env", operator="NotIn", values=("dev",)),
            Expr(key="k8s.io/managed", operator="Exists"),
            Expr(key="legacy", operator="DoesNotExist"),
        ),
    )
    assert pol.pod_selector == expected
    assert pol.ingress is not None and pol.ingress[0].peers[0].pod_selector == expected


def _rule(**rule: Any) -> dict[str, Any]:
    return policy({"podSelector": {}, "ingress": [rule]})


def _sel(*exprs: dict[str, Any]) -> dict[str, Any]:
    return {"matchExpressions": list(exprs)}


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        (policy({"podSelector": _sel({"key": "a", "operator": "Like", "values": ["x"]})}), "bad-selector"),
        (policy({"podSelector": _sel({"key": "a", "operator": "In"})}), "bad-selector"),
        (policy({"podSelector": _sel({"key": "a", "operator": "Exists", "values": ["x"]})}), "bad-selector"),
        (policy({"podSelector": _sel({"key": "a", "operator": "In", "values": [1]})}), "bad-selector"),
        (policy({"podSelector": _sel({"operator": "Exists"})}), "missing-field"),
        (policy({"podSelector": {"matchLabels": {"bad key!": "x"}}}), "bad-selector"),
        (policy({"podSelector": {"matchLabels": {"a": 1}}}), "bad-label"),
        (policy({"podSelector": {}, "policyTypes": ["Both"]}), "bad-field"),
        (policy({"podSelector": {}, "policyTypes": ["Ingress", "Ingress"]}), "bad-field"),
        (policy({"podSelector": {}, "ingress": {}}), "bad-field"),
        (_rule(ports=[{"port": "http", "endPort": 90}]), "bad-port"),
        (_rule(ports=[{"endPort": 90}]), "bad-port"),
        (_rule(ports=[{"port": 100, "endPort": 90}]), "bad-port"),
        (_rule(ports=[{"port": 0}]), "bad-port"),
        (_rule(ports=[{"port": 80, "endPort": 70000}]), "bad-port"),
        (_rule(ports=[{"port": "80"}]), "bad-port"),  # a string port is a name, and "80" is not one
        (_rule(ports=[{"port": "Not_A_Name"}]), "bad-port"),
        (_rule(ports=[{"port": 80, "protocol": "ICMP"}]), "bad-protocol"),
        (_rule(**{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}), "bad-cidr"),
        (_rule(**{"from": [{"ipBlock": {"cidr": "10.0.0.1"}}]}), "bad-cidr"),
        (_rule(**{"from": [{"ipBlock": {}}]}), "missing-field"),
        (_rule(**{"from": [{"ipBlock": {"cidr": "10.0.0.0/24", "except": ["10.1.0.0/24"]}}]}), "bad-cidr"),
        (_rule(**{"from": [{"ipBlock": {"cidr": "10.0.0.0/24", "except": ["fd00::/64"]}}]}), "bad-cidr"),
        (_rule(**{"from": [{"ipBlock": {"cidr": "10.0.0.0/24", "except": ["nonsense"]}}]}), "bad-cidr"),
        (_rule(**{"from": [{"ipBlock": {"cidr": "10.0.0.0/24"}, "podSelector": {}}]}), "bad-peer"),
        (_rule(**{"from": [{}]}), "bad-peer"),
        (_rule(**{"from": ["10.0.0.0/8"]}), "bad-field"),
        ({**policy({}), "metadata": {"name": "p"}}, "missing-field"),
        ({**policy({}), "spec": None}, "missing-field"),
        ({**policy({}), "kind": "Service"}, "wrong-kind"),
    ],
)
def test_bad_policies_are_rejected(obj: dict[str, Any], reason: str) -> None:
    with pytest.raises(Invalid) as info:
        normalize_policy(obj, SRC)
    assert info.value.reason == reason, info.value
    assert "\n" not in str(info.value)
    if reason == "wrong-kind":
        return  # offline, it is simply a Service
    # the offline normalizer reports it too
    out = list(normalize_text(json.dumps(obj), SRC))
    assert len(out) == 1 and isinstance(out[0], Invalid) and out[0].reason == reason


# ---------------------------------------------------------------- offline streams
def test_offline_watch_events_of_the_new_kinds() -> None:
    events = [
        {"type": "ADDED", "object": svc("web")},
        {"type": "ADDED", "object": eps("web-1", "web", "10.244.1.5")},
        {"type": "MODIFIED", "object": eps("web-1", "web", "10.244.1.6")},
        {"type": "ADDED", "object": policy({"podSelector": {}})},
        {"type": "DELETED", "object": policy({"podSelector": {}})},
        {"type": "DELETED", "object": svc("web")},
        {"type": "DELETED", "object": {"kind": "Namespace", "metadata": {"name": "shop"}}},
        {"type": "DELETED", "object": eps("web-2", "web", "10.244.1.7")},
        {"type": "BOOKMARK", "object": {"kind": "EndpointSlice", "metadata": {"resourceVersion": "9"}}},
    ]
    out = list(normalize_text("\n".join(json.dumps(e) for e in events), SRC))
    assert len(out) == 5
    s = out[0]
    assert isinstance(s, Service) and backends(s) == {("tcp", "10.96.0.10", 80): ("10.244.1.6:8080",)}, (
        "last slice state"
    )
    assert isinstance(out[1], Policy) and out[1].ingress == ()
    assert out[2:] == [
        Delete(source=SRC, kind="policy", key="uid-p"),
        Delete(source=SRC, kind="service", key="uid-web"),
        Delete(source=SRC, kind="namespace", key="shop"),
    ]


def test_offline_list_kinds() -> None:
    lst = {
        "kind": "ServiceList",
        "apiVersion": "v1",
        "items": [{k: v for k, v in svc(n).items() if k != "kind"} for n in ("a", "b")],
    }
    out = list(normalize_text(json.dumps(lst), SRC))
    assert [s.name for s in out if isinstance(s, Service)] == ["a", "b"]


def test_load_balancer_ingress_ips_are_vips() -> None:
    """A LoadBalancer Service's ``status.loadBalancer.ingress`` IPs answer like its externalIPs
    (on the fabric's gateway); a hostname-only ingress adds nothing; a bad IP rejects the Service."""
    raw = load("service.kubectl-edit-testdata.json")
    raw["spec"]["type"] = "LoadBalancer"
    raw["status"] = {"loadBalancer": {"ingress": [{"ip": "172.16.0.80"}, {"hostname": "lb.example.com"}]}}
    s = normalize_service(raw, [], [], SRC)
    assert s is not None
    assert {r.vip for r in s.rules} == {"10.0.0.204", "172.16.0.80"}
    raw["status"] = {"loadBalancer": {"ingress": [{"ip": "not-an-ip"}]}}
    with pytest.raises(Invalid):
        normalize_service(raw, [], [], SRC)
    raw["spec"]["type"] = "ClusterIP"  # only a LoadBalancer's status counts
    raw["status"] = {"loadBalancer": {"ingress": [{"ip": "172.16.0.80"}]}}
    s = normalize_service(raw, [], [], SRC)
    assert s is not None and {r.vip for r in s.rules} == {"10.0.0.204"}
