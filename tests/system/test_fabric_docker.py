"""A Docker wrapper container and a Kubernetes pod on two chassis: one fabric, proven by packets.

Everything real but the Kubernetes API server: a private dockerd
(testkit/dockerd.py) runs a busybox container with ``--network none --label
ovn-hub.network=blue``; the fake API server (testkit/k8s_fake.py, real wire
protocol) holds pod ``db-0`` on the other chassis; one ``hubd`` subprocess runs
both adapters and the fabric (``[routers.default] networks = ["*"]``, DNS);
``hubd --role node`` plugs the container into chassis 1's br-int with the
address OVN allocated; the pod is a network namespace plugged into chassis 2
(testkit/chassis.py: two userspace chassis joined by Geneve), as a CNI plugin
would have plugged it.

The container reaches the pod across the hub's router and the tunnel, by
address and by its DNS name ``db-0.default.k8s.test.hub`` (OVN answers at the
container's gateway), and the pod finds the container by
``web.default.docker.local.hub``: a record the hub writes only once northd has
allocated the container's address.  Bounded waits only; every process started
here is stopped by pid, every namespace deleted (with its veths).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from core.model import Endpoint, Source
from core.names import lsp_name
from hub.sandbox import _which
from testkit.chassis import TwoChassisOvn
from testkit.dockerd import PrivateDockerd, docker
from testkit.hubd import Hubd
from testkit.k8s_fake import FakeKubeApi
from testkit.nb import nb_rows, ovs_map
from testkit.wait import sync_wait_until
from tests.unit.test_k8s_adapter import mkpod

_MISSING = [
    b
    for b in ("ovs-vswitchd", "ovn-controller", "ip", "ping", "ethtool", "nsenter")
    if not (shutil.which(b) or shutil.which(b, path="/usr/sbin:/sbin"))
]
if os.geteuid() != 0 or _MISSING:  # make test installs these and runs as root: a missing one is an error
    raise RuntimeError(f"the fabric tests need root and {_MISSING or 'root'} (make test installs them)")

K8S = Source("k8s", "test")
NODES = ("docker-1", "worker-2")  # the chassis' names: the container's node (adapter option) and the pod's nodeName
BLUE_GW, POD_GW, POD_IP = "10.70.0.1", "10.244.0.1", "10.244.0.5"
POD_NAME, WEB_NAME = "db-0.default.k8s.test.hub", "web.default.docker.local.hub"
WAIT = 30.0  # upper bound of every control-plane wait
BUSYBOX = "/bin/busybox"


def hub_config(workdir: Path, nb: str, d: PrivateDockerd, kubeconfig: Path, c1: str) -> str:
    return (
        f'[hub]\nid = "fabdock"\nstate_dir = "{workdir}"\n[ovn]\nnb = "{nb}"\n'
        f'[api]\nlisten = "unix:{workdir}/api.sock"\n'
        f'[adapters.docker]\ntype = "docker"\ncluster = "local"\nurl = "{d.url}"\nnode = "{c1}"\n'
        f'[adapters.docker.networks.blue]\nsubnet = "10.70.0.0/24"\ngateway = "{BLUE_GW}"\n'
        f'[adapters.k8s]\ntype = "k8s"\ncluster = "test"\nkubeconfig = "{kubeconfig}"\npod_cidr = "10.244.0.0/16"\n'
        '[routers.default]\nnetworks = ["*"]\n'
    )


def node_config(workdir: Path, nb: str, d: PrivateDockerd, pair: TwoChassisOvn) -> str:
    c1 = pair.chassis[0]
    return (
        f'[hub]\nid = "fabdock"\nstate_dir = "{workdir}"\n[ovn]\nnb = "{nb}"\n'
        f'[node]\ndocker = "{d.url}"\novs = "{c1.db_remote}"\nchassis = "{c1.name}"\nswitch_netns = "{c1.ns}"\n'
    )


def pod_endpoint(pod: dict[str, Any]) -> Endpoint:
    """The Endpoint the k8s adapter makes of ``pod`` (same port name and derived MAC)."""
    meta = pod["metadata"]
    return Endpoint(source=K8S, uid=meta["uid"], namespace=meta["namespace"], name=meta["name"], kind="pod",
                    network="default", node=pod["spec"]["nodeName"], ips=(pod["status"]["podIP"],),
                    labels=dict(meta.get("labels", {})))  # fmt: skip


def in_web(d: PrivateDockerd, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "-H", d.url, "exec", "web", *argv], capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def dns_records(pair: TwoChassisOvn) -> dict[str, str]:
    return {k: v for r in nb_rows(pair.ovn, "DNS") for k, v in ovs_map(r["records"]).items()}


def port_of(pair: TwoChassisOvn, uid: str) -> dict[str, Any] | None:
    rows = nb_rows(pair.ovn, "Logical_Switch_Port")
    return next((r for r in rows if ovs_map(r["external_ids"]).get("ovn-hub:uid") == uid), None)


def start(workdir: Path, config: str, *args: str) -> Hubd:
    workdir.mkdir()
    h = Hubd(workdir, config, args=args)
    h.start()
    try:
        h.wait_ready(60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- log of {workdir.name}:\n{h.logtext()[-3000:]}") from None
    return h


def scenario(d: PrivateDockerd, pods: dict[str, dict[str, Any]], kubeconfig: Path, root: Path) -> None:
    pair = TwoChassisOvn(root / "ovn", chassis_names=NODES)
    hubds: list[Hubd] = []
    try:
        pair.start()
        c1, c2 = pair.chassis_names
        nb = pair.nb_remote
        hubds.append(start(root / "hub", hub_config(root / "hub", nb, d, kubeconfig, c1)))
        hubds.append(start(root / "node", node_config(root / "node", nb, d, pair), "--role", "node"))

        # the pod: its port from the hub (requested-chassis = its node), a netns on chassis 2 as a CNI would plug
        pod = pod_endpoint(pods["db-0"])
        def has_port() -> bool:
            return any(r["name"] == lsp_name(pod) for r in nb_rows(pair.ovn, "Logical_Switch_Port"))

        sync_wait_until(has_port, WAIT, "the hub's port for db-0")
        pod_ns = pair.add_port(1, pod, prefix=16, gateway=POD_GW)
        pair.wait_up(lsp_name(pod), WAIT)

        # the container: wrapper mode, its address from OVN's IPAM, plugged by the node agent on chassis 1
        cid = docker(d, "run", "-d", "--name", "web", "--network", "none", "--label", "ovn-hub.network=blue",
                     "--dns", BLUE_GW, "busybox:hub", "sleep", "3600")  # fmt: skip
        sync_wait_until(lambda: (p := port_of(pair, cid)) is not None and p["up"] is True, WAIT, "web plugged and up")
        web_ip = in_web(d, "ip", "-o", "-4", "addr", "show", "eth0").stdout.split()[3].split("/")[0]
        assert web_ip.startswith("10.70.0.") and web_ip != BLUE_GW, web_ip
        # both names are in OVN's DNS: the container's only once the hub followed northd's allocation
        want = {POD_NAME: POD_IP, WEB_NAME: web_ip}
        sync_wait_until(lambda: want.items() <= dns_records(pair).items(), WAIT, f"DNS records {want}")
        pair.ovn.nbctl(f"--timeout={int(WAIT)}", "--wait=hv", "sync")  # both chassis installed the flows
        web_port = (port_of(pair, cid) or {})["name"]
        assert (pair.bound_chassis(web_port), pair.bound_chassis(lsp_name(pod))) == (c1, c2)

        # container -> pod by address: routed (ttl 63), Geneve-encapsulated on chassis 1, decapsulated on 2
        push0, _ = pair.chassis[0].tunnel_flow_packets()
        _, pop0 = pair.chassis[1].tunnel_flow_packets()
        res = in_web(d, "ping", "-c", "3", "-W", "2", POD_IP)
        assert res.returncode == 0 and "ttl=63" in res.stdout, res.stdout + res.stderr
        pushed = pair.chassis[0].tunnel_flow_packets()[0] - push0
        popped = pair.chassis[1].tunnel_flow_packets()[1] - pop0
        # a datapath flow does not count the packet whose upcall made it: 2 of the 3 echoes at least
        assert pushed >= 2 and popped >= 2, (pushed, popped)

        # ... and by the pod's DNS name, asked of the container's gateway (A only: OVN 23.03 leaves AAAA unanswered)
        res = in_web(d, "nslookup", "-type=a", POD_NAME, BLUE_GW)
        assert f"Address: {POD_IP}" in res.stdout, res.stdout + res.stderr
        res = in_web(d, "ping", "-4", "-c", "2", "-W", "2", POD_NAME)  # resolv.conf: --dns, the gateway
        assert res.returncode == 0 and f"({POD_IP})" in res.stdout, res.stdout + res.stderr

        # the pod finds the container by name at its own gateway, and reaches it
        res = subprocess.run([_which("ip"), "netns", "exec", pod_ns, BUSYBOX, "nslookup", "-type=a", WEB_NAME, POD_GW],
                             capture_output=True, text=True, timeout=15)  # fmt: skip
        assert f"Address: {web_ip}" in res.stdout, res.stdout + res.stderr
        assert pair.ping(pod_ns, web_ip), "db-0 (chassis 2) -> web (chassis 1)"
    finally:
        try:
            subprocess.run(["docker", "-H", d.url, "rm", "-f", "web"], capture_output=True, timeout=60)
            if len(hubds) == 2:  # the node unplugs it first: a SIGTERM amid its OVS transaction costs it 15 s
                plugged = ("--bare", "--columns=name", "find", "Interface", 'external_ids:"ovn-hub:owner"=fabdock')
                with contextlib.suppress(AssertionError):
                    sync_wait_until(lambda: not pair.chassis[0].vsctl(*plugged).strip(), 10, "web unplugged")
            for h in reversed(hubds):
                h.close()
        finally:
            pair.stop()


async def test_a_docker_container_reaches_a_kubernetes_pod_on_the_other_chassis_by_name(
    dockerd: PrivateDockerd, fake: FakeKubeApi, tmpdir_short: Path
) -> None:
    fake.add("Namespace", {"metadata": {"name": "default"}})
    pods = {"db-0": fake.add("Pod", mkpod("db-0", POD_IP, node=NODES[1]))}
    kubeconfig = fake.write_kubeconfig(tmpdir_short / "kubeconfig")
    # the blocking part runs in a thread: this loop keeps serving the fake API to hubd's k8s adapter
    await asyncio.to_thread(scenario, dockerd, pods, kubeconfig, tmpdir_short)
