"""ovn-hub-cni against a real node agent, invoked as SPEC.md's runtime does.

The one-host data plane (testkit/dataplane.py: NB+SB+northd, ovs-vswitchd
netdev in a netns of its own, ovn-controller), a real ``hubd`` (with a router,
so the gateway answers) and ``hubd --role node`` with ``[cni]`` (wrapper mode
off); network namespaces made by the test stand in for the runtime's sandboxes.
The agent is the source ``cni/node1``: its endpoints reach the hub through the
authenticated ingest endpoint of the admin API.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.cni import conflist, invoke, plugin_conf, plugin_dir
from testkit.dataplane import OneHostOvn
from testkit.hubd import Hubd
from testkit.nb import nb_rows, ovs_map
from testkit.wait import sync_wait_until

if os.geteuid() != 0 or not shutil.which("ovs-vswitchd"):
    raise RuntimeError("the CNI tests need root and ovs-vswitchd (make test installs them)")

ROOT = Path(__file__).resolve().parents[2]
HUB_ID = "cnit"
ENV = {"PYTHONPATH": str(ROOT)}  # the hubd of this checkout, whatever the venv's editable install points at


class World:
    """hubd + node agent + the data plane of one test; everything stopped at the end."""

    def __init__(self, root: Path, host: OneHostOvn) -> None:
        self.root = root
        self.host = host
        self.procs: list[Hubd] = []
        self.cni_path = plugin_dir(root / "bin")
        self.sock = str(root / "cni.sock")
        self.hub: Hubd | None = None
        self.node: Hubd | None = None

    def start(self, hub_extra: str = "", node_extra: str = "") -> None:
        hd = self.root / "hub"
        hd.mkdir()
        self.hub = Hubd(hd, f'[hub]\nid = "{HUB_ID}"\nstate_dir = "{hd}"\n[ovn]\nnb = "{self.host.ovn.nb_remote}"\n'
                            f'[api]\nlisten = "unix:{hd}/api.sock"\n[routers.default]\nnetworks = ["*"]\n{hub_extra}',
                        env=ENV)  # fmt: skip
        self.procs.append(self.hub)
        self.hub.start()
        self._ready(self.hub)
        nd = self.root / "node"
        nd.mkdir()
        self.node = Hubd(nd, f'[hub]\nid = "{HUB_ID}"\nstate_dir = "{nd}"\n[ovn]\nnb = "{self.host.ovn.nb_remote}"\n'
                             f'[node]\ndocker = ""\novs = "{self.host.db_remote}"\nchassis = "node1"\n'
                             f'switch_netns = "{self.host.sw_ns}"\nlisten = "unix:{nd}/node.sock"\n'
                             f'[cni]\nenabled = true\nsocket = "{self.sock}"\nhub_api = "unix:{hd}/api.sock"\n'
                             f'hub_token_file = "{hd}/ingest.token"\nresync_interval = 2\n'
                             '[cni.networks.blue]\nsubnet = "10.80.0.0/24"\ngateway = "10.80.0.1"\n'
                             '[cni.networks.nosubnet]\n'
                             f"{node_extra}", args=("--role", "node"), env=ENV)  # fmt: skip
        self.procs.append(self.node)
        self.node.start()
        self._ready(self.node)

    @staticmethod
    def _ready(h: Hubd) -> None:
        try:
            h.wait_ready(60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- {h.dir.name}:\n{h.logtext()[-3000:]}") from None

    def netns(self) -> str:
        """A sandbox of the test's own (removed with the data plane)."""
        name = f"{self.host.tag}-c{secrets.token_hex(2)}"
        subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
        self.host.namespaces.append(name)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        return name

    def conf(self, network: str = "blue", **extra: Any) -> dict[str, Any]:
        return plugin_conf(conflist("hubnet", network, self.sock, timeout=extra.pop("timeout", 20)), **extra)

    def cni(self, command: str, ns: str, cid: str, conf: dict[str, Any] | bytes | None = None, **kw: Any
            ) -> tuple[int, dict[str, Any] | None, str]:  # fmt: skip
        return invoke(self.cni_path, command, self.conf() if conf is None else conf, container_id=cid,
                      netns=f"/var/run/netns/{ns}" if ns else "", **kw)  # fmt: skip

    def close(self) -> None:
        for h in reversed(self.procs):
            h.close()


