"""Incremental derivation (core/nb/desired.py, the ``Incremental`` forms of the
derivers) against its oracle: after every step of a random sequence of changes,
every source's derived rows equal what the pure whole-source ``DERIVERS``
recompute from its desired state, and the desired rows of the derived tables are
exactly every source's (and the fabric's).

The changes: endpoints added, removed, relabelled, re-addressed, moved to another
namespace, given or losing named ports, left to OVN's IPAM and then allocated;
endpoints of two sources declaring one workload (the lower one yields, and comes
back); policies, services and namespaces added, changed and removed; snapshots
that replace a source's objects; the fabric's spec changing (DNS zone, hairpin).
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.model import (
    LABEL_WORKLOAD,
    Delete,
    Endpoint,
    Expr,
    InputEvent,
    LBRule,
    Namespace,
    Network,
    Peer,
    Policy,
    PolicyPort,
    PortSpec,
    Rule,
    Selector,
    Service,
    Snapshot,
    Source,
    Upsert,
)
from core.model.fabric import DnsSpec, Fabric, RouterSpec
from core.names import lsp_name
from core.nb.desired import DesiredState
from core.nb.kinds import KINDS, Members
from core.nb.tables import ACL, AS, LB, PG
from core.nb.tables.dns import TABLE as DNS

K8S, DOCKER = Source("k8s", "a"), Source("docker", "n1")
HUB = "hub1"
NETS = ("net1", "net2")
NAMESPACES = ("n1", "n2")
DERIVED = (PG, AS, ACL, LB, DNS)
FABRICS = (
    Fabric(routers=(RouterSpec(name="r1", networks=("*/net1",)),)),
    Fabric(routers=(RouterSpec(name="r1", networks=("*/net1",)),), dns=DnsSpec(zone="other"), hairpin_snat_ip="169.254.0.9"),
    Fabric(),
)

labels_s = st.dictionaries(st.sampled_from(["app", "tier"]), st.sampled_from(["a", "b"]), max_size=2)
selector_s = st.builds(
    lambda ml, ex: Selector(match_labels=ml, match_expressions=ex),
    st.dictionaries(st.sampled_from(["app", "tier"]), st.sampled_from(["a", "b"]), max_size=1),
    st.lists(
        st.builds(
            lambda k, op, v: Expr(key=k, operator=op, values=v if op in ("In", "NotIn") else ()),
            st.sampled_from(["app", "tier"]),
            st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
            st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=2).map(tuple),
        ),
        max_size=1,
    ).map(tuple),
) | st.just(Selector())
ns_selector_s = st.one_of(st.just(Selector()), st.just(Selector(match_labels={"team": "t1"})),
                          st.just(Selector(match_expressions=(Expr(key="team", operator="NotIn", values=("t1",)),))))  # fmt: skip
peer_s = st.one_of(
    st.builds(lambda s: Peer(pod_selector=s), selector_s),
    st.builds(lambda s: Peer(pod_selector=s), selector_s),
    st.builds(lambda s: Peer(namespace_selector=s), ns_selector_s),
    st.builds(lambda a, b: Peer(pod_selector=a, namespace_selector=b), selector_s, ns_selector_s),
    st.just(Peer(cidr="10.1.0.0/16", except_cidrs=("10.1.1.0/24",))),
    st.just(Peer()),
)
pport_s = st.one_of(
    st.just(PolicyPort(port=80)),
    st.just(PolicyPort(port=8000, end_port=8100)),
    st.just(PolicyPort(port="http")),
    st.just(PolicyPort(protocol="udp")),
)
rule_s = st.builds(lambda peers, ports, log: Rule(peers=tuple(peers), ports=tuple(ports), log=log),
                   st.lists(peer_s, max_size=2), st.lists(pport_s, max_size=2), st.booleans())  # fmt: skip
rules_s = st.one_of(st.none(), st.lists(rule_s, min_size=1, max_size=2).map(tuple), st.just(()))


def _endpoint(src: Source, uid: int, net: str, ns: str, labels: dict[str, str], ip: int, ports: int, wl: int) -> Endpoint:
    if wl:
        labels = {**labels, LABEL_WORKLOAD: f"k8s:w{wl}"}
    ips = () if ip == 0 else (f"10.1.{ip % 3}.{ip}",) if ip < 8 else (f"10.1.0.{ip}", f"fd00::{ip}")
    specs = ((PortSpec(port=8080, name="http"),), (PortSpec(port=9090, name="http"),), ())[ports]
    return Endpoint(source=src, uid=f"u{uid}", namespace=ns, name=f"pod{uid % 3}", kind="pod", network=net, ips=ips,
                    labels=labels, ports=specs)  # fmt: skip


endpoint_s = st.builds(_endpoint, st.sampled_from([K8S, K8S, DOCKER]), st.integers(0, 4), st.sampled_from(NETS),
                       st.sampled_from(NAMESPACES), labels_s, st.integers(0, 10), st.integers(0, 2),
                       st.sampled_from([0, 0, 1, 2]))  # fmt: skip
policy_s = st.builds(lambda src, uid, ns, sel, ing, eg: Policy(source=src, uid=f"p{uid}", namespace=ns, name=f"np{uid}",
                                                               pod_selector=sel, ingress=ing, egress=eg),
                     st.sampled_from([K8S, DOCKER]), st.integers(0, 3), st.sampled_from(NAMESPACES), selector_s, rules_s,
                     rules_s)  # fmt: skip
service_s = st.builds(
    lambda src, uid, ns, name, net, n: Service(source=src, uid=f"s{uid}", namespace=ns, name=name, network=net,
                                               rules=tuple(LBRule(vip=f"172.30.0.{uid + 1}", port=80 + i,
                                                                  backends=(f"10.1.0.{i}:8080",) * (i % 2))
                                                           for i in range(n))),
    st.sampled_from([K8S, DOCKER]), st.integers(0, 2), st.sampled_from(NAMESPACES), st.sampled_from(["web", "db", "pod1"]),
    st.sampled_from(NETS), st.integers(0, 2),
)  # fmt: skip
namespace_s = st.builds(lambda src, ns, labels: Namespace(source=src, name=ns, labels=labels),
                        st.sampled_from([K8S, DOCKER]), st.sampled_from(NAMESPACES),
                        st.dictionaries(st.just("team"), st.sampled_from(["t1", "t2"]), max_size=1))  # fmt: skip
object_s = st.one_of(endpoint_s, endpoint_s, policy_s, service_s, namespace_s)

change_s = st.one_of(  # an existing endpoint (by its index in key order) changes one thing
    st.tuples(st.just("labels"), labels_s),
    st.tuples(st.just("ips"), st.integers(0, 10)),
    st.tuples(st.just("namespace"), st.sampled_from(NAMESPACES)),
    st.tuples(st.just("ports"), st.integers(0, 2)),
)
step_s = st.tuples(
    st.one_of(
        st.tuples(st.just("upsert"), object_s),
        st.tuples(st.just("upsert"), endpoint_s),
        st.tuples(st.just("upsert"), policy_s),
        st.tuples(st.just("upsert"), namespace_s),
        st.tuples(st.just("change"), st.integers(0, 20), change_s),
        st.tuples(st.just("change"), st.integers(0, 20), change_s),
        st.tuples(st.just("delete"), object_s),
        st.tuples(st.just("snapshot"), st.sampled_from([K8S, DOCKER]), st.lists(object_s, max_size=8)),
        st.tuples(st.just("allocate"), st.integers(0, 4), st.integers(1, 200)),
        st.tuples(st.just("fabric"), st.sampled_from(FABRICS)),
    ),
    st.booleans(),  # derive and check now (else the next step comes in the same batch)
)


def _network(src: Source, name: str) -> Network:
    """Subnets of their own: networks on one router must not overlap."""
    return Network(source=src, name=name, subnets=(f"10.{10 + 2 * NETS.index(name) + (src == DOCKER)}.0.0/16",))


class World:
    """A desired state, the addresses 'OVN' allocated, and the oracle's check."""

    def __init__(self) -> None:
        self.marked: set[tuple[str, str]] = set()
        self.desired = DesiredState(HUB, lambda t, k, now: self.marked.add((t, k)))
        self.alloc: dict[str, str] = {}
        for src in (K8S, DOCKER):
            for net in NETS:
                self.desired.apply(Upsert(obj=_network(src, net)))
        self.desired.set_fabric(FABRICS[0])

    def with_ips(self, ep: Endpoint) -> Endpoint:
        if ep.ips:
            return ep
        ip = self.alloc.get(lsp_name(ep))
        return msgspec.structs.replace(ep, ips=(ip,)) if ip else ep

    def step(self, step: tuple[Any, ...], check: bool = True) -> None:
        what = step[0]
        d = self.desired
        if what == "change":
            eps = sorted((ep for s in d.sources.values() for ep in s.endpoints.values()), key=lambda e: (str(e.source), e.key))
            if not eps:
                return
            ep = eps[step[1] % len(eps)]
            field, value = step[2]
            if field == "ips":
                new = _endpoint(ep.source, 0, ep.network, ep.namespace, {}, value, 0, 0).ips
            elif field == "ports":
                new = _endpoint(ep.source, 0, ep.network, ep.namespace, {}, 0, value, 0).ports
            elif field == "labels":
                new = {**value, **{k: v for k, v in ep.labels.items() if k == LABEL_WORKLOAD}}
            else:
                new = value
            d.apply(Upsert(obj=msgspec.structs.replace(ep, **{field: new})))
        elif what == "upsert":
            d.apply(Upsert(obj=step[1]))
        elif what == "delete":
            obj = step[1]
            kind = type(obj).__name__.lower()
            d.apply(Delete(source=obj.source, kind=kind, key=obj.key))
        elif what == "snapshot":
            nets = [_network(step[1], n) for n in NETS]
            objs = [o for o in step[2] if o.source == step[1]]
            ev: InputEvent = Snapshot(source=step[1], objects=(*nets, *{(type(o), o.key): o for o in objs}.values()))
            d.apply(ev)
        elif what == "allocate":  # OVN's IPAM gives a port without addresses one
            for src in (K8S, DOCKER):
                for net in NETS:
                    port = f"{src}/{net}/u{step[1]}"
                    self.alloc[port] = f"10.1.9.{step[2]}"
                    d.allocated(port)
        elif what == "fabric":
            d.set_fabric(step[1])
        if check:
            self.check()

    def check(self) -> None:
        d = self.desired
        d.derive(self.with_ips)
        assert not d.stale
        for src, state in d.sources.items():
            want = d.recomputed(src, self.with_ips)
            assert state.derived.keys() == want.keys(), src
            for tk, row in want.items():
                assert state.derived[tk] == row, (src, tk)
        for table in DERIVED:
            every = {k: r for s in d.sources.values() for (t, k), r in s.derived.items() if t == table}
            every.update({k: r for (t, k), r in d.fabric_derived.items() if t == table})
            assert d.rows[table] == every, table
        # a member tuple that knows what it replaces (Members) says it right, and the
        # index of member -> rows holding it (moved by those deltas) is the rows'
        holders: dict[tuple[str, str], set[tuple[str, str]]] = {}
        for table, rows in d.rows.items():
            kind = KINDS[table]
            if kind.members is None:
                continue
            for key, r in rows.items():
                ms = r.members
                if isinstance(ms, Members) and ms.base is not None:
                    assert not set(ms.joined) & set(ms.base) and set(ms.left) <= set(ms.base), key
                    assert sorted((set(ms.base) - set(ms.left)) | set(ms.joined)) == list(ms), key
                for m in ms:
                    holders.setdefault((kind.members.table, m), set()).add((table, key))
        assert d.holders == holders


@settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(object_s, min_size=4, max_size=10), st.lists(step_s, min_size=15, max_size=40))
def test_incremental_derivation_equals_the_whole_source_recomputation(
    first: list[Any], steps: list[tuple[tuple[Any, ...], bool]]
) -> None:
    w = World()
    w.check()
    w.step(("snapshot", K8S, first))
    w.step(("snapshot", DOCKER, first))
    for s, check in steps:
        w.step(s, check)
    w.check()


def test_the_oracle_sees_rows_at_all() -> None:
    """The property above is not vacuous: policies, balancers and DNS records are derived."""
    w = World()
    ep = _endpoint(K8S, 1, "net1", "n1", {"app": "a"}, 3, 0, 0)
    pol = Policy(source=K8S, uid="p1", namespace="n1", name="np1", pod_selector=Selector(match_labels={"app": "a"}),
                 ingress=(Rule(peers=(Peer(pod_selector=Selector()),)),))  # fmt: skip
    svc = Service(source=K8S, uid="s1", namespace="n1", name="web", network="net1",
                  rules=(LBRule(vip="172.30.0.1", port=80, backends=("10.1.0.3:8080",)),))  # fmt: skip
    for obj in (ep, pol, svc):
        w.step(("upsert", obj))
    w.check()
    tables = {t for t, _k in w.desired.sources[str(K8S)].derived}
    assert tables == {PG, AS, ACL, LB, DNS}
    # relabelled: the endpoint leaves the policy's group and the deny group, and only those change
    w.desired.derive(w.with_ips)
    w.marked.clear()
    w.step(("upsert", msgspec.structs.replace(ep, labels={"app": "b"})))
    w.check()
    assert {t for t, _k in w.marked} == {"Logical_Switch_Port", PG}


