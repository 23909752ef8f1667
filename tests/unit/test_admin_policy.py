"""Hub-level policies and what the orchestrator tier owes them, without a server:
implicit labels, the hairpin allow, the hub tier's compilation (priorities, pass
by subtraction, cross-source selection) checked by an evaluator of the compiled
matches (testkit/acl_eval.py) against the first-match semantics, and the
policies file.  Real NB + northd verdicts: tests/integration/test_admin_policy.py."""

from __future__ import annotations

import ipaddress
import itertools
import json
from collections.abc import Iterator
from typing import Any, Literal

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.model import (
    LIMITS,
    Delete,
    Endpoint,
    Expr,
    Invalid,
    Namespace,
    Peer,
    Policy,
    PolicyPort,
    PortSpec,
    Rule,
    Selector,
    Snapshot,
    Source,
    Upsert,
)
from core.model.fabric import (
    DEFAULT_HAIRPIN_IP,
    FABRIC_SOURCE,
    LABEL_CLUSTER,
    LABEL_NAMESPACE,
    LABEL_ORCHESTRATOR,
    MAX_ADMIN_PRIORITY,
    MAX_ADMIN_RULES,
    AdminPolicy,
    AdminRule,
    Fabric,
    decode_admin_policies,
    selector_labels,
    validate_admin_policies,
    validate_fabric,
)
from core.names import OWNER, lsp_name
from core.nb import Programmer
from core.nb.desired import SourceState
from core.nb.kinds import DesiredRow, SourceView
from core.nb.tables import policy
from core.nb.tables.admin_policy import HAIRPIN_PRIORITY, HUB_BOTTOM, HUB_TOP, INGRESS_PG, acl_priority, admin_rows
from core.nb.tables.fabric import FabricIndex
from core.nb.tables.policy import (
    ACL,
    ALLOW_PRIORITY,
    AS,
    DENY_PRIORITY,
    PG,
    Candidate,
    candidates,
    deny_pg_name,
    pg_name,
    policy_rows,
    selector_matches,
)
from testkit.acl_eval import Acl, Env, Packet, acls_of, decide

K8S = Source("k8s", "prod")
DOCKER = Source("docker", "local")
STATIC = Source("static", "vms")


def ep(src: Source, uid: str, ip: str, ns: str = "default", net: str = "net", **labels: str) -> Endpoint:
    return Endpoint(source=src, uid=uid, namespace=ns, name=uid, kind="pod", network=net, ips=(ip,), labels=labels)


def sel(**labels: str) -> Selector:
    return Selector(match_labels=labels)


# ---------------------------------------------------------------- implicit labels
def test_implicit_labels_are_merged_at_match_time_and_win() -> None:
    spoof = ep(K8S, "a", "10.0.0.1", "shop", **{LABEL_ORCHESTRATOR: "docker", LABEL_NAMESPACE: "kube-system", "app": "x"})
    assert selector_labels(spoof) == {
        "app": "x", LABEL_ORCHESTRATOR: "k8s", LABEL_CLUSTER: "prod", LABEL_NAMESPACE: "shop",
    }  # fmt: skip
    assert spoof.labels[LABEL_ORCHESTRATOR] == "docker"  # the Endpoint itself is left as the orchestrator said


def test_kubernetes_policies_see_implicit_labels() -> None:
    web = ep(K8S, "web", "10.0.0.1", app="web")
    spoof = ep(K8S, "spoof", "10.0.0.2", **{LABEL_ORCHESTRATOR: "docker"})
    other = ep(K8S, "o", "10.0.0.3", "ops")
    ns = {"ops": Namespace(source=K8S, name="ops", labels={LABEL_NAMESPACE: "default"})}
    by_orch = Peer(pod_selector=sel(**{LABEL_ORCHESTRATOR: "docker"}))
    by_ns = Peer(namespace_selector=sel(**{LABEL_NAMESPACE: "ops"}))
    pol = Policy(source=K8S, uid="p", namespace="default", name="p", pod_selector=sel(**{LABEL_CLUSTER: "prod", "app": "web"}),
                 ingress=(Rule(peers=(by_orch,)), Rule(peers=(by_ns,))))  # fmt: skip
    rows = {(r.table, r.key): r for r in policy_rows(K8S, [web, spoof, other], ns, [pol], "hub1")}
    assert rows[(PG, pg_name(K8S, "p"))].members == ("k8s/prod/net/web",)
    sets = {r.key: r.columns["addresses"] for r in rows.values() if r.table == "Address_Set"}
    assert sets[f"{pg_name(K8S, 'p')}_in0_v4"] == ()  # an explicit orchestrator label does not make a docker endpoint
    # the implicit namespace label beats a Namespace object's own label of that key
    assert sets[f"{pg_name(K8S, 'p')}_in1_v4"] == ("10.0.0.3",)
    # and a namespace without a Namespace object still has its implicit labels
    pol2 = Policy(source=K8S, uid="q", namespace="default", name="q",
                  ingress=(Rule(peers=(Peer(namespace_selector=sel(**{LABEL_NAMESPACE: "default"})),), ports=(PolicyPort(port=1),)),))  # fmt: skip
    rows2 = {r.key: r for r in policy_rows(K8S, [web, spoof], {}, [pol2], "hub1")}
    assert rows2[f"{pg_name(K8S, 'q')}_in0_v4"].columns["addresses"] == ("10.0.0.1", "10.0.0.2")


