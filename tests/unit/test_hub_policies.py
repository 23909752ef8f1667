"""The hub-level policies file (hub/policies.py) and its [policies] section: read
when it changes, a bad file rejected once with its reason (counted by the bus's
rejection log) while the last good policies stay, hubd refusing a bad file at
start, and the daemon handing the policies to the programmer inside the fabric.
What the policies compile to: tests/unit/test_admin_policy.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from core import metrics
from core.model import Rejected
from core.model.fabric import FABRIC_SOURCE, Fabric
from hub.bus import Bus
from hub.config import ConfigError, PoliciesSection, loads
from hub.daemon import Hub
from hub.main import main
from hub.policies import PoliciesFile, load_policies_file
from testkit.wait import wait_until
from tests.conftest import ROOT

ONE = [{"name": "db", "priority": 1, "subject": {"pod_selector": {"match_labels": {"app": "db"}}},
        "ingress": [{"action": "allow", "peers": [{"pod_selector": {"match_labels": {"app": "web"}}}], "ports": [{"port": 5432}]},
                    {"action": "deny"}]}]  # fmt: skip
TWO = [*ONE, {"name": "dns", "priority": 2, "egress": [{"action": "allow", "ports": [{"protocol": "udp", "port": 53}]}]}]


def write(path: Path, doc: Any) -> None:
    """Write and move the mtime on, so that even a same-size rewrite within one clock tick is a change."""
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def rejected_metric(reason: str) -> float:
    return metrics.REJECTED.labels(str(FABRIC_SOURCE), reason)._value.get()  # type: ignore[attr-defined, no-any-return]


def test_config_section() -> None:
    cfg = loads('[policies]\npath = "/etc/ovn-hub/policies.json"\npoll_interval = 2.5\n')
    assert cfg.policies == PoliciesSection(path="/etc/ovn-hub/policies.json", poll_interval=2.5)
    assert loads("").policies == PoliciesSection()
    for text, says in (
        ('[policies]\npaht = "/x"\n', "policies.paht: unknown key"),
        ('[policies]\npath = "relative.json"\n', "must be an absolute path"),
        ("[policies]\npoll_interval = 0\n", "policies.poll_interval"),
        ("[policies]\npath = 1\n", "Expected `str`"),
    ):
        with pytest.raises(ConfigError, match=says):
            loads(text)


async def test_read_on_change_reject_once_and_keep_the_last_good(tmp_path: Path) -> None:
    path = tmp_path / "policies.json"
    bus = Bus()
    pf = PoliciesFile(PoliciesSection(path=str(path)), reject=bus.publish)
    # a missing file: rejected once, not at every look
    assert not pf.read() and pf.reason == "policies-file" and pf.policies == ()
    await pf.publish_rejection()
    assert not pf.read()
    await pf.publish_rejection()
    assert bus.rejections.counts[(str(FABRIC_SOURCE), "policies-file")] == 1 and bus.rejections.total == 1
    write(path, ONE)
    assert pf.read() and [p.name for p in pf.policies] == ["db"] and pf.error == ""
    assert metrics.HUB_POLICIES._value.get() == 1  # type: ignore[attr-defined]
    assert not pf.read() and pf.loads == 1  # unchanged: not read again
    # a bad file: rejected with its reason, the last good policies stay
    before = rejected_metric("bad-json")
    write(path, json.dumps(TWO)[:-3])
    assert not pf.read() and [p.name for p in pf.policies] == ["db"]
    assert pf.reason == "bad-json" and pf.error.startswith(f"policies file {path}: not JSON")
    await pf.publish_rejection()
    assert rejected_metric("bad-json") == before + 1
    recent = bus.rejections.recent[-1]
    assert (recent["source"], recent["reason"], recent["ref"]) == ("ovn-hub/fabric", "bad-json", str(path))
    assert not pf.read()  # unchanged: no second rejection
    await pf.publish_rejection()
    write(path, json.dumps(TWO)[:-3])  # the same bad content again: counted once (one distinct rejection)
    assert not pf.read()
    await pf.publish_rejection()
    assert rejected_metric("bad-json") == before + 1 and bus.rejections.total == 3
    write(path, [*TWO, {"name": "db", "priority": 3}])
    assert not pf.read() and pf.reason == "duplicate" and "the name is also policies[0]'s" in pf.error
    assert pf.status() == {"path": str(path), "policies": 1, "error": pf.error, "reason": "duplicate"}
    write(path, TWO)
    assert pf.read() and [p.name for p in pf.policies] == ["db", "dns"] and pf.status()["error"] == ""
    # rewritten with the same policies: read, but nothing new to apply
    write(path, json.dumps(TWO, indent=2))
    assert not pf.read() and pf.loads == 3
    # the section loses its path: no hub-level policy any more
    pf.configure(PoliciesSection())
    assert pf.read() and pf.policies == () and metrics.HUB_POLICIES._value.get() == 0  # type: ignore[attr-defined]


async def test_the_watcher_applies_changes_and_survives_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    write(path, ONE)
    published: list[Rejected] = []

    async def reject(ev: Rejected) -> None:
        published.append(ev)

    pf = PoliciesFile(PoliciesSection(path=str(path), poll_interval=3600), reject=reject)  # looks only when kicked
    assert pf.read()
    applied: list[tuple[str, ...]] = []
    task = asyncio.create_task(pf.run(lambda pols: applied.append(tuple(p.name for p in pols))))
    try:
        write(path, "[")
        pf.kick()
        await wait_until(lambda: published, 5, "the bad file rejected")
        assert published[0].reason == "bad-json" and applied == []
        write(path, TWO)
        pf.kick()
        await wait_until(lambda: applied == [("db", "dns")], 5, "the good file applied")
        other = tmp_path / "q.json"
        write(other, ONE)
        pf.configure(PoliciesSection(path=str(other), poll_interval=3600))  # a reload names another file
        await wait_until(lambda: applied[-1] == ("db",), 5, "the new file applied")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class FakeProgrammer:
    def __init__(self) -> None:
        self.fabrics: list[Fabric] = []

    def set_fabric(self, spec: Fabric) -> None:
        self.fabrics.append(spec)


def test_the_daemon_passes_policies_inside_the_fabric(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    write(path, TWO)
    hub = Hub(loads(f'[policies]\npath = "{path}"\n'))
    assert hub.check_policies() == 2
    prog = FakeProgrammer()
    hub.programmer = prog  # type: ignore[assignment]
    hub.fabric = Fabric(hairpin_snat_ip="169.254.0.7")  # whatever else the fabric says is kept
    hub._apply_policies(hub.policy_file.policies)
    assert prog.fabrics[-1] == Fabric(hairpin_snat_ip="169.254.0.7", policies=hub.policy_file.policies)
    hub.programmer = None
    assert hub.status()["policies"] == {"path": str(path), "policies": 2, "error": "", "reason": ""}
    write(path, "{}")
    bad = Hub(loads(f'[policies]\npath = "{path}"\n'))
    with pytest.raises(ConfigError, match=r"policies\.path: policies file .*expected a JSON array"):
        bad.check_policies()


def test_hubd_refuses_to_start_with_a_bad_policies_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hub.main._logging", lambda level: None)  # leave the test run's logging alone
    path = tmp_path / "p.json"
    conf = tmp_path / "hubd.toml"
    conf.write_text(f'[hub]\nid = "h1"\nstate_dir = "{tmp_path}"\n[policies]\npath = "{path}"\n')
    write(path, TWO)
    assert main(["--config", str(conf), "--check"]) == 0
    assert "2 hub-level policies" in capsys.readouterr().out
    write(path, [{"name": "x", "ingress": [{"action": "allow", "peers": [{"cidr": "10.0.0.0/33"}]}]}])
    assert main(["--config", str(conf), "--check"]) == 2
    err = capsys.readouterr().err
    assert "config error: policies.path: policies file" in err and "ingress[0].peers[0] cidr" in err


def test_the_example_policies_file_is_good() -> None:
    pols = load_policies_file(str(ROOT / "packaging" / "policies.json.example"))
    assert [(p.name, p.priority) for p in pols] == [("db-from-web", 10), ("no-smtp-out", 20)]
    assert [r.action for r in pols[0].ingress] == ["allow", "pass", "deny"]