def _scenario(*steps: tuple[Any, ...]) -> World:
    w = World()
    for s in steps:
        w.step(s)
    return w


def test_cases_the_property_must_meet() -> None:
    """Spelled out (and run whatever hypothesis draws): each path of the incremental policy index."""
    a = {"app": "a"}
    web = _endpoint(K8S, 1, "net1", "n1", a, 3, 0, 0)
    db = _endpoint(K8S, 2, "net1", "n2", {"app": "b"}, 4, 0, 0)
    by_ns = Policy(source=K8S, uid="p1", namespace="n1", name="np1", pod_selector=Selector(match_labels=a),
                   ingress=(Rule(peers=(Peer(namespace_selector=Selector(match_labels={"team": "t1"})),)),))  # fmt: skip
    # a namespace's new labels move its endpoints into a namespaceSelector peer, and out again
    _scenario(("upsert", web), ("upsert", db), ("upsert", by_ns),
              ("upsert", Namespace(source=K8S, name="n2", labels={"team": "t1"})),
              ("upsert", Namespace(source=K8S, name="n2", labels={"team": "t2"})),
              ("delete", Namespace(source=K8S, name="n2")))  # fmt: skip
    # a peer's new address and a selected pod's new named port
    named_in = Policy(source=K8S, uid="p2", namespace="n1", name="np2", pod_selector=Selector(match_labels=a),
                      ingress=(Rule(peers=(Peer(pod_selector=Selector()),), ports=(PolicyPort(port="http"),)),))  # fmt: skip
    _scenario(("upsert", web), ("upsert", named_in), ("change", 0, ("ips", 5)), ("change", 0, ("ports", 1)),
              ("change", 0, ("ports", 2)), ("change", 0, ("namespace", "n2")))  # fmt: skip
    # egress to a named port of any endpoint: every endpoint's change counts
    named_eg = Policy(source=K8S, uid="p3", namespace="n1", name="np3", pod_selector=Selector(match_labels=a),
                      egress=(Rule(ports=(PolicyPort(port="http"),)),))  # fmt: skip
    _scenario(("upsert", web), ("upsert", db), ("upsert", named_eg), ("change", 0, ("ports", 1)),
              ("change", 1, ("ips", 9)), ("change", 1, ("ports", 1)), ("delete", db))  # fmt: skip
    # a yielded endpoint leaves its source's rows; it comes back when the winner goes
    winner = _endpoint(K8S, 1, "net1", "n1", a, 3, 0, 1)
    loser = _endpoint(DOCKER, 1, "net1", "n1", a, 3, 0, 1)
    pol = msgspec.structs.replace(named_in, source=DOCKER)
    _scenario(("upsert", loser), ("upsert", pol), ("upsert", winner), ("delete", winner))
    # OVN allocates an address to a selected endpoint without one
    dyn = _endpoint(K8S, 1, "net1", "n1", a, 0, 0, 0)
    _scenario(("upsert", dyn), ("upsert", named_in), ("allocate", 1, 7), ("fabric", FABRICS[1]), ("allocate", 1, 8))


