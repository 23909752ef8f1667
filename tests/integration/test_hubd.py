"""hubd as a process: systemd notify, signals, reload, admin API, hubctl, config errors.

hubd runs the static adapter here (canonical objects from a file); the Docker
adapter on a real dockerd is in test_docker_e2e.py.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from core.model import Endpoint, Network, Source, encode
from hub.sandbox import OvnSandbox
from testkit.hubd import BIN, Hubd
from testkit.nb import nb_rows
from testkit.wait import sync_wait_until
from tests.conftest import ROOT


def write_objects(path: Path, cluster: str, n: int, net: str = "blue", extra: list[bytes] | None = None) -> None:
    src = Source("static", cluster)
    lines = [encode(Network(source=src, name=net, subnets=("10.5.0.0/16",)))]
    for i in range(n):
        lines.append(
            encode(
                Endpoint(source=src, uid=f"{cluster}-{i}", namespace="lab", name=f"vm{i}", kind="vm", network=net,
                         ips=(f"10.5.{i // 250}.{i % 250 + 2}",))
            )
        )
    lines += extra or []
    path.write_bytes(b"\n".join(lines) + b"\n")


def config(ovn: OvnSandbox, workdir: Path, adapters: dict[str, Path], **ovn_opts: Any) -> str:
    text = f'[hub]\nid = "hubt"\nstate_dir = "{workdir}"\n[ovn]\nnb = "{ovn.nb_remote}"\n'
    for k, v in ovn_opts.items():
        text += f"{k} = {json.dumps(v)}\n"
    text += f'[api]\nlisten = "unix:{workdir}/api.sock"\n'
    for name, path in adapters.items():
        text += f'[adapters.{name}]\ntype = "static"\ncluster = "{name}"\npath = "{path}"\npoll_interval = 0.2\n'
    return text


def ports(ovn: OvnSandbox) -> set[str]:
    return {r["name"] for r in nb_rows(ovn, "Logical_Switch_Port")}


def test_ready_only_after_first_snapshot_then_watchdog_and_sigterm(ovn: OvnSandbox, tmpdir_short: Path, hubd_factory: Any) -> None:
    data = tmpdir_short / "a.jsonl"  # does not exist yet: the adapter fails and backs off
    h: Hubd = hubd_factory(config(ovn, tmpdir_short, {"a": data}), env={"WATCHDOG_USEC": "200000"})
    h.notify.wait_for("WATCHDOG=1", 20)
    first = time.monotonic()
    # ten more pings (one every 0.1 s) span a second in which the adapter keeps failing
    sync_wait_until(lambda: sum(m == "WATCHDOG=1" for m in h.notify.drain()) >= 11, 10, "10 watchdog pings")
    assert time.monotonic() - first < 5, "watchdog pings are not at half of WATCHDOG_USEC"
    assert not any(m.startswith("READY=1") for m in h.notify.messages), h.logtext()
    assert any(m.startswith("STATUS=waiting for first snapshot of static/a") for m in h.notify.messages)
    status = json.loads(h.ctl("status", "--json", check=False).stdout)
    assert status["ready"] is False and status["adapters"][0]["restarts"] >= 1
    write_objects(data, "a", 30)
    h.wait_ready(30)
    # at READY, NB already holds the snapshot
    assert len({p for p in ports(ovn) if p.startswith("static/a/")}) == 30
    h.signal(signal.SIGTERM)
    assert h.wait(30) == 0
    h.notify.drain()
    assert "STOPPING=1" in h.notify.messages
    assert "stopped cleanly" in h.logtext()


def test_sighup_adds_adapter_without_restarting_others(ovn: OvnSandbox, tmpdir_short: Path, hubd_factory: Any) -> None:
    a, b = tmpdir_short / "a.jsonl", tmpdir_short / "b.jsonl"
    write_objects(a, "a", 5)
    write_objects(b, "b", 7, net="red")
    h: Hubd = hubd_factory(config(ovn, tmpdir_short, {"a": a}))
    h.wait_ready(30)
    before = json.loads(h.ctl("status", "--json").stdout)["adapters"]
    assert [x["name"] for x in before] == ["a"] and before[0]["snapshots"] == 1
    h.config_path.write_text(config(ovn, tmpdir_short, {"a": a, "b": b}))
    h.signal(signal.SIGHUP)
    sync_wait_until(lambda: len([p for p in ports(ovn) if p.startswith("static/b/")]) == 7, 20, "adapter b programmed")
    after = {x["name"]: x for x in json.loads(h.ctl("status", "--json").stdout)["adapters"]}
    assert after["a"]["snapshots"] == 1 and after["a"]["restarts"] == 0, "adapter a was restarted"
    # a bad reload is refused with the key named; everything keeps running
    h.config_path.write_text(config(ovn, tmpdir_short, {"a": a}) + "[ovn.bogus]\n")
    h.signal(signal.SIGHUP)
    sync_wait_until(lambda: "reload refused" in h.logtext(), 10, "reload refused")
    assert "ovn.bogus" in h.logtext() or "bogus" in h.logtext()
    # removing b collects its rows; a is untouched
    h.config_path.write_text(config(ovn, tmpdir_short, {"a": a}))
    h.signal(signal.SIGHUP)
    sync_wait_until(lambda: not any(p.startswith("static/b/") for p in ports(ovn)), 20, "adapter b's rows collected")
    assert len([p for p in ports(ovn) if p.startswith("static/a/")]) == 5


def test_admin_api_hubctl_and_metrics(ovn: OvnSandbox, tmpdir_short: Path, hubd_factory: Any) -> None:
    a = tmpdir_short / "a.jsonl"
    bad = [b'{"type":"endpoint","source":{"orchestrator":"static","cluster":"a"},"uid":"x"}', b"not json", encode(
        Endpoint(source=Source("static", "a"), uid="bad-ip", namespace="lab", name="b", kind="vm", network="blue", ips=("10.0.0.999",))
    )]
    write_objects(a, "a", 3, extra=bad)
    h: Hubd = hubd_factory(config(ovn, tmpdir_short, {"a": a}))
    h.wait_ready(30)
    out = h.ctl("endpoints").stdout
    assert re.search(r"static/a\s+lab\s+vm1\s+blue\s+10\.5\.0\.3\s+-\s+static/a/blue/a-1\s+programmed", out), out
    rows = json.loads(h.ctl("endpoints", "--json").stdout)
    assert len(rows) == 3 and all(r["programmed"] for r in rows)
    assert "nothing to write" in h.ctl("plan").stdout
    st = h.ctl("status").stdout
    assert "ready" in st and "adapter a (static/a): running" in st
    metrics = subprocess.run(
        ["curl", "-s", "--unix-socket", str(tmpdir_short / "api.sock"), "http://h/metrics"], capture_output=True, text=True, check=True
    ).stdout
    assert 'ovn_hub_rejected_total{reason="schema",source="static/a"} 1.0' in metrics
    assert 'ovn_hub_rejected_total{reason="bad-json",source="static/a"} 1.0' in metrics
    assert 'ovn_hub_rejected_total{reason="bad-ip",source="static/a"} 1.0' in metrics
    assert "ovn_hub_event_to_commit_seconds_bucket" in metrics and "ovn_hub_commit_to_up_seconds_bucket" in metrics
    for path, code in (("/healthz", "200"), ("/readyz", "200")):
        res = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", str(tmpdir_short / "api.sock"), f"http://h{path}"],
                             capture_output=True, text=True)
        assert res.stdout == code
    # plan shows what would be written when NB drifts, and writes nothing itself
    ovn.nbctl("lsp-set-addresses", "static/a/blue/a-0", "02:00:00:00:00:01 10.9.9.9")
    # (the hub repairs drift at once; plan either shows the repair or nothing, never an error)
    assert h.ctl("plan", "--json").returncode == 0


def test_config_errors_name_the_key(tmpdir_short: Path) -> None:
    cases = {
        '[ovn]\nnb = 5\n': "ovn.nb",
        '[ovn]\nnbb = "unix:/x"\n': "ovn.nbb",
        '[api]\nlisten = "0.0.0.0:80"\n': "api.listen",
        '[adapters.d]\ncluster = "x"\n': "adapters.d.type",
        '[adapters.d]\ntype = "nope"\n': "nope",
        '[adapters.d]\ntype = "static"\npath = 3\n': "adapters.d.path",
        '[hub]\nid = "Not_A_Label"\n': "hub.id",
        "not toml [": "not valid TOML",
    }
    for text, needle in cases.items():
        p = tmpdir_short / "bad.toml"
        p.write_text(text)
        res = subprocess.run([str(BIN / "hubd"), "--check", "--config", str(p)], capture_output=True, text=True, timeout=30)
        assert res.returncode == 2, (text, res.stdout, res.stderr)
        assert needle in res.stderr and "Traceback" not in res.stderr, (text, res.stderr)
    good = tmpdir_short / "good.toml"
    good.write_text((ROOT / "packaging" / "hubd.toml.example").read_text())
    res = subprocess.run([str(BIN / "hubd"), "--check", "--config", str(good)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("name", ["hubd.service", "hubd-node.service"])
def test_unit_file_verifies(tmpdir_short: Path, name: str) -> None:
    unit = (ROOT / "packaging" / name).read_text().replace("/usr/local/bin/hubd", str(BIN / "hubd"))
    path = tmpdir_short / name
    path.write_text(unit)
    res = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "Type=notify" in unit and "WatchdogSec=" in unit
    assert ("ExecReload=" in unit) == (name == "hubd.service")  # the node has nothing to reload
    if name == "hubd-node.service":
        assert "--role node" in unit and "CAP_NET_ADMIN" in unit


def test_kill9_mid_batch_then_restart_converges_exactly(ovn: OvnSandbox, tmpdir_short: Path, hubd_factory: Any) -> None:
    n = 30000
    a = tmpdir_short / "a.jsonl"
    write_objects(a, "a", n)
    h: Hubd = hubd_factory(config(ovn, tmpdir_short, {"a": a}, batch_size=1500))
    sync_wait_until(lambda: 0 < len(ports(ovn)) < n // 2, 60, "a partial commit", interval=0.02)
    h.kill9()
    partial = len(ports(ovn))
    assert 0 < partial < n
    # the source changed while hubd was dead: 100 gone, 50 new
    write_objects(a, "a", n - 100, extra=[
        encode(Endpoint(source=Source("static", "a"), uid=f"new-{i}", namespace="lab", name=f"new{i}", kind="vm", network="blue"))
        for i in range(50)
    ])
    h2: Hubd = hubd_factory(config(ovn, tmpdir_short, {"a": a}, batch_size=1500))
    h2.wait_ready(120)
    want = {f"static/a/blue/a-{i}" for i in range(n - 100)} | {f"static/a/blue/new-{i}" for i in range(50)}
    rows = nb_rows(ovn, "Logical_Switch_Port")
    names = [r["name"] for r in rows]
    assert len(names) == len(set(names)), "duplicate ports"
    assert set(names) == want
    sw = nb_rows(ovn, "Logical_Switch")
    assert [s["name"] for s in sw] == ["static/a/blue"]
    assert len(sw[0]["ports"][1]) == len(want)
    assert "nothing to write" in h2.ctl("plan").stdout


def test_sigterm_while_nb_unreachable_exits_cleanly(tmpdir_short: Path, hubd_factory: Any) -> None:
    a = tmpdir_short / "a.jsonl"
    write_objects(a, "a", 3)
    cfg = (
        f'[hub]\nid = "hubt"\nstate_dir = "{tmpdir_short}"\n[ovn]\nnb = "unix:{tmpdir_short}/no-such-nb.sock"\n'
        f'[api]\nlisten = "unix:{tmpdir_short}/api.sock"\n'
        f'[adapters.a]\ntype = "static"\ncluster = "a"\npath = "{a}"\n'
    )
    h: Hubd = hubd_factory(cfg)
    h.notify.wait_for("STATUS=connecting to OVN NB", 20)
    h.signal(signal.SIGTERM)
    assert h.wait(30) == 0, h.logtext()
    h.notify.drain()
    assert "STOPPING=1" in h.notify.messages and not any(m.startswith("READY=1") for m in h.notify.messages)
