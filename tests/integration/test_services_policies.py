"""Services, namespaces and policies: the NB rows the programmer writes for them
against a real ovsdb-server (no northd here: tests/system/test_ovn_trace.py
proves the behaviour of these rows).  The model and the pure derivation are in
tests/unit/test_services_policies.py, whose object builders this module uses."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from core.model import (
    Delete,
    Endpoint,
    LBRule,
    Namespace,
    Network,
    Peer,
    PolicyPort,
    Programmed,
    Rejected,
    Rule,
    Selector,
    Upsert,
)
from core.model.fabric import DEFAULT_HAIRPIN_IP
from core.names import ACL_KEY, NAME, OWNER, PARENT, SOURCE, UID, lsp_name
from core.nb import Programmer
from core.nb.tables.policy import ALLOW_PRIORITY, DENY_PRIORITY, deny_pg_name, pg_name
from hub.sandbox import OvnSandbox
from testkit.nb import nb_rows, ovs_map, ovs_set
from testkit.wait import wait_until
from tests.unit.test_services_policies import OTHER, SRC, pod, snap, svc, web_policy


# ---------------------------------------------------------------- NB rows
class Published:
    def __init__(self) -> None:
        self.events: list[object] = []

    async def __call__(self, ev: object) -> None:
        self.events.append(ev)


@pytest.fixture
async def make_prog(ovn: OvnSandbox) -> AsyncIterator[Callable[..., Awaitable[Programmer]]]:
    made: list[tuple[Programmer, asyncio.Task[None]]] = []

    async def make(hub_id: str = "hub1", **kw: Any) -> Programmer:
        p = Programmer(ovn.nb_remote, hub_id, **kw)
        await p.start()
        made.append((p, asyncio.create_task(p.run())))
        return p

    make.made = made  # type: ignore[attr-defined]

    try:
        yield make
    finally:
        for p, t in made:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
            await p.close()


async def stop(make_prog: Any, p: Programmer) -> None:
    """Stop one programmer (a hub restart): its writer must not reconnect."""
    for q, t in make_prog.made:
        if q is p:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
    await p.close()


def rows(ovn: OvnSandbox, table: str) -> dict[str, dict[str, Any]]:
    out = {}
    for r in nb_rows(ovn, table):
        key = ovs_map(r["external_ids"]).get(ACL_KEY) if table == "ACL" else r["name"]
        out[key or r["_uuid"][1]] = r
    return out


def uuids(value: Any) -> set[str]:
    return {u[1] for u in ovs_set(value)} if value != ["set", []] else set()


def switch_lbs(ovn: OvnSandbox) -> dict[str, set[str]]:
    lbs = {r["_uuid"][1]: r["name"] for r in nb_rows(ovn, "Load_Balancer")}
    return {r["name"]: {lbs[u] for u in uuids(r["load_balancer"])} for r in nb_rows(ovn, "Logical_Switch")}


class Spy:
    """Records the programmer's transactions."""

    def __init__(self, prog: Programmer) -> None:
        assert prog._client is not None
        self.txns: list[list[dict[str, Any]]] = []
        client = prog._client
        real = client.transact

        async def transact(ops: list[dict[str, Any]], timeout: float | None = 300.0) -> list[Any]:
            self.txns.append(ops)
            return await real(ops, timeout)

        client.transact = transact  # type: ignore[method-assign]