# ---------------------------------------------------------------- hairpin
def _acls(rows: list[DesiredRow]) -> dict[str, DesiredRow]:
    return {r.columns["match"]: r for r in rows if r.table == ACL}


def test_ingress_isolation_allows_the_hairpin_address() -> None:
    web = ep(K8S, "web", "10.0.0.1", app="web")
    pol = Policy(source=K8S, uid="p", namespace="default", name="p", ingress=(), egress=())
    deny_in, deny_eg = deny_pg_name(K8S, "in"), deny_pg_name(K8S, "eg")
    acls = _acls(policy_rows(K8S, [web], {}, [pol], "hub1"))
    hairpin = acls[f"outport == @{deny_in} && ip4.src == {DEFAULT_HAIRPIN_IP}"]
    assert (hairpin.parent, hairpin.columns["priority"], hairpin.columns["direction"], hairpin.columns["action"]) == (
        deny_in, ALLOW_PRIORITY, "to-lport", "allow-related",
    )  # fmt: skip
    assert hairpin.columns["options"] == {} and len(acls) == 3  # egress isolation has none: the SNAT is on the way in
    assert not any(deny_eg in m and "src ==" in m for m in acls)
    assert f"outport == @{deny_in} && ip6.src == fd00::5" in _acls(policy_rows(K8S, [web], {}, [pol], "hub1", "fd00::5"))
    assert len(_acls(policy_rows(K8S, [web], {}, [pol], "hub1", ""))) == 2
    # the deriver reads the address from the fabric spec, and without a fabric index takes the default
    st = SourceState()
    st.endpoints, st.policies = {web.key: web}, {"p": pol}
    for index, ip in ((FabricIndex(spec=Fabric(hairpin_snat_ip="169.254.0.9")), "169.254.0.9"), (None, DEFAULT_HAIRPIN_IP)):
        view = SourceView(K8S, st, "hub1", lambda: [web], index)
        assert f"outport == @{deny_in} && ip4.src == {ip}" in _acls(policy.derive(view))


# ---------------------------------------------------------------- the hub tier
# Three sources; addresses unique across them (IP peers cannot tell equal addresses apart).
NS = {
    K8S: {"default": Namespace(source=K8S, name="default", labels={"team": "a"}),
          "ops": Namespace(source=K8S, name="ops", labels={"team": "b"})},
    DOCKER: {},  # docker's "default" has no Namespace object: implicit labels only
    STATIC: {"vms": Namespace(source=STATIC, name="vms", labels={"team": "a"})},
}  # fmt: skip
WORLD = [
    msgspec.structs.replace(ep(K8S, "web1", "10.0.0.10", app="web"), ports=(PortSpec(port=8080, name="http"),)),
    ep(K8S, "db", "10.0.0.30", app="db"),
    Endpoint(source=K8S, uid="ops1", namespace="ops", name="ops1", kind="pod", network="net", ips=("10.0.0.40", "fd00::40"),
             labels={"app": "web"}, ports=(PortSpec(port=9090, name="http"),)),
    Endpoint(source=DOCKER, uid="dweb", namespace="default", name="dweb", kind="container", network="net",
             ips=("10.1.0.10", "fd00:1::10"), labels={"app": "web"}, ports=(PortSpec(port=80, name="http"),)),
    ep(DOCKER, "ddb", "10.1.0.9", app="db"),
    ep(STATIC, "vm", "10.2.0.5", "vms"),
    ep(STATIC, "vm2", "10.2.0.6", "vms", **{"app": "web", LABEL_ORCHESTRATOR: "docker"}),
]  # fmt: skip
EXTERNAL = ["192.0.2.7", "198.51.100.1", "2001:db8::7"]
PORTS = [("tcp", 80), ("tcp", 85), ("tcp", 8080), ("tcp", 9090), ("udp", 53), ("sctp", 5000), ("tcp", 5432)]


def world_cands(eps: list[Endpoint] = WORLD) -> list[Candidate]:
    out: list[Candidate] = []
    for src in (K8S, DOCKER, STATIC):
        out += candidates([e for e in eps if e.source == src], NS[src])
    return out


