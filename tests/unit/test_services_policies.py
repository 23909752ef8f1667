"""Services, namespaces and policies without a server: the model (round trips,
schema, validation reasons, the object cache) and the pure derivation of policy
rows.  The NB rows the programmer writes for them, against a real ovsdb-server,
are in tests/integration/test_services_policies.py; their behaviour on OVN's
own flows in tests/system/test_ovn_trace.py.  The object builders here are
shared with the integration half."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from core.adapter import ObjectCache
from core.model import (
    Delete,
    Endpoint,
    Expr,
    Invalid,
    LBRule,
    Namespace,
    Peer,
    Policy,
    PolicyPort,
    PortSpec,
    Rule,
    Selector,
    Service,
    Snapshot,
    Source,
    Upsert,
    decode_event,
    decode_object,
    encode,
    json_schema,
    kind_of,
    validate,
)
from core.nb.tables.policy import pg_name, policy_rows, selector_matches

SRC = Source("k8s", "prod")
OTHER = Source("k8s", "stage")
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def pod(i: int, ns: str = "default", src: Source = SRC, net: str = "pods", **labels: str) -> Endpoint:
    return Endpoint(
        source=src, uid=f"p{i}", namespace=ns, name=f"pod{i}", kind="pod", network=net,
        ips=(f"10.0.0.{i}",), labels=labels, ports=(PortSpec(port=8000 + i, name="http"),),
    )


def svc(uid: str = "s1", net: str = "pods", src: Source = SRC, **kw: Any) -> Service:
    base: dict[str, Any] = dict(
        source=src, uid=uid, namespace="default", name=f"svc-{uid}", network=net,
        rules=(
            LBRule(vip="10.96.0.10", port=80, backends=("10.0.0.2:8080", "10.0.0.1:8080")),
            LBRule(protocol="udp", vip="10.96.0.10", port=53, backends=("10.0.0.3:53",)),
            LBRule(vip="fd00::10", port=80, backends=("[fd00::2]:8080",)),
            LBRule(vip="10.96.0.10", port=443, backends=()),
        ),
    )
    base.update(kw)
    return Service(**base)


def web_policy(uid: str = "np1", **kw: Any) -> Policy:
    base: dict[str, Any] = dict(
        source=SRC, uid=uid, namespace="default", name=f"pol-{uid}",
        pod_selector=Selector(match_labels={"app": "web"}),
        ingress=(Rule(peers=(Peer(pod_selector=Selector(match_labels={"role": "client"})),), ports=(PolicyPort(port=80),)),),
    )
    base.update(kw)
    return Policy(**base)


def snap(*objs: Any, src: Source = SRC) -> Snapshot:
    return Snapshot(source=src, objects=tuple(objs))


# ---------------------------------------------------------------- model
def test_new_kinds_roundtrip_schema_and_cache() -> None:
    objs: list[Namespace | Service | Policy] = [
        Namespace(source=SRC, name="default", labels={"team": "a"}), svc(affinity_timeout=10800), web_policy()
    ]
    schema = json_schema()
    assert {"Service", "Policy", "Namespace", "LBRule", "Rule", "Peer", "PolicyPort", "Selector", "Expr"} <= set(schema["$defs"])
    for o in objs:
        validate(o)
        assert decode_object(encode(o)) == o
        ev = Upsert(obj=o)
        assert decode_event(encode(ev)) == ev
        jsonschema.validate(json.loads(encode(ev)), schema)
    assert [kind_of(o) for o in objs] == ["namespace", "service", "policy"]
    assert [o.key for o in objs] == ["default", "s1", "np1"]
    cache = ObjectCache(SRC)
    for o in objs:
        assert cache.upsert(o) is not None
        assert cache.upsert(o) is None  # no-op filtering works for every kind
    assert cache.delete("policy", "np1") == Delete(source=SRC, kind="policy", key="np1")
    assert cache.delete("service", "s1") == Delete(source=SRC, kind="service", key="s1")
    assert decode_object(b'{"type":"policy","source":{"orchestrator":"k8s","cluster":"a"},"uid":"u","namespace":"n","name":"x",'
                         b'"ingress":[{"ports":[{"port":"http"},{"port":80,"end_port":90}]}]}').ingress == (  # type: ignore[union-attr]
        Rule(ports=(PolicyPort(port="http"), PolicyPort(port=80, end_port=90))),
    )


def _rule(**kw: Any) -> Service:
    base: dict[str, Any] = dict(vip="10.96.0.1", port=80, backends=("10.0.0.1:80",))
    base.update(kw)
    return svc(rules=(LBRule(**base),))


def _ing(*peers: Peer, ports: tuple[PolicyPort, ...] = ()) -> Policy:
    return web_policy(ingress=(Rule(peers=peers, ports=ports),))


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        (_rule(vip="10.96.0.300"), "bad-ip"),
        (_rule(vip="fd00::0:1", backends=()), "bad-ip"),
        (_rule(port=0), "bad-port"),
        (_rule(protocol="icmp"), "bad-protocol"),
        (_rule(backends=("10.0.0.1",)), "bad-backend"),
        (_rule(backends=("10.0.0.1:99999",)), "bad-backend"),
        (_rule(backends=("fd00::1:80",)), "bad-backend"),
        (_rule(backends=("[fd00::1]:80",)), "bad-backend"),  # family differs from the vip
        (_rule(backends=("10.0.0.1:80", "10.0.0.1:80")), "bad-backend"),
        (svc(rules=(LBRule(vip="10.96.0.1", port=80), LBRule(vip="10.96.0.1", port=80))), "bad-rule"),
        (svc(affinity_timeout=86401), "bad-affinity"),
        (svc(network="a/b"), "bad-network"),
        (svc(uid="a b"), "bad-uid"),
        (web_policy(pod_selector=Selector(match_expressions=(Expr(key="a", operator="Equals", values=("x",)),))), "bad-selector"),
        (web_policy(pod_selector=Selector(match_expressions=(Expr(key="a", operator="In"),))), "bad-selector"),
        (web_policy(pod_selector=Selector(match_expressions=(Expr(key="a", operator="Exists", values=("x",)),))), "bad-selector"),
        (web_policy(pod_selector=Selector(match_labels={"-bad": "x"})), "bad-selector"),
        (_ing(Peer()), "bad-peer"),
        (_ing(Peer(cidr="10.0.0.0/8", pod_selector=Selector())), "bad-peer"),
        (_ing(Peer(pod_selector=Selector(), except_cidrs=("10.0.0.0/24",))), "bad-peer"),
        (_ing(Peer(cidr="10.0.0.0/33")), "bad-cidr"),
        (_ing(Peer(cidr="10.0.0.0/16", except_cidrs=("10.1.0.0/24",))), "bad-cidr"),
        (_ing(Peer(cidr="10.0.0.0/16", except_cidrs=("fd00::/64",))), "bad-cidr"),
        (_ing(ports=(PolicyPort(protocol="icmp"),)), "bad-protocol"),
        (_ing(ports=(PolicyPort(port=70000),)), "bad-port"),
        (_ing(ports=(PolicyPort(port=90, end_port=80),)), "bad-port"),
        (_ing(ports=(PolicyPort(end_port=80),)), "bad-port"),
        (_ing(ports=(PolicyPort(port="http", end_port=80),)), "bad-port"),
        (_ing(ports=(PolicyPort(port="Not_A_Name"),)), "bad-port"),
        (Namespace(source=SRC, name=""), "empty-field"),
        (Namespace(source=SRC, name="x", labels={"k": "v\n"}), "bad-label"),
    ],
)
def test_validation_reasons(obj: Any, reason: str) -> None:
    with pytest.raises(Invalid) as exc:
        validate(obj)
    assert exc.value.reason == reason, str(exc.value)


# ---------------------------------------------------------------- pure derivation
def test_selector_semantics() -> None:
    labels = {"app": "web", "tier": "front"}

    def m(**kw: Any) -> bool:
        return selector_matches(Selector(**kw), labels)

    def e(op: str, *values: str, key: str = "tier") -> Selector:
        return Selector(match_expressions=(Expr(key=key, operator=op, values=values),))

    assert m() and m(match_labels={"app": "web"}) and not m(match_labels={"app": "db"})
    assert selector_matches(e("In", "front", "back"), labels) and not selector_matches(e("In", "back"), labels)
    assert selector_matches(e("NotIn", "back"), labels) and not selector_matches(e("NotIn", "front"), labels)
    assert selector_matches(e("NotIn", "x", key="absent"), labels)  # NotIn matches a missing key
    assert selector_matches(e("Exists"), labels) and not selector_matches(e("Exists", key="absent"), labels)
    assert selector_matches(e("DoesNotExist", key="absent"), labels) and not selector_matches(e("DoesNotExist"), labels)
    both = Selector(match_labels={"app": "web"}, match_expressions=(Expr(key="tier", operator="In", values=("back",)),))
    assert not selector_matches(both, labels)  # matchLabels AND matchExpressions


def test_policy_rows_deterministic_and_valid_names() -> None:
    eps = [pod(i, app="web") for i in range(1, 4)] + [pod(i, role="client") for i in range(4, 7)]
    pols = [
        web_policy(),
        web_policy("np2", egress=(Rule(ports=(PolicyPort(port="http"),)),), ingress=None),
        web_policy("np3", ingress=(Rule(peers=(Peer(cidr="10.0.0.0/8", except_cidrs=("10.1.0.0/16", "10.2.0.0/16")),)),)),
    ]
    ns = {"default": Namespace(source=SRC, name="default")}
    rows = policy_rows(SRC, eps, ns, pols, "hub1")
    for _ in range(3):
        random.shuffle(eps)
        random.shuffle(pols)
        assert sorted(policy_rows(SRC, eps, ns, pols, "hub1"), key=lambda r: (r.table, r.key)) == sorted(rows, key=lambda r: (r.table, r.key))
    names = {r.key for r in rows if r.table in ("Port_Group", "Address_Set")}
    assert names and all(IDENT.match(n) for n in names)
    assert pg_name(SRC, "np1") != pg_name(OTHER, "np1")
    matches = {r.columns["match"] for r in rows if r.table == "ACL"}
    assert "(ip4.src == 10.0.0.0/8 && ip4.src != {10.1.0.0/16, 10.2.0.0/16})" in " ".join(matches)
    # egress named port: one ACL per resolved number, destination IPs inlined
    assert any("ip4.dst == {10.0.0.4}) && tcp.dst == 8004" in m for m in matches)
    assert policy_rows(SRC, eps, ns, [], "hub1") == []


def test_egress_named_port_to_an_ip_block_reaches_only_addresses_inside_it() -> None:
    """A dual-stack pod whose IPv6 address is in the ipBlock is a destination at that
    address only: the block does not open its IPv4 address too."""
    dual = Endpoint(source=SRC, uid="d", namespace="default", name="d", kind="pod", network="pods",
                    ips=("10.0.0.9", "fd00::9"), ports=(PortSpec(port=8443, name="https"),))  # fmt: skip
    pol = web_policy(ingress=None, egress=(Rule(peers=(Peer(cidr="fd00::/64"),), ports=(PolicyPort(port="https"),)),))
    matches = [r.columns["match"] for r in policy_rows(SRC, [pod(1, app="web"), dual], {}, [pol], "hub1") if r.table == "ACL"]
    pg = pg_name(SRC, "np1")
    assert f"inport == @{pg} && ip && (ip6.dst == {{fd00::9}}) && tcp.dst == 8443" in matches
    # a selector peer is every address of the pods it selects
    pol = web_policy(ingress=None, egress=(Rule(peers=(Peer(pod_selector=Selector()),), ports=(PolicyPort(port="https"),)),))
    matches = [r.columns["match"] for r in policy_rows(SRC, [pod(1, app="web"), dual], {}, [pol], "hub1") if r.table == "ACL"]
    assert f"inport == @{pg} && ip && (ip4.dst == {{10.0.0.9}} || ip6.dst == {{fd00::9}}) && tcp.dst == 8443" in matches