# ---------------------------------------------------------------- large groups: members resolved between diffs
class _Ports:
    """A member store: port key -> uuid."""

    def __init__(self) -> None:
        self.rows: dict[str, str] = {}

    def uuid(self, key: str) -> str | None:
        return self.rows.get(key)

    def uuids(self, keys: Any) -> list[str | None]:
        return [self.rows.get(k) for k in keys]

    def key_of(self, uuid: str) -> str | None:
        return next((k for k, u in self.rows.items() if u == uuid), None)

    def source(self, key: str) -> str:
        return "k8s/a" if key < "p5" else "k8s/b"


class _View:
    def __init__(self, store: _Ports, unsynced: bool) -> None:
        from core.nb.plan import Resolved

        self.replica = type("R", (), {"stores": {"P": store}})()
        self.resolved: dict[tuple[str, str], Resolved] = {}
        self.unsynced = unsynced

    def synced(self, source: str) -> bool:
        return not (self.unsynced and source == "k8s/b")


@settings(max_examples=150, derandomize=True, deadline=None)
@given(st.booleans(), st.lists(st.tuples(st.sampled_from(["want", "port", "unport", "drift", "commit"]),
                                         st.sets(st.integers(0, 9), max_size=6)), min_size=1, max_size=25))  # fmt: skip
