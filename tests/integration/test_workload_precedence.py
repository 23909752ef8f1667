"""One port per workload, against a real ovsdb-server: a Mesos Docker-containerizer
task is seen by the Docker adapter (container ``mesos-<ContainerID>``, normalized
from a real inspect) and by the Mesos adapter (its TASK_UPDATED normalized); NB
holds one Logical_Switch_Port for it, the Mesos one, and Docker's comes back when
the task leaves the Mesos adapter's view (core/nb/desired.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest

from adapters.docker.normalize import normalize_container
from adapters.mesos.normalize import MesosState, decode_event
from core.model import LABEL_WORKLOAD, Delete, Endpoint, Network, Snapshot, Source
from core.names import lsp_name
from core.nb import Programmer
from hub.sandbox import OvnSandbox
from testkit.mesos_fake import task_record, task_status
from testkit.nb import nb_rows
from tests.conftest import FIXTURES_DIR

DOCKER, MESOS = Source("docker", "node1"), Source("mesos", "prod")
CID = "3b4d62e0-e955-4483-b1de-d48f127491ce"
IP = "10.50.0.7"


@pytest.fixture
async def prog(ovn: OvnSandbox) -> AsyncIterator[Programmer]:
    p = Programmer(ovn.nb_remote, "wl")
    await p.start()
    task = asyncio.create_task(p.run())
    try:
        yield p
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await p.close()


def docker_view() -> Endpoint:
    """The Docker adapter's endpoint of the task's container (a real inspect, renamed as Mesos names it)."""
    inspect = json.loads((FIXTURES_DIR / "docker" / "container-inspect.api-v1.24-doc.json").read_text())
    inspect["Name"] = f"/mesos-{CID}"
    inspect["NetworkSettings"]["Networks"] = {"blue": {"IPAddress": IP, "MacAddress": "02:42:0a:32:00:07"}}
    (ep,) = normalize_container(inspect, DOCKER, node="node1")
    assert ep.labels[LABEL_WORKLOAD] == f"mesos:{CID}"
    return ep


def mesos_view() -> Endpoint:
    """The Mesos adapter's endpoint of the same task (TASK_ADDED + a RUNNING TASK_UPDATED)."""
    st = MesosState(MESOS)
    task = task_record("web.1", "fw-1", "agent-1", name="web", network="blue", ip=None, container_id=None,
                       state="TASK_STAGING")  # fmt: skip
    st.apply(decode_event(json.dumps({"type": "TASK_ADDED", "task_added": {"task": task}}).encode()))
    assert st.endpoints() == []  # no container known yet
    upd = {"framework_id": {"value": "fw-1"}, "state": "TASK_RUNNING",
           "status": task_status("web.1", "agent-1", "TASK_RUNNING", "blue", IP, CID)}  # fmt: skip
    st.apply(decode_event(json.dumps({"type": "TASK_UPDATED", "task_updated": upd}).encode()))
    (ep,) = st.endpoints()
    return ep


async def lsps(ovn: OvnSandbox) -> set[str]:
    return {r["name"] for r in await asyncio.to_thread(nb_rows, ovn, "Logical_Switch_Port")}


async def test_one_port_for_a_task_docker_and_mesos_both_see(ovn: OvnSandbox, prog: Programmer) -> None:
    d, m = docker_view(), mesos_view()
    assert d.ips == m.ips == (IP,) and m.uid == CID
    net = Network(source=DOCKER, name="blue", subnets=("10.50.0.0/24",))
    prog.apply(Snapshot(source=DOCKER, objects=(net, d)))
    await prog.flush(10)
    assert await lsps(ovn) == {lsp_name(d)}
    prog.apply(Snapshot(source=MESOS, objects=(m,)))
    await prog.flush(10)
    assert await lsps(ovn) == {lsp_name(m)}, "the orchestrator's port replaces Docker's"
    assert [ep.source for ep, _row in prog.endpoints()] == [MESOS]
    prog.apply(Delete(source=MESOS, kind="endpoint", key=m.key))
    await prog.flush(10)
    assert await lsps(ovn) == {lsp_name(d)}, "Docker's view comes back when the Mesos adapter's goes"
    prog.apply(Snapshot(source=MESOS, objects=(m,)))  # and yields again
    await prog.flush(10)
    assert await lsps(ovn) == {lsp_name(m)}