async def test_load_balancers_on_the_right_switch(ovn: OvnSandbox, make_prog: Any) -> None:
    published = Published()
    p = await make_prog(publish=published)
    p.apply(snap(pod(1), pod(2), pod(3), svc(affinity_timeout=100000)))
    p.apply(snap(pod(9, src=OTHER), src=OTHER))
    await p.flush(10)
    lbs = rows(ovn, "Load_Balancer")
    tcp, udp = lbs["k8s/prod/svc/default/svc-s1/s1/tcp"], lbs["k8s/prod/svc/default/svc-s1/s1/udp"]
    assert ovs_map(tcp["vips"]) == {"10.96.0.10:80": "10.0.0.1:8080,10.0.0.2:8080", "[fd00::10]:80": "[fd00::2]:8080"}
    assert tcp["protocol"] == "tcp" and udp["protocol"] == "udp"
    assert ovs_map(udp["vips"]) == {"10.96.0.10:53": "10.0.0.3:53"}
    assert ovs_map(tcp["options"]) == {"affinity_timeout": "65535"}  # clamped to OVN's maximum
    ids = ovs_map(tcp["external_ids"])
    assert ids[OWNER] == "hub1" and ids[SOURCE] == "k8s/prod" and ids[UID] == "s1" and ids[NAME] == "svc-s1"
    assert switch_lbs(ovn) == {"k8s/prod/pods": set(lbs), "k8s/stage/pods": set()}
    await wait_until(lambda: any(isinstance(e, Programmed) and e.kind == "service" and e.key == "s1" for e in published.events), 5)
    # replay, duplicates and a restarted programmer write nothing
    writes = p.writes
    p.apply(snap(pod(1), pod(2), pod(3), svc(affinity_timeout=100000)))
    p.apply(Upsert(obj=svc(affinity_timeout=100000)))
    await p.flush(10)
    assert p.writes == writes and p.plan() == []
    q = await make_prog()
    q.apply(snap(pod(1), pod(2), pod(3), svc(affinity_timeout=100000)))
    await q.flush(10)
    assert q.writes == 0 and q.plan() == []


async def test_service_updates_move_rows(ovn: OvnSandbox, make_prog: Any) -> None:
    p = await make_prog()
    p.apply(snap(pod(1), pod(2), pod(3, net="blue"), svc()))
    await p.flush(10)
    before = {n: r["_uuid"][1] for n, r in rows(ovn, "Load_Balancer").items()}
    # backends change: updated in place
    p.apply(Upsert(obj=svc(rules=(LBRule(vip="10.96.0.10", port=80, backends=("10.0.0.9:8080",)),
                                  LBRule(protocol="udp", vip="10.96.0.10", port=53, backends=("10.0.0.3:53",))))))
    await p.flush(10)
    lbs = rows(ovn, "Load_Balancer")
    assert {n: r["_uuid"][1] for n, r in lbs.items()} == before
    assert ovs_map(lbs["k8s/prod/svc/default/svc-s1/s1/tcp"]["vips"]) == {"10.96.0.10:80": "10.0.0.9:8080"}
    # the service moves to another network: its balancers leave the old switch
    p.apply(Upsert(obj=svc(net="blue", rules=(LBRule(vip="10.96.0.10", port=80, backends=("10.0.0.9:8080",)),))))
    await p.flush(10)
    assert switch_lbs(ovn) == {"k8s/prod/pods": set(), "k8s/prod/blue": {"k8s/prod/svc/default/svc-s1/s1/tcp"}}
    assert p.plan() == []
    # a new service on a network with no endpoint creates that network's switch
    p.apply(Upsert(obj=svc("s2", net="green")))
    await p.flush(10)
    assert switch_lbs(ovn)["k8s/prod/green"] == {"k8s/prod/svc/default/svc-s2/s2/tcp", "k8s/prod/svc/default/svc-s2/s2/udp"}
    # deletes
    p.apply(Delete(source=SRC, kind="service", key="s1"))
    p.apply(Delete(source=SRC, kind="service", key="s2"))
    await p.flush(10)
    assert rows(ovn, "Load_Balancer") == {}
    assert set(switch_lbs(ovn)) == {"k8s/prod/pods", "k8s/prod/blue"}  # green had only the service


