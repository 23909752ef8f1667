"""``hubctl normalize`` accounts for every input object: canonical output, a
``rejected`` line, or one ``skipped`` line saying why; and its exit statuses
(0 output / 1 rejections / 2 usage / 3 everything skipped)."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.docker.offline import normalize_text as docker_normalize
from adapters.k8s.offline import normalize_text as k8s_normalize
from core.model import Endpoint, Invalid, Service, Source
from testkit.hubd import BIN
from tests.conftest import FIXTURES_DIR

DOCKER = FIXTURES_DIR / "docker"
K8S = FIXTURES_DIR / "kubernetes"
SRC = Source("k8s", "test")


def hubctl(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "hubctl"), "normalize", *map(str, args)], capture_output=True, text=True, timeout=60, input=stdin
    )


def run(fn: Any, text: str, source: Source) -> tuple[list[Any], list[tuple[str, str]]]:
    skips: list[tuple[str, str]] = []
    out = list(fn(text, source, on_skip=lambda reason, message: skips.append((reason, message))))
    return out, skips


# ---------------------------------------------------------------- docker
def docker_inputs() -> list[dict[str, Any]]:
    base = json.loads((DOCKER / "container-inspect.api-v1.24-doc.json").read_text())
    assert base["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == "172.17.0.2"

    def variant(cid: str, **changes: Any) -> dict[str, Any]:
        c = copy.deepcopy(base)
        c["Id"], c["Name"] = cid * 64, f"/{cid}"
        for path, value in changes.items():
            node = c
            *parents, last = path.split("__")
            for p in parents:
                node = node[p]
            node[last] = value
        return c

    return [
        variant("a"),  # running, attached: an endpoint
        variant("b", State__Running=False, State__Status="exited"),
        variant("c", HostConfig__NetworkMode="host", NetworkSettings__Networks={"host": {"IPAddress": ""}}),
        variant("d", HostConfig__NetworkMode="none", NetworkSettings__Networks={"none": {"IPAddress": ""}}),
        variant("e", NetworkSettings__Networks={"bridge": {"IPAddress": "", "MacAddress": ""}}),
        {"Name": "host", "Driver": "host", "IPAM": {"Config": []}, "Containers": {}},
        variant("f", NetworkSettings__Networks={"bridge": {"IPAddress": "1.2.3"}}),  # bad
    ]


def test_docker_every_object_accounted(tmp_path: Path) -> None:
    items = docker_inputs()
    out, skips = run(docker_normalize, json.dumps(items), Source("docker", "local"))
    assert [e.uid[0] for e in out if isinstance(e, Endpoint)] == ["a"]
    assert [x.reason for x in out if isinstance(x, Invalid)] == ["bad-ip"]
    assert [r for r, _ in skips] == ["not-running", "host-network", "no-attachment", "no-address", "not-l2"]
    assert "container bbbbbbbbbbbb (b): not running (status exited)" in skips[0][1]
    assert "host networking" in skips[1][1] and "--network none" in skips[2][1] and "bridge" in skips[3][1]
    assert "'host'" in skips[4][1]
    assert len(out) + len(skips) == len(items)
    # the same through hubctl: one stderr line per object without output
    f = tmp_path / "all.json"
    f.write_text(json.dumps(items))
    res = hubctl("--from", "docker", f)
    assert res.returncode == 1, res.stderr
    err = res.stderr.splitlines()
    assert len(res.stdout.splitlines()) == 1 and len(err) == 6, err
    assert sum(f"{f}: skipped (" in line for line in err) == 5
    assert sum(f"{f}: rejected (bad-ip)" in line for line in err) == 1


def test_docker_events_without_deltas_are_accounted() -> None:
    text = (DOCKER / "events.compose-project.deck-chores.jsonl").read_text()
    n = sum(1 for line in text.splitlines() if line.strip())
    out, skips = run(docker_normalize, text, Source("docker", "local"))
    assert not [x for x in out if isinstance(x, Invalid)]
    assert len(out) + len(skips) == n
    assert {r for r, _ in skips} == {"event-only"}
    assert any(m.startswith("container start event (") for _, m in skips)
    assert any(m.startswith("network create event (sojus_default)") for _, m in skips)


def test_docker_fixtures_unchanged_without_on_skip() -> None:
    """The entry point's output (and so the hub's tests of it) does not change."""
    for f in sorted(p for p in DOCKER.iterdir() if p.name != "SOURCES.md"):
        text = f.read_text()
        assert (
            list(docker_normalize(text, Source("docker", "local")))
            == run(docker_normalize, text, Source("docker", "local"))[0]
        )


# ---------------------------------------------------------------- kubernetes
def pod(name: str, **spec: Any) -> dict[str, Any]:
    status = spec.pop("status", {"phase": "Running", "podIP": "10.1.0.9"})
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "uid": f"u-{name}"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c"}], **spec},
        "status": status,
    }  # fmt: skip


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "shop", "uid": f"u-{name}"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80, "protocol": "TCP"}], **spec},
    }  # fmt: skip


def endpoint_slice(name: str, svc: str | None) -> dict[str, Any]:
    labels = {"kubernetes.io/service-name": svc} if svc else {}
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": name, "namespace": "shop", "labels": labels},
        "ports": [{"port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.1.0.9"], "conditions": {"ready": True}}],
    }  # fmt: skip


def node(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.5"}]}}  # fmt: skip


def manifest(*docs: dict[str, Any]) -> str:
    return yaml.safe_dump_all(docs)


def test_k8s_every_object_accounted() -> None:
    no_uid = pod("handwritten")
    del no_uid["metadata"]["uid"]
    docs = [
        pod("web"),
        pod("host", hostNetwork=True),
        pod("done", status={"phase": "Succeeded"}),
        pod("pending", nodeName=None, status={"phase": "Pending"}),
        service("web"),
        endpoint_slice("web-1", "web"),  # joined into Service web: no line
        endpoint_slice("gone-1", "gone"),
        service("dns", clusterIP="None"),
        endpoint_slice("dns-1", "dns"),
        service("alias", type="ExternalName", externalName="example.com", clusterIP=None),
        endpoint_slice("orphan-1", None),
        node("n1"),
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "uid": "u-d"}},
        no_uid,
    ]
    out, skips = run(k8s_normalize, manifest(*docs), SRC)
    assert [(type(x).__name__, getattr(x, "name", x.reason if isinstance(x, Invalid) else "")) for x in out] == [
        ("Endpoint", "web"), ("Service", "web"), ("Invalid", "unknown-kind"), ("Invalid", "missing-field"),
    ]  # fmt: skip
    svc = next(x for x in out if isinstance(x, Service))
    assert svc.rules[0].backends == ("10.1.0.9:80",)
    assert skips == [
        ("host-network", "Pod shop/host: uses hostNetwork (no attachment of its own)"),
        ("finished", "Pod shop/done: has finished (phase Succeeded): no endpoint"),
        ("unscheduled", "Pod shop/pending: not scheduled to a node yet (no spec.nodeName): no endpoint"),
        ("no-service", "EndpointSlice shop/gone-1: its Service shop/gone is not in the input (give both to join them)"),
        ("headless", "Service shop/dns: headless (clusterIP None): clients resolve its pods through DNS, no VIP"),
        ("service-skipped", "EndpointSlice shop/dns-1: its Service shop/dns is headless (no load balancer to take the backends)"),
        ("external-name", "Service shop/alias: type ExternalName is a DNS alias, no VIP to balance"),
        ("no-service", "EndpointSlice shop/orphan-1: has no kubernetes.io/service-name label (it belongs to no Service)"),
        ("node-unused", "Node n1: only NodePort/LoadBalancer Services use node addresses, and the input has none"),
    ]  # fmt: skip
    # every object but the joined slice has its output or its line
    assert len(out) + len(skips) == len(docs) - 1
    bad = [x for x in out if isinstance(x, Invalid)]
    assert "shop/handwritten: metadata.uid is missing (a manifest written by hand has none" in str(bad[1])


def test_k8s_node_joined_into_a_nodeport_service_is_not_reported() -> None:
    out, skips = run(
        k8s_normalize,
        manifest(service("np", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]), node("n1")),
        SRC,
    )
    assert skips == []
    svc = out[0]
    assert isinstance(svc, Service) and any(r.vip == "192.168.0.5" and r.port == 30080 for r in svc.rules)


def test_k8s_watch_stream_bookmarks_and_joined_deletes() -> None:
    events = [
        {"type": "ADDED", "object": endpoint_slice("web-1", "web")},
        {"type": "DELETED", "object": endpoint_slice("web-1", "web")},
        {"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "77"}}},
        {"type": "DELETED", "object": pod("web")},
    ]
    out, skips = run(k8s_normalize, "\n".join(json.dumps(e) for e in events), SRC)
    assert [type(x).__name__ for x in out] == ["Delete"]
    assert [r for r, _ in skips] == ["no-service", "deleted-join", "bookmark"]
    assert "resourceVersion 77" in skips[2][1]


def test_k8s_empty_input_is_accounted() -> None:
    out, skips = run(k8s_normalize, json.dumps({"kind": "PodList", "apiVersion": "v1", "items": []}), SRC)
    assert out == [] and [r for r, _ in skips] == ["empty"]


def test_k8s_fixtures_unchanged_without_on_skip() -> None:
    for f in sorted(p for p in K8S.iterdir() if p.is_file()):
        text = f.read_text(errors="replace")
        plain = [str(x) if isinstance(x, Invalid) else x for x in k8s_normalize(text, SRC)]
        assert plain == [str(x) if isinstance(x, Invalid) else x for x in run(k8s_normalize, text, SRC)[0]], f


# ---------------------------------------------------------------- exit statuses
def test_exit_statuses(tmp_path: Path) -> None:
    good = DOCKER / "container-inspect.api-v1.24-doc.json"
    res = hubctl("--from", "docker", good)
    assert (res.returncode, res.stderr) == (0, "")

    only_skipped = tmp_path / "node.yaml"
    only_skipped.write_text(manifest(node("n1"), pod("host", hostNetwork=True)))
    res = hubctl("--from", "k8s", only_skipped)
    assert res.returncode == 3 and res.stdout == "", res
    assert res.stderr.count(f"{only_skipped}: skipped (") == 2

    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "Gizmo", "metadata": {"name": "g"}}')
    res = hubctl("--from", "k8s", bad, only_skipped)
    assert res.returncode == 1 and "rejected (unknown-kind)" in res.stderr

    res = hubctl("--from", "k8s", "-", stdin=manifest(pod("web")))  # stdin
    assert res.returncode == 0 and json.loads(res.stdout)["name"] == "web"

    for args in (("--from", "nosuch", good), ("--from", "k8s", "--cluster", "a b", good), ("--from", "k8s")):
        res = hubctl(*args)
        assert res.returncode == 2, (args, res)
        assert "Traceback" not in res.stderr

    help_text = hubctl("--help").stdout
    for line in (
        "0  nothing rejected",
        "1  something was rejected",
        "2  usage",
        "3  nothing rejected, but nothing written",
    ):
        assert line in help_text, help_text


@pytest.mark.parametrize("source", ["docker", "k8s"])
def test_every_fixture_is_accounted(source: str) -> None:
    """Each fixture file: every line on stderr is a skip or a rejection, and a
    file with no output has at least one line saying why."""
    root = DOCKER if source == "docker" else K8S
    for f in sorted(p for p in root.iterdir() if p.is_file() and p.name != "SOURCES.md"):
        res = hubctl("--from", source, f)
        assert res.returncode in (0, 1, 3), (f, res)
        err = res.stderr.splitlines()
        assert all(line.startswith(f"{f}: skipped (") or line.startswith(f"{f}: rejected (") for line in err), err
        assert res.stdout or err, f
        assert (res.returncode == 3) == (not res.stdout and not any("rejected (" in line for line in err)), (f, res)