def admin(name: str, priority: int, subject: Peer | None = None, *, ingress: tuple[AdminRule, ...] = (),
          egress: tuple[AdminRule, ...] = ()) -> AdminPolicy:  # fmt: skip
    return AdminPolicy(name=name, priority=priority, subject=subject or Peer(pod_selector=Selector()), ingress=ingress, egress=egress)


def arule(action: Literal["allow", "deny", "pass"], *peers: Peer, ports: tuple[PolicyPort, ...] = ()) -> AdminRule:
    return AdminRule(action=action, peers=peers, ports=ports)


def pods(**labels: str) -> Peer:
    return Peer(pod_selector=sel(**labels))


def hub_acls(rows: list[DesiredRow]) -> list[DesiredRow]:
    return [r for r in rows if r.table == ACL]


def test_priorities_band_actions_names_and_source() -> None:
    pols = [
        admin("zero", 0, pods(app="db"), ingress=(arule("allow", pods(app="web")), arule("deny"))),
        admin("last", 999, egress=(arule("deny", ports=(PolicyPort(protocol="udp", port=53),)),)),
        admin("mid", 5, ingress=(arule("allow"), arule("allow"), arule("deny", pods(app="web"))), egress=(arule("allow"),)),
    ]
    rows = admin_rows(pols, world_cands(), "hub1", DEFAULT_HAIRPIN_IP)
    assert all(r.source == str(FABRIC_SOURCE) and r.columns["external_ids"][OWNER] == "hub1" for r in rows)
    assert all(r.key.startswith("hubf_") for r in rows if r.table != ACL)
    per_source = {pg_name(s, "x")[:4] for s in (K8S, DOCKER)}
    assert per_source == {"hub_"} and not any(r.key.startswith("hub_") for r in rows)
    prio = {(r.parent, r.columns["priority"], r.columns["direction"], r.columns["action"]) for r in hub_acls(rows)}
    zero, mid, last = admin_pg("zero"), admin_pg("mid"), admin_pg("last")
    assert prio == {
        (zero, 31999, "to-lport", "allow-related"), (zero, 31998, "to-lport", "drop"),
        (mid, 31999 - 150, "to-lport", "allow-related"), (mid, 31999 - 151, "to-lport", "allow-related"),
        (mid, 31999 - 152, "to-lport", "drop"), (mid, 31999 - 150, "from-lport", "allow-related"),
        (last, 2029, "from-lport", "drop"),
        (INGRESS_PG, HAIRPIN_PRIORITY, "to-lport", "allow-related"),
    }  # fmt: skip
    assert acl_priority(0, 0) == HUB_TOP == 31999 and acl_priority(999, MAX_ADMIN_RULES - 1) == HUB_BOTTOM == 2000
    assert HUB_BOTTOM > ALLOW_PRIORITY and HAIRPIN_PRIORITY < 32768  # above the orchestrator tier, inside OVN's range
    egress = [r for r in hub_acls(rows) if r.columns["direction"] == "from-lport"]
    assert egress and all(r.columns["options"] == {"apply-after-lb": "true"} for r in egress)
    groups = {r.key: r.members for r in rows if r.table == PG}
    assert groups[zero] == ("docker/local/net/ddb", "k8s/prod/net/db")
    assert groups[INGRESS_PG] == tuple(sorted(lsp_name(e) for e in WORLD))  # every subject of an ingress rule
    hairpin = next(r for r in hub_acls(rows) if r.parent == INGRESS_PG)
    assert hairpin.columns["match"] == f"outport == @{INGRESS_PG} && ip4.src == {DEFAULT_HAIRPIN_IP}"
    assert admin_rows([], world_cands(), "hub1") == []
    shuffled = admin_rows(list(reversed(pols)), list(reversed(world_cands())), "hub1", DEFAULT_HAIRPIN_IP)
    assert sorted(shuffled, key=lambda r: (r.table, r.key)) == sorted(rows, key=lambda r: (r.table, r.key))


def admin_pg(name: str) -> str:
    from core.nb.tables.admin_policy import pg_name as hub_pg

    return hub_pg(name)


