"""hubd with the Mesos adapter, into a real NB: the fake master (testkit/mesos_fake.py)
→ a ``hubd`` subprocess → ovsdb-server.  Tasks of two frameworks land on their
networks' switches with their addresses; a finished task's port goes; a master
that goes silent is re-subscribed, and a task killed meanwhile is collected; the
orchestrator faults (a cut record, no resume, duplicates, a black hole) end with NB
exactly the master's tasks."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.sandbox import OvnSandbox
from testkit.hubd import Hubd
from testkit.mesos_fake import FakeMesosMaster
from testkit.nb import nb_rows, ovs_map, ovs_set
from testkit.proxy import BreakableProxy
from testkit.wait import wait_until

WAIT = 30.0


@pytest.fixture
async def master() -> AsyncIterator[FakeMesosMaster]:
    m = FakeMesosMaster(heartbeat=0.3)
    await m.start()
    try:
        yield m
    finally:
        await m.stop()


def config(ovn: OvnSandbox, workdir: Path, master: FakeMesosMaster) -> str:
    return (
        f'[hub]\nid = "mesos-it"\nstate_dir = "{workdir}"\n[ovn]\nnb = "{ovn.nb_remote}"\n'
        f'[api]\nlisten = "unix:{workdir}/api.sock"\n'
        f'[adapters.mesos]\ntype = "mesos"\ncluster = "test"\nmasters = ["http://127.0.0.1:9", "{master.url}"]\n'
        "backoff_max = 0.5\n"
        '[adapters.mesos.networks.blue]\nsubnet = "10.1.0.0/24"\ngateway = "10.1.0.1"\n'
        '[adapters.mesos.networks.red]\nsubnet = "10.2.0.0/24"\n'
    )


async def rows(ovn: OvnSandbox, table: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in await asyncio.to_thread(nb_rows, ovn, table)}


async def test_tasks_of_two_frameworks_on_their_networks_and_silence_converges(
    ovn: OvnSandbox, tmpdir_short: Path, hubd_factory: Any, master: FakeMesosMaster
) -> None:
    master.add_agent("a1", "node-1")
    master.add_framework("fw-web", "web")
    master.add_framework("fw-db", "db")
    c = {n: str(uuid.uuid4()) for n in ("web", "db", "cache")}
    master.launch("fw-web", "web-1", network="blue", ip="10.1.0.5", container_id=c["web"])
    db = master.launch("fw-db", "db-1", network="red", ip="10.2.0.7", container_id=c["db"])
    h: Hubd = hubd_factory(config(ovn, tmpdir_short, master))
    await asyncio.to_thread(h.wait_ready, WAIT)
    web_port, db_port = f"mesos/test/blue/{c['web']}", f"mesos/test/red/{c['db']}"

    async def ports_are(*names: str) -> bool:
        return set(await rows(ovn, "Logical_Switch_Port")) == set(names)

    await wait_until(lambda: ports_are(web_port, db_port), WAIT, "both tasks' ports")
    lsps = await rows(ovn, "Logical_Switch_Port")
    switches = await rows(ovn, "Logical_Switch")
    assert ovs_set(lsps[web_port]["addresses"]) == ["0a:58:0a:01:00:05 10.1.0.5"]
    assert ovs_map(lsps[db_port]["options"]) == {"requested-chassis": "node-1"}
    assert ovs_map(lsps[web_port]["external_ids"])["ovn-hub:namespace"] == "web"
    assert ovs_map(switches["mesos/test/blue"]["other_config"])["subnet"] == "10.1.0.0/24"
    members = {s: {lsps_name for lsps_name, r in lsps.items() if r["_uuid"] in ovs_set(switches[s]["ports"])}
               for s in ("mesos/test/blue", "mesos/test/red")}  # fmt: skip
    assert members == {"mesos/test/blue": {web_port}, "mesos/test/red": {db_port}}

    master.finish(db)
    await wait_until(lambda: ports_are(web_port), WAIT, "the finished task's port deleted")

    # the master goes silent; a task is killed and another starts meanwhile
    master.silent = True
    master.kill(next(t for t, v in master.tasks.items() if v["name"] == "web-1"))
    master.launch("fw-db", "cache-1", network="red", ip="10.2.0.9", container_id=c["cache"])
    await wait_until(lambda: ports_are(f"mesos/test/red/{c['cache']}"), WAIT, "convergence after the re-subscription")
    master.silent = False
    assert "x the heartbeat interval); reconnecting" in h.logtext()
    status = json.loads((await asyncio.to_thread(h.ctl, "status", "--json")).stdout)
    (adapter,) = status["adapters"]
    assert adapter["restarts"] == 0 and status["ready"], status


async def test_orchestrator_faults_end_with_nb_equal_to_the_master(
    ovn: OvnSandbox, tmpdir_short: Path, hubd_factory: Any, master: FakeMesosMaster
) -> None:
    """Behind a proxy: a record cut in half, streams ended (no resume), events
    twice and swapped, a master that accepts and never answers - each while tasks
    come and go (seeded); after each, NB holds exactly the master's running tasks
    and ``hubctl plan`` has nothing to write; the adapter never needed a restart."""
    rng = random.Random(16)
    master.add_agent("a1", "node-1")
    master.add_framework("fw", "web")
    proxy = BreakableProxy(master.address)
    await proxy.start()
    live: dict[str, str] = {}  # task id → container id
    n = 0

    def launch() -> None:
        nonlocal n
        n += 1
        cid = str(uuid.uuid4())
        live[master.launch("fw", f"t-{n}", network="blue", ip=f"10.1.0.{10 + n}", container_id=cid)] = cid

    def churn() -> None:
        for _ in range(rng.randint(1, 3)):
            launch()
        for tid in rng.sample(sorted(live), k=min(len(live) - 1, rng.randint(1, 2))):
            master.kill(tid)
            del live[tid]

    for _ in range(4):
        launch()
    cfg = config(ovn, tmpdir_short, master).replace(master.url, f"http://{proxy.address}")
    cfg = cfg.replace("backoff_max = 0.5\n", "backoff_max = 0.5\nconnect_timeout = 0.5\n")
    h: Hubd = hubd_factory(cfg)
    try:
        await asyncio.to_thread(h.wait_ready, WAIT)

        async def nb_is_the_master() -> bool:
            want = {f"mesos/test/blue/{cid}" for cid in live.values()}
            return set(await rows(ovn, "Logical_Switch_Port")) == want

        async def converged(what: str) -> None:
            await wait_until(nb_is_the_master, WAIT, f"NB equal to the master after {what}")
            plan = await asyncio.to_thread(h.ctl, "plan")
            assert "nothing to write" in plan.stdout, plan.stdout

        await converged("the first list")
        # a stream cut in the middle of a record
        proxy.cut_mid_record()
        churn()
        assert await proxy.wait_cut(WAIT)
        proxy.heal()
        await converged("a cut record")
        # no resume: every subscription ends, the next SUBSCRIBED is the only truth
        master.drop_streams()
        churn()
        await converged("dropped streams")
        # duplicated and reordered events
        master.duplicate_and_reorder()
        churn()
        churn()
        master.stop_duplicating()
        assert master.duplicated > 0
        await converged("duplicated and swapped events")
        # accepted, never answered: the subscription falls silent, re-subscribing lands in the hole too
        swallowed = proxy.swallowed
        proxy.black_hole()
        churn()
        await wait_until(lambda: proxy.swallowed > swallowed, WAIT, "hubd re-subscribing into the black hole")
        proxy.heal()
        await converged("a master that never answered")
        assert "reconnecting" in h.logtext()
        status = json.loads((await asyncio.to_thread(h.ctl, "status", "--json")).stdout)
        (adapter,) = status["adapters"]
        assert adapter["restarts"] == 0 and status["ready"], status
    finally:
        await proxy.stop()