async def test_policy_rows_follow_endpoints_and_namespaces(ovn: OvnSandbox, make_prog: Any) -> None:
    p = await make_prog()
    egress = Rule(peers=(Peer(namespace_selector=Selector(match_labels={"team": "a"})),), ports=(PolicyPort(protocol="udp", port=53),))
    pol = web_policy(egress=(egress,))
    objs = [pod(1, app="web"), pod(2, app="web"), pod(3, role="client"), pod(4, "ops", role="client"),
            Namespace(source=SRC, name="default", labels={"team": "a"}), Namespace(source=SRC, name="ops"), pol]
    p.apply(snap(*objs))
    await p.flush(10)
    lsp_uuid = {r["name"]: r["_uuid"][1] for r in nb_rows(ovn, "Logical_Switch_Port")}
    pgs = rows(ovn, "Port_Group")
    pg, deny_in, deny_eg = pg_name(SRC, "np1"), deny_pg_name(SRC, "in"), deny_pg_name(SRC, "eg")
    assert set(pgs) == {pg, deny_in, deny_eg}
    webs = {lsp_uuid[lsp_name(pod(1, app="web"))], lsp_uuid[lsp_name(pod(2, app="web"))]}
    assert uuids(pgs[pg]["ports"]) == webs == uuids(pgs[deny_in]["ports"]) == uuids(pgs[deny_eg]["ports"])
    sets = rows(ovn, "Address_Set")
    assert ovs_set(sets[f"{pg}_in0_v4"]["addresses"]) == ["10.0.0.3"]  # client of the policy's namespace only
    assert set(ovs_set(sets[f"{pg}_eg0_v4"]["addresses"])) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}  # team=a
    acls = rows(ovn, "ACL")
    by_match = {r["match"]: r for r in acls.values()}
    allow_in = by_match[f"outport == @{pg} && ip && (ip4.src == ${pg}_in0_v4 || ip6.src == ${pg}_in0_v6) && (tcp.dst == 80)"]
    assert (allow_in["priority"], allow_in["direction"], allow_in["action"]) == (ALLOW_PRIORITY, "to-lport", "allow-related")
    allow_eg = by_match[f"inport == @{pg} && ip && (ip4.dst == ${pg}_eg0_v4 || ip6.dst == ${pg}_eg0_v6) && (udp.dst == 53)"]
    assert (allow_eg["direction"], ovs_map(allow_eg["options"])) == ("from-lport", {"apply-after-lb": "true"})
    assert by_match[f"outport == @{deny_in} && ip"]["action"] == "drop"
    assert by_match[f"inport == @{deny_eg} && ip"]["priority"] == DENY_PRIORITY
    hairpin = by_match[f"outport == @{deny_in} && ip4.src == {DEFAULT_HAIRPIN_IP}"]  # a pod reaching itself via a Service
    assert (hairpin["priority"], hairpin["direction"], hairpin["action"]) == (ALLOW_PRIORITY, "to-lport", "allow-related")
    assert len(acls) == 5
    for table in ("Port_Group", "Address_Set", "ACL"):
        for r in nb_rows(ovn, table):
            ids = ovs_map(r["external_ids"])
            assert ids[OWNER] == "hub1" and ids[SOURCE] == "k8s/prod", (table, ids)
    acl_uuids = {r["_uuid"][1] for r in acls.values()}
    assert uuids(pgs[pg]["acls"]) | uuids(pgs[deny_in]["acls"]) | uuids(pgs[deny_eg]["acls"]) == acl_uuids
    assert all(ovs_map(r["external_ids"])[PARENT] in pgs for r in acls.values())
    # labels and namespaces change: sets and groups follow, ACLs stay
    p.apply(Upsert(obj=pod(2, app="api")))
    p.apply(Upsert(obj=pod(5, role="client")))
    p.apply(Upsert(obj=Namespace(source=SRC, name="ops", labels={"team": "a"})))
    await p.flush(10)
    pgs = rows(ovn, "Port_Group")
    assert uuids(pgs[pg]["ports"]) == {lsp_uuid[lsp_name(pod(1))]}
    sets = rows(ovn, "Address_Set")
    assert set(ovs_set(sets[f"{pg}_in0_v4"]["addresses"])) == {"10.0.0.3", "10.0.0.5"}
    assert set(ovs_set(sets[f"{pg}_eg0_v4"]["addresses"])) == {f"10.0.0.{i}" for i in range(1, 6)}
    assert {r["_uuid"][1] for r in rows(ovn, "ACL").values()} == acl_uuids
    assert p.plan() == []
    # replaying the same state, and a restarted hub, write nothing
    now = [pod(1, app="web"), pod(2, app="api"), pod(3, role="client"), pod(4, "ops", role="client"), pod(5, role="client"),
           Namespace(source=SRC, name="default", labels={"team": "a"}), Namespace(source=SRC, name="ops", labels={"team": "a"}), pol]
    writes = p.writes
    p.apply(snap(*now))
    await p.flush(10)
    assert p.writes == writes
    await stop(make_prog, p)
    q = await make_prog()
    q.apply(snap(*now))
    await q.flush(10)
    assert q.writes == 0 and q.plan() == []


