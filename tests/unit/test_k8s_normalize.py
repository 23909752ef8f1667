"""Kubernetes payloads → canonical model (pure functions, no server)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.k8s.normalize import (
    CHASSIS_KEY,
    MULTUS_STATUS_ANNOTATION,
    OVNK_POD_NETWORKS_ANNOTATION,
    namespace_labels,
    node_chassis,
    normalize_namespace,
    normalize_pod,
    parse_documents,
    watch_error,
)
from adapters.k8s.offline import normalize_text
from core.model import (
    Delete,
    Endpoint,
    Invalid,
    Namespace,
    Policy,
    PortSpec,
    Service,
    Source,
    validate,
)
from tests.conftest import FIXTURES_DIR

FIXTURES = FIXTURES_DIR / "kubernetes"
SRC = Source("k8s", "test")
UID = "0a9d2b9e-779e-11e7-b422-42010a8001bf"

if not FIXTURES.is_dir():  # a missing fixture dir is an error, never a silent skip
    raise RuntimeError(f"{FIXTURES} missing")


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


def fixture_pod() -> dict[str, Any]:
    """The pod fixture with a uid added (the fixture has none)."""
    pod: dict[str, Any] = yaml.safe_load(fixture_text("pod.apimachinery-managedfields.yaml"))
    pod["metadata"]["uid"] = UID
    return pod


def multus_status_value() -> str:
    """The JSON value of the Multus network-status annotation in the fixture (a
    ``kubectl describe`` excerpt: the value starts after the key, indented)."""
    text = fixture_text("pod-annotations.multus-network-status.docs.txt")
    _, _, rest = text.partition(MULTUS_STATUS_ANNOTATION + ":")
    return rest.strip()


def pod(**over: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": "web-1", "namespace": "shop", "uid": UID, "labels": {"app": "web"}},
        "spec": {
            "nodeName": "worker-1",
            "containers": [{"name": "c", "ports": [{"containerPort": 8080, "protocol": "TCP", "name": "http"}]}],
        },
        "status": {"phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}, {"ip": "fd00::0005"}]},
    }
    for path, value in over.items():
        node = p
        *parents, last = path.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        if value is ...:
            node.pop(last, None)
        else:
            node[last] = value
    return p


# ---------------------------------------------------------------- fixtures
def test_every_fixture_parses_without_crashing() -> None:
    files = sorted(p for p in FIXTURES.iterdir() if p.is_file())
    assert len(files) >= 10
    for f in files:
        for item in normalize_text(f.read_text(errors="replace"), SRC):
            assert isinstance(item, Endpoint | Namespace | Service | Policy | Delete | Invalid), f
            if isinstance(item, Invalid):
                assert item.reason and str(item), f
                assert "\n" not in str(item), f
            elif not isinstance(item, Delete):
                validate(item)


def test_pod_fixture_without_uid_is_rejected() -> None:
    out = list(normalize_text(fixture_text("pod.apimachinery-managedfields.yaml"), SRC))
    assert len(out) == 1 and isinstance(out[0], Invalid)
    assert out[0].reason == "missing-field"
    assert "metadata.uid" in str(out[0])


def test_pod_fixture_values() -> None:
    ep = normalize_pod(fixture_pod(), SRC)
    assert ep is not None
    validate(ep)
    assert ep.uid == UID and ep.name == "some-name" and ep.namespace == "default" and ep.kind == "pod"
    assert ep.node == "node-name"
    assert ep.ips == ("10.0.0.1",)
    assert ep.labels == {
        "app": "some-app",
        "plugin1": "some-value",
        "plugin2": "some-value",
        "plugin3": "some-value",
        "plugin4": "some-value",
    }
    assert ep.ports == () and ep.mac is None and ep.state == "running" and ep.network == "default"
    # the same through the offline normalizer (YAML text)
    out = list(normalize_text(yaml.safe_dump(fixture_pod()), SRC))
    assert out == [ep]


def test_node_fixture() -> None:
    docs = list(parse_documents(fixture_text("node.apimachinery-managedfields.yaml")))
    assert len(docs) == 1 and isinstance(docs[0], dict)
    assert node_chassis(docs[0]) == ("node-default-pool-something", "node-default-pool-something")
    node = copy.deepcopy(docs[0])
    node["metadata"]["annotations"][CHASSIS_KEY] = "6a7c7c5e-4e0b-4b6d-9c0a-1c2b3d4e5f60"
    assert node_chassis(node) == ("node-default-pool-something", "6a7c7c5e-4e0b-4b6d-9c0a-1c2b3d4e5f60")
    node["metadata"]["labels"][CHASSIS_KEY] = "from-label"
    assert node_chassis(node)[1] == "from-label"
    assert list(normalize_text(fixture_text("node.apimachinery-managedfields.yaml"), SRC)) == []


def test_namespace_fixture() -> None:
    docs = list(parse_documents(fixture_text("namespace.doc-fixture.json")))
    assert len(docs) == 1 and isinstance(docs[0], dict)
    assert namespace_labels(docs[0]) == ("development", {"name": "development"})
    ns = normalize_namespace(docs[0], SRC)
    assert ns == Namespace(source=SRC, name="development", labels={"name": "development"})
    validate(ns)
    assert ns.key == "development"
    assert list(normalize_text(fixture_text("namespace.doc-fixture.json"), SRC)) == [ns]


def test_multus_mac_is_extracted() -> None:
    value = multus_status_value()
    assert json.loads(value)[1]["mac"] == "86:1d:96:ff:55:0d"
    p = pod(metadata__annotations={MULTUS_STATUS_ANNOTATION: value, "k8s.v1.cni.cncf.io/networks": "macvlan-conf"})
    ep = normalize_pod(p, SRC)
    assert ep is not None and ep.mac == "86:1d:96:ff:55:0d"
    # an entry marked default that has a MAC wins over the first one with a MAC
    status = json.loads(value)
    status[0]["mac"] = "0A:58:0A:F4:01:49"
    ep = normalize_pod(pod(metadata__annotations={MULTUS_STATUS_ANNOTATION: json.dumps(status)}), SRC)
    assert ep is not None and ep.mac == "0a:58:0a:f4:01:49"


def test_ovnk_mac_wins_and_is_per_network() -> None:
    ann = {
        OVNK_POD_NETWORKS_ANNOTATION: json.dumps(
            {
                "default": {"ip_addresses": ["10.244.1.5/24"], "mac_address": "0a:58:0a:f4:01:05"},
                "blue": {"mac_address": "0a:58:0a:f4:02:07"},
            }
        ),
        MULTUS_STATUS_ANNOTATION: multus_status_value(),
    }
    ep = normalize_pod(pod(metadata__annotations=ann), SRC)
    assert ep is not None and ep.mac == "0a:58:0a:f4:01:05"
    ep = normalize_pod(pod(metadata__annotations=ann), SRC, network="blue")
    assert ep is not None and ep.mac == "0a:58:0a:f4:02:07" and ep.network == "blue" and ep.key == f"blue/{UID}"
    # no entry for the network: fall back to Multus
    ep = normalize_pod(pod(metadata__annotations=ann), SRC, network="red")
    assert ep is not None and ep.mac == "86:1d:96:ff:55:0d"


def test_watch_410_fixtures_are_error_events() -> None:
    docs = list(parse_documents(fixture_text("watch-event-error-410-gone.recorded.kubernetes-asyncio-test.json")))
    assert len(docs) == 1 and isinstance(docs[0], dict) and docs[0]["type"] == "ERROR"
    err = watch_error(docs[0])
    assert err.reason == "expired" and "too old resource version" in str(err)

    docs = list(parse_documents(fixture_text("watch-stream.retry-410.kubernetes-asyncio-test.jsonl")))
    assert [d["type"] for d in docs if isinstance(d, dict)] == ["ADDED", "ERROR", "ADDED", "ERROR"]
    assert all(watch_error(d).reason == "expired" for d in docs if isinstance(d, dict) and d["type"] == "ERROR")
    out = list(normalize_text(fixture_text("watch-stream.retry-410.kubernetes-asyncio-test.jsonl"), SRC))
    # the ADDED objects of that test have no kind and no uid: rejected, not crashed
    assert [x.reason for x in out if isinstance(x, Invalid)] == ["missing-field", "expired", "missing-field", "expired"]


def test_illustrative_watch_doc_is_rejected_cleanly() -> None:
    # illustrative text with "..." placeholders: the broken pieces are rejected,
    # the one complete event (the BOOKMARK after the last "..." line) survives
    out = list(parse_documents(fixture_text("watch-stream.api-concepts-doc.txt")))
    bad = [x for x in out if isinstance(x, Invalid)]
    good = [x for x in out if not isinstance(x, Invalid)]
    assert len(bad) >= 2 and all(x.reason in ("bad-yaml", "not-object") for x in bad)
    assert [(g["type"], g["object"]["metadata"]["resourceVersion"]) for g in good] == [("BOOKMARK", "12746")]


# ---------------------------------------------------------------- pods
def test_pod_values() -> None:
    ep = normalize_pod(pod(), SRC)
    assert ep == Endpoint(
        source=SRC,
        uid=UID,
        namespace="shop",
        name="web-1",
        kind="pod",
        network="default",
        node="worker-1",
        ips=("10.244.1.5", "fd00::5"),
        mac=None,
        labels={"app": "web"},
        ports=(PortSpec(port=8080, protocol="tcp", name="http"),),
        state="running",
    )


def test_pod_ip_from_pod_ip_when_no_pod_ips() -> None:
    ep = normalize_pod(pod(status__podIPs=..., status__podIP="FD00:0:0::1"), SRC)
    assert ep is not None and ep.ips == ("fd00::1",)


def test_pod_ports_protocol_default_and_dedup() -> None:
    containers = [
        {"name": "a", "ports": [{"containerPort": 53, "protocol": "UDP"}, {"containerPort": 53}]},
        {
            "name": "b",
            "ports": [
                {"containerPort": 53, "protocol": "UDP", "name": "dup"},
                {"containerPort": 9000, "protocol": "SCTP"},
            ],
        },
        {"name": "c"},
    ]
    ep = normalize_pod(pod(spec__containers=containers), SRC)
    assert ep is not None
    assert ep.ports == (PortSpec(53, "udp"), PortSpec(53, "tcp"), PortSpec(9000, "sctp"))


@pytest.mark.parametrize(
    ("over", "why"),
    [
        ({"spec__hostNetwork": True}, "hostNetwork"),
        ({"status__phase": "Succeeded"}, "finished"),
        ({"status__phase": "Failed"}, "finished"),
        (
            {"spec__nodeName": ..., "status__podIP": ..., "status__podIPs": ..., "status__phase": "Pending"},
            "unscheduled",
        ),
        ({"spec__nodeName": ""}, "unscheduled"),
    ],
)
def test_pods_without_endpoint(over: dict[str, Any], why: str) -> None:
    assert normalize_pod(pod(**over), SRC) is None, why


def test_scheduled_pod_without_ip_yet() -> None:
    ep = normalize_pod(pod(status={"phase": "Pending"}), SRC)
    assert ep is not None and ep.ips == () and ep.state == "pending" and ep.node == "worker-1"
    ep = normalize_pod(pod(status=...), SRC)
    assert ep is not None and ep.ips == () and ep.state == "pending"


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ("not a pod", "not-object"),
        ([], "not-object"),
        ({"kind": "Service", "metadata": {"name": "x", "uid": "u"}}, "wrong-kind"),
        (pod(metadata=...), "missing-field"),
        (pod(metadata="x"), "bad-field"),
        (pod(metadata__uid=...), "missing-field"),
        (pod(metadata__uid=""), "missing-field"),
        (pod(metadata__uid=12), "bad-field"),
        (pod(metadata__uid="has space"), "bad-name"),
        (pod(metadata__name=...), "missing-field"),
        (pod(metadata__name="a\x00b"), "bad-name"),
        (pod(metadata__namespace=["x"]), "bad-field"),
        (pod(metadata__labels=["app"]), "bad-field"),
        (pod(metadata__labels={"app": 3}), "bad-label"),
        (pod(metadata__labels={"": "x"}), "empty-field"),
        (pod(metadata__annotations={OVNK_POD_NETWORKS_ANNOTATION: "{nope"}), "bad-annotation"),
        (pod(metadata__annotations={OVNK_POD_NETWORKS_ANNOTATION: "[]"}), "bad-annotation"),
        (pod(metadata__annotations={OVNK_POD_NETWORKS_ANNOTATION: '{"default": {"mac_address": "zz"}}'}), "bad-mac"),
        (
            pod(
                metadata__annotations={
                    OVNK_POD_NETWORKS_ANNOTATION: '{"default": {"mac_address": "01:00:5e:00:00:01"}}'
                }
            ),
            "bad-mac",
        ),
        (pod(metadata__annotations={MULTUS_STATUS_ANNOTATION: '{"mac": "x"}'}), "bad-annotation"),
        (pod(metadata__annotations={MULTUS_STATUS_ANNOTATION: '[{"mac": 7}]'}), "bad-field"),
        (pod(spec=...), "missing-field"),
        (pod(spec=[1]), "bad-field"),
        (pod(spec__hostNetwork="yes"), "bad-field"),
        (pod(spec__nodeName=5), "bad-field"),
        (pod(spec__containers={"a": 1}), "bad-field"),
        (pod(spec__containers=["c"]), "bad-field"),
        (pod(spec__containers=[{"ports": [{"containerPort": "80"}]}]), "bad-port"),
        (pod(spec__containers=[{"ports": [{"containerPort": True}]}]), "bad-port"),
        (pod(spec__containers=[{"ports": [{"containerPort": 70000}]}]), "bad-port"),
        (pod(spec__containers=[{"ports": [{}]}]), "bad-port"),
        (pod(spec__containers=[{"ports": [{"containerPort": 80, "protocol": "ICMP"}]}]), "bad-port"),
        (pod(spec__containers=[{"ports": [{"containerPort": 80, "protocol": 6}]}]), "bad-field"),
        (pod(status="Running"), "bad-field"),
        (pod(status__phase=1), "bad-field"),
        (pod(status__phase=""), "bad-field"),
        (pod(status__podIPs=[{"ip": "10.0.0.300"}]), "bad-ip"),
        (pod(status__podIPs=[{"ip": "224.0.0.1"}]), "bad-ip"),
        (pod(status__podIPs=[{"ip": None}]), "missing-field"),
        (pod(status__podIPs=["10.0.0.1"]), "bad-field"),
        (pod(status__podIPs="10.0.0.1"), "bad-field"),
        (pod(status__podIPs=..., status__podIP="nonsense"), "bad-ip"),
        (pod(status__podIPs=..., status__podIP=["10.0.0.1"]), "bad-field"),
    ],
)
def test_bad_pods_are_rejected(obj: Any, reason: str) -> None:
    with pytest.raises(Invalid) as info:
        normalize_pod(obj, SRC)
    assert info.value.reason == reason, str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("fn", "obj", "reason"),
    [
        (namespace_labels, {"kind": "Namespace"}, "missing-field"),
        (namespace_labels, {"kind": "Namespace", "metadata": {"name": 3}}, "bad-field"),
        (namespace_labels, {"kind": "Namespace", "metadata": {"name": "a", "labels": {"x": None}}}, "bad-label"),
        (namespace_labels, {"kind": "Pod", "metadata": {"name": "a"}}, "wrong-kind"),
        (namespace_labels, 7, "not-object"),
        (node_chassis, {"kind": "Node", "metadata": {}}, "missing-field"),
        (node_chassis, {"kind": "Node", "metadata": {"name": "n", "annotations": {CHASSIS_KEY: "a b"}}}, "bad-chassis"),
        (node_chassis, {"kind": "Node", "metadata": {"name": "n", "labels": []}}, "bad-field"),
        (node_chassis, None, "not-object"),
    ],
)
def test_bad_namespaces_and_nodes(fn: Any, obj: Any, reason: str) -> None:
    with pytest.raises(Invalid) as info:
        fn(obj)
    assert info.value.reason == reason


# ---------------------------------------------------------------- text
def test_yaml_flow_style_and_multi_document() -> None:
    text = (
        "{apiVersion: v1, kind: Pod, metadata: {name: a, namespace: ns, uid: u-a, labels: {app: x}},"
        " spec: {nodeName: n1, containers: [{name: c, ports: [{containerPort: 80}]}]}, status: {phase: Running, podIP: 10.1.0.2}}\n"
        "---\n"
        "# a comment-only document\n"
        "---\n"
        "apiVersion: v1\n"
        "kind: Namespace\n"
        "metadata: {name: ns, labels: {team: a}}\n"
        "--- {kind: Node, metadata: {name: n1, annotations: {k8s.ovn.org/node-chassis-id: ch-1}}}\n"
        "...\n"
    )
    docs = list(parse_documents(text))
    assert [d.get("kind") for d in docs if isinstance(d, dict)] == ["Pod", "Namespace", "Node"]
    out = list(normalize_text(text, SRC))
    assert len(out) == 2 and isinstance(out[0], Endpoint)
    assert out[1] == Namespace(source=SRC, name="ns", labels={"team": "a"})
    assert out[0].ips == ("10.1.0.2",) and out[0].ports == (PortSpec(80, "tcp"),) and out[0].labels == {"app": "x"}


def test_bad_yaml_document_does_not_hide_the_rest() -> None:
    text = "kind: Namespace\nmetadata: {name: a}\n---\nkind: [unclosed\n---\nkind: Namespace\nmetadata: {name: b}\n"
    docs = list(parse_documents(text))
    assert [type(d) for d in docs] == [dict, Invalid, dict]
    assert isinstance(docs[1], Invalid) and docs[1].reason == "bad-yaml"


def test_list_kinds_are_expanded() -> None:
    items = [pod(metadata__uid="u1", metadata__name="p1"), pod(metadata__uid="u2", metadata__name="p2")]
    for it in items:
        del it["kind"], it["apiVersion"]  # list items from the API server carry no kind
    text = json.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}, "items": items})
    docs = list(parse_documents(text))
    assert [(d["kind"], d["apiVersion"]) for d in docs if isinstance(d, dict)] == [("Pod", "v1"), ("Pod", "v1")]
    out = list(normalize_text(text, SRC))
    assert [e.uid for e in out if isinstance(e, Endpoint)] == ["u1", "u2"]
    # generic List (kubectl get -o yaml): items keep their own kinds
    generic = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [{"kind": "Namespace", "metadata": {"name": "a"}}, {"metadata": {"name": "b"}}, 5],
    }
    docs = list(parse_documents(yaml.safe_dump(generic)))
    assert isinstance(docs[0], dict) and docs[0]["kind"] == "Namespace"
    assert isinstance(docs[1], Invalid) and docs[1].reason == "missing-field"
    assert isinstance(docs[2], Invalid) and docs[2].reason == "not-object"
    bad = list(parse_documents('{"kind": "PodList", "items": {"a": 1}}'))
    assert len(bad) == 1 and isinstance(bad[0], Invalid) and bad[0].reason == "bad-field"
    # a JSON array of objects
    arr = list(
        normalize_text(json.dumps([pod(metadata__uid="u3"), {"kind": "Namespace", "metadata": {"name": "z"}}]), SRC)
    )
    assert [e.uid for e in arr if isinstance(e, Endpoint)] == ["u3"]


def test_watch_stream_split_and_blank_lines() -> None:
    p = pod()
    gone = copy.deepcopy(p)
    events = [
        {"type": "ADDED", "object": p},
        {"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "12746"}}},
        {"type": "DELETED", "object": gone},
    ]
    compact = "\n\n".join(json.dumps(e) for e in events) + "\n\n"
    pretty = "\n".join(json.dumps(e, indent=2) for e in events)  # objects split across lines
    for text in (compact, pretty, "\n   \n" + compact):
        out = list(normalize_text(text, SRC))
        assert len(out) == 2, text
        assert isinstance(out[0], Endpoint) and out[0].uid == UID
        assert out[1] == Delete(source=SRC, kind="endpoint", key=f"default/{UID}")
    # the network of the key follows the normalizer's network
    out = list(normalize_text(compact, SRC, network="blue"))
    assert out[1] == Delete(source=SRC, kind="endpoint", key=f"blue/{UID}")


def test_bad_watch_lines_do_not_stop_parsing() -> None:
    good = json.dumps({"type": "ADDED", "object": pod()})
    text = "\n".join(
        [
            good,
            '{"type": "ADDED", "object": {"kind": "Pod", "metad',  # truncated line
            '{"type": "EXPLODED", "object": {}}',
            '{"type": "ADDED", "object": "x"}',
            '{"type": "ERROR", "object": {"kind": "Status", "code": 500, "reason": "InternalError", "message": "boom"}}',
            '{"type": "DELETED", "object": {"kind": "Pod", "metadata": {"name": "no-uid"}}}',
            '{"type": "MODIFIED", "object": {"kind": "Gizmo", "metadata": {"name": "g"}}}',
            good,
        ]
    )
    out = list(normalize_text(text, SRC))
    assert [type(x).__name__ if not isinstance(x, Invalid) else x.reason for x in out] == [
        "Endpoint",
        "bad-json",
        "bad-event",
        "bad-event",
        "watch-error",
        "missing-field",
        "unknown-kind",
        "Endpoint",
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("42", "not-object"),
        ("- a\n- b\n", "not-object"),
        ("{kind: Pod, metadata: {name: [}", "bad-yaml"),
        ('{"metadata": {"name": "x"}}', "missing-field"),
        ('{"kind": "Deployment", "metadata": {"name": "x"}}', "unknown-kind"),
        ('{"kind": 5}', "unknown-kind"),
        ("[" * 100000, "too-deep"),
        ("[" * 100 + "x", "bad-yaml"),
    ],
)
def test_nonsense_text(text: str, reason: str) -> None:
    out = list(normalize_text(text, SRC))
    assert out and all(isinstance(x, Invalid) for x in out)
    assert isinstance(out[0], Invalid) and out[0].reason == reason, out


def test_yaml_scalars_of_the_wrong_type_are_rejected() -> None:
    # YAML turns these into int/bool: reject, do not crash
    text = "kind: Pod\nmetadata: {name: a, uid: 123}\nspec: {nodeName: n}\n"
    out = list(normalize_text(text, SRC))
    assert len(out) == 1 and isinstance(out[0], Invalid) and out[0].reason == "bad-field"
    text = "kind: Pod\nmetadata: {name: a, uid: u, labels: {enabled: yes}}\nspec: {nodeName: n}\n"
    out = list(normalize_text(text, SRC))
    assert len(out) == 1 and isinstance(out[0], Invalid) and out[0].reason == "bad-label"


def test_parse_documents_is_pure_text(tmp_path: Path) -> None:
    # a file written by kubectl get -o json of a namespace list
    data = {
        "kind": "NamespaceList",
        "apiVersion": "v1",
        "metadata": {},
        "items": [{"metadata": {"name": "a", "labels": {"x": "1"}}}],
    }
    f = tmp_path / "ns.json"
    f.write_text(json.dumps(data, indent=1))
    docs = list(parse_documents(f.read_text()))
    assert len(docs) == 1 and isinstance(docs[0], dict)
    assert namespace_labels(docs[0]) == ("a", {"x": "1"})