def test_a_large_group_diff_equals_the_whole_diff(unsynced: bool, steps: list[tuple[str, set[int]]]) -> None:
    """The diff of a large group (its members resolved between diffs: re-created ports,
    members not inserted yet, the group's column drifting) equals a whole diff."""
    import core.nb.plan as plan_mod

    store = _Ports()
    view = _View(store, unsynced)
    wanted: tuple[str, ...] = ()
    current: set[str] = set()
    serial = 0
    for what, xs in steps:
        keys = {f"p{x}" for x in xs}
        if what == "want":
            wanted = tuple(sorted(keys))
        elif what == "port":  # (re-)created: a new uuid (the old row's delete took it out of every group)
            for k in keys:
                current.discard(store.rows.get(k, ""))
                serial += 1
                store.rows[k] = f"u{serial}"
        elif what == "unport":  # deleted: it leaves every group (weak reference)
            for k in keys:
                current.discard(store.rows.pop(k, ""))
        elif what == "drift":  # someone else's mutation of the group
            current ^= {u for k, u in store.rows.items() if k in keys}
        fresh = {"P": {k for k in wanted if k not in store.rows and k.endswith(("1", "3"))}}
        whole = plan_mod._member_change(view, "P", wanted, tuple(sorted(current)), fresh)  # type: ignore[arg-type]
        plan_mod.BIG_GROUP, was = 1, plan_mod.BIG_GROUP
        try:
            large = plan_mod._member_change(view, "P", wanted, tuple(sorted(current)), fresh, ("Port_Group", "g"))  # type: ignore[arg-type]
        finally:
            plan_mod.BIG_GROUP = was
        assert large == whole, (what, keys)
        if what == "commit":  # NB applies the change
            current -= set(whole[2])
            current |= {store.rows[k] for k in whole[1] if k in store.rows}


# ---------------------------------------------------------------- groups in sync: the change alone, echoes checked
def _group_world() -> tuple[Any, Any, Any]:
    from core.nb.plan import View
    from core.nb.replica import NbReplica
    from core.nb.tables.port import PortStore

    desired = DesiredState(HUB, lambda t, k, now: None)
    desired.state(K8S).synced = True
    replica = NbReplica(HUB)
    ports = replica.stores["Logical_Switch_Port"]
    assert isinstance(ports, PortStore)
    replica.stores[PG].put("g-uuid", {"name": "g", "ports": (), "acls": (), "external_ids": {"k": "v"}})  # type: ignore[attr-defined]
    return desired, replica, View(desired, replica, HUB)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["want", "want", "plain", "port", "unport", "drift", "commit", "commit", "commit",
                                           "echo-drift", "ids"]),
                          st.sets(st.integers(0, 29), max_size=4)), min_size=1, max_size=40), st.booleans())  # fmt: skip
