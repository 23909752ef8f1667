"""adapters.mesos.normalize: operator API events → Endpoints, on the repo's fixtures
(tests/fixtures/mesos) and on payloads shaped like them."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from adapters.mesos.normalize import NON_TERMINAL, TERMINAL, Event, MesosState, Removed, decode_event
from core.model import LABEL_WORKLOAD, Endpoint, Invalid, PortSpec, Source, validate
from testkit.mesos_fake import agent_info, docker_inspect_data, framework_info, task_record, task_status
from tests.conftest import FIXTURES_DIR

FIX = FIXTURES_DIR / "mesos"
SRC = Source("mesos", "test")
C1 = "11111111-1111-4111-8111-111111111111"
C2 = "22222222-2222-4222-8222-222222222222"


def ev(obj: dict[str, Any]) -> Event:
    return decode_event(json.dumps(obj).encode())


def added(task: dict[str, Any]) -> Event:
    return ev({"type": "TASK_ADDED", "task_added": {"task": task}})


def updated(fid: str, status: dict[str, Any], state: str | None = None) -> Event:
    return ev({"type": "TASK_UPDATED", "task_updated": {"framework_id": {"value": fid}, "status": status,
                                                        "state": state or status["state"]}})  # fmt: skip


def subscribed(tasks: list[dict[str, Any]], frameworks: list[dict[str, Any]] = (), agents: list[dict[str, Any]] = ()) -> Event:  # type: ignore[assignment]
    return ev({"type": "SUBSCRIBED", "subscribed": {"heartbeat_interval_seconds": 15.0, "get_state": {
        "get_tasks": {"tasks": tasks}, "get_frameworks": {"frameworks": list(frameworks)},
        "get_agents": {"agents": list(agents)}}}})  # fmt: skip


def eps(changes: list[Any]) -> list[Endpoint]:
    return [c for c in changes if isinstance(c, Endpoint)]


# ------------------------------------------------------------------ fixtures
def test_every_json_fixture_decodes_and_the_two_trailing_comma_ones_are_rejected() -> None:
    for f in sorted(FIX.glob("operator-*")):
        text = f.read_bytes()
        if f.name in ("operator-event-heartbeat.doc.txt", "operator-event-agent-added.doc.txt"):
            with pytest.raises(Invalid, match="trailing comma") as exc:
                decode_event(text)
            assert exc.value.reason == "bad-json"
        elif f.name == "operator-subscribe-exchange.doc.txt":
            with pytest.raises(Invalid, match="not JSON"):
                decode_event(text)
        elif f.name == "operator-event-task-updated.doc.json":
            with pytest.raises(Invalid, match="missing required field `status`") as exc:  # the doc's wrong shape
                decode_event(text)
            assert exc.value.reason == "bad-field"
        else:
            assert decode_event(text).type in ("TASK_ADDED", "TASK_UPDATED", "AGENT_REMOVED", "FRAMEWORK_ADDED",
                                               "GET_STATE"), f  # fmt: skip


def test_the_real_task_events_a_name_cached_for_the_update_that_lacks_it() -> None:
    st = MesosState(SRC)
    task_added = decode_event((FIX / "operator-event-task-added.asgard.json").read_bytes())
    assert st.apply(task_added) == []  # TASK_STAGING on a Docker container: no container status yet
    t = st.tasks["/sieve_sleep.c73b9af1-1abb-11ea-a2e5-02429217540f"]
    assert (t.name, t.state, t.agent) == ("sleep.sieve", "TASK_STAGING", "79ad3a13-b567-4273-ac8c-30378d35a439-S14522")
    running = decode_event((FIX / "operator-event-task-updated-running.asgard.json").read_bytes())
    assert running.task_updated is not None and running.task_updated.state == "TASK_RUNNING"
    assert st.apply(running) == []  # host networking (its inspect says "host"): no OVN endpoint
    # the same update for a task added under that id, with a container status: named from the cache
    raw = json.loads((FIX / "operator-event-task-updated-running.asgard.json").read_text())
    tid = raw["task_updated"]["status"]["task_id"]["value"]
    fid = raw["task_updated"]["framework_id"]["value"]
    st.apply(added(task_record(tid, fid, "a", name="heimdall", network=None, ip=None, container_id=None,
                               state="TASK_STAGING")))  # fmt: skip
    raw["task_updated"]["status"]["container_status"] = {"container_id": {"value": C1}, "network_infos": [
        {"name": "blue", "ip_addresses": [{"ip_address": "10.1.0.5"}]}]}  # fmt: skip
    (ep,) = eps(st.apply(decode_event(json.dumps(raw).encode())))
    assert (ep.name, ep.uid, ep.ips, ep.mac) == ("heimdall", C1, ("10.1.0.5",), None), "its inspect has no MAC on blue"


def test_the_get_state_fixture() -> None:
    st = MesosState(SRC)
    state = decode_event((FIX / "operator-get-state-response.doc.json").read_bytes())
    assert st.apply(state) == []
    assert st.agents == {"628984d0-4213-4140-bcb0-99d7ef46b1df-S0": "myhost"}
    assert st.frameworks["628984d0-4213-4140-bcb0-99d7ef46b1df-0000"].name == "default"
    assert st.tasks == {} and st.endpoints() == []  # its one task is completed (TASK_FINISHED)


def test_the_framed_fixture_stream() -> None:
    from adapters.mesos.streams import RecordIOReader

    st = MesosState(SRC)
    types = []
    for rec in RecordIOReader().feed((FIX / "recordio-stream.framed-real-events.txt").read_bytes()):
        e = decode_event(rec)
        types.append(e.type)
        assert st.apply(e) == []
    assert types == ["TASK_ADDED", "TASK_UPDATED", "HEARTBEAT"]
    assert len(st.tasks) == 2


# ------------------------------------------------------------------ the mapping
def state_with(*tasks: dict[str, Any]) -> MesosState:
    st = MesosState(SRC)
    assert st.apply(subscribed(list(tasks), [framework_info("fw", "web", role="prod")], [agent_info("a1", "node-1")])) == []
    return st


def test_a_task_becomes_one_endpoint_per_named_network() -> None:
    t = task_record("web.1", "fw", "a1", name="web", network="blue", ip="10.1.0.5", container_id=C1,
                    labels={"app": "web", "tier": "front"}, ports=[(80, "http", "tcp"), (53, "DNS", "UDP")])  # fmt: skip
    ni = t["statuses"][0]["container_status"]["network_infos"]
    ni[0]["labels"] = {"labels": [{"key": "tier", "value": "edge"}]}
    ni.append({"name": "red", "ip_addresses": [{"ip_address": "10.2.0.5"}, {"ip_address": "fd00::5"}]})
    ni.append({"ip_addresses": [{"ip_address": "192.0.2.10"}]})  # unnamed (host): no endpoint
    st = state_with(t)
    blue, red = sorted(st.endpoints(), key=lambda e: e.network)
    assert blue == Endpoint(source=SRC, uid=C1, namespace="web", name="web", kind="task", network="blue", node="node-1",
                            ips=("10.1.0.5",), labels={"app": "web", "tier": "edge", LABEL_WORKLOAD: f"mesos:{C1}"},
                            ports=(PortSpec(80, "tcp", "http"), PortSpec(53, "udp", "dns")), state="running")  # fmt: skip
    assert (red.key, red.ips) == (f"red/{C1}", ("10.2.0.5", "fd00::5"))
    for e in (blue, red):
        validate(e)
    st_role = MesosState(SRC, namespace_by="role")
    st_role.apply(subscribed([t], [framework_info("fw", "web", role="prod")]))
    assert {e.namespace for e in st_role.endpoints()} == {"prod"}


def test_the_latest_status_wins_an_unnamed_one_takes_the_requested_name_and_nested_containers_their_root() -> None:
    t = task_record("web.1", "fw", "a1", name="web", network="blue", ip="10.1.0.5", container_id=C1)
    late = task_status("web.1", "a1", "TASK_RUNNING", None, "10.1.0.9", C1)  # no name: TaskInfo's "blue"
    t["statuses"].append(late)
    st = state_with(t)
    (e,) = st.endpoints()
    assert (e.network, e.ips) == ("blue", ("10.1.0.9",))
    nested = task_status("web.1", "a1", "TASK_RUNNING", "blue", "10.1.0.9", C2)
    nested["container_status"]["container_id"]["parent"] = {"value": C1}
    assert st.apply(updated("fw", nested)) == []  # same root, same address: nothing changes


def test_terminal_states_delete_and_every_state_is_known() -> None:
    for state in sorted(TERMINAL):
        st = state_with(task_record("t", "fw", "a1", name="t", network="blue", ip="10.1.0.5", container_id=C1))
        assert st.apply(updated("fw", task_status("t", "a1", state, "blue", "10.1.0.5", C1))) == [Removed(f"blue/{C1}")]
        assert st.endpoints() == [] and st.is_gone("t")
    for state in sorted(NON_TERMINAL - {"TASK_RUNNING"}):
        st = state_with(task_record("t", "fw", "a1", name="t", network="blue", ip="10.1.0.5", container_id=C1))
        (e,) = eps(st.apply(updated("fw", task_status("t", "a1", state, "blue", "10.1.0.5", C1))))
        assert e.state == state.removeprefix("TASK_").lower()
    st = state_with(task_record("t", "fw", "a1", name="t", network="blue", ip="10.1.0.5", container_id=C1))
    gone, bad = st.apply(updated("fw", task_status("t", "a1", "TASK_NAPPING", "blue", "10.1.0.5", C1)))
    assert gone == Removed(f"blue/{C1}") and isinstance(bad, Invalid) and bad.reason == "bad-state"


def test_a_health_update_changes_nothing_and_an_unknown_task_is_named_by_its_id() -> None:
    st = state_with(task_record("t", "fw", "a1", name="t", network="blue", ip="10.1.0.5", container_id=C1))
    health = task_status("t", "a1", "TASK_RUNNING", "blue", "10.1.0.5", C1)
    health["healthy"] = True
    assert st.apply(updated("fw", health)) == []
    (e,) = eps(st.apply(updated("fw", task_status("never-added", "a1", "TASK_RUNNING", "blue", "10.1.0.6", C2))))
    assert (e.name, e.namespace, e.node) == ("never-added", "web", "node-1")


def test_the_docker_executors_inspect_gives_the_mac() -> None:
    t = task_record("t", "fw", "a1", name="t", network="blue", ip="10.1.0.5", container_id=C1,
                    data=docker_inspect_data("blue", "02:42:0A:01:00:05", "10.1.0.5"))  # fmt: skip
    (e,) = state_with(t).endpoints()
    assert e.mac == "02:42:0a:01:00:05"
    for data in ("%%%", base64.b64encode(b"not json").decode(), base64.b64encode(b"[1]").decode(),
                 docker_inspect_data("blue", "01:00:5e:00:00:01")):  # fmt: skip  # garbage or a multicast MAC: none
        t2 = copy.deepcopy(t)
        t2["statuses"][0]["data"] = data
        (e,) = state_with(t2).endpoints()
        assert e.mac is None, data


def test_agents_and_frameworks_change_node_and_namespace() -> None:
    st = state_with(task_record("t", "fw", "a2", name="t", network="blue", ip="10.1.0.5", container_id=C1))
    assert st.endpoints()[0].node == ""
    (e,) = eps(st.apply(ev({"type": "AGENT_ADDED", "agent_added": {"agent": agent_info("a2", "node-2")}})))
    assert e.node == "node-2"
    assert st.apply(ev({"type": "AGENT_ADDED", "agent_added": {"agent": agent_info("a2", "node-2")}})) == []
    (e,) = eps(st.apply(ev({"type": "FRAMEWORK_UPDATED", "framework_updated": {"framework": framework_info("fw", "api")}})))
    assert e.namespace == "api"
    (e,) = eps(st.apply(ev({"type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": "a2"}}})))
    assert e.node == ""
    (e,) = eps(st.apply(ev({"type": "FRAMEWORK_REMOVED", "framework_removed": {"framework_info": {"id": {"value": "fw"}}}})))
    assert e.namespace == "fw", "an unknown framework: its id"
    assert eps(st.set_overrides({"t": ("web.shop", "web")}))[0].namespace == "web.shop"
    assert st.set_overrides({"t": ("web.shop", "web")}) == []


def test_a_task_group_is_one_endpoint_of_its_executors_container() -> None:
    tasks = []
    for i in (1, 2):
        t = task_record(f"g.{i}", "fw", "a1", name=f"g{i}", network="blue", ip="10.1.0.7", container_id=f"{C2[:-1]}{i}",
                        labels={"member": str(i)})  # fmt: skip
        t["statuses"][0]["container_status"]["container_id"]["parent"] = {"value": C1}
        tasks.append(t)
    st = state_with(*tasks)
    (e,) = st.endpoints()
    assert (e.uid, e.name, e.labels["member"]) == (C1, "g1", "1")
    (e,) = eps(st.apply(updated("fw", task_status("g.1", "a1", "TASK_FINISHED", "blue", "10.1.0.7", C1))))
    assert e.name == "g2", "the other task holds the container"


# ------------------------------------------------------------------ hostile input
@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (b"", "bad-json"),
        (b"\xff\xfe", "bad-json"),
        (b'{"a":' + b"[" * 100000, "bad-json"),
        (b"[1]", "bad-field"),
        (b'{"type": 5}', "bad-field"),
        (b'{"type": "TASK_ADDED"}', "missing-field"),
        (b'{"type": "SUBSCRIBED", "subscribed": {"get_state": {"get_tasks": {"tasks": 3}}}}', "bad-field"),
        (b'{"type": "PING"}', "unknown-event"),
    ],
)
def test_records_that_are_not_events(record: bytes, reason: str) -> None:
    with pytest.raises(Invalid) as exc:
        decode_event(record)
    assert exc.value.reason == reason
    assert "\n" not in str(exc.value)


def test_a_bad_task_in_a_snapshot_is_one_invalid_and_a_bad_update_drops_the_endpoint() -> None:
    good = task_record("good", "fw", "a1", name="good", network="blue", ip="10.1.0.5", container_id=C1)
    bad_ip = task_record("bad", "fw", "a1", name="bad", network="blue", ip="10.1.0.300", container_id=C2)
    bad_type = {**good, "task_id": {"value": 7}}
    bad_net = task_record("net", "fw", "a1", name="net", network="blue net", ip="10.1.0.6", container_id=C2[:-1] + "9")
    st = MesosState(SRC)
    bad = st.apply(subscribed([good, bad_ip, bad_type, bad_net]))
    assert sorted(b.reason for b in bad if isinstance(b, Invalid)) == ["bad-field", "bad-ip", "bad-network"]
    assert [e.name for e in st.endpoints()] == ["good"]
    out = st.apply(updated("fw", task_status("good", "a1", "TASK_RUNNING", "blue", "999.1.1.1", C1)))
    assert [type(c).__name__ for c in out] == ["Invalid", "Removed"], "the endpoint it had goes"
    assert st.endpoints() == []
    # a task that cannot be decoded at all, but whose ids can: what it had goes too
    st2 = state_with(good)
    out = st2.apply(added({**good, "labels": "oops"}))
    assert [type(c).__name__ for c in out] == ["Removed", "Invalid"]
