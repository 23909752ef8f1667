"""Faults of a production NB and of an HA pair: RAFT leaders killed and moved, the
active hubd killed under a standby, the MQTT broker away for 30 s.

hubd subprocesses against a real 3-member NB cluster (``testkit.nbcluster``) or
one NB server, a real mosquitto.  Every case ends with NB exactly equal to the
desired state (the writer's plan empty), no twin rows and the operator's 1,000
rows byte-identical.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.sandbox import OvnSandbox
from testkit.faults import Report, add_foreign, foreign, hubd_config, twins, world
from testkit.hubd import Hubd
from testkit.mosquitto import Mosquitto
from testkit.nbcluster import NbCluster
from testkit.wait import sync_wait_until
from tests.system.faults.conftest import SCALE, SEED

HUB = "faults"
N = int(os.environ.get("OVN_HUB_FAULT_N", "20000")) // 4


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("hubd", timeout=5)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(self.path)


def api(h: Hubd, path: str) -> Any:
    """GET one admin API path over hubd's unix socket (cheaper than a hubctl process per poll)."""
    conn = _Unix(h.api.removeprefix("unix:"))
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def role(h: Hubd) -> str:
    try:
        return str(api(h, "/readyz").get("role", ""))
    except OSError:
        return ""


def start(workdir: Path, nb: str, data: Path, **kw: Any) -> Hubd:
    workdir.mkdir(exist_ok=True)
    h = Hubd(workdir, hubd_config(workdir, HUB, nb, {"w": data}, **kw))
    h.start()
    return h


def settled(h: Hubd, db: str, before: list[str], timeout: float = 240, cluster: NbCluster | None = None) -> float:
    """The writer's plan is empty, no twins, the operator's rows untouched; returns when.
    On a timeout the error carries what explains it: the plan, hubd's status and the
    end of its log, and the cluster members' roles."""
    try:
        sync_wait_until(lambda: "nothing to write" in h.ctl("plan").stdout, timeout, "an empty plan", interval=0.1)
    except AssertionError as exc:
        plan = h.ctl("plan", check=False)
        status = h.ctl("status", check=False)
        roles = [cluster.role(i) for i in range(cluster.n)] if cluster is not None else []
        log = "\n".join(h.logtext().splitlines()[-60:])
        raise AssertionError(f"{exc}\nmembers' roles: {roles}\nhubctl plan: {plan.stdout[-3000:]}{plan.stderr[-500:]}"
                             f"\nhubctl status: {status.stdout[-2000:]}{status.stderr[-500:]}\nhubd log (end):\n{log}") from exc  # fmt: skip
    t = time.monotonic()
    assert twins(db, HUB) == {}
    assert foreign(db) == before
    return t


@pytest.fixture
def cluster(tmpdir_short: Path) -> Iterator[NbCluster]:
    c = NbCluster(tmpdir_short / "raft")
    c.start()
    try:
        add_foreign(c.unix(c.wait_leader()))
        yield c
    finally:
        c.stop()


def test_raft_leader_killed_during_churn_and_a_forced_transfer(cluster: NbCluster, tmpdir_short: Path,
                                                               fault_report: Report) -> None:  # fmt: skip
    rng = random.Random(SEED + 2)
    killed = fault_report.case("RAFT leader killed during churn (3-member NB, 5k endpoints)")
    moved = fault_report.case("RAFT leadership transferred (as before a snapshot)")

    def db() -> str:
        return cluster.unix(cluster.wait_leader())

    before = foreign(db())
    data = tmpdir_short / "world.jsonl"
    world(data, "w", N, 0)
    h = start(tmpdir_short / "h", cluster.remotes, data)
    try:
        h.wait_ready(180)
        for k in range(3 * SCALE):
            world(data, "w", N, k + 1)
            time.sleep(rng.uniform(0.1, 1.0))
            dead = cluster.wait_leader()
            t0 = time.monotonic()
            cluster.kill(dead)
            killed.injected += 1
            killed.converge_seconds.append(settled(h, db(), before, cluster=cluster) - t0)
            killed.converged += 1
            cluster.start_member(dead)
        for k in range(2 * SCALE):
            world(data, "w", N, 100 + k)
            time.sleep(rng.uniform(0.1, 1.0))
            t0 = time.monotonic()
            cluster.transfer_leadership()
            moved.injected += 1
            moved.converge_seconds.append(settled(h, db(), before, cluster=cluster) - t0)
            moved.converged += 1
        text = h.logtext()
        at = text.find("Traceback")
        assert at < 0, text[max(0, text.rfind("\n", 0, max(0, at - 300))):at + 3000]
    finally:
        h.close()


