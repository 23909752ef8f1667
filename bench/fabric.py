"""``bench fabric``: N networks x M endpoints joined into one router.

* ``hub``  the Programmer with a fabric (one router joining every network,
           an external network with SNAT, DNS on), one Snapshot per source of
           N Networks and NxM Endpoints plus one Service per network, timed
           from ``apply`` until ``flush()`` returns.
* ``raw``  the same rows (the hub's own plan of them, built offline into one
           transaction by ``core.nb.txn.build``) as one JSON-RPC ``transact``,
           timed around the call only; ``ratio_vs_raw = raw / hub``.
* ``northd`` (``--northd``) a second NB with SB and ovn-northd: the hub writes
           the same world without the fabric, then with it, and the bench reports
           the logical-flow count and northd's time to catch up
           (``ovn-nbctl --wait=sb sync``) for each, so ``lflows_per_network``
           and ``northd_seconds_per_network`` are the fabric's cost;
           ``--policies K`` adds K hub-level policies and reports the flows per policy.

Each path runs against its own fresh NB.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import HUB_ID, emit, environment, log, nb_sandbox, r, short_tmpdir
from core.model import Endpoint, LBRule, Network, Service, Snapshot, Source
from core.model.fabric import AdminPolicy, AdminRule, ExternalSpec, Fabric, RouterSpec
from core.model.objects import Peer, PolicyPort, Selector
from core.nb import Programmer
from core.nb.tables import LS
from core.ovsdb import OvsdbClient
from hub.sandbox import OvnSandbox

SOURCE = Source("docker", "bench")


def world(n: int, m: int) -> Snapshot:
    objs: list[Any] = []
    for i in range(n):
        a, b = divmod(i, 250)
        name = f"n{i}"
        objs.append(Network(source=SOURCE, name=name, subnets=(f"10.{a}.{b}.0/24",), gateway=f"10.{a}.{b}.1"))
        for j in range(m):
            objs.append(Endpoint(source=SOURCE, uid=f"e{i}-{j}", namespace=f"ns{i % 50}", name=f"c{i}-{j}", kind="container",
                                 network=name, ips=(f"10.{a}.{b}.{j + 10}",), labels={"app": f"a{j % 5}"}))  # fmt: skip
        objs.append(Service(source=SOURCE, uid=f"s{i}", namespace=f"ns{i % 50}", name=f"svc{i}", network=name,
                            rules=(LBRule(vip=f"172.30.{a}.{b + 1}", port=80, backends=(f"10.{a}.{b}.10:80",)),)))  # fmt: skip
    return Snapshot(source=SOURCE, objects=tuple(objs))


def fabric(policies: int = 0) -> Fabric:
    ext = ExternalSpec(name="uplink", router="main", cidr="172.16.0.0/16", ip="172.16.0.10", gateway="172.16.0.1",
                       chassis=("gw-1",))  # fmt: skip
    pols = tuple(
        AdminPolicy(name=f"p{k}", priority=k, subject=Peer(pod_selector=Selector(match_labels={"app": f"a{k % 5}"})),
                    ingress=(AdminRule(action="allow", peers=(Peer(pod_selector=Selector(match_labels={"app": "a0"})),),
                                       ports=(PolicyPort(port=5000 + k),)),))
        for k in range(policies)
    )
    return Fabric(routers=(RouterSpec(name="main"),), externals=(ext,), policies=pols)


async def hub_path(remote: str, snap: Snapshot, fab: Fabric) -> dict[str, Any]:
    prog = Programmer(remote, HUB_ID)
    prog.set_fabric(fab)
    prog.expect([SOURCE])
    await prog.start()
    writer = asyncio.create_task(prog.run())
    try:
        await prog.flush(timeout=30)
        t0 = time.perf_counter()
        prog.apply(snap)
        await prog.flush(timeout=600)
        seconds = time.perf_counter() - t0
        rows = {t: len(s) for t, s in prog.replica.stores.items()}
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await prog.close()
    return {"seconds": seconds, "transactions": prog.transactions, "writes": prog.writes, "rows": rows, "failed": len(prog.failed)}


def raw_ops(snap: Snapshot, fab: Fabric) -> list[dict[str, Any]]:
    """The hub's own plan of every row, as one transaction (no replica: all inserts)."""
    from core.nb import txn  # the rooms below the front door: a bench may look inside
    from core.nb.desired import DesiredState
    from core.nb.plan import View, plan_batch
    from core.nb.replica import NbReplica

    ds = DesiredState(HUB_ID, lambda t, k, now: None)
    ds.set_fabric(fab)
    ds.apply(snap)
    ds.state(SOURCE).synced = True
    ds.derive(lambda e: e)
    view = View(ds, NbReplica(HUB_ID), HUB_ID)
    take = {t: list(rows) for t, rows in ds.rows.items()}
    take["Logical_Switch_Port"] = [*ds.ports, *ds.rows["Logical_Switch_Port"]]
    ops, _, _ = plan_batch(view, take)
    built, _ = txn.build(view, ops)
    return built