def test_selection_spans_sources_with_implicit_labels() -> None:
    docker_web = Peer(pod_selector=sel(**{"app": "web", LABEL_ORCHESTRATOR: "docker"}))
    team_a = Peer(namespace_selector=sel(team="a"))
    ops = Peer(namespace_selector=sel(**{LABEL_NAMESPACE: "ops"}))
    pols = [admin("p", 1, pods(app="web"), ingress=(arule("allow", docker_web), arule("allow", team_a), arule("allow", ops)))]
    rows = {r.key: r for r in admin_rows(pols, world_cands(), "hub1")}
    pg = admin_pg("p")
    # pod_selector alone: every namespace of every source (static vm2 is app=web too)
    assert rows[pg].members == ("docker/local/net/dweb", "k8s/prod/net/ops1", "k8s/prod/net/web1", "static/vms/net/vm2")
    # an explicit ovn-hub.io/orchestrator label (vm2's) does not make a docker endpoint
    assert rows[f"{pg}_in0_v4"].columns["addresses"] == ("10.1.0.10",)
    assert rows[f"{pg}_in0_v6"].columns["addresses"] == ("fd00:1::10",)
    # namespace selectors read the endpoint's own source's Namespace objects: k8s default and static vms
    # have team=a; docker's default has no Namespace object, so no label but the implicit ones
    assert rows[f"{pg}_in1_v4"].columns["addresses"] == ("10.0.0.10", "10.0.0.30", "10.2.0.5", "10.2.0.6")
    assert rows[f"{pg}_in2_v4"].columns["addresses"] == ("10.0.0.40",)


def _match_of(rows: list[DesiredRow], pg: str, direction: str = "to-lport") -> list[str]:
    return sorted(r.columns["match"] for r in hub_acls(rows) if r.parent == pg and r.columns["direction"] == direction)


def test_pass_is_subtracted_from_the_later_rules_it_shares_ports_with() -> None:
    web, db = admin_pg("web"), admin_pg("db")
    tcp5432 = (PolicyPort(port=5432),)
    pols = [
        admin("db", 1, pods(app="db"), ingress=(arule("pass", pods(app="web"), ports=tcp5432), arule("deny"))),
        admin("web", 2, pods(app="web"), ingress=(arule("deny"),)),
        admin("all", 3, ingress=(arule("allow", ports=(PolicyPort(protocol="udp", port=53),)),)),
    ]
    rows = admin_rows(pols, world_cands(), "hub1")
    assert _match_of(rows, db) == [
        f"outport == @{db} && ip && !((ip4.src == ${db}_in0_v4 || ip6.src == ${db}_in0_v6) && (tcp.dst == 5432))"
    ]  # the pass itself has no ACL; the deny of the same subject skips the subject test in the negation
    assert _match_of(rows, web) == [f"outport == @{web} && ip"]  # no port in common with the pass
    every = admin_pg("all")
    assert _match_of(rows, every) == [  # a wider subject: the pass's subject test stays inside the negation
        f"outport == @{every} && ip && (udp.dst == 53) && !(outport == @{db} && ip && "
        f"(ip4.src == ${db}_in0_v4 || ip6.src == ${db}_in0_v6) && (tcp.dst == 5432))"
    ]
    # a pass of everything leaves later rules of the same subject no ACL at all; an earlier rule keeps its own
    rows = admin_rows([admin("db", 1, pods(app="db"), ingress=(arule("allow", ports=tcp5432), arule("pass"), arule("deny")))],
                      world_cands(), "hub1")  # fmt: skip
    assert _match_of(rows, db) == [f"outport == @{db} && ip && (tcp.dst == 5432)"]
    # a pass in the other direction does not touch this one
    rows = admin_rows([admin("db", 1, pods(app="db"), egress=(arule("pass"),), ingress=(arule("deny"),))], world_cands(), "hub1")
    assert _match_of(rows, db) == [f"outport == @{db} && ip"] and _match_of(rows, db, "from-lport") == []


def test_named_ports_resolve_per_destination_in_every_source() -> None:
    http = (PolicyPort(port="http"),)
    pols = [admin("p", 1, pods(app="web"), ingress=(arule("allow", ports=http),), egress=(arule("allow", ports=http),))]
    rows = admin_rows(pols, world_cands(), "hub1")
    pg = admin_pg("p")
    assert _match_of(rows, pg) == [
        'outport == {"docker/local/net/dweb"} && ip && tcp.dst == 80',
        'outport == {"k8s/prod/net/ops1"} && ip && tcp.dst == 9090',
        'outport == {"k8s/prod/net/web1"} && ip && tcp.dst == 8080',
    ]
    assert _match_of(rows, pg, "from-lport") == [
        f"inport == @{pg} && ip && (ip4.dst == {{10.0.0.10}}) && tcp.dst == 8080",
        f"inport == @{pg} && ip && (ip4.dst == {{10.0.0.40}} || ip6.dst == {{fd00::40}}) && tcp.dst == 9090",
        f"inport == @{pg} && ip && (ip4.dst == {{10.1.0.10}} || ip6.dst == {{fd00:1::10}}) && tcp.dst == 80",
    ]


