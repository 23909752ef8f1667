"""The Endpoint's fast path in the validator accepts only what the full check accepts.

:func:`core.model.validate.validate` first tries ``_endpoint_passes`` (a few C
calls and caches of values already accepted) and runs the full check
``_validate_endpoint`` only when that says no.  For endpoints with one or two
hostile fields, ``validate`` must raise exactly when the full check raises, with
the same reason and message, on first sight and again once the caches know the
other fields' values.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import msgspec
import pytest

from core.model import LABEL_WORKLOAD, Endpoint, Invalid, PortSpec, Source, validate
from core.model.validate import _endpoint_passes, _validate_endpoint

GOOD = Endpoint(
    source=Source("k8s", "prod"), uid="3f1c2a9e-0000-4000-8000-000000000001", namespace="team-a", name="web-0",
    kind="pod", network="default", node="node-1", ips=("10.0.0.5", "fd00::5"), mac="0a:58:0a:00:00:05",
    labels={"app": "web", "tier": "front", LABEL_WORKLOAD: "k8s:3f1c2a9e"}, ports=(PortSpec(8080, "tcp", "http"),),
)  # fmt: skip

TEXTS: list[Any] = [
    "", "x", "a b", "a\tb", "a\nb", "a\x00b", "a\x7fb", "a\u200bb", "a\u202eb", "a\u2028b", "a\xa0b", "a\u3000b",
    "\ud800", "é", "日本", "a" * 63, "a" * 64, "a" * 253, "a" * 254, "a" * 5000, 5, None, b"x", "a\x85b",
    "\U000e0001", "a\u00adb",
]  # fmt: skip
IPS: list[Any] = [
    (), ("10.0.0.1",), ("10.0.0.1", "10.0.0.1"), ("010.0.0.1",), ("10.0.0.1 ",), ("127.0.0.1",), ("224.0.0.1",),
    ("0.0.0.0",), ("0.1.2.3",), ("255.255.255.255",), ("::1",), ("FD00::1",), ("fd00::1",), ("fe80::1%eth0",),
    ("ff02::1",), ("::",), ("fd00:0::1",), ("1.2.3",), (5,), (None,), tuple(f"10.0.1.{i}" for i in range(17)),
    ("10.0.0.1\n",), ("::ffff:10.0.0.1",),
]  # fmt: skip
MACS: list[Any] = [None, "0a:58:0a:00:00:05", "0A:58:0A:00:00:05", "01:00:5e:00:00:01", "0a:58:0a:00:00", "", 5,
                   "0a:58:0a:00:00:05\n", "0a-58-0a-00-00-05"]  # fmt: skip
PORTS: list[Any] = [
    (), (PortSpec(0),), (PortSpec(65536),), (PortSpec(80, "TCP"),), (PortSpec(80, "icmp"),), (PortSpec(80, "udp", "dns"),),
    (PortSpec(80, "tcp", "HTTP"),), (PortSpec(80, "tcp", "a--b"),), (PortSpec(80, "tcp", "1234"),),
    (PortSpec(80, "tcp", "x" * 16),), (PortSpec(80.5),), (PortSpec(80, None),), tuple(PortSpec(i + 1) for i in range(1025)),
    (PortSpec(80, "tcp", "\u0430bc"),),
]  # fmt: skip
LABELS: list[Any] = [
    {}, {"": "x"}, {"a": ""}, {"a" * 318: "x"}, {"a": "x" * 4097}, {"a\x00": "x"}, {"a": "x\u200b"}, {"a": "x y"},
    {"a": "\xa0"}, {"a b": "x"}, {5: "x"}, {"a": 5}, {"a": None}, {f"k{i}": "v" for i in range(257)},
    {LABEL_WORKLOAD: "k8s"}, {LABEL_WORKLOAD: "k8s:"}, {LABEL_WORKLOAD: "K8S:x"}, {LABEL_WORKLOAD: ":x"},
    {LABEL_WORKLOAD: "k8s:a b"}, {LABEL_WORKLOAD: "k8s:" + "a" * 254}, {LABEL_WORKLOAD: "mesos:x:y"},
    {LABEL_WORKLOAD: "k8s:a\u3000b"}, {LABEL_WORKLOAD: "-x:y"},
]  # fmt: skip
SOURCES: list[Any] = [Source("k8s", "prod"), Source("K8s", "prod"), Source("ovn-hub", "x"), Source("k8s", ""),
                      Source("k8s", "a" * 64), Source("k8s", "a_b")]  # fmt: skip
NETWORKS: list[Any] = ["default", "", "-x", "a" * 128, "a" * 129, "a b", "a/b", "a.b_c-d", "défaut", "x\n"]
FIELDS: dict[str, list[Any]] = {
    "uid": TEXTS, "namespace": TEXTS, "name": TEXTS, "kind": TEXTS, "state": TEXTS, "node": TEXTS, "ips": IPS,
    "mac": MACS, "ports": PORTS, "labels": LABELS, "source": SOURCES, "network": NETWORKS,
}  # fmt: skip


def _verdict(check: Any, ep: Endpoint) -> tuple[str, str] | str:
    try:
        check(ep)
    except Invalid as exc:
        return (exc.reason, str(exc))
    except Exception as exc:  # noqa: BLE001 - a wrong type: the full check's own exception type counts too
        return type(exc).__name__
    return "ok"


def _cases() -> list[Endpoint]:
    out = [msgspec.structs.replace(GOOD, **{f: v}) for f, vs in FIELDS.items() for v in vs]
    rng = random.Random(15)
    pairs = list(itertools.combinations(FIELDS, 2))
    for _ in range(3000):
        a, b = rng.choice(pairs)
        out.append(msgspec.structs.replace(GOOD, **{a: rng.choice(FIELDS[a]), b: rng.choice(FIELDS[b])}))
    return out


@pytest.mark.parametrize("rounds", [1, 2])
def test_fast_path_agrees_with_the_full_check(rounds: int) -> None:
    cases = _cases()
    for _ in range(rounds):  # the second round finds the caches full of the good values
        for ep in cases:
            full = _verdict(_validate_endpoint, ep)
            assert _verdict(validate, ep) == full, ep
            if full != "ok":
                assert not _endpoint_passes(ep), ep


def test_fast_path_takes_the_common_endpoint() -> None:
    validate(GOOD)
    assert _endpoint_passes(GOOD)
    assert _endpoint_passes(msgspec.structs.replace(GOOD, uid="other", ips=("10.9.9.9",), labels={}))