async def test_new_pod_joins_groups_in_the_transaction_that_creates_its_port(ovn: OvnSandbox, make_prog: Any) -> None:
    p = await make_prog()
    p.apply(snap(pod(1, app="web"), web_policy()))
    await p.flush(10)
    spy = Spy(p)
    p.apply(Upsert(obj=pod(7, app="web")))
    await p.flush(10)
    assert len(spy.txns) == 1
    txn = spy.txns[0]
    ins = [op for op in txn if op["op"] == "insert" and op["table"] == "Logical_Switch_Port"]
    pg_updates = [op for op in txn if op["op"] == "update" and op["table"] == "Port_Group"]
    assert len(ins) == 1 and len(pg_updates) == 2  # the policy's group and the default-deny group
    assert all(["named-uuid", ins[0]["uuid-name"]] in op["row"]["ports"][1] for op in pg_updates)
    assert all(any(c[0] == "external_ids" and c[1] == "includes" for c in op["where"]) for op in pg_updates)
    p7 = {r["name"]: r["_uuid"][1] for r in nb_rows(ovn, "Logical_Switch_Port")}[lsp_name(pod(7))]
    assert p7 in uuids(rows(ovn, "Port_Group")[deny_pg_name(SRC, "in")]["ports"])


async def test_deletes_referrers_first_and_gc_after_snapshot(ovn: OvnSandbox, make_prog: Any) -> None:
    p = await make_prog()
    objs = [pod(1, app="web"), pod(2, role="client"), web_policy(), svc()]
    p.apply(snap(*objs))
    await p.flush(10)
    counts = {t: len(nb_rows(ovn, t)) for t in ("Load_Balancer", "Port_Group", "Address_Set", "ACL")}
    assert counts == {"Load_Balancer": 2, "Port_Group": 2, "Address_Set": 2, "ACL": 3}  # allow, deny, hairpin
    await stop(make_prog, p)
    # restart: deltas without a snapshot never collect anything
    q = await make_prog()
    q.apply(Upsert(obj=pod(3)))
    await q.flush(10)
    assert {t: len(nb_rows(ovn, t)) for t in counts} == counts, "GC ran before the source's snapshot"
    spy = Spy(q)
    q.apply(snap(pod(1, app="web"), pod(2, role="client"), pod(3)))
    await q.flush(10)
    assert {t: len(nb_rows(ovn, t)) for t in counts} == dict.fromkeys(counts, 0)
    ops = [op for txn in spy.txns for op in txn]
    order = [(op["op"], op["table"]) for op in ops if op["op"] in ("delete", "mutate")]
    first = {k: order.index(k) for k in set(order)}
    assert first[("delete", "ACL")] < first[("delete", "Port_Group")]
    assert first[("delete", "ACL")] < first[("delete", "Address_Set")]
    assert first[("mutate", "Port_Group")] < first[("delete", "ACL")]  # unhooked from its group first
    assert all(any(c[0] == "external_ids" for c in op["where"]) for op in ops if op["op"] in ("delete", "update", "mutate") and op["table"] != "Logical_Switch")
    assert switch_lbs(ovn) == {"k8s/prod/pods": set()}


