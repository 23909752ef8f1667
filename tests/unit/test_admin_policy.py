"""Hub-level policies and what the orchestrator tier owes them, without a server:
implicit labels, the hairpin allow, the hub tier's compilation (priorities, pass
by subtraction, cross-source selection) checked by an evaluator of the compiled
matches (testkit/acl_eval.py) against the first-match semantics, and the
policies file.  Real NB + northd verdicts: tests/integration/test_admin_policy.py."""

from __future__ import annotations

from core.model import Endpoint, Namespace, Peer, Policy, PolicyPort, Rule, Selector, Source
from core.model.fabric import LABEL_CLUSTER, LABEL_NAMESPACE, LABEL_ORCHESTRATOR, selector_labels
from core.nb.tables.policy import PG, pg_name, policy_rows

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