async def raw_path(remote: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
    client = OvsdbClient(remote)
    await client.connect()
    try:
        t0 = time.perf_counter()
        result = await client.transact(ops, timeout=600)
        seconds = time.perf_counter() - t0
    finally:
        await client.close()
    errors = [x for x in result if isinstance(x, dict) and "error" in x]
    return {"seconds": seconds, "ops": len(ops), "errors": errors[:3]}


def _nbctl(sb: OvnSandbox, *args: str, timeout: float = 600) -> str:
    return subprocess.run(["ovn-nbctl", f"--db={sb.nb_remote}", "-t", str(int(timeout)), *args], check=True,
                          capture_output=True, text=True, timeout=timeout + 5).stdout  # fmt: skip


def _lflows(sb: OvnSandbox) -> int:
    out = subprocess.run(["ovn-sbctl", f"--db={sb.sb_remote}", "--columns=_uuid", "--format=csv", "--no-headings",
                          "find", "Logical_Flow"], check=True, capture_output=True, text=True, timeout=120).stdout  # fmt: skip
    return len(out.split())


async def northd_path(tmp: Path, snap: Snapshot, n: int, policies: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, fab in (("plain", Fabric()), ("fabric", fabric()), *((("policies", fabric(policies)),) if policies else ())):
        sb = OvnSandbox(tmp / f"northd-{label}", northd=True)
        sb.start()
        try:
            res = await hub_path(sb.nb_remote, snap, fab)
            t0 = time.perf_counter()
            _nbctl(sb, "--wait=sb", "sync")
            out[label] = {"hub_seconds": r(res["seconds"]), "northd_catch_up_seconds": r(time.perf_counter() - t0),
                          "lflows": _lflows(sb)}  # fmt: skip
        finally:
            sb.stop()
    plain, fab_ = out["plain"], out["fabric"]
    out["lflows_per_network"] = round((fab_["lflows"] - plain["lflows"]) / n, 1)
    out["northd_seconds_per_network"] = round((fab_["northd_catch_up_seconds"] - plain["northd_catch_up_seconds"]) / n, 5)
    if policies:
        out["lflows_per_policy"] = round((out["policies"]["lflows"] - fab_["lflows"]) / policies, 1)
    return out


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--networks", type=int, default=1000)
    ap.add_argument("--endpoints", type=int, default=10, help="per network")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--northd", action="store_true", help="also measure ovn-northd's flows and time")
    ap.add_argument("--policies", type=int, default=0, help="hub-level policies for the northd measurement")


def main(args: argparse.Namespace) -> int:
    return asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> int:
    n, m = args.networks, args.endpoints
    snap = world(n, m)
    fab = fabric()
    ops = raw_ops(snap, fab)
    hub_runs: list[dict[str, Any]] = []
    raw_runs: list[dict[str, Any]] = []
    with short_tmpdir("fab") as tmp:
        for i in range(args.repeat):
            log(f"fabric {n}x{m}: hub run {i + 1}")
            with nb_sandbox(tmp / f"hub{i}") as sb:
                hub_runs.append(await hub_path(sb.nb_remote, snap, fab))
            log(f"fabric {n}x{m}: raw run {i + 1} ({len(ops)} ops)")
            with nb_sandbox(tmp / f"raw{i}") as sb:
                raw_runs.append(await raw_path(sb.nb_remote, ops))
        northd = await northd_path(tmp, snap, n, args.policies) if args.northd else None
    hub_s = sorted(x["seconds"] for x in hub_runs)[len(hub_runs) // 2]
    raw_s = sorted(x["seconds"] for x in raw_runs)[len(raw_runs) // 2]
    last = hub_runs[-1]
    emit({
        "bench": "fabric",
        "networks": n,
        "endpoints_per_network": m,
        "hub_seconds": r(hub_s),
        "raw_seconds": r(raw_s),
        "ratio_vs_raw": round(raw_s / hub_s, 3),
        "hub_samples": [r(x["seconds"]) for x in hub_runs],
        "raw_samples": [r(x["seconds"]) for x in raw_runs],
        "transactions": last["transactions"],
        "rows": {t: c for t, c in last["rows"].items() if c},
        "failed": last["failed"],
        "raw_errors": raw_runs[-1]["errors"],
        "switches": last["rows"].get(LS, 0),
        "northd": northd,
        "environment": environment(),
    })  # fmt: skip
    return 0