async def test_foreign_rows_untouched_and_name_conflicts_rejected(ovn: OvnSandbox, make_prog: Any) -> None:
    deny = deny_pg_name(SRC, "in")
    ovn.nbctl("ls-add", "foreign", "--", "lsp-add", "foreign", "f1")
    ovn.nbctl("pg-add", "foreign_pg", "f1")
    ovn.nbctl("--type=port-group", "acl-add", "foreign_pg", "to-lport", "1001", "outport == @foreign_pg && ip", "drop")
    ovn.nbctl("create", "Address_Set", "name=foreign_as", 'addresses="10.9.9.9"')
    ovn.nbctl("lb-add", "foreign_lb", "10.96.9.9:80", "10.9.9.9:80", "tcp")
    ovn.nbctl("ls-lb-add", "foreign", "foreign_lb")
    ovn.nbctl("pg-add", deny)  # someone took the name the hub wants
    snapshot = {t: json.loads(ovn.nbctl("--format=json", "list", t)) for t in ("Port_Group", "Address_Set", "ACL", "Load_Balancer")}
    published = Published()
    p = await make_prog(publish=published, retry_interval=3600)
    p.apply(snap(pod(1, app="web"), pod(2, role="client"), web_policy(), svc()))
    await p.flush(10)
    assert f"Port_Group:{deny}" in p.failed
    await wait_until(lambda: any(isinstance(e, Rejected) and e.ref == f"Port_Group:{deny}" for e in published.events), 5)
    # everything else committed: the policy's group, its allow ACL, address sets, balancers
    assert pg_name(SRC, "np1") in rows(ovn, "Port_Group") and len(rows(ovn, "Load_Balancer")) == 3
    assert len([r for r in nb_rows(ovn, "ACL") if ovs_map(r["external_ids"]).get(OWNER) == "hub1"]) == 1
    # our balancer updates and GC never touch the foreign balancer on the foreign switch
    p.apply(snap(pod(1), pod(2)))
    await p.flush(10)
    after = {t: json.loads(ovn.nbctl("--format=json", "list", t)) for t in snapshot}
    assert after == snapshot
    assert switch_lbs(ovn)["foreign"] == {"foreign_lb"}


async def test_drift_is_repaired(ovn: OvnSandbox, make_prog: Any) -> None:
    p = await make_prog()
    p.apply(snap(pod(1, app="web"), pod(2, role="client"), web_policy(), svc()))
    await p.flush(10)
    pg = pg_name(SRC, "np1")
    acl_before = {r["match"] for r in nb_rows(ovn, "ACL")}
    ovn.nbctl("set", "Address_Set", f"{pg}_in0_v4", 'addresses="10.66.66.66"')
    ovn.nbctl("clear", "Port_Group", pg, "acls")  # drops the policy's allow ACL (non-root)
    ovn.nbctl("ls-lb-del", "k8s/prod/pods")
    ovn.nbctl("set", "Load_Balancer", "k8s/prod/svc/default/svc-s1/s1/udp", "name=renamed")
    await wait_until(lambda: ovs_set(rows(ovn, "Address_Set")[f"{pg}_in0_v4"]["addresses"]) == ["10.0.0.2"], 10, "set repaired")
    await wait_until(lambda: {r["match"] for r in nb_rows(ovn, "ACL")} == acl_before, 10, "ACL re-created")
    await wait_until(lambda: len(switch_lbs(ovn)["k8s/prod/pods"]) == 2, 10, "balancers re-attached")
    await wait_until(lambda: "renamed" not in rows(ovn, "Load_Balancer"), 10, "balancer renamed back")
    await p.flush(10)
    assert p.plan() == []
    # the whole switch goes (and with it the ports, out of every port group)
    ovn.nbctl("ls-del", "k8s/prod/pods")
    await wait_until(lambda: len(switch_lbs(ovn).get("k8s/prod/pods", ())) == 2, 10, "switch re-created with its balancers")
    await p.flush(10)
    ports = {r["_uuid"][1] for r in nb_rows(ovn, "Logical_Switch_Port")}
    assert len(ports) == 2 and uuids(rows(ovn, "Port_Group")[deny_pg_name(SRC, "in")]["ports"]) <= ports
    assert len(uuids(rows(ovn, "Port_Group")[pg]["ports"])) == 1
    assert p.plan() == []