# ---------------------------------------------------------------- first match, by evaluation of the compiled ACLs
def _peer_matches(peer: Peer, c: Candidate | None, ip: str) -> bool:
    if peer.cidr is not None:
        addr = ipaddress.ip_address(ip)
        net = ipaddress.ip_network(peer.cidr)
        return addr.version == net.version and addr in net and not any(addr in ipaddress.ip_network(e) for e in peer.except_cidrs)
    if c is None:
        return False
    if peer.namespace_selector is not None and not selector_matches(peer.namespace_selector, c.ns_labels):
        return False
    return peer.pod_selector is None or selector_matches(peer.pod_selector, c.labels)


def _port_matches(pp: PolicyPort, proto: str, port: int, dest: Endpoint | None) -> bool:
    if pp.protocol != proto:
        return False
    if pp.port is None:
        return True
    if isinstance(pp.port, str):
        return dest is not None and any(s.name == pp.port and s.protocol == proto and s.port == port for s in dest.ports)
    return pp.port <= port <= (pp.end_port or pp.port)


def first_match(pols: list[AdminPolicy], ingress: bool, src: Candidate | None, src_ip: str, dst: Candidate | None,
                dst_ip: str, proto: str, port: int) -> str:  # fmt: skip
    """AdminNetworkPolicy semantics, straight from the spec: the first rule (by policy priority,
    then rule order) whose subject, peer and port match decides; pass and no match = "pass"."""
    subject, peer, peer_ip = (dst, src, src_ip) if ingress else (src, dst, dst_ip)
    assert subject is not None
    for pol in sorted(pols, key=lambda p: p.priority):
        if not _peer_matches(pol.subject, subject, ""):
            continue
        for r in pol.ingress if ingress else pol.egress:
            if r.peers and not any(_peer_matches(p, peer, peer_ip) for p in r.peers):
                continue
            if r.ports and not any(_port_matches(pp, proto, port, dst.ep if dst else None) for pp in r.ports):
                continue
            return r.action
    return "pass"


VERDICT = {None: "pass", "allow-related": "allow", "drop": "deny"}


def compiled_verdict(acls: list[Acl], env: Env, pkt: Packet, direction: str) -> str:
    got = decide(acls, env, pkt, direction)
    return VERDICT[got[1] if got else None]


def packets(cands: list[Candidate]) -> Iterator[tuple[bool, Candidate | None, str, Candidate | None, str, str, int, Packet]]:
    """Every (direction, source, destination, protocol, port) of the world, as packets."""
    eps = [(c, ip) for c in cands for ip in c.ep.ips]
    peers: list[tuple[Candidate | None, str]] = [*eps, *((None, ip) for ip in EXTERNAL)]
    for (c, ip), (pc, pip) in itertools.product(eps, peers):
        if (":" in ip) != (":" in pip) or (pc is not None and pc.ep == c.ep):
            continue
        version = 6 if ":" in ip else 4
        for proto, port in PORTS:
            # ingress: the peer sends to c; egress: c sends to the peer
            into = Packet(outport=lsp_name(c.ep), version=version, src=pip, dst=ip, proto=proto, dport=port)
            yield True, pc, pip, c, ip, proto, port, into
            out = Packet(inport=lsp_name(c.ep), version=version, src=ip, dst=pip, proto=proto, dport=port)
            yield False, c, ip, pc, pip, proto, port, out


def check_first_match(pols: list[AdminPolicy], cands: list[Candidate]) -> None:
    acls, env = acls_of(admin_rows(pols, cands, "hub1", DEFAULT_HAIRPIN_IP))
    for ingress, src, src_ip, dst, dst_ip, proto, port, pkt in packets(cands):
        want = first_match(pols, ingress, src, src_ip, dst, dst_ip, proto, port)
        got = compiled_verdict(acls, env, pkt, "to-lport" if ingress else "from-lport")
        assert got == want, (pkt, [(a.priority, a.action, a.match) for a in acls])


PEERS = [
    pods(app="web"), pods(app="db"), pods(**{LABEL_ORCHESTRATOR: "docker"}), Peer(namespace_selector=sel(team="a")),
    Peer(namespace_selector=sel(**{LABEL_NAMESPACE: "ops"})), Peer(namespace_selector=sel(team="a"), pod_selector=sel(app="web")),
    Peer(pod_selector=Selector(match_expressions=(Expr(key="app", operator="NotIn", values=("web",)),))),
    Peer(cidr="10.1.0.0/24", except_cidrs=("10.1.0.8/30",)), Peer(cidr="fd00::/16"), Peer(cidr="192.0.2.0/24"),
]  # fmt: skip
SUBJECTS = [pods(), pods(app="web"), pods(app="db"), Peer(namespace_selector=sel(team="a")),
            pods(**{LABEL_ORCHESTRATOR: "k8s"}), pods(app="nothing")]  # fmt: skip
