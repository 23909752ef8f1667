"""A Marathon VIP by packets: the fake master and Marathon (testkit/mesos_fake.py) →
a real ``hubd`` with the Mesos adapter (Marathon as its second source) and a static
source standing in for a container on another network → real NB → ovn-northd →
ovn-controller → ovs-vswitchd (userspace datapath) → network namespaces standing
in for the tasks and the container (testkit/dataplane.py).

The app ``/shop/web`` has the named VIP ``/web:80`` (its address allocated from the
adapter's ``vip_cidr``) on container port 8080; two tasks on the Mesos network
``tasks`` (10.60.0.0/24) each run a TCP server answering with the task's name.
The container, on ``clients`` (10.61.0.0/24), reaches the VIP through the hub's
router (``[routers.default]``: its load-balancer group carries the VIP's balancer),
and finds it by its OVN DNS name ``web.marathon.mesos.test.hub`` (the app's tasks answer
``web.shop.mesos.test.hub``).  A killed task
leaves the balancer (Mesos' TASK_KILLED, before Marathon's relist), and the
other task answers.  Bounded waits; data plane synchronised with ``ovn-nbctl
--wait=hv sync``."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.model import Endpoint, Network, Source, encode
from core.names import lsp_name
from hub.sandbox import _which
from testkit.dataplane import OneHostOvn
from testkit.hubd import Hubd
from testkit.mesos_fake import FakeMarathon, FakeMesosMaster
from testkit.nb import nb_rows, ovs_map
from testkit.wait import wait_until
from tests.system.test_dataplane_k8s import ask, hv_sync, tcp_servers

_MISSING = [
    b
    for b in ("ovs-vswitchd", "ovn-controller", "ip", "ping", "ethtool")
    if not (shutil.which(b) or shutil.which(b, path="/usr/sbin:/sbin"))
]
if os.geteuid() != 0 or _MISSING:  # make test installs these and runs as root: a missing one is an error
    raise RuntimeError(f"the data-plane tests need root and {_MISSING or 'root'} (make test installs them)")

NODE = "mesos-agent-1"  # the agent's hostname = the chassis (the hub writes requested-chassis=<node>)
MESOS, STATIC = Source("mesos", "test"), Source("static", "lab")
TASKS_GW, CLIENTS_GW = "10.60.0.1", "10.61.0.1"
BUSYBOX = "/bin/busybox"
WAIT = 30.0
CIDS = {"web-a": "aaaaaaaa-0000-4000-8000-000000000001", "web-b": "bbbbbbbb-0000-4000-8000-000000000002"}
IPS = {"web-a": "10.60.0.11", "web-b": "10.60.0.12"}


@pytest.fixture
def host() -> Iterator[OneHostOvn]:
    with OneHostOvn(chassis=NODE) as h:
        yield h


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[FakeMesosMaster, FakeMarathon]]:
    master = FakeMesosMaster(heartbeat=0.5)
    await master.start()
    marathon = FakeMarathon(master)
    await marathon.start()
    try:
        yield master, marathon
    finally:
        await marathon.stop()
        await master.stop()


async def nslookup(ns: str, name: str) -> str:
    """busybox's answer to an A query at the container's gateway (only A: see test_fabric_dataplane)."""
    res = await asyncio.to_thread(
        subprocess.run, [_which("ip"), "netns", "exec", ns, BUSYBOX, "nslookup", "-type=a", name, CLIENTS_GW],
        capture_output=True, text=True, timeout=15)  # fmt: skip
    return res.stdout + res.stderr


async def lbs(host: OneHostOvn) -> list[dict[str, Any]]:
    return await asyncio.to_thread(nb_rows, host.ovn, "Load_Balancer")


async def test_a_marathon_vip_answers_from_a_task_and_from_another_when_it_is_killed(
    host: OneHostOvn, cluster: tuple[FakeMesosMaster, FakeMarathon], tmpdir_short: Path, hubd_factory: Any
) -> None:
    master, marathon = cluster
    master.add_agent("agent-1", NODE)
    marathon.add_app("/shop/web", network="tasks", container_port=8080, vips={"VIP_0": "/web:80"})
    tids = {name: marathon.start_task("/shop/web", IPS[name], container_id=CIDS[name]) for name in CIDS}
    client = Endpoint(source=STATIC, uid="client", namespace="default", name="client", kind="container",
                      network="clients", node=NODE, ips=("10.61.0.5",))  # fmt: skip
    objects = tmpdir_short / "objects.jsonl"
    objects.write_bytes(encode(Network(source=STATIC, name="clients", subnets=("10.61.0.0/24",), gateway=CLIENTS_GW))
                        + b"\n" + encode(client) + b"\n")  # fmt: skip
    h: Hubd = hubd_factory(
        f'[hub]\nid = "mesos-dp"\nstate_dir = "{tmpdir_short}"\n[ovn]\nnb = "{host.ovn.nb_remote}"\n'
        f'[api]\nlisten = "unix:{tmpdir_short}/api.sock"\n'
        '[routers.default]\nnetworks = ["*"]\n'
        f'[adapters.mesos]\ntype = "mesos"\ncluster = "test"\nmasters = ["{master.url}"]\n'
        f'[adapters.mesos.networks.tasks]\nsubnet = "10.60.0.0/24"\ngateway = "{TASKS_GW}"\n'
        f'[adapters.mesos.marathon]\nurls = ["{marathon.url}"]\nvip_cidr = "10.99.0.0/24"\ndebounce = 0.05\n'
        f'[adapters.vms]\ntype = "static"\ncluster = "lab"\npath = "{objects}"\npoll_interval = 0.2\n'
    )
    await asyncio.to_thread(h.wait_ready, WAIT)

    async def vip() -> tuple[str, str]:
        (lb,) = [r for r in await lbs(host) if r["name"].startswith("mesos/test/svc/")]
        ((key, backends),) = ovs_map(lb["vips"]).items()
        return key, backends

    async def backends_are(want: str) -> bool:
        try:
            return (await vip())[1] == want
        except ValueError:
            return False

    await wait_until(lambda: backends_are("10.60.0.11:8080,10.60.0.12:8080"), WAIT, "the VIP's balancer with both tasks")
    vip_key, _ = await vip()
    vip_ip = vip_key.rsplit(":", 1)[0]
    assert vip_key.endswith(":80") and vip_ip.startswith("10.99.0."), vip_key
    rows = json.loads((await asyncio.to_thread(h.ctl, "endpoints", "--json")).stdout)
    tasks = {r["name"] for r in rows if r["source"] == "mesos/test"}
    assert tasks == {"web"} and {r["namespace"] for r in rows if r["source"] == "mesos/test"} == {"shop"}

    # plug the tasks and the container in (netns standing in for them), each routed through its gateway
    eps = {name: Endpoint(source=MESOS, uid=CIDS[name], namespace="shop", name="web", kind="task", network="tasks",
                          node=NODE, ips=(IPS[name],)) for name in CIDS}  # fmt: skip
    ns = {name: await asyncio.to_thread(host.add_port, ep) for name, ep in eps.items()}
    ns["client"] = await asyncio.to_thread(host.add_port, client)
    for name, gw in (("web-a", TASKS_GW), ("web-b", TASKS_GW), ("client", CLIENTS_GW)):
        await asyncio.to_thread(host.ns_run, ns[name], "ip", "route", "add", "default", "via", gw, "dev", "eth0")
    for ep in (*eps.values(), client):
        await asyncio.to_thread(host.wait_up, lsp_name(ep), WAIT)

    with tcp_servers({name: (ns[name], (8080,)) for name in CIDS}):
        await hv_sync(host)
        # OVN's DNS answers at the container's gateway: the named VIP /web (namespace "marathon", the
        # root of its path), and the app's tasks by the app's name in its group (every instance)
        vip_answer = await nslookup(ns["client"], "web.marathon.mesos.test.hub")
        assert f"Address: {vip_ip}" in vip_answer, vip_answer
        tasks_answer = await nslookup(ns["client"], "web.shop.mesos.test.hub")
        assert all(f"Address: {ip}" in tasks_answer for ip in IPS.values()), tasks_answer
        # every connection to the VIP is answered by a task, and both tasks answer over 40
        answers = await ask(ns["client"], vip_ip, 80, n=40)
        assert set(answers) == {"web-a", "web-b"}, answers
        first = answers[0]
        assert first is not None
        other = next(n for n in CIDS if n != first)

        # the task that answered first is killed: the balancer follows, the other task answers
        marathon.kill_task(tids[first])
        await wait_until(lambda: backends_are(f"{IPS[other]}:8080"), WAIT, f"{first} out of the VIP")

        async def port_gone() -> bool:
            return lsp_name(eps[first]) not in {r["name"] for r in await asyncio.to_thread(nb_rows, host.ovn,
                                                                                         "Logical_Switch_Port")}  # fmt: skip

        await wait_until(port_gone, WAIT, f"{first}'s port deleted")
        await hv_sync(host)
        answers = await ask(ns["client"], vip_ip, 80, n=10)
        assert answers == [other] * 10, answers

    status = json.loads((await asyncio.to_thread(h.ctl, "status", "--json")).stdout)
    assert status["ready"] and all(a["restarts"] == 0 for a in status["adapters"]), status
