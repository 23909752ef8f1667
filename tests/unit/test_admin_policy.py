"""Hub-level policies and what the orchestrator tier owes them, without a server:
implicit labels, the hairpin allow, the hub tier's compilation (priorities, pass
by subtraction, cross-source selection) checked by an evaluator of the compiled
matches (testkit/acl_eval.py) against the first-match semantics, and the
policies file.  Real NB + northd verdicts: tests/integration/test_admin_policy.py."""

from __future__ import annotations

from core.model import Endpoint, Namespace, Peer, Policy, PolicyPort, Rule, Selector, Source
from core.model.fabric import (
    DEFAULT_HAIRPIN_IP,
    LABEL_CLUSTER,
    LABEL_NAMESPACE,
    LABEL_ORCHESTRATOR,
    Fabric,
    selector_labels,
)
from core.nb.desired import SourceState
from core.nb.kinds import DesiredRow, SourceView
from core.nb.tables import policy
from core.nb.tables.fabric import FabricIndex
from core.nb.tables.policy import ACL, ALLOW_PRIORITY, PG, deny_pg_name, pg_name, policy_rows

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
