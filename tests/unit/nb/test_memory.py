"""What the memory work shares must change no value (core/nb/desired.py
``_compact``, core/nb/replica.py ``share_uuids``): endpoints taken by the
desired state share their repeated names and equal what they were; a switch's
child uuids become the port replica's own strings, equal and indexed as before."""

from __future__ import annotations

from core.model import Endpoint, Snapshot, Source, decode_object, encode
from core.nb import Programmer
from core.nb.tables import LS
from core.nb.tables.port import PortRow

SRC = Source("docker", "node1")


def test_endpoints_share_their_repeated_names_and_stay_equal() -> None:
    made = [Endpoint(source=SRC, uid=f"u{i}", namespace="team-a", name=f"c{i}", kind="container", network="blue",
                     node="node1", ips=(f"10.0.0.{i + 2}",)) for i in range(3)]  # fmt: skip
    decoded = [decode_object(encode(ep)) for ep in made]  # each with its own strings, as an adapter's are
    assert isinstance(decoded[0], Endpoint) and decoded[0].namespace is not decoded[1].namespace
    p = Programmer("unix:/nonexistent", "hub1")
    p.apply(Snapshot(source=SRC, objects=tuple(decoded)))
    a, b, c = (p.desired.ports[f"docker/node1/blue/u{i}"] for i in range(3))
    assert [a, b, c] == made  # equal values
    for field in ("source", "namespace", "kind", "network", "node", "state", "labels"):
        assert getattr(a, field) is getattr(b, field) is getattr(c, field), field
    assert a.uid is not b.uid and a.ips != b.ips


def test_a_switch_holds_the_port_replica_uuid_strings() -> None:
    p = Programmer("unix:/nonexistent", "hub1")
    uuids = [f"0000000{i}-0000-0000-0000-000000000000" for i in range(3)]
    sw = p.replica.stores[LS]
    sw.apply("s-1", {"initial": {"name": "docker/node1/blue", "ports": ["set", [["uuid", u] for u in uuids]],
                                 "external_ids": ["map", [["ovn-hub:owner", "hub1"]]]}}, p.changes)  # fmt: skip
    for i, u in enumerate(uuids):
        own = "".join(u)  # an equal string, another object (as a second decode makes)
        p.lsp[f"docker/node1/blue/u{i}"] = PortRow(own, "docker/node1", 1)
        p.ports.by_uuid[own] = f"docker/node1/blue/u{i}"
    p.replica.share_uuids()
    row = p.rows(LS)["docker/node1/blue"]
    held = row.cols["ports"]
    assert list(held) == sorted(uuids)
    for u in held:
        port = p.lsp[p.ports.by_uuid[u]]
        assert u is port.uuid
        assert sw.parent_of[u] == "s-1"  # type: ignore[attr-defined]
    assert all(k is p.lsp[p.ports.by_uuid[k]].uuid for k in sw.parent_of)  # type: ignore[attr-defined]


def test_the_monitor_reply_gives_a_switch_its_port_uuids_as_the_plain_tuple() -> None:
    """The writer's monitor reply is read by ``NbReplica.decoder``: a switch's
    port uuids come as the tuple the store keeps (not a list, an "uuid" and a
    string per member first), the row equals the plain decode's, and
    ``share_uuids`` still swaps them for the port rows' own strings."""
    import msgspec

    from core.ovsdb.values import decode_row

    p = Programmer("unix:/nonexistent", "hub1")
    uuids = [f"0000000{i}-0000-0000-0000-00000000000{i}" for i in range(5)]
    initial = {"name": "docker/node1/blue", "ports": ["set", [["uuid", u] for u in reversed(uuids)]],
               "load_balancer": ["set", []], "external_ids": ["map", [["ovn-hub:owner", "hub1"]]]}  # fmt: skip
    decoded = p.replica.decoder()(msgspec.Raw(msgspec.json.encode({LS: {"s-1": {"initial": initial}}})))
    assert decoded[LS]["s-1"]["initial"]["ports"] == tuple(uuids)
    sw = p.replica.stores[LS]
    sw.apply("s-1", decoded[LS]["s-1"], p.changes)
    row = p.rows(LS)["docker/node1/blue"]
    assert row.cols == decode_row(sw.kind.columns, initial)
    for i, u in enumerate(uuids[:4]):  # the fifth is no port of ours
        own = "".join(u)
        p.lsp[f"docker/node1/blue/u{i}"] = PortRow(own, "docker/node1", 1)
        p.ports.by_uuid[own] = f"docker/node1/blue/u{i}"
    p.replica.share_uuids()
    for u in p.rows(LS)["docker/node1/blue"].cols["ports"][:4]:
        assert u is p.lsp[p.ports.by_uuid[u]].uuid
        assert sw.parent_of[u] == "s-1"  # type: ignore[attr-defined]