RULE_PORTS = [PolicyPort(port=80), PolicyPort(port=80, end_port=90), PolicyPort(protocol="udp", port=53),
              PolicyPort(port="http"), PolicyPort(protocol="tcp"), PolicyPort(protocol="sctp", port=5000)]  # fmt: skip

rules_st = st.builds(
    AdminRule,
    action=st.sampled_from(["allow", "deny", "pass"]),
    peers=st.lists(st.sampled_from(PEERS), max_size=2).map(tuple),
    ports=st.lists(st.sampled_from(RULE_PORTS), max_size=2).map(tuple),
)


@st.composite
def policies_st(draw: st.DrawFn) -> list[AdminPolicy]:
    n = draw(st.integers(1, 4))
    prios = draw(st.lists(st.integers(0, MAX_ADMIN_PRIORITY), min_size=n, max_size=n, unique=True))
    return [
        admin(f"p{i}", prio, draw(st.sampled_from(SUBJECTS)),
              ingress=tuple(draw(st.lists(rules_st, max_size=4))), egress=tuple(draw(st.lists(rules_st, max_size=3))))
        for i, prio in enumerate(prios)
    ]  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies_st())
def test_the_compiled_acls_decide_as_the_first_matching_rule(pols: list[AdminPolicy]) -> None:
    validate_admin_policies(pols)
    check_first_match(pols, world_cands())


def test_first_match_examples() -> None:
    """The cases the property test must meet, spelled out (and run even without hypothesis' luck)."""
    web_db = [arule("pass", pods(app="web")), arule("allow", Peer(cidr="10.1.0.0/24"), ports=(PolicyPort(port=80),)), arule("deny")]
    for pols in (
        [admin("a", 3, pods(app="db"), ingress=tuple(web_db))],
        [admin("a", 3, pods(app="db"), ingress=(web_db[0],)), admin("b", 4, ingress=tuple(web_db[1:]))],
        [admin("a", 1, ingress=(arule("allow", ports=(PolicyPort(port="http"),)),)), admin("b", 2, ingress=(arule("deny"),))],
        [admin("a", 1, egress=(arule("pass", pods(app="db"), ports=(PolicyPort(port=80, end_port=90),)), arule("deny")))],
        [admin("a", 1, egress=(arule("pass", ports=(PolicyPort(port="http"),)),)), admin("b", 0, egress=(arule("deny", pods()),)),
         admin("c", 2, egress=(arule("allow"),))],
    ):  # fmt: skip
        check_first_match(pols, world_cands())


# ---------------------------------------------------------------- both tiers
def test_pass_leaves_the_decision_to_the_orchestrator_policy() -> None:
    """docker web -> k8s db: the hub allows 5432, passes 5433, denies the rest; the
    Kubernetes policy on db (allow 5433 from 10.1.0.0/24 only) decides what passed."""
    hub = [admin("db", 10, pods(app="db", **{LABEL_ORCHESTRATOR: "k8s"}), ingress=(
        arule("allow", pods(app="web", **{LABEL_ORCHESTRATOR: "docker"}), ports=(PolicyPort(port=5432),)),
        arule("pass", ports=(PolicyPort(port=5433),)),
        arule("deny"),
    ))]  # fmt: skip
    k8s = Policy(source=K8S, uid="np", namespace="default", name="np", pod_selector=sel(app="db"),
                 ingress=(Rule(peers=(Peer(cidr="10.1.0.0/24"),), ports=(PolicyPort(port=5433),)),))  # fmt: skip
    rows = admin_rows(hub, world_cands(), "hub1", DEFAULT_HAIRPIN_IP)
    rows += policy_rows(K8S, [e for e in WORLD if e.source == K8S], NS[K8S], [k8s], "hub1")
    acls, env = acls_of(rows)
    db = "k8s/prod/net/db"

    def verdict(src_ip: str, port: int) -> tuple[int, str] | None:
        return decide(acls, env, Packet(outport=db, src=src_ip, dst="10.0.0.30", dport=port), "to-lport")

    assert verdict("10.1.0.10", 5432) == (acl_priority(10, 0), "allow-related")  # the hub allows docker web
    assert verdict("10.2.0.6", 5432) == (acl_priority(10, 2), "drop")  # a static VM: the hub's deny
    assert verdict("10.1.0.10", 5433) == (ALLOW_PRIORITY, "allow-related")  # passed: the k8s policy allows it
    assert verdict("10.2.0.6", 5433) == (DENY_PRIORITY, "drop")  # passed: the k8s policy's isolation drops it
    assert verdict("10.1.0.10", 22) == (acl_priority(10, 2), "drop")
    assert verdict(DEFAULT_HAIRPIN_IP, 22) == (HAIRPIN_PRIORITY, "allow-related")  # db reaching itself via a Service


