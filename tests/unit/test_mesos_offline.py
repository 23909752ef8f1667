"""``hubctl normalize --from mesos``: every accepted input, every fixture accounted for,
bad input as one line and exit 1 (never a traceback)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from adapters.mesos.offline import normalize_text
from core.model import Delete, Endpoint, Invalid, Service, Source
from hub import cli
from testkit.hubd import BIN, ROOT
from testkit.mesos_fake import agent_info, framework_info, recordio, task_record, task_status
from tests.conftest import FIXTURES_DIR

FIX = FIXTURES_DIR / "mesos"
SRC = Source("mesos", "test")
C1 = "11111111-1111-4111-8111-111111111111"


def hubctl(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.run([str(BIN / "hubctl"), "normalize", "--from", "mesos", *map(str, args)], capture_output=True,
                          text=True, timeout=60, input=stdin, env=env)  # fmt: skip


def run(text: str) -> tuple[list[Any], list[tuple[str, str]]]:
    skips: list[tuple[str, str]] = []
    return list(normalize_text(text, SRC, on_skip=lambda r, m: skips.append((r, m)))), skips


#: fixture → (exit status, rejection reasons, skip reasons)
EXPECTED: dict[str, tuple[int, list[str], list[str]]] = {
    "marathon-event-api-post-event.doc.json": (3, [], ["invalidation"]),
    "marathon-event-app-terminated-event.doc.json": (3, [], ["invalidation"]),
    "marathon-event-event-stream-attached.doc.json": (3, [], ["invalidation"]),
    "marathon-event-instance-changed-event.doc.json": (3, [], ["invalidation"]),
    "marathon-event-status-update-event.doc.json": (3, [], ["invalidation"]),
    "marathon-event-unknown-instance-terminated-event.doc.json": (3, [], ["invalidation"]),
    "marathon-sse-stream.doc-capture.txt": (3, [], ["invalidation"] * 3),
    "operator-event-agent-added.doc.txt": (1, ["bad-json"], []),  # the doc's trailing comma
    "operator-event-agent-removed.doc.json": (3, [], ["joined"]),
    "operator-event-framework-added.doc.json": (3, [], ["joined"]),
    "operator-event-heartbeat.doc.txt": (1, ["bad-json"], []),  # the doc's trailing comma
    "operator-event-task-added.asgard.json": (3, [], ["no-container"]),
    "operator-event-task-added.doc.json": (3, [], ["no-container"]),
    "operator-event-task-updated-running.asgard.json": (3, [], ["no-container"]),
    "operator-event-task-updated.doc.json": (1, ["bad-field"], []),  # the doc's shape is not master.proto's
    "operator-get-state-response.doc.json": (3, [], ["finished"]),
    "operator-subscribe-exchange.doc.txt": (1, ["bad-json"], []),  # placeholders, not JSON
    "recordio-stream.doc.txt": (1, ["bad-framing"], []),  # "\n" written literally
    "recordio-stream.framed-real-events.txt": (3, [], ["no-container", "no-container", "heartbeat"]),
}


def test_every_fixture_is_accounted_for(capsys: pytest.CaptureFixture[str]) -> None:
    """hubctl's own code, in this process (one subprocess per file would take seconds)."""
    files = sorted(p.name for p in FIX.iterdir() if p.name != "SOURCES.md")
    assert files == sorted(EXPECTED)
    for name, (rc, rejected, skipped) in EXPECTED.items():
        code = cli.main(["normalize", "--from", "mesos", "--cluster", "test", str(FIX / name)])
        out, err = capsys.readouterr()
        assert code == rc, (name, err)
        assert out == "" or code == 0
        lines = err.splitlines()
        got_rej = [ln.split("rejected (", 1)[1].split(")", 1)[0] for ln in lines if ": rejected (" in ln]
        got_skip = [ln.split("skipped (", 1)[1].split(")", 1)[0] for ln in lines if ": skipped (" in ln]
        assert (got_rej, got_skip) == (rejected, skipped), (name, lines)
        assert len(lines) == len(rejected) + len(skipped), lines


def test_the_two_trailing_comma_examples_get_one_line_each() -> None:
    res = hubctl(FIX / "operator-event-heartbeat.doc.txt", FIX / "operator-event-agent-added.doc.txt")
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.splitlines() == [
        f"{FIX / 'operator-event-heartbeat.doc.txt'}: rejected (bad-json): not JSON: JSON is malformed: trailing comma in object (byte 25)",
        f"{FIX / 'operator-event-agent-added.doc.txt'}: rejected (bad-json): not JSON: JSON is malformed: trailing comma in object (byte 282)",
    ]