@pytest.fixture
def world(tmpdir_short: Path) -> Iterator[World]:
    with OneHostOvn(chassis="node1") as host:
        w = World(tmpdir_short, host)
        try:
            yield w
        finally:
            w.close()


def ns_out(ns: str, *argv: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=30).stdout


def ping(ns: str, ip: str) -> bool:
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "2", "-W", "2", ip], capture_output=True,
                          timeout=30).returncode == 0  # fmt: skip


def port_rows(host: OneHostOvn) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in nb_rows(host.ovn, "Logical_Switch_Port")}


def port_versions(host: OneHostOvn, ports: dict[str, str]) -> dict[str, str]:
    """Each port's _version (OVSDB changes it with every write of the row)."""
    out = {}
    for n, p in ports.items():
        q = ["OVN_Northbound", {"op": "select", "table": "Logical_Switch_Port", "where": [["name", "==", p]],
                                "columns": ["_version"]}]  # fmt: skip
        res = subprocess.run(["ovsdb-client", "transact", host.ovn.nb_remote, json.dumps(q)], capture_output=True,
                             text=True, timeout=20, check=True)  # fmt: skip
        out[n] = json.loads(res.stdout)[0]["rows"][0]["_version"][1]
    return out


def test_cni_add_check_del_through_ovn(world: World) -> None:
    world.start()
    a, b = world.netns(), world.netns()
    rc, res, err = world.cni("ADD", a, "ctr-a", args="IgnoreUnknown=1;K8S_POD_NAME=alpha;app=web")
    assert rc == 0 and res is not None, (res, err, world.node.logtext()[-2000:] if world.node else "")
    rc, res_b, _ = world.cni("ADD", b, "ctr-b")
    assert rc == 0 and res_b is not None, res_b

    # the result: host veth + sandbox eth0 with NB's MAC, the address with its gateway, the route, DNS
    assert res["cniVersion"] == "1.0.0"
    host_if, sbx = res["interfaces"]
    assert host_if["name"].startswith("ovh") and sbx["name"] == "eth0" and sbx["sandbox"] == f"/var/run/netns/{a}"
    (ip,) = res["ips"]
    assert ip["address"].startswith("10.80.0.") and ip["address"].endswith("/24") and ip["gateway"] == "10.80.0.1"
    assert ip["interface"] == 1
    assert res["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.80.0.1"}]
    assert res["dns"] == {"nameservers": ["10.80.0.1"], "search": ["default.cni.node1.hub"]}
    addr_a, addr_b = ip["address"].split("/")[0], res_b["ips"][0]["address"].split("/")[0]
    assert sbx["mac"] in ns_out(a, "ip", "link", "show", "eth0")
    assert ip["address"] in ns_out(a, "ip", "-o", "addr", "show", "eth0")
    assert "default via 10.80.0.1 dev eth0" in ns_out(a, "ip", "route")

    # the port is the source cni/node1's endpoint (uid = container id + ifname), labelled from CNI_ARGS
    ports = port_rows(world.host)
    row = ports["cni/node1/blue/ctr-a-eth0"]
    ids = ovs_map(row["external_ids"])
    assert ids["ovn-hub:name"] == "alpha" and ovs_map(row["options"]) == {"requested-chassis": "node1"}
    endpoints = json.loads(world.hub.ctl("endpoints", "--json").stdout)  # type: ignore[union-attr]
    alpha = next(e for e in endpoints if e["uid"] == "ctr-a-eth0")
    assert alpha["source"] == "cni/node1" and alpha["name"] == "alpha"

    # packets through OVN: a to b on the switch, a to the router's port (the gateway)
    sync_wait_until(lambda: all(r["up"] is True for n, r in port_rows(world.host).items() if n.startswith("cni/")),
                    30, "ports up")  # fmt: skip
    assert ping(a, addr_b) and ping(b, addr_a)
    assert ping(a, "10.80.0.1")

    # ADD again: the same result, nothing re-plugged; CHECK with the prevResult passes
    ifindex = ns_out(a, "cat", "/sys/class/net/eth0/ifindex")
    rc, again, _ = world.cni("ADD", a, "ctr-a", args="IgnoreUnknown=1;K8S_POD_NAME=alpha;app=web")
    assert rc == 0 and again == res
    assert ns_out(a, "cat", "/sys/class/net/eth0/ifindex") == ifindex
    rc, out, _ = world.cni("CHECK", a, "ctr-a", world.conf(prevResult=res))
    assert (rc, out) == (0, None)

    # an out-of-band change to the veth: CHECK fails, saying what changed
    subprocess.run(["ip", "-n", a, "addr", "flush", "dev", "eth0"], check=True, timeout=10)
    rc, out, _ = world.cni("CHECK", a, "ctr-a", world.conf(prevResult=res))
    assert rc == 1 and out is not None and out["code"] == 106 and "lacks" in out["msg"], out
    subprocess.run(["ip", "-n", b, "link", "set", "eth0", "address", "0a:00:00:00:99:99"], check=True, timeout=10)
    rc, out, _ = world.cni("CHECK", b, "ctr-b")
    assert rc == 1 and out is not None and out["code"] == 106 and "MAC" in out["msg"], out

    # DEL twice: both succeed with nothing on stdout; veth, Interface and NB port are gone
    for _ in range(2):
        rc, out, _ = world.cni("DEL", a, "ctr-a")
        assert (rc, out) == (0, None)
    assert "eth0" not in ns_out(a, "ip", "-o", "link")
    sync_wait_until(lambda: "cni/node1/blue/ctr-a-eth0" not in port_rows(world.host), 20, "port of ctr-a collected")
    # DEL of a sandbox that is gone already, and of a container never added: success
    rc, out, _ = world.cni("DEL", "", "ctr-never")
    assert (rc, out) == (0, None)
    rc, out, _ = world.cni("CHECK", a, "ctr-a")
    assert rc == 1 and out is not None and out["code"] == 3, out

    # the agent restarts: its state file gives the hub the same snapshot, the plumbing of b is adopted
    assert world.node is not None
    before = ns_out(b, "cat", "/sys/class/net/eth0/ifindex")
    world.node.stop()
    world.node.start()
    World._ready(world.node)
    assert ns_out(b, "cat", "/sys/class/net/eth0/ifindex") == before
    assert "cni/node1/blue/ctr-b-eth0" in port_rows(world.host)