# ---------------------------------------------------------------- through the desired state
def test_the_programmer_derives_the_hub_tier_once_every_source_listed_and_follows_them() -> None:
    p = Programmer("unix:/nonexistent", "hub1")
    db_pg = admin_pg("db")
    spec = Fabric(policies=(admin("db", 1, pods(app="db"), ingress=(arule("allow", Peer(namespace_selector=sel(team="a"))),)),))
    p.set_fabric(spec)
    k8s = [e for e in WORLD if e.source == K8S]
    p.desired.expect({str(K8S), str(DOCKER)})
    p.apply(Snapshot(source=K8S, objects=(*k8s, *NS[K8S].values())))
    p.plan()
    assert db_pg not in p.desired.rows[PG], "the hub tier waits for every source's first list"
    p.apply(Snapshot(source=DOCKER, objects=tuple(e for e in WORLD if e.source == DOCKER)))
    ops = p.plan()
    assert p.desired.rows[PG][db_pg].members == ("docker/local/net/ddb", "k8s/prod/net/db")
    assert p.desired.rows[PG][db_pg].source == "ovn-hub/fabric"
    assert {(o.op, o.table) for o in ops if o.name.startswith("hubf_") or o.table == ACL} >= {("insert", PG), ("insert", AS)}

    def peers() -> tuple[str, ...]:
        return tuple(p.desired.rows[AS][f"{db_pg}_in0_v4"].columns["addresses"])

    assert peers() == ("10.0.0.10", "10.0.0.30")  # k8s default is team=a
    # another source's endpoint changes its labels: the subject follows
    p.apply(Upsert(obj=msgspec.structs.replace(WORLD[4], labels={"app": "cache"})))
    assert p.desired.fabric_stale
    p.plan()
    assert p.desired.rows[PG][db_pg].members == ("k8s/prod/net/db",)
    # a namespace's labels change: the peers follow; a deleted endpoint leaves them
    p.apply(Upsert(obj=Namespace(source=K8S, name="ops", labels={"team": "a"})))
    p.plan()
    assert peers() == ("10.0.0.10", "10.0.0.30", "10.0.0.40")
    p.apply(Delete(source=K8S, kind="endpoint", key=WORLD[0].key))
    p.plan()
    assert peers() == ("10.0.0.30", "10.0.0.40")
    # a source's snapshot with new namespace labels
    p.apply(Snapshot(source=K8S, objects=(*k8s, Namespace(source=K8S, name="default"))))
    p.plan()
    assert peers() == ()
    # the policies go: so do their rows
    p.set_fabric(msgspec.structs.replace(spec, policies=()))
    p.plan()
    assert not [k for t in (PG, AS, ACL) for k, r in p.desired.rows[t].items() if r.source == "ovn-hub/fabric"]


def test_without_hub_policies_endpoint_events_leave_the_fabric_alone() -> None:
    p = Programmer("unix:/nonexistent", "hub1")
    p.apply(Snapshot(source=K8S, objects=tuple(e for e in WORLD if e.source == K8S)))
    p.plan()
    p.apply(Upsert(obj=msgspec.structs.replace(WORLD[1], labels={"app": "x"})))
    assert not p.desired.fabric_stale


def test_a_new_hairpin_address_rewrites_every_source_s_allow() -> None:
    p = Programmer("unix:/nonexistent", "hub1")
    p.apply(Snapshot(source=K8S, objects=(WORLD[0], Policy(source=K8S, uid="p", namespace="default", name="p", ingress=()))))
    p.plan()
    deny_in = deny_pg_name(K8S, "in")

    def hairpins() -> list[str]:
        return [r.columns["match"] for r in p.desired.rows[ACL].values() if r.columns["match"].startswith(f"outport == @{deny_in} && ip4.src")]

    assert hairpins() == [f"outport == @{deny_in} && ip4.src == {DEFAULT_HAIRPIN_IP}"]
    p.set_fabric(Fabric(hairpin_snat_ip="169.254.0.1"))
    p.plan()
    assert hairpins() == [f"outport == @{deny_in} && ip4.src == 169.254.0.1"]


# ---------------------------------------------------------------- decoding and validation
GOOD = [
    {"name": "db-from-web", "priority": 10, "subject": {"pod_selector": {"match_labels": {"app": "db"}}},
     "ingress": [{"action": "allow", "name": "web", "peers": [{"pod_selector": {"match_labels": {"app": "web"}}}],
                  "ports": [{"port": 5432}]},
                 {"action": "pass", "peers": [{"cidr": "10.0.0.0/8", "except_cidrs": ["10.1.0.0/16"]}]},
                 {"action": "deny"}]},
    {"name": "egress.default", "priority": 999, "egress": [{"action": "deny", "ports": [{"protocol": "udp", "port": "dns"}]}]},
]  # fmt: skip