def stream() -> str:
    state = {"get_tasks": {"tasks": [task_record("web.1", "fw", "a1", name="web", network="blue", ip="10.1.0.5",
                                                 container_id=C1)]},
             "get_frameworks": {"frameworks": [framework_info("fw", "shop")]},
             "get_agents": {"agents": [agent_info("a1", "node-1")]}}  # fmt: skip
    events = [
        {"type": "SUBSCRIBED", "subscribed": {"get_state": state, "heartbeat_interval_seconds": 15}},
        {"type": "HEARTBEAT"},
        {"type": "TASK_UPDATED", "task_updated": {"framework_id": {"value": "fw"}, "state": "TASK_RUNNING",
                                                  "status": task_status("web.1", "a1", "TASK_RUNNING", "blue", "10.1.0.9", C1)}},
        {"type": "TASK_UPDATED", "task_updated": {"framework_id": {"value": "fw"}, "state": "TASK_KILLED",
                                                  "status": task_status("web.1", "a1", "TASK_KILLED", "blue", "10.1.0.9", C1)}},
    ]  # fmt: skip
    return b"".join(recordio(e) for e in events).decode()


def test_a_recordio_stream_gives_endpoints_updates_and_deletes() -> None:
    out, skips = run(stream())
    first, second, gone = out
    assert isinstance(first, Endpoint) and (first.name, first.namespace, first.node, first.ips) == ("web", "shop", "node-1", ("10.1.0.5",))
    assert isinstance(second, Endpoint) and second.ips == ("10.1.0.9",)
    assert gone == Delete(source=SRC, kind="endpoint", key=f"blue/{C1}")
    assert [r for r, _ in skips] == ["heartbeat"]
    # one JSON object; a JSON array of events; a terminal update of a task never seen still names its endpoint
    kill = {"type": "TASK_UPDATED", "task_updated": {"framework_id": {"value": "fw"}, "state": "TASK_FAILED",
                                                     "status": task_status("x", "a1", "TASK_FAILED", "red", "10.2.0.1", C1)}}  # fmt: skip
    out, _ = run(json.dumps(kill))
    assert out == [Delete(source=SRC, kind="endpoint", key=f"red/{C1}")]
    out, skips = run(json.dumps([{"type": "HEARTBEAT"}, kill, "nope"]))
    assert [type(o).__name__ for o in out] == ["Delete", "Invalid"] and skips[0][0] == "heartbeat"
    res = hubctl("-", stdin=stream())
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 3, res


def test_marathon_apps_tasks_and_events() -> None:
    apps = {"apps": [
        {"id": "/shop/web", "networks": [{"mode": "container", "name": "blue"}],
         "container": {"portMappings": [{"containerPort": 8080, "labels": {"VIP_0": "/web:80"}}]},
         "tasks": [{"id": "shop_web.1", "state": "TASK_RUNNING", "ipAddresses": [{"ipAddress": "10.1.0.5"}]}]},
        {"id": "/batch"},
    ]}  # fmt: skip
    out, skips = run(json.dumps(apps))
    (svc,) = out
    assert isinstance(svc, Service) and svc.rules[0].backends == ("10.1.0.5:8080",) and svc.rules[0].vip.startswith("11.")
    assert [r for r, _ in skips] == ["no-vip"]
    out, skips = run(json.dumps({"tasks": [{"id": "a.1", "appId": "/a"}, {"id": 3}]}))
    assert [o.reason for o in out if isinstance(o, Invalid)] == ["bad-field"] and [r for r, _ in skips] == ["marathon-task"]
    out, skips = run("event: status_update_event\r\ndata: {\"eventType\":\"status_update_event\"}\r\n\r\ndata: {\r\n")
    assert [o.reason for o in out if isinstance(o, Invalid)] == ["bad-json"] and [r for r, _ in skips] == ["invalidation"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{", "bad-json"),
        ('{"hello": 1}', "unknown-input"),
        ("12\n{}", "truncated"),
        ("5x\n", "bad-framing"),
        ("3\nabc", "bad-json"),
        ("[1]", "not-object"),
    ],
)
def test_bad_input_is_one_invalid(text: str, reason: str) -> None:
    out, _ = run(text)
    assert [o.reason for o in out if isinstance(o, Invalid)] == [reason], out
    res = hubctl("-", stdin=text)
    assert res.returncode == 1 and len(res.stderr.splitlines()) == 1 and "Traceback" not in res.stderr, res


def test_empty_input() -> None:
    out, skips = run("  \n")
    assert out == [] and [r for r, _ in skips] == ["empty"]
