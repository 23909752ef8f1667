"""hubd killed at random moments, NB restarted or emptied, the state dir unwritable.

One hubd subprocess (the static adapter on a file of ~20k endpoints, 50
Services, 20 Policies, 4 routed networks: ports, switches, load balancers, port
groups, address sets, ACLs, a router, its ports and DNS rows) against a real NB.
Every case ends with hubd READY, its plan empty, no twin rows and the
operator's 1,000 rows byte-identical.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.sandbox import OvnSandbox
from testkit.faults import NETWORKS, Report, add_foreign, foreign, hubd_config, twins, world
from testkit.hubd import Hubd
from testkit.wait import sync_wait_until
from tests.system.faults.conftest import SCALE, SEED

HUB = "faults"
N = int(os.environ.get("OVN_HUB_FAULT_N", "20000"))


@pytest.fixture
def nb(tmpdir_short: Path) -> Iterator[OvnSandbox]:
    sb = OvnSandbox(tmpdir_short / "ovn", northd=False, sb=False)
    sb.start()
    try:
        add_foreign(sb.nb_remote)
        yield sb
    finally:
        sb.stop()


def start(workdir: Path, nb: str, data: Path, **kw: object) -> Hubd:
    workdir.mkdir(exist_ok=True)
    h = Hubd(workdir, hubd_config(workdir, HUB, nb, {"w": data}, **kw))  # type: ignore[arg-type]
    h.start()
    return h


def converged(h: Hubd, nb: str, before: list[str], timeout: float = 180) -> float:
    """READY, then nothing to write, no twins, foreign rows untouched; returns when READY came."""
    t = h.wait_ready(timeout)
    sync_wait_until(lambda: "nothing to write" in h.ctl("plan").stdout, 60, "an empty plan", interval=0.2)
    assert twins(nb, HUB) == {}
    assert foreign(nb) == before
    return t


@pytest.mark.timeout(1200)
def test_kill9_at_seeded_moments_during_bulk_and_churn(nb: OvnSandbox, tmpdir_short: Path, fault_report: Report) -> None:
    rng = random.Random(SEED)
    case = fault_report.case("hubd kill -9 during bulk and churn (20k endpoints, policies, services, fabric)")
    before = foreign(nb.nb_remote)
    data = tmpdir_short / "world.jsonl"
    world(data, "w", N, 0)
    rounds = 20 * SCALE
    h: Hubd | None = None
    try:
        for k in range(rounds):
            # even rounds: a big change (a new generation every time: churn while writing);
            # odd rounds: the same world again, killed during the restart's read and diff
            if k % 2 == 0:
                world(data, "w", N, k // 2 + 1)
            h = start(tmpdir_short / f"h{k}", nb.nb_remote, data)
            time.sleep(rng.uniform(0.3, 3.5))
            if k % 4 == 1:  # churn under a running writer: the file changes, then the kill
                world(data, "w", N, 1000 + k)
                time.sleep(rng.uniform(0.0, 1.0))
            h.kill9()
            case.injected += 1
            h.close()
            # the next hubd finds NB as the killed one left it
            h = start(tmpdir_short / f"r{k}", nb.nb_remote, data)
            t0 = time.monotonic()
            ready = converged(h, nb.nb_remote, before)
            case.converged += 1
            case.converge_seconds.append(ready - t0)
            h.close()
            h = None
    finally:
        if h is not None:
            h.close()
    assert case.converged == case.injected == rounds


def test_nb_restarts_and_an_empty_nb(nb: OvnSandbox, tmpdir_short: Path, fault_report: Report) -> None:
    rng = random.Random(SEED + 1)
    restarts = fault_report.case("NB ovsdb-server restarted during churn (5k endpoints)")
    emptied = fault_report.case("NB replaced by an empty database")
    before = foreign(nb.nb_remote)
    data = tmpdir_short / "world.jsonl"
    n = N // 4
    world(data, "w", n, 0)
    h = start(tmpdir_short / "h", nb.nb_remote, data)
    try:
        h.wait_ready(180)
        for k in range(5 * SCALE):
            world(data, "w", n, k + 1)
            time.sleep(rng.uniform(0.2, 1.5))
            nb.restart("nb")
            restarts.injected += 1
            t0 = time.monotonic()
            sync_wait_until(lambda: "nothing to write" in h.ctl("plan").stdout, 120, "NB rewritten", interval=0.2)
            restarts.converge_seconds.append(time.monotonic() - t0)
            assert twins(nb.nb_remote, HUB) == {} and foreign(nb.nb_remote) == before
            restarts.converged += 1
        # NB replaced by an empty database: everything is re-created (the operator's rows are gone with it)
        nb.kill("nb", signal.SIGTERM)
        (nb.dir / "nb.db").unlink()
        nb.restart("nb")
        emptied.injected += 1
        t0 = time.monotonic()

        def recreated() -> bool:
            st = json.loads(h.ctl("status", "--json").stdout)
            # every endpoint's port and each routed network's router port, nothing pending
            return (st["nb"]["ports"] == st["endpoints"] + NETWORKS and st["nb"]["dirty"] == 0
                    and "nothing to write" in h.ctl("plan").stdout)  # fmt: skip

        sync_wait_until(recreated, 120, "everything re-created", interval=0.2)
        emptied.converge_seconds.append(time.monotonic() - t0)
        assert twins(nb.nb_remote, HUB) == {}
        assert foreign(nb.nb_remote) == []
        emptied.converged += 1
    finally:
        h.close()


@pytest.mark.parametrize("how", ["unwritable", "full"])
def test_state_dir_unwritable_or_full_means_no_cache_a_warning_and_a_full_read(
    nb: OvnSandbox, tmpdir_short: Path, fault_report: Report, how: str
) -> None:
    case = fault_report.case(f"state dir {how} at stop (no restart cache)")
    before = foreign(nb.nb_remote)
    data = tmpdir_short / "world.jsonl"
    world(data, "w", 2000, 0)
    work = tmpdir_short / "h"
    state = tmpdir_short / "state"
    state.mkdir()
    cache = state / f"nb-ports-{HUB}.cache"
    mounted = False
    try:
        h = start(work, nb.nb_remote, data, state_dir=state)
        h.wait_ready(60)
        if how == "full":  # a 16 KiB tmpfs over the state dir: the cache (~100 KB) cannot fit
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k,mode=0700", "tmpfs", str(state)], check=True)
            mounted = True
        else:  # root ignores mode bits: a directory where the cache file goes
            cache.mkdir()
        h.signal(signal.SIGTERM)
        assert h.wait(60) == 0, h.logtext()
        log = h.logtext()
        assert "port cache" in log and "not written" in log, log[-2000:]
        assert ("No space left" in log) if how == "full" else ("Is a directory" in log), log[-2000:]
        assert not cache.is_file()
        case.injected += 1
        h.close()
        h = start(work, nb.nb_remote, data, state_dir=state)
        t0 = time.monotonic()
        ready = converged(h, nb.nb_remote, before)
        st = json.loads(h.ctl("status", "--json").stdout)["nb"]
        assert st["ports_from_cache"] == 0 and st["ports_read"] == st["ports"] > 2000  # the full read (+ router ports)
        case.converged += 1
        case.converge_seconds.append(ready - t0)
        h.close()
    finally:
        if mounted:
            subprocess.run(["umount", str(state)], check=False)
