"""The pod watch's typed fast path (:func:`decode_pod_event`) against the dict path.

For a pod event, the adapter first tries :func:`decode_pod_event`; None sends the
line down the dict path (``msgspec`` untyped decode, :func:`parse_watch_event`,
:func:`normalize_pod` / :func:`pod_uid`).  Over the pod fixture with one or two
fields made hostile (null, wrong types, empty, out of range, control
characters, duplicates, unknown event types...), the fast path must either give
exactly what the dict path gives (the same Endpoint, uid and resourceVersion) or
None, and never None where the dict path accepts the well-formed pod.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
from typing import Any

import msgspec
import pytest
import yaml

from adapters.k8s.normalize import (
    MULTUS_STATUS_ANNOTATION,
    OVNK_POD_NETWORKS_ANNOTATION,
    PodEvent,
    decode_pod_event,
    normalize_pod,
    parse_watch_event,
    pod_uid,
    resource_version,
)
from core.model import Endpoint, Invalid, Source
from tests.conftest import FIXTURES_DIR

SRC = Source("k8s", "test")
NET = "default"


def _pod() -> dict[str, Any]:
    pod: dict[str, Any] = yaml.safe_load((FIXTURES_DIR / "kubernetes" / "pod.apimachinery-managedfields.yaml").read_text())
    pod["metadata"].update(uid="0a9d2b9e-779e-11e7-b422-42010a8001bf", resourceVersion="42")
    pod["spec"]["nodeName"] = "node-1"
    pod["status"]["podIP"] = "10.128.0.5"
    pod["status"]["podIPs"] = [{"ip": "10.128.0.5"}, {"ip": "fd00::5"}]
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 8080, "name": "http"}, {"containerPort": 53, "protocol": "UDP"}]
    return pod


def _dict_path(line: bytes) -> PodEvent | str:
    """What the adapter's dict path makes of a pod watch line (a reason when it rejects or passes it on)."""
    try:
        ev = parse_watch_event(msgspec.json.decode(line))
    except (msgspec.DecodeError, ValueError, RecursionError):
        return "bad-json"
    except Invalid as exc:
        return exc.reason
    typ, obj = ev["type"], ev["object"]
    if typ not in ("ADDED", "MODIFIED", "DELETED"):
        return typ
    try:
        if typ == "DELETED":
            return PodEvent(typ, pod_uid(obj), resource_version(obj), None)
        ep = normalize_pod(obj, SRC, network=NET)
    except Invalid as exc:
        return exc.reason
    uid = ep.uid if ep is not None else pod_uid(obj)
    return PodEvent(typ, uid, resource_version(obj), ep)


def _line(event: Any) -> bytes:
    return json.dumps(event).encode()


_MISSING = object()
HOSTILE: list[Any] = [
    _MISSING, None, "", " ", "x y", "a\x00b", "a\u200bb", 5, 5.0, True, [], {}, [None], [{}], "A" * 300, -1, 70000,
    "10.0.0.1", "::1", "224.0.0.1", "Running", "Succeeded", "TCP", "icmp", {"ip": ""}, [{"ip": 5}], [{"ip": "10.1.1.1"}],
    {"a": 5}, {"a": "b"}, [{"containerPort": 80}], [{"ports": None}], [{"ports": [{"containerPort": True}]}],
    [{"ports": [{"containerPort": 80.0}]}], [{"ports": [{"containerPort": 0}]}], [{"ports": [None]}],
    json.dumps({"default": {"mac_address": "0a:58:0a:80:00:05"}}), json.dumps({"default": {"mac_address": "zz"}}),
    "not json", "Pod", "Node",
]  # fmt: skip
PATHS: list[tuple[str, ...]] = [
    ("type",), ("object",), ("object", "kind"), ("object", "metadata"), ("object", "metadata", "uid"),
    ("object", "metadata", "name"), ("object", "metadata", "namespace"), ("object", "metadata", "resourceVersion"),
    ("object", "metadata", "labels"), ("object", "metadata", "annotations"),
    ("object", "metadata", "annotations", OVNK_POD_NETWORKS_ANNOTATION),
    ("object", "metadata", "annotations", MULTUS_STATUS_ANNOTATION), ("object", "metadata", "labels", "app"),
    ("object", "spec"), ("object", "spec", "nodeName"), ("object", "spec", "hostNetwork"),
    ("object", "spec", "containers"), ("object", "status"), ("object", "status", "phase"),
    ("object", "status", "podIP"), ("object", "status", "podIPs"),
]  # fmt: skip


def _set(event: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(event)
    node = out
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            return out
        node = node[key]
    if value is _MISSING:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return out


def _check(line: bytes) -> None:
    fast = decode_pod_event(line, SRC, network=NET)
    want = _dict_path(line)
    if fast is not None:
        assert isinstance(want, PodEvent), (line[:300], want)
        assert fast == want, (fast, want)
        if fast.endpoint is not None:
            assert isinstance(fast.endpoint, Endpoint) and fast.endpoint.labels == want.endpoint.labels  # type: ignore[union-attr]


@pytest.mark.parametrize("typ", ["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"])
def test_well_formed_events_take_the_fast_path(typ: str) -> None:
    line = _line({"type": typ, "object": _pod()})
    fast = decode_pod_event(line, SRC, network=NET)
    if typ in ("BOOKMARK", "ERROR"):
        assert fast is None
        return
    assert fast is not None and fast == _dict_path(line)
    assert (fast.endpoint is None) == (typ == "DELETED")


def test_one_hostile_field_fast_path_agrees() -> None:
    base = {"type": "MODIFIED", "object": _pod()}
    for path, value in itertools.product(PATHS, HOSTILE):
        _check(_line(_set(base, path, value)))


def test_two_hostile_fields_fast_path_agrees() -> None:
    rng = random.Random(15)
    base = {"type": "ADDED", "object": _pod()}
    for _ in range(2000):
        ev = base
        for path in rng.sample(PATHS, 2):
            ev = _set(ev, path, rng.choice(HOSTILE))
        _check(_line(ev))


def test_duplicate_keys_and_garbage_agree() -> None:
    good = _line({"type": "MODIFIED", "object": _pod()})
    for line in [
        good.replace(b'"type": "MODIFIED"', b'"type": "MODIFIED", "type": "DELETED"'),
        good.replace(b'"nodeName": "node-1"', b'"nodeName": "node-1", "nodeName": null'),
        good.replace(b'"nodeName": "node-1"', b'"nodeName": 5, "nodeName": "node-2"'),
        good[:-1], good + b"x", b"[]", b"null", b"{}", b'{"type": "ADDED"}', b"\xff" + good,
        b'{"type": "ADDED", "object": {"metadata": {"uid": "u", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}}}",
    ]:  # fmt: skip
        _check(line)
