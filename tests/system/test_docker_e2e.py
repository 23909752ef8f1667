"""hubd + Docker adapter + a real private dockerd + a real OVN NB.

Containers on two user-defined networks become logical ports carrying the
containers' real IP and MAC; stops, engine restarts and changes made while
hubd was down all converge.  The networks are Docker bridge networks, which the
adapter maps only with ``mirror_bridge_networks = true`` (set here: this tests
the NB side of mirroring; OVN never carries such a network's packets, so its
ports stay down).  The OVN Hub driver's own networks, whose ports do come up:
tests/system/test_docker_driver.py.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

from hub.sandbox import OvnSandbox
from testkit.dockerd import PrivateDockerd, docker
from testkit.hubd import Hubd
from testkit.nb import nb_rows, ovs_map, ovs_set
from testkit.wait import sync_wait_until


def attachments(d: PrivateDockerd, name: str) -> dict[str, tuple[str, str]]:
    nets = json.loads(docker(d, "inspect", "--format", "{{json .NetworkSettings.Networks}}", name))
    return {n: (v["IPAddress"], v["MacAddress"]) for n, v in nets.items()}


def cid(d: PrivateDockerd, name: str) -> str:
    return docker(d, "inspect", "--format", "{{.Id}}", name)


def nb_ports(ovn: OvnSandbox) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in nb_rows(ovn, "Logical_Switch_Port")}


def expected(d: PrivateDockerd, names: list[str]) -> dict[str, str]:
    """port name → "MAC IP" for running containers."""
    out = {}
    for n in names:
        for net, (ip, mac) in attachments(d, n).items():
            out[f"docker/local/{net}/{cid(d, n)}"] = f"{mac} {ip}"
    return out


def converged(ovn: OvnSandbox, want: dict[str, str]) -> bool:
    got = {n: ovs_set(r["addresses"]) for n, r in nb_ports(ovn).items()}
    return got == {n: [a] for n, a in want.items()}


def hub_config(ovn: OvnSandbox, workdir: Path, d: PrivateDockerd) -> str:
    return (
        f'[hub]\nid = "hubd-e2e"\nstate_dir = "{workdir}"\n[ovn]\nnb = "{ovn.nb_remote}"\n'
        f'[api]\nlisten = "unix:{workdir}/api.sock"\n'
        f'[adapters.docker]\ntype = "docker"\ncluster = "local"\nurl = "{d.url}"\nnode = "node1"\n'
        "mirror_bridge_networks = true\n"
    )


def test_containers_become_ports_and_converge(
    dockerd: PrivateDockerd, ovn: OvnSandbox, tmpdir_short: Path, hubd_factory: Any
) -> None:
    d = dockerd
    docker(d, "network", "create", "--subnet", "10.61.0.0/24", "e2e-a")
    docker(d, "network", "create", "--subnet", "10.62.0.0/24", "e2e-b")
    try:
        docker(d, "run", "-d", "--name", "c1", "--restart", "always", "--network", "e2e-a", "busybox:hub", "sleep", "3600")
        docker(d, "run", "-d", "--name", "c2", "--network", "e2e-a", "busybox:hub", "sleep", "3600")
        docker(d, "run", "-d", "--name", "c3", "--network", "e2e-b", "busybox:hub", "sleep", "3600")
        docker(d, "run", "-d", "--name", "hostnet", "--network", "host", "busybox:hub", "sleep", "3600")
        h: Hubd = hubd_factory(hub_config(ovn, tmpdir_short, d))
        h.wait_ready(60)
        want = expected(d, ["c1", "c2", "c3"])
        assert len(want) == 3
        # at READY the ports are there with the real IP and MAC, on two switches
        assert converged(ovn, want), (nb_ports(ovn).keys(), want)
        switches = {s["name"]: s for s in nb_rows(ovn, "Logical_Switch")}
        assert set(switches) == {"docker/local/e2e-a", "docker/local/e2e-b"}
        assert ovs_map(switches["docker/local/e2e-a"]["other_config"])["subnet"] == "10.61.0.0/24"
        port = nb_ports(ovn)[f"docker/local/e2e-a/{cid(d, 'c1')}"]
        assert ovs_map(port["options"]) == {"requested-chassis": "node1"}
        assert ovs_map(port["external_ids"])["ovn-hub:name"] == "c1"

        # stop one → its port goes
        docker(d, "stop", "-t", "1", "c2")
        del want[f"docker/local/e2e-a/{cid(d, 'c2')}"]
        sync_wait_until(lambda: converged(ovn, want), 30, "c2's port deleted")

        # a container connected to a second network gets a second port
        docker(d, "run", "-d", "--name", "c5", "--network", "e2e-b", "busybox:hub", "sleep", "3600")
        sync_wait_until(lambda: converged(ovn, expected(d, ["c1", "c3", "c5"])), 30, "c5 programmed")
        # the adapter's own lag (event timestamp -> emitted) is measured per event
        metrics = subprocess.run(["curl", "-s", "--unix-socket", str(tmpdir_short / "api.sock"), "http://h/metrics"],
                                 capture_output=True, text=True, check=True, timeout=30).stdout  # fmt: skip
        lag = re.search(r'ovn_hub_adapter_event_lag_seconds_count\{adapter="docker"\} (\d+)', metrics)
        assert lag is not None and int(float(lag.group(1))) >= 2, metrics[-2000:]

        # restart the engine while hubd runs: c1 (restart=always) comes back, the others stop
        d.restart()
        sync_wait_until(lambda: docker(d, "inspect", "--format", "{{.State.Running}}", "c1") == "true", 60, "c1 restarted")
        sync_wait_until(lambda: converged(ovn, expected(d, ["c1"])), 60, "converged after dockerd restart")
        docker(d, "start", "c3")
        sync_wait_until(lambda: converged(ovn, expected(d, ["c1", "c3"])), 30, "adapter follows events after restart")

        # changes while hubd is down
        h.signal(signal.SIGTERM)
        assert h.wait(30) == 0
        gone = f"docker/local/e2e-b/{cid(d, 'c3')}"
        docker(d, "rm", "-f", "c3")
        docker(d, "run", "-d", "--name", "c4", "--network", "e2e-b", "busybox:hub", "sleep", "3600")
        assert gone in nb_ports(ovn)
        h2: Hubd = hubd_factory(hub_config(ovn, tmpdir_short, d))
        h2.wait_ready(60)
        assert converged(ovn, expected(d, ["c1", "c4"])), nb_ports(ovn).keys()
        # the clean stop wrote the port cache: NB rows unchanged since were not read again
        nb = json.loads(h2.ctl("status", "--json").stdout)["nb"]
        assert (nb["ports_from_cache"], nb["ports_read"]) == (2, 0), nb
        assert "ports loaded at connect: 2 from the restart cache, 0 read from NB" in h2.ctl("status").stdout
        rows = json.loads(h2.ctl("endpoints", "--json").stdout)
        assert sorted(r["name"] for r in rows) == ["c1", "c4"]
        assert all(r["programmed"] and r["node"] == "node1" for r in rows)
    finally:
        subprocess.run(["docker", "-H", d.url, "rm", "-f", "c1", "c2", "c3", "c4", "c5", "hostnet"], capture_output=True, timeout=120)
        subprocess.run(["docker", "-H", d.url, "network", "rm", "e2e-a", "e2e-b"], capture_output=True, timeout=60)
