"""``endpoint_digest`` is ``lsp_digest(lsp_columns(...))`` without the columns:
the same digest for any endpoint (the port cache keeps digests across
processes, so a different one would rewrite every port after an upgrade), and
the ports digested ahead of the first diff (``Ahead``) are left alone only
when the diff would leave them alone: the very endpoint digested, a row with
that digest and no allocation of OVN's."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from core.model import Endpoint, Source
from core.names import lsp_name
from core.nb.desired import DesiredState
from core.nb.plan import View
from core.nb.replica import NbReplica
from core.nb.tables.port import TABLE, Ahead, PortRow, diff, endpoint_digest, lsp_columns, lsp_digest

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_label = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)
_ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
_ipv6 = st.integers(1, 2**32).map(lambda i: f"fd00::{i:x}")


@st.composite
def endpoints(draw: st.DrawFn) -> Endpoint:
    return Endpoint(
        source=Source(draw(_label), draw(_label)),
        uid=draw(_text),
        namespace=draw(_text),
        name=draw(_text),
        kind=draw(st.sampled_from(["pod", "container", "task", "vm"])),
        network=draw(_text),
        node=draw(st.one_of(st.just(""), _text)),
        ips=tuple(draw(st.lists(st.one_of(_ipv4, _ipv6), max_size=3))),
        mac=draw(st.one_of(st.none(), st.just(""), st.just("02:00:00:00:00:01"))),
    )


@settings(max_examples=300, deadline=None)
@given(endpoints(), _label)
def test_endpoint_digest_is_the_columns_digest(ep: Endpoint, hub_id: str) -> None:
    assert endpoint_digest(ep, hub_id) == lsp_digest(lsp_columns(ep, hub_id))


def _view(ep: Endpoint, digest: int, dyn: str = "") -> View:
    desired = DesiredState("hub1", lambda *a: None)
    desired.ports[lsp_name(ep)] = ep
    replica = NbReplica("hub1")
    replica.stores[TABLE].rows[lsp_name(ep)] = PortRow("u-1", str(ep.source), digest, None, dyn)  # type: ignore[attr-defined]
    return View(desired, replica, "hub1")


EP = Endpoint(source=Source("static", "a"), uid="u1", namespace="ns", name="w", kind="vm", network="n",
              ips=("10.0.0.1",), mac="02:00:00:00:00:01")  # fmt: skip


def test_diff_of_an_unchanged_port_writes_nothing() -> None:
    view = _view(EP, endpoint_digest(EP, "hub1"))
    assert diff(view, lsp_name(EP)) is None


def test_ports_digested_ahead_are_left_alone_only_when_diff_would() -> None:
    """``Ahead.unchanged`` is the ports diff would leave alone, and no other."""
    name = lsp_name(EP)
    view = _view(EP, endpoint_digest(EP, "hub1"))
    ahead = Ahead(view.desired.ports, "hub1")
    assert ahead.unchanged(view) == {name}
    assert diff(view, name) is None
    # the desired endpoint changed after it was digested (an event while NB loaded): diffed
    moved = msgspec.structs.replace(EP, ips=("10.0.0.2",))
    view.desired.ports[name] = moved
    assert ahead.unchanged(view) == set()
    op = diff(view, name)
    assert op is not None and op.op == "update"
    assert op.columns["addresses"] == ("02:00:00:00:00:01 10.0.0.2",)
    # an equal endpoint that is not the one digested: diffed (and found equal)
    view.desired.ports[name] = msgspec.structs.replace(EP)
    assert ahead.unchanged(view) == set()
    assert diff(view, name) is None
    # the row changed in NB since the cache was written (read again: another digest): diffed
    view = _view(EP, 12345)
    assert Ahead(view.desired.ports, "hub1").unchanged(view) == set()
    op = diff(view, name)
    assert op is not None and op.op == "update"


def test_a_port_ovn_allocated_to_is_diffed_with_its_allocation() -> None:
    dyn = "02:00:00:00:00:09 10.0.0.9"
    ep = msgspec.structs.replace(EP, ips=(), mac=None)
    want = lsp_columns(ep, "hub1")
    want["port_security"] = (dyn,)
    view = _view(ep, lsp_digest(want), dyn)
    assert Ahead(view.desired.ports, "hub1").unchanged(view) == set()  # (its allocation is not in the digest)
    assert diff(view, lsp_name(ep)) is None
    view = _view(ep, endpoint_digest(ep, "hub1"), dyn)  # written before OVN allocated: now locked to it
    assert Ahead(view.desired.ports, "hub1").unchanged(view) == set()
    op = diff(view, lsp_name(ep))
    assert op is not None and op.columns["port_security"] == (dyn,)