def test_a_group_in_sync_diffs_as_a_whole_diff_and_a_wrong_echo_is_diffed(steps: list[tuple[str, set[int]]],
                                                                          all_ports: bool) -> None:  # fmt: skip
    """The diff of a group kept in sync (``plan.InSync``: only the members its
    ``Members`` say joined or left are looked up) equals a diff without any record
    (re-created ports, ports not inserted yet, someone else's changes of the
    column, wanted members derived several times between diffs); and after a
    commit, ``plan.as_written`` says "no diff needed" only when the echoed row is
    what a whole diff finds equal: an echo that differs from what was written
    (someone else's change in it) is diffed."""
    from core.nb.kinds import DesiredRow, PlanOp
    from core.nb.plan import View, as_written, diff, inserted
    from core.nb.tables.port import PortRow

    desired, replica, view = _group_world()
    ports = replica.stores["Logical_Switch_Port"]
    groups = replica.stores[PG]
    serial = 0
    wanted: tuple[str, ...] = ()
    ids = {"k": "v"}

    def want(members: tuple[str, ...]) -> None:
        desired.rows[PG]["g"] = DesiredRow(PG, "g", str(K8S), {"name": "g", "external_ids": dict(ids)}, members=members)

    def current() -> tuple[str, ...]:
        return groups.row("g").cols["ports"]  # type: ignore[no-any-return]

    def set_current(uuids: set[str]) -> None:
        groups.row("g").cols["ports"] = tuple(sorted(uuids))

    def port(k: str) -> None:
        nonlocal serial
        serial += 1
        old = ports.rows.get(k)
        if old is not None:
            del ports.by_uuid[old.uuid]
            set_current(set(current()) - {old.uuid})  # NB takes a deleted port out of every group
        ports.rows[k] = PortRow(f"u{serial:03}", str(K8S), 0)
        ports.by_uuid[f"u{serial:03}"] = k

    for x in range(25 if all_ports else 13):
        port(f"p{x:02}")
    # the group inserted by this process (not echoed): in sync only if it holds every member it wants
    wanted = tuple(f"p{x:02}" for x in range(15))
    want(wanted)
    written = tuple(k for k in wanted if k in ports)
    set_current({ports.uuid(k) for k in written})  # type: ignore[misc]
    inserted(view, PlanOp("insert", PG, "g", {"name": "g", "external_ids": dict(ids)}, members=written))
    for x in range(13, 25):
        if f"p{x:02}" not in ports:
            port(f"p{x:02}")
    for what, xs in steps:
        keys = {f"p{x:02}" for x in xs}
        if what in ("want", "plain"):  # derived again (several times between diffs, too)
            new = tuple(sorted(keys ^ {f"p{x:02}" for x in range(15)}))
            w0 = set(wanted)
            wanted = new if what == "plain" else Members.of(new, wanted, set(new) - w0, w0 - set(new))
            want(wanted)
            continue
        if what == "port":
            for k in sorted(keys):
                port(k)
        elif what == "unport":
            for k in sorted(keys):
                old = ports.rows.pop(k, None)
                if old is not None:
                    del ports.by_uuid[old.uuid]
                    set_current(set(current()) - {old.uuid})
        elif what == "drift":  # someone else's mutation of the group
            set_current(set(current()) ^ {r.uuid for k, r in ports.rows.items() if k in keys})
        elif what == "ids":
            ids = {"k": "w" if ids["k"] == "v" else "v"}
            want(wanted)
        op = diff(view, PG, "g")
        whole = diff(View(desired, replica, HUB), PG, "g")
        assert op == whole, what
        if what in ("commit", "echo-drift") and op is not None:
            # NB applies the op and echoes it before its reply
            now = set(current())
            if op.joins or op.leaves:
                now = (now - set(op.leaves)) | {ports.uuid(k) for k in op.joins}  # type: ignore[misc]
            else:
                now = {ports.uuid(k) for k in op.members}  # type: ignore[misc]
            if what == "echo-drift":
                now ^= {r.uuid for k, r in ports.rows.items() if k in keys}
            set_current(now)
            groups.row("g").cols["external_ids"] = dict(op.columns.get("external_ids", groups.row("g").cols["external_ids"]))
            if as_written(view, op):
                assert diff(View(desired, replica, HUB), PG, "g") is None, "as_written, but a whole diff differs"


def test_an_echo_of_a_row_in_flight_waits_for_the_commit_and_is_dirty_unless_as_written() -> None:
    """NB echoes a transaction's changes before its reply: a row the transaction
    updates is held until the reply is recorded; a failed transaction (or a row not
    as written) leaves it dirty, a row as written does not need a diff."""
    from core.nb.dirty import DirtyRows
    from core.nb.replica import NbReplica

    rows = DirtyRows(DesiredState(HUB, lambda t, k, now: None), NbReplica(HUB), lambda ev: None)
    rows.watch({(PG, "a"), (PG, "b")})
    rows.mark_dirty(PG, "a")
    rows.mark_dirty(PG, "b")
    rows.mark_dirty(PG, "c")  # not in the transaction: dirty at once
    assert rows.keys[PG] == {"c"}
    rows.settle(lambda t, k: k == "a")
    assert rows.keys[PG] == {"b", "c"}
    rows.mark_dirty(PG, "a")  # after the transaction: dirty
    assert rows.keys[PG] == {"a", "b", "c"}
    rows.keys[PG].clear()
    rows.watch({(PG, "a")})
    rows.mark_dirty(PG, "a")
    rows.settle()  # the transaction failed
    assert rows.keys[PG] == {"a"}