def test_a_good_policies_file_decodes() -> None:
    pols = decode_admin_policies(json.dumps(GOOD).encode())
    assert [p.name for p in pols] == ["db-from-web", "egress.default"]
    assert pols[0].ingress[0] == AdminRule(action="allow", name="web", peers=(pods(app="web"),), ports=(PolicyPort(port=5432),))
    assert pols[1].subject == Peer(pod_selector=Selector())  # default: every endpoint of every source
    assert decode_admin_policies(b"[]") == ()
    validate_fabric(Fabric(policies=pols))


def _with(i: int, **change: Any) -> list[dict[str, Any]]:
    out = json.loads(json.dumps(GOOD))
    out[i].update(change)
    return out


@pytest.mark.parametrize(
    ("doc", "reason", "says"),
    [
        (b"{}", "not-array", "expected a JSON array"),
        (b"[{]", "bad-json", "not JSON"),
        (b"[" * 5000 + b"]" * 5000, "bad-json", ""),
        (b"[1]", "schema", "Expected `object`"),
        (_with(0, ingres=[]), "schema", "unknown key '$[0].ingres'"),
        (_with(0, subject={"pod_selector": {"matchLabels": {"a": "b"}}}), "schema", "$[0].subject.pod_selector.matchLabels"),
        (_with(0, ingress=[{"action": "deny", "peers": [{"cidr": "10.0.0.0/8", "exept": []}]}]), "schema", "exept"),
        (_with(0, priority="1"), "schema", "Expected `int`, got `str` - at `$[0].priority`"),
        (_with(0, ingress=[{"action": "reject"}]), "schema", "Invalid enum value 'reject'"),
        (_with(0, name="Db"), "bad-name", "not a DNS subdomain"),
        (_with(0, name=""), "bad-name", ""),
        (_with(1, name="db-from-web"), "duplicate", "also policies[0]'s"),
        (_with(1, priority=10), "duplicate", "priority 10 is also that of policy 'db-from-web'"),
        (_with(0, priority=1000), "bad-priority", "out of range 0-999"),
        (_with(0, priority=-1), "bad-priority", ""),
        (_with(0, subject={"cidr": "10.0.0.0/8"}), "bad-subject", "not a cidr"),
        (_with(0, subject={}), "bad-peer", "needs a pod selector"),
        (_with(0, ingress=[{"action": "deny"}] * 31), "too-many", "more than 30"),
        (_with(0, ingress=[{"action": "deny", "peers": [{}]}]), "bad-peer", "ingress[0].peers[0]"),
        (_with(0, ingress=[{"action": "deny", "peers": [{"cidr": "10.0.0.0/8", "except_cidrs": ["11.0.0.0/8"]}]}]),
         "bad-cidr", "is not inside"),
        (_with(0, ingress=[{"action": "deny", "peers": [{"pod_selector": {"match_expressions": [{"key": "a", "operator": "In"}]}}]}]),
         "bad-selector", "needs values"),
        (_with(0, ingress=[{"action": "deny", "peers": [{"pod_selector": {"match_labels": {"bad key": "x"}}}]}]),
         "bad-selector", "not a valid Kubernetes label key"),
        (_with(0, egress=[{"action": "deny", "ports": [{"port": 70000}]}]), "bad-port", "egress[0].ports[0]"),
        (_with(0, egress=[{"action": "deny", "ports": [{"protocol": "icmp"}]}]), "bad-protocol", ""),
        (_with(0, ingress=[{"action": "deny", "name": "x\u202e"}]), "bad-name", "bidi"),
    ],
)  # fmt: skip
def test_a_bad_policies_file_is_refused_with_a_reason(doc: Any, reason: str, says: str) -> None:
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    with pytest.raises(Invalid) as info:
        decode_admin_policies(data, "/etc/p.json")
    assert info.value.reason == reason, str(info.value)
    assert str(info.value).startswith("/etc/p.json: ") and says in str(info.value)
    if not isinstance(doc, bytes) and reason not in ("schema",):
        with pytest.raises(Invalid):  # a fabric spec holding them is refused as well
            validate_fabric(Fabric(policies=tuple(msgspec.convert(doc, list[AdminPolicy]))))


def test_a_huge_policies_file_is_refused_before_decoding() -> None:
    with pytest.raises(Invalid) as info:
        decode_admin_policies(b" " * (LIMITS["object_bytes"] + 1))
    assert info.value.reason == "too-long"
