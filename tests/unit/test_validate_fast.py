"""The Endpoint's fast path in the validator accepts only what the full check accepts.

:func:`core.model.validate.validate` first tries ``_endpoint_passes`` (a few C
calls and caches of values already accepted) and runs the full check
``_validate_endpoint`` only when that says no.  For endpoints with one or two
hostile fields, ``validate`` must raise exactly when the full check raises, with
the same reason and message, on first sight and again once the caches know the
other fields' values.
"""

from __future__ import annotations

import ipaddress
import itertools
import random
import re
import sys
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.model import (
    LABEL_WORKLOAD,
    Endpoint,
    Invalid,
    PortSpec,
    Source,
    match_unicast_mac,
    match_v4_host,
    validate,
    validate_ip,
    validate_mac,
)
from core.model.validate import _endpoint_passes, _validate_endpoint

validate_module = sys.modules["core.model.validate"]  # (core.model's validate is the function)

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


# ---------------------------------------------------------------- validate_ip / validate_mac: the one-regex fast paths
def _ip_reference(text: str) -> tuple[str, str]:
    """What validate_ip answers, from ipaddress alone (its slow path, no regex, no memo)."""
    if "%" in text:
        return ("bad-ip", "")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return ("bad-ip", "")
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback:
        return ("bad-ip", "")
    if isinstance(ip, ipaddress.IPv4Address) and (ip.packed[0] == 0 or ip == ipaddress.IPv4Address("255.255.255.255")):
        return ("bad-ip", "")
    return ("ok", str(ip))


def _mac_reference(text: str) -> tuple[str, str]:
    mac = text.lower()
    if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac) or int(mac[:2], 16) & 1:
        return ("bad-mac", "")
    return ("ok", mac)


def _answer(check: Any, text: str) -> tuple[str, str]:
    try:
        return ("ok", check(text))
    except Invalid as exc:
        return (exc.reason, "")


_OCTETS = st.one_of(st.integers(0, 255).map(str), st.sampled_from(["00", "01", "010", "256", "999", "", "1 ", "-1", "0x1"]))
_DOTTED = st.builds(lambda a, b, c, d, sep: sep.join((a, b, c, d)), _OCTETS, _OCTETS, _OCTETS, _OCTETS,
                    st.sampled_from([".", ".", ".", ":", ". "]))  # fmt: skip
_EDGES = st.sampled_from(["0.0.0.0", "0.1.2.3", "1.0.0.0", "126.255.255.255", "127.0.0.1", "128.0.0.1", "223.255.255.255",
                          "224.0.0.0", "239.255.255.255", "240.0.0.1", "254.255.255.255", "255.255.255.254",
                          "255.255.255.255", "255.255.255.255\n", "10.0.0.1\n", "1.2.3.4.5", "fd00::1", "::ffff:1.2.3.4"])  # fmt: skip
_HEX = st.text("0123456789abcdefABCDEFg", min_size=2, max_size=2)
_MACS = st.one_of(st.builds(lambda parts, sep: sep.join(parts), st.lists(_HEX, min_size=5, max_size=7),
                            st.sampled_from([":", ":", ":", "-"])),
                  st.sampled_from(["01:00:5e:00:00:01", "02:42:ac:11:00:02", "0A:58:0A:00:00:05", "ff:ff:ff:ff:ff:ff",
                                   "02:42:ac:11:00:02\n", " 02:42:ac:11:00:02"]))  # fmt: skip


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(_DOTTED, _EDGES, st.text(max_size=20)))
def test_validate_ip_fast_path_answers_as_ipaddress(text: str) -> None:
    validate_module._IPS_OK.discard(text)  # first sight: the regexes answer, not the memo
    first = _answer(validate_ip, text)
    assert first == _ip_reference(text), text
    assert _answer(validate_ip, text) == first, text  # and the memo, after


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(_MACS, st.text(max_size=20)))
def test_validate_mac_fast_path_answers_as_the_reference(text: str) -> None:
    validate_module._MACS_OK.discard(text)
    first = _answer(validate_mac, text)
    assert first == _mac_reference(text), text
    assert _answer(validate_mac, text) == first, text


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(_DOTTED, _EDGES, _MACS, st.text(max_size=20)))
def test_the_exported_matchers_accept_only_what_the_checks_return_as_it_is(text: str) -> None:
    """``match_v4_host`` / ``match_unicast_mac`` (callers skip the check on a match): a match is a
    value the check returns unchanged."""
    if match_v4_host(text):
        assert _ip_reference(text) == ("ok", text), text
    if match_unicast_mac(text):
        assert _mac_reference(text) == ("ok", text), text
