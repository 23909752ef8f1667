"""A Mesos task attached through ``ovn-hub-cni`` as Mesos' ``network/cni`` isolator
attaches it, on the port of the Mesos adapter's endpoint, pinging a Docker container.

Real: the one-host data plane (testkit/dataplane.py), a private dockerd
(testkit/dockerd.py), ``hubd`` with the Mesos adapter (the fake master,
testkit/mesos_fake.py) and the Docker adapter (wrapper network ``dnet``), and
``hubd --role node`` with both glues: Docker wrapper mode and the CNI agent.
The test plays the Mesos agent, in Mesos' order:

1. the master has the task (TASK_ADDED, staging: no container yet);
2. the isolator runs CNI ADD with ``CNI_CONTAINERID`` = the ContainerID and the
   network configuration's ``args["org.apache.mesos"]["network_info"]``, before
   any status of the task reaches the master: the node agent's own endpoint
   (uid = the ContainerID, ``ovn-hub.io/workload=mesos:<ContainerID>``) gets the
   port, OVN allocates its address, the result carries it;
3. the executor's TASK_RUNNING (its container status: that ContainerID, the
   isolator's address) reaches the master: the Mesos adapter's endpoint of the
   same workload wins (one port per workload), its port takes the MAC the
   interface was plugged with, and the agent re-plugs the task onto it;
4. the task and the Docker container ping each other through the hub's router.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core.names import stable_mac
from testkit.cni import conflist, invoke, plugin_conf, plugin_dir
from testkit.dataplane import OneHostOvn
from testkit.dockerd import PrivateDockerd, docker
from testkit.hubd import Hubd
from testkit.mesos_fake import FakeMesosMaster
from testkit.nb import nb_rows, ovs_map, ovs_set
from testkit.wait import sync_wait_until

if os.geteuid() != 0 or not shutil.which("ovs-vswitchd"):
    raise RuntimeError("the CNI tests need root and ovs-vswitchd (make test installs them)")

HUB_ID = "cnimesos"
NODE = "node1"  # the chassis, the Mesos agent's hostname, the Docker adapter's node
WAIT = 30.0


@pytest.fixture
async def master() -> AsyncIterator[FakeMesosMaster]:
    m = FakeMesosMaster(heartbeat=0.5)
    await m.start()
    try:
        yield m
    finally:
        await m.stop()


def ports(host: OneHostOvn) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in nb_rows(host.ovn, "Logical_Switch_Port")}


def iface_ids(host: OneHostOvn) -> dict[str, dict[str, str]]:
    out = json.loads(host.vsctl("--format=json", "--columns=name,external_ids", "list", "Interface"))
    return {r[0]: ovs_map(r[1]) for r in out["data"] if ovs_map(r[1]).get("ovn-hub:owner") == HUB_ID}


def ping_ns(ns: str, ip: str) -> bool:
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "2", "-W", "2", ip], capture_output=True,
                          timeout=30).returncode == 0  # fmt: skip


def start(h: Hubd) -> Hubd:
    h.start()
    try:
        h.wait_ready(60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- {h.dir.name}:\n{h.logtext()[-3000:]}") from None
    return h


async def test_a_mesos_task_attached_through_cni_gets_the_adapters_port_and_pings_a_docker_container(
    dockerd: PrivateDockerd, master: FakeMesosMaster, tmpdir_short: Path
) -> None:
    d = dockerd
    master.add_agent("agent-1", NODE)
    master.add_framework("fw", "shop")
    procs: list[Hubd] = []
    with OneHostOvn(chassis=NODE) as host:
        try:
            hd, nd = tmpdir_short / "hub", tmpdir_short / "node"
            hd.mkdir()
            nd.mkdir()
            sock = str(tmpdir_short / "cni.sock")
            procs.append(Hubd(hd, (
                f'[hub]\nid = "{HUB_ID}"\nstate_dir = "{hd}"\n[ovn]\nnb = "{host.ovn.nb_remote}"\n'
                f'[api]\nlisten = "unix:{hd}/api.sock"\n'
                '[routers.default]\nnetworks = ["mesos/*", "docker/*"]\n'  # the cni switch is the staging one
                f'[adapters.mesos]\ntype = "mesos"\ncluster = "test"\nmasters = ["{master.url}"]\n'
                '[adapters.mesos.networks.blue]\nsubnet = "10.80.0.0/24"\ngateway = "10.80.0.1"\n'
                f'[adapters.docker]\ntype = "docker"\ncluster = "local"\nurl = "{d.url}"\nnode = "{NODE}"\n'
                '[adapters.docker.networks.dnet]\nsubnet = "10.70.0.0/24"\ngateway = "10.70.0.1"\n')))  # fmt: skip
            await asyncio.to_thread(start, procs[0])
            procs.append(Hubd(nd, (
                f'[hub]\nid = "{HUB_ID}"\nstate_dir = "{nd}"\n[ovn]\nnb = "{host.ovn.nb_remote}"\n'
                f'[node]\ndocker = "{d.url}"\novs = "{host.db_remote}"\nchassis = "{NODE}"\n'
                f'switch_netns = "{host.sw_ns}"\nresync_interval = 5\nlisten = "unix:{nd}/node.sock"\n'
                f'[cni]\nenabled = true\nsocket = "{sock}"\nhub_api = "unix:{hd}/api.sock"\n'
                f'hub_token_file = "{hd}/ingest.token"\nresync_interval = 2\n'
                '[cni.networks.blue]\nsubnet = "10.80.0.0/24"\ngateway = "10.80.0.1"\n'), args=("--role", "node")))  # fmt: skip
            await asyncio.to_thread(start, procs[1])

            # a Docker container on the wrapper network dnet, plugged by the node with OVN's address
            web = await asyncio.to_thread(docker, d, "run", "-d", "--name", "web", "--network", "none", "--label",
                                          "ovn-hub.network=dnet", "busybox:hub", "sleep", "3600")  # fmt: skip
            web_port = f"docker/local/dnet/{web}"

            def web_up() -> bool:
                row = ports(host).get(web_port)
                return row is not None and row["up"] is True

            await asyncio.to_thread(sync_wait_until, web_up, WAIT, "the Docker container's port up")
            web_ip = ovs_set((await asyncio.to_thread(ports, host))[web_port]["dynamic_addresses"])[0].split()[1]

            # 1. the master has the task, staging
            tid = master.launch("fw", "api", network="blue", ip=None, state="TASK_STAGING", labels={"app": "api"})
            # 2. the isolator: CNI ADD for the ContainerID, NetworkInfo in args["org.apache.mesos"]
            cid = str(uuid.uuid4())
            ns = f"{host.tag}-m1"
            await asyncio.to_thread(subprocess.run, ["ip", "netns", "add", ns], check=True, timeout=10)
            host.namespaces.append(ns)
            cni_path = await asyncio.to_thread(plugin_dir, tmpdir_short / "bin")
            network_info = {"name": "blue", "labels": {"labels": [{"key": "tier", "value": "api"}]}}
            conf = plugin_conf(conflist("blue", "blue", sock, timeout=25),
                               args={"org.apache.mesos": {"network_info": network_info}})  # fmt: skip
            rc, res, err = await asyncio.to_thread(invoke, cni_path, "ADD", conf, container_id=cid,
                                                   netns=f"/var/run/netns/{ns}", ifname="eth0")  # fmt: skip
            assert rc == 0 and res is not None, (res, err, procs[1].logtext()[-2000:])
            ip = res["ips"][0]["address"].split("/")[0]
            mac = res["interfaces"][1]["mac"]
            assert mac == stable_mac(f"mesos:{cid}") and res["ips"][0]["gateway"] == "10.80.0.1"
            staging = f"cni/{NODE}/blue/{cid}"
            row = (await asyncio.to_thread(ports, host))[staging]
            assert ovs_map(row["external_ids"])["ovn-hub:uid"] == cid

            # 3. the executor's first status reaches the master: the Mesos adapter's endpoint wins
            master.update(tid, "TASK_RUNNING", network="blue", ip=ip, container_id=cid)
            task_port = f"mesos/test/blue/{cid}"

            def moved() -> bool:
                rows = ports(host)
                ifaces = [ids for ids in iface_ids(host).values() if ids.get("ovn-hub:via") == "cni"]
                return (staging not in rows and task_port in rows and rows[task_port]["up"] is True
                        and [i.get("iface-id") for i in ifaces] == [task_port])  # fmt: skip

            await asyncio.to_thread(sync_wait_until, moved, WAIT, "the task on the Mesos adapter's port, plugged")
            row = (await asyncio.to_thread(ports, host))[task_port]
            assert ovs_set(row["addresses"]) == [f"{mac} {ip}"], row["addresses"]
            ids = ovs_map(row["external_ids"])
            assert (ids["ovn-hub:name"], ids["ovn-hub:namespace"], ids["ovn-hub:uid"]) == ("api", "shop", cid)
            await asyncio.to_thread(host.ovn.nbctl, f"--timeout={int(WAIT)}", "--wait=hv", "sync")

            # 4. through the hub's router, both ways
            assert await asyncio.to_thread(ping_ns, ns, web_ip), "the Mesos task -> the Docker container"
            pong = await asyncio.to_thread(subprocess.run, ["docker", "-H", d.url, "exec", "web", "ping", "-c", "2",
                                                            "-W", "2", ip], capture_output=True, timeout=30)  # fmt: skip
            assert pong.returncode == 0, "the Docker container -> the Mesos task"
            rc, _res, err = await asyncio.to_thread(invoke, cni_path, "DEL", conf, container_id=cid,
                                                    netns=f"/var/run/netns/{ns}", ifname="eth0")  # fmt: skip
            assert rc == 0, err
        finally:
            for h in reversed(procs):
                h.close()
            await asyncio.to_thread(subprocess.run, ["docker", "-H", d.url, "rm", "-f", "web"], capture_output=True,
                                    timeout=60)  # fmt: skip
