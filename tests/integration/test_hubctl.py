"""hubctl normalize (offline) and hubd --sandbox."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from core.model import decode_event, decode_object
from testkit.hubd import BIN, Hubd
from testkit.wait import sync_wait_until
from tests.conftest import FIXTURES_DIR

FIX = FIXTURES_DIR / "docker"


def normalize(*files: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "hubctl"), "normalize", "--from", "docker", *map(str, files)], capture_output=True, text=True, timeout=60
    )


def test_normalize_every_docker_fixture() -> None:
    files = sorted(p for p in FIX.iterdir() if p.name != "SOURCES.md")
    assert len(files) == 5
    for f in files:
        res = normalize(f)
        assert res.returncode == 0, (f, res.stderr)
        lines = res.stdout.splitlines()
        assert lines, f
        for line in lines:
            try:
                decode_object(line)
            except ValueError:
                decode_event(line)
    out = normalize(FIX / "container-inspect.compose-redis.spring-boot.json").stdout
    ep = json.loads(out)
    assert (ep["ips"], ep["mac"], ep["namespace"], ep["network"]) == (
        ["192.168.32.2"], "02:42:c0:a8:20:02", "redis-docker", "redis-docker_default"
    )


def test_normalize_bad_input_one_line_reasons(tmpdir_short: Path) -> None:
    good = FIX / "container-inspect.api-v1.24-doc.json"
    cases = {
        "trunc.json": good.read_text()[:200],
        "num.json": '{"Id": 5, "State": {"Running": true}}',
        "badip.json": json.dumps([{"Id": "a" * 64, "Name": "/x", "State": {"Running": True, "Status": "running"},
                                   "Config": {}, "NetworkSettings": {"Networks": {"n": {"IPAddress": "1.2.3", "MacAddress": ""}}}}]),
        "events.jsonl": '{"Type":"container","Action":"start","Actor":{"ID":"x"},"time":1}\nnot json at all\n{"Action":"x"}\n',
        "empty.json": "",
        "binary.json": "\x00\x01\x02",
    }
    paths = []
    for name, text in cases.items():
        p = tmpdir_short / name
        p.write_text(text)
        paths.append(p)
    res = normalize(good, *paths, tmpdir_short / "missing.json")
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    err = res.stderr.strip().splitlines()
    assert len(err) >= len(cases) + 1
    for name in (*cases, "missing.json"):
        assert any(line.startswith(str(tmpdir_short / name)) for line in err), (name, err)
    # every line is a rejection, except the one line accounting for the container start event
    # (valid, but it implies nothing by itself offline)
    skipped = [line for line in err if "skipped (" in line]
    assert len(skipped) == 1 and skipped[0].startswith(f"{tmpdir_short / 'events.jsonl'}: skipped (event-only): container start"), err
    assert all("rejected (" in line or "cannot read" in line for line in err if line not in skipped)
    # the good file still produced its endpoint
    assert json.loads(res.stdout.splitlines()[0])["ips"] == ["172.17.0.2"]


def test_hubd_sandbox_starts_and_stops_ovn(tmpdir_short: Path, hubd_factory: Any) -> None:
    cfg = f'[hub]\nid = "sbx"\nstate_dir = "{tmpdir_short}/state"\n[api]\nlisten = "unix:{tmpdir_short}/api.sock"\n'
    h: Hubd = hubd_factory(cfg, start=False)
    h.proc = subprocess.Popen(
        [str(BIN / "hubd"), "--sandbox", "--config", str(h.config_path)], env=h.env, stdout=h.log, stderr=subprocess.STDOUT
    )
    h.wait_ready(60)
    ovn_dir = tmpdir_short / "state" / "ovn"
    assert (ovn_dir / "nb.sock").exists() and (ovn_dir / "sb.sock").exists()
    pids = [int(p) for p in subprocess.run(["pgrep", "-P", str(h.proc.pid)], capture_output=True, text=True).stdout.split()]
    names = sorted(Path(f"/proc/{p}/comm").read_text().strip() for p in pids)
    assert names == ["ovn-northd", "ovsdb-server", "ovsdb-server"], names
    out = subprocess.run(["ovn-nbctl", f"--db=unix:{ovn_dir}/nb.sock", "show"], capture_output=True, text=True, check=True)
    assert out.returncode == 0
    h.signal(signal.SIGTERM)
    assert h.wait(30) == 0
    sync_wait_until(lambda: not any(os.path.exists(f"/proc/{p}") and _alive(p) for p in pids), 10, "sandbox stopped")
    time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"