def test_cni_errors_are_spec_shaped(world: World) -> None:
    world.start()
    ns = world.netns()

    def err(conf: Any = None, *, cid: str = "ctr-e", netns: str | None = None, command: str = "ADD",
            **kw: Any) -> dict[str, Any]:  # fmt: skip
        rc, out, stderr = invoke(world.cni_path, command, world.conf() if conf is None else conf, container_id=cid,
                                 netns=f"/var/run/netns/{ns}" if netns is None else netns, **kw)  # fmt: skip
        assert rc == 1 and out is not None, (rc, out, stderr)
        assert set(out) <= {"cniVersion", "code", "msg", "details"} and out["msg"], out
        return out

    # VERSION: every version the plugin speaks
    rc, out, _ = invoke(world.cni_path, "VERSION", {"cniVersion": "1.0.0"})
    assert rc == 0 and out == {"cniVersion": "1.0.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}

    assert err(b"{not json")["code"] == 6
    assert err(b"[1, 2]")["code"] == 6
    assert err(world.conf(cniVersion="9.9.9"))["code"] == 1
    bad = world.conf()
    del bad["network"]
    assert err(bad)["code"] == 7 and "network" in err(bad)["msg"]
    assert err(world.conf(timeout="soon"))["code"] == 7
    assert err(world.conf(ipam={"type": "host-local"}))["code"] == 2
    # an unknown network: names the known ones
    out = err(world.conf("green"))
    assert out["code"] == 7 and "green" in out["msg"] and "blue" in out["details"], out
    # a missing netns, a missing env var, an invalid ifname
    out = err(netns="/var/run/netns/hubt-nope")
    assert out["code"] == 4 and "does not exist" in out["msg"], out
    assert err(cid="")["code"] == 4
    assert err(ifname="way-too-long-ifname")["code"] == 4
    assert err(command="CHECK", cid="ctr-unknown")["code"] == 3
    assert err(world.conf(cniVersion="0.3.1"), command="CHECK")["code"] == 1
    # a port that never gets an address (a network without a subnet: OVN cannot allocate) says so, in time
    out = err(world.conf("nosubnet", timeout=3))
    assert out["code"] == 103 and "dynamic" in out["msg"] and "subnet" in out["details"], out
    world.cni("DEL", ns, "ctr-e", world.conf("nosubnet"))
    # an agent that is not there
    gone = plugin_conf(conflist("hubnet", "blue", str(world.root / "nobody.sock")))
    out = err(gone)
    assert out["code"] == 100 and "nobody.sock" in out["msg"], out
    # STATUS (1.1.0): the agent is connected and the hub takes its endpoints
    rc, out, _ = world.cni("STATUS", "", "", world.conf(cniVersion="1.1.0"))
    assert (rc, out) == (0, None)


async def test_kubernetes_pod_gets_its_dynamic_port_and_the_kubelets_ip_writes_nothing(
    world: World, fake: Any
) -> None:
    """A scheduled pod without podIPs has a dynamic port (the k8s adapter); the CNI ADD with its
    K8S_* args plugs that port with OVN's allocation; pods reach each other; when the adapter then
    sees the kubelet report that IP, NB is not written (the ports' _version stays)."""
    import asyncio

    from tests.unit.test_k8s_adapter import mkpod

    web = fake.add("Pod", mkpod("web-1", node="node1"))
    db = fake.add("Pod", mkpod("db-1", node="node1"))
    kubeconfig = fake.write_kubeconfig(world.root / "kubeconfig")
    await asyncio.to_thread(world.start, f'[adapters.k8s]\ntype = "k8s"\ncluster = "test"\n'
                                         f'kubeconfig = "{kubeconfig}"\npod_cidr = "10.244.0.0/16"\n')  # fmt: skip
    results = {}
    for pod in (web, db):
        ns = await asyncio.to_thread(world.netns)
        meta = pod["metadata"]
        args = f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={meta['name']};K8S_POD_UID={meta['uid']}"
        rc, res, err = await asyncio.to_thread(world.cni, "ADD", ns, f"sandbox-{meta['name']}",
                                               world.conf("default"), args=args)  # fmt: skip
        assert rc == 0 and res is not None, (res, err)
        results[meta["name"]] = (ns, res)
    port = {name: f"k8s/test/default/{pod['metadata']['uid']}" for name, pod in (("web-1", web), ("db-1", db))}
    rows = await asyncio.to_thread(port_rows, world.host)
    for name, (_ns, res) in results.items():
        row = rows[port[name]]
        assert row["addresses"] == "dynamic"  # the adapter's port, left to OVN's IPAM
        mac, ip = row["dynamic_addresses"].split()
        assert res["ips"][0]["address"] == f"{ip}/16" and res["ips"][0]["gateway"] == "10.244.0.1"
        assert res["interfaces"][1]["mac"] == mac
        assert res["dns"]["search"] == ["default.k8s.test.hub"]
    web_ns, db_ip = results["web-1"][0], results["db-1"][1]["ips"][0]["address"].split("/")[0]
    await asyncio.to_thread(sync_wait_until, lambda: all(
        r["up"] is True for r in port_rows(world.host).values() if r["name"] in port.values()), 30, "pods up")
    assert await asyncio.to_thread(ping, web_ns, db_ip)
    assert await asyncio.to_thread(ping, web_ns, "10.244.0.1")  # the router's port: the pod's gateway

    # the kubelet reports the IPs the pods were plugged with: the adapter sees them, NB is not written
    versions = await asyncio.to_thread(port_versions, world.host, port)
    for pod, name in ((web, "web-1"), (db, "db-1")):
        ip = results[name][1]["ips"][0]["address"].split("/")[0]
        fake.update("Pod", {**pod, "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}})
    assert world.hub is not None

    def seen() -> bool:
        eps = json.loads(world.hub.ctl("endpoints", "--json").stdout)  # type: ignore[union-attr]
        return all(e["ips"] for e in eps if e["source"] == "k8s/test")

    await asyncio.to_thread(sync_wait_until, seen, 30, "the adapter has the pods' IPs")
    await asyncio.to_thread(sync_wait_until, lambda: json.loads(world.hub.ctl("plan", "--json").stdout) == [],  # type: ignore[union-attr]
                            10, "nothing left to write")  # fmt: skip
    assert await asyncio.to_thread(port_versions, world.host, port) == versions
    rows = await asyncio.to_thread(port_rows, world.host)
    assert all(rows[p]["addresses"] == "dynamic" for p in port.values())
    assert await asyncio.to_thread(ping, web_ns, db_ip)


RUNC_WRAPPER = """#!/usr/bin/python3 -sS
# podman always asks the OCI runtime for RLIMIT_NOFILE/RLIMIT_NPROC; without CAP_SYS_RESOURCE (this
# machine's bounding set lacks it) runc's prlimit on its init process fails: drop them, then run runc
import json, os, sys
args = sys.argv[1:]
if "create" in args or "run" in args:
    for i, a in enumerate(args[:-1]):
        if a in ("--bundle", "-b"):
            path = os.path.join(args[i + 1], "config.json")
            with open(path) as f:
                spec = json.load(f)
            spec.get("process", {}).pop("rlimits", None)
            with open(path, "w") as f:
                json.dump(spec, f)
os.execv(%r, ["runc", *args])
"""


def _cap_sys_resource() -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 24 & 1)
    return False


class Podman:
    """Debian's podman with its CNI backend, everything of its own in ``root``: --root, --runroot,
    a containers.conf (cgroupfs, file events, no systemd), the CNI config dir and CNI_PATH."""

    def __init__(self, root: Path, cni_path: Path) -> None:
        self.root = root
        self.net = root / "net"
        self.net.mkdir(parents=True)
        runc = shutil.which("runc") or "/usr/sbin/runc"
        runtime = runc
        if not _cap_sys_resource():
            runtime = str(root / "runc-wrap")
            Path(runtime).write_text(RUNC_WRAPPER % runc)
            Path(runtime).chmod(0o755)
        self.conf = root / "containers.conf"
        self.conf.write_text(
            f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "{runtime}"\n'
            f'static_dir = "{root}/static"\ntmp_dir = "{root}/tmp"\nvolume_path = "{root}/volumes"\n'
            f'[network]\nnetwork_backend = "cni"\ncni_plugin_dirs = ["{cni_path}"]\n'
            f'network_config_dir = "{self.net}"\n'
        )
        self.base = ["podman", "--root", str(root / "storage"), "--runroot", str(root / "run"),
                     "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                     "--network-backend", "cni", "--cni-config-dir", str(self.net)]  # fmt: skip
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("CNI_", "NOTIFY_SOCKET"))}
        self.env.update(CONTAINERS_CONF=str(self.conf), XDG_RUNTIME_DIR=str(root / "xdg"), TMPDIR=str(root / "tmp"))
        (root / "tmp").mkdir()
        # what podman 4.3 writes outside --root/--runroot whatever it is told (libcni's result cache,
        # containers/image's blob-info cache): removed again at close when this test made them
        self.outside = [p for p in (Path("/var/lib/cni"), Path("/var/lib/containers")) if not p.exists()]

    def __call__(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=timeout, env=self.env)
        if check and res.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {res.returncode}: {res.stderr[-2000:]}")
        return res

    def import_busybox(self) -> None:
        tree = self.root / "bb"
        (tree / "bin").mkdir(parents=True)
        shutil.copy("/bin/busybox", tree / "bin" / "busybox")
        for a in ("sh", "sleep", "ping", "ip", "cat"):
            (tree / "bin" / a).symlink_to("busybox")
        tar = self.root / "bb.tar"
        subprocess.run(["tar", "-C", str(tree), "-cf", str(tar), "."], check=True, timeout=60)
        self("import", str(tar), "localhost/busybox:hub")

    def close(self) -> None:
        self("rm", "--all", "--force", "--time", "0", check=False, timeout=60)
        for p in self.outside:
            shutil.rmtree(p, ignore_errors=True)


def test_podman_with_its_cni_backend_pings_a_netns_endpoint_through_ovn(world: World) -> None:
    assert shutil.which("podman"), "podman is missing: make test installs it (scripts/install-deps.sh)"
    world.start()
    peer = world.netns()
    rc, res, err = world.cni("ADD", peer, "ctr-peer")
    assert rc == 0 and res is not None, (res, err)
    peer_ip = res["ips"][0]["address"].split("/")[0]
    pm = Podman(world.root / "podman", world.cni_path)
    try:
        (pm.net / "hubnet.conflist").write_text(json.dumps(conflist("hubnet", "blue", world.sock, timeout=30)))
        pm.import_busybox()
        out = pm("run", "--rm", "--name", "pm1", "--network", "hubnet", "localhost/busybox:hub", "sh", "-c",
                 f"ip -o addr show eth0; ip route; ping -c 2 -W 2 {peer_ip}")  # fmt: skip
        assert "inet 10.80.0." in out.stdout and "default via 10.80.0.1" in out.stdout, out.stdout
        assert "2 packets received" in out.stdout or ", 0% packet loss" in out.stdout, out.stdout
        # the container's endpoint was the source cni/node1's, and podman's DEL (--rm) removed it again
        sync_wait_until(lambda: not any(n.startswith("cni/node1/blue/") and "peer" not in n
                                        for n in port_rows(world.host)), 20, "podman's port collected")  # fmt: skip
        assert world.node is not None and "CNI ADD" in world.node.logtext() and "CNI DEL" in world.node.logtext()
    finally:
        pm.close()


def test_gc_forgets_what_the_runtime_no_longer_lists(world: World) -> None:
    world.start()
    keep, drop = world.netns(), world.netns()
    for ns, cid in ((keep, "ctr-keep"), (drop, "ctr-drop")):
        rc, res, _ = world.cni("ADD", ns, cid)
        assert rc == 0 and res is not None, res
    conf = world.conf(cniVersion="1.1.0")
    conf["cni.dev/attachments"] = [{"containerID": "ctr-keep", "ifname": "eth0"}]
    rc, out, _ = invoke(world.cni_path, "GC", conf)
    assert (rc, out) == (0, None)
    sync_wait_until(lambda: "eth0" not in ns_out(drop, "ip", "-o", "link"), 20, "the dropped attachment unplugged")
    sync_wait_until(lambda: "cni/node1/blue/ctr-drop-eth0" not in port_rows(world.host), 20, "its port collected")
    assert "eth0" in ns_out(keep, "ip", "-o", "link") and "cni/node1/blue/ctr-keep-eth0" in port_rows(world.host)