async def test_dynamic_addresses_lock_the_port_and_feed_policy_peers(tmpdir_short: Any) -> None:
    """A port left to OVN's IPAM: once northd allocated, the hub writes the
    allocation as port_security, and a policy naming that endpoint as a peer
    gets its IP in the peer address set; a restarted hub writes nothing."""
    sb = OvnSandbox(tmpdir_short / "ovn-northd", northd=True)
    sb.start()
    progs: list[tuple[Programmer, asyncio.Task[None]]] = []

    async def close(p: Programmer, t: asyncio.Task[None]) -> None:
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await t
        await p.close()

    try:
        client = Endpoint(source=SRC, uid="c1", namespace="default", name="c1", kind="pod", network="pods",
                          labels={"role": "client"})  # fmt: skip
        web = pod(50, app="web")
        objs = (Network(source=SRC, name="pods", subnets=("10.0.0.0/24",)), client, web, web_policy())

        async def run_prog() -> Programmer:
            p = Programmer(sb.nb_remote, "hub1")
            await p.start()
            progs.append((p, asyncio.create_task(p.run())))
            p.apply(snap(*objs))
            await p.flush(20)
            return p

        await run_prog()
        port = lsp_name(client)

        def locked() -> tuple[str, list[Any]] | None:
            row = next((r for r in nb_rows(sb, "Logical_Switch_Port") if r["name"] == port), None)
            if row is None or not isinstance(row["dynamic_addresses"], str):
                return None
            return row["dynamic_addresses"], ovs_set(row["port_security"])

        await wait_until(lambda: (x := locked()) is not None and x[1] == [x[0]], 20, "port_security = dynamic_addresses")
        dyn = locked()
        assert dyn is not None
        client_ip = dyn[0].split()[1]
        assert client_ip.startswith("10.0.0.")

        def peer_ips() -> set[str]:
            return {a for r in nb_rows(sb, "Address_Set") for a in ovs_set(r["addresses"])}

        await wait_until(lambda: client_ip in peer_ips(), 20, "the client's OVN-allocated IP in the peer address set")

        # northd reallocates when the subnet changes (an update2 carries the new value of this
        # one-value column): the lock and the address set follow
        objs = (Network(source=SRC, name="pods", subnets=("10.0.1.0/24",)), client, web, web_policy())
        progs[-1][0].apply(snap(*objs))
        await wait_until(
            lambda: (x := locked()) is not None and x[0].split()[1].startswith("10.0.1.") and x[1] == [x[0]],
            20, "port_security follows the reallocation",
        )  # fmt: skip
        dyn = locked()
        assert dyn is not None
        client_ip = dyn[0].split()[1]
        await wait_until(lambda: client_ip in peer_ips(), 20, "the reallocated IP in the peer address set")

        # a restarted hub finds everything equal: no write
        await close(*progs.pop())
        again = await run_prog()
        # whatever northd would still change is done once it synced; then any (wrong) rewrite is flushed
        await asyncio.to_thread(sb.nbctl, "--wait=sb", "--timeout=20", "sync")
        await again.flush(20)
        assert again.writes == 0, "the lock and the address set must survive a restart without a write"
        assert locked() == dyn
    finally:
        for p, t in progs:
            await close(p, t)
        sb.stop()