def test_active_killed_standby_takes_over(tmpdir_short: Path, fault_report: Report) -> None:
    """Two hubds of one hub id on the same sources: the one holding the NB lock
    writes; killed -9, the standby takes over, writes nothing twice, and
    writes what changes next."""
    case = fault_report.case("active hubd killed -9: the standby takes over (5k endpoints)")
    sb = OvnSandbox(tmpdir_short / "ovn", northd=False, sb=False)
    sb.start()
    hubs: list[Hubd] = []
    try:
        add_foreign(sb.nb_remote)
        before = foreign(sb.nb_remote)
        data = tmpdir_short / "world.jsonl"
        world(data, "w", N, 0)
        for k in range(2 * SCALE):
            a = start(tmpdir_short / f"a{k}", sb.nb_remote, data)
            hubs.append(a)
            a.wait_ready(180)
            b = start(tmpdir_short / f"b{k}", sb.nb_remote, data)
            hubs.append(b)
            b.wait_ready(180)
            active, standby = (a, b) if role(a) == "active" else (b, a)
            assert (role(active), role(standby)) == ("active", "standby")
            assert "standby" in standby.ctl("status").stdout.lower()
            settled(active, sb.nb_remote, before)
            writes = api(standby, "/v1/status")["nb"]["transactions"]
            assert writes == 0
            t0 = time.monotonic()
            active.kill9()
            case.injected += 1
            sync_wait_until(lambda s=standby: role(s) == "active", 30, "the standby takes over", interval=0.02)  # type: ignore[misc]
            case.failover_seconds.append(time.monotonic() - t0)
            case.converge_seconds.append(settled(standby, sb.nb_remote, before) - t0)
            st = api(standby, "/v1/status")["nb"]
            assert st["transactions"] == 0, "the takeover rewrote what the active had written"
            assert st["takeovers"] == 0 and st["role"] == "active"
            world(data, "w", N, k + 1)  # the new active writes what changes next
            sync_wait_until(lambda s=standby: api(s, "/v1/status")["nb"]["transactions"] > 0, 60,  # type: ignore[misc]
                            "the new active writes", interval=0.1)  # fmt: skip
            settled(standby, sb.nb_remote, before)
            case.converged += 1
            for h in (active, standby):
                h.close()
    finally:
        for h in hubs:
            h.close()
        sb.stop()


def uids(path: Path) -> list[str]:
    """The endpoint uids a static file holds."""
    out = []
    for line in path.read_bytes().splitlines():
        obj = json.loads(line)
        if obj.get("type") == "endpoint":
            out.append(f"{obj['source']['orchestrator']}/{obj['source']['cluster']} {obj['uid']}")
    return sorted(out)


def hub_endpoints(h: Hubd) -> list[str]:
    return sorted(f"{e['source']} {e['uid']}" for e in json.loads(h.ctl("endpoints", "--json").stdout))


def mirrored(h: Hubd) -> list[str]:
    """The endpoint states retained on the broker (``hubctl events``: the state, then exit)."""
    res = h.ctl("--config", str(h.config_path), "events", "--json", "--filter", "endpoint", "--timeout", "10",
                check=False)  # fmt: skip
    if res.returncode != 0:  # the broker not (yet) reachable: try again
        return []
    out = res.stdout
    rows = [json.loads(x) for x in out.splitlines() if x.strip()]
    return sorted(f"{r['object']['source']['orchestrator']}/{r['object']['source']['cluster']} {r['object']['uid']}"
                  for r in rows)  # fmt: skip


def test_mqtt_broker_away_30s_remote_adapter_and_mirror_converge(tmpdir_short: Path, fault_report: Report) -> None:
    """The broker goes away for 30 s while both a local and a remote source
    change: the local one reaches NB meanwhile; once the broker is back, the
    remote adapter's new snapshot does too, and the mirror's retained state
    (lost with the broker: no persistence) equals the hub's endpoints again."""
    case = fault_report.case("MQTT broker down 30 s (remote adapter and mirror)")
    outage = float(os.environ.get("OVN_HUB_FAULT_MQTT_OUTAGE", "30"))
    sb = OvnSandbox(tmpdir_short / "ovn", northd=False, sb=False)
    sb.start()
    broker = Mosquitto(tmpdir_short / "mqtt")
    broker.start()
    core = adapter = None
    try:
        add_foreign(sb.nb_remote)
        before = foreign(sb.nb_remote)
        local, remote_data = tmpdir_short / "local.jsonl", tmpdir_short / "remote.jsonl"
        world(local, "w", 500, 0)
        world(remote_data, "r", 500, 0)
        mqtt = f'[mqtt]\nenabled = true\nurl = "{broker.url}"\n'
        core_dir, ad_dir = tmpdir_short / "core", tmpdir_short / "adapter"
        for d in (core_dir, ad_dir):
            d.mkdir()
        core = Hubd(core_dir, hubd_config(core_dir, HUB, sb.nb_remote, {"w": local},
                                          extra=mqtt + '[remote.r]\norchestrator = "static"\ncluster = "r"\n'))  # fmt: skip
        adapter = Hubd(ad_dir, f'[hub]\nid = "{HUB}"\nstate_dir = "{ad_dir}"\n[api]\nlisten = "unix:{ad_dir}/api.sock"\n'
                               f'{mqtt}[adapters.r]\ntype = "static"\ncluster = "r"\npath = "{remote_data}"\n'
                               'poll_interval = 0.2\n', args=("--role", "adapter"))  # fmt: skip
        core.start()
        adapter.start()
        adapter.wait_ready(60)
        core.wait_ready(60)
        settled(core, sb.nb_remote, before)
        assert hub_endpoints(core) == sorted(uids(local) + uids(remote_data))
        broker.stop()
        case.injected += 1
        down = time.monotonic()
        world(local, "w", 500, 1)  # both sides change while the broker is away
        world(remote_data, "r", 500, 1)
        want = sorted(uids(local) + uids(remote_data))
        # the local source reaches NB without the broker
        sync_wait_until(lambda: [e for e in hub_endpoints(core) if e.startswith("static/w ")] == uids(local), 60,
                        "the local change in the desired state", interval=0.2)  # fmt: skip
        settled(core, sb.nb_remote, before)
        time.sleep(max(0.0, outage - (time.monotonic() - down)))
        broker.start()
        t0 = time.monotonic()
        sync_wait_until(lambda: hub_endpoints(core) == want, 90, "the remote adapter's new snapshot", interval=0.2)
        settled(core, sb.nb_remote, before)
        sync_wait_until(lambda: mirrored(core) == want, 90, "the mirror's retained state", interval=0.5)
        case.converge_seconds.append(time.monotonic() - t0)
        case.converged += 1
    finally:
        for h in (adapter, core):
            if h is not None:
                h.close()
        broker.stop()
        sb.stop()
