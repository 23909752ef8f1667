"""Real packets through what the Kubernetes adapter asks for.

Fake API server (testkit/k8s_fake.py, real wire protocol) → a real ``hubd``
subprocess with the k8s adapter → real NB → ovn-northd → ovn-controller →
ovs-vswitchd (userspace datapath) → network namespaces standing in for the
pods (testkit/dataplane.py).  Nothing of OVN is mocked: a verdict here is a
packet that arrived or did not.

* NetworkPolicy: a default-deny policy drops ping; an allow rule lets TCP to
  its port through, from its peer only, and nothing else.
* Service: the ClusterIP answers from a backend (each backend runs a TCP
  server replying with its own name), and from the other one when a backend
  leaves the EndpointSlice or its pod is deleted.

Load balancing needs a router: a Logical_Switch load balancer only DNATs, so
the client's frame must be addressed to a router port for the DNATed packet
to be routed to the backend (the ovn-kubernetes shape: pods' default gateway
is the cluster router).  The Service test configures the hub's fabric
(``[routers.default]``, ``pod_cidr``): the hub's router answers at the pod
network's gateway and its load-balancer group carries the Service.

Every wait is bounded; the data plane is synchronised with ``ovn-nbctl
--wait=hv sync`` (ovn-controller has installed the flows) after NB shows the
hub's rows, never with a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.model import Endpoint, Source
from core.names import lsp_name
from core.nb.tables.policy import deny_pg_name
from hub.sandbox import _which
from testkit.dataplane import OneHostOvn
from testkit.hubd import Hubd
from testkit.k8s_fake import FakeKubeApi
from testkit.nb import nb_rows, ovs_map, ovs_set
from testkit.wait import wait_until
from tests.integration.test_k8s_adapter import mkslice, mksvc
from tests.unit.test_k8s_adapter import mkpod

_MISSING = [
    b
    for b in ("ovs-vswitchd", "ovn-controller", "ip", "ping", "ethtool")
    if not (shutil.which(b) or shutil.which(b, path="/usr/sbin:/sbin"))
]
if os.geteuid() != 0 or _MISSING:  # make test installs these and runs as root: a missing one is an error
    raise RuntimeError(f"the data-plane tests need root and {_MISSING or 'root'} (make test installs them)")

SRC = Source("k8s", "test")
NODE = "worker-1"  # spec.nodeName of the pods = the chassis name (the hub writes requested-chassis=<node>)
SWITCH = "k8s/test/default"
GATEWAY = "10.244.0.1"
VIP = "10.96.0.10"
WAIT = 30.0  # upper bound of every wait on the control plane
SERVER_LIFETIME = 120  # a pod's TCP server exits by itself after this, whatever happens to the test

# A pod's TCP server: listens on every port given, answers each connection with
# its name, and closes it.  Prints "L" once listening.
SERVER = """
import selectors, socket, sys, time
name, deadline = sys.argv[1].encode(), time.monotonic() + float(sys.argv[2])
sel = selectors.DefaultSelector()
for p in sys.argv[3:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(p)))
    s.listen(64)
    sel.register(s, selectors.EVENT_READ)
print("L", flush=True)
while time.monotonic() < deadline:
    for key, _ in sel.select(1.0):
        c, _ = key.fileobj.accept()
        with c:
            c.sendall(name)
"""

# A pod's client: n connections one after the other; prints the replies as a
# JSON list (null for a connection that failed or timed out).
CLIENT = """
import json, socket, sys
ip, port, n, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
out = []
for _ in range(n):
    try:
        with socket.create_connection((ip, port), timeout=timeout) as c:
            data = b""
            while chunk := c.recv(100):
                data += chunk
            out.append(data.decode())
    except OSError:
        out.append(None)
print(json.dumps(out))
"""


# ---------------------------------------------------------------- fixtures
@pytest.fixture
def host() -> Iterator[OneHostOvn]:
    with OneHostOvn(chassis=NODE) as h:
        yield h


# ---------------------------------------------------------------- helpers
def endpoint(pod: dict[str, Any]) -> Endpoint:
    """The Endpoint the k8s adapter makes of ``pod`` (same port name, MAC, IP)."""
    meta = pod["metadata"]
    return Endpoint(
        source=SRC,
        uid=meta["uid"],
        namespace=meta["namespace"],
        name=meta["name"],
        kind="pod",
        network="default",
        node=pod["spec"]["nodeName"],
        ips=(pod["status"]["podIP"],),
        labels=dict(meta.get("labels", {})),
    )


async def nb(host: OneHostOvn, table: str) -> list[dict[str, Any]]:
    return await asyncio.to_thread(nb_rows, host.ovn, table)


async def hv_sync(host: OneHostOvn) -> None:
    """Return once ovn-controller has installed the flows for everything NB holds now."""
    await asyncio.to_thread(host.ovn.nbctl, f"--timeout={int(WAIT)}", "--wait=hv", "sync")


def uuids(value: Any) -> list[str]:
    """The UUIDs of a reference column as ovn-nbctl's JSON gives it (one ref or a set)."""
    return [u[1] for u in ovs_set(value) if isinstance(u, list) and u and u[0] == "uuid"]


def start_hubd(hubd_factory: Any, host: OneHostOvn, fake: FakeKubeApi, workdir: Path, routed: bool = False) -> Hubd:
    """``routed``: the pod network gets its subnet and the hub's router (the fabric)."""
    kubeconfig = fake.write_kubeconfig(workdir / "kubeconfig")
    fabric = 'pod_cidr = "10.244.0.0/16"\n[routers.default]\nnetworks = ["*"]\n' if routed else ""
    h: Hubd = hubd_factory(
        f'[hub]\nid = "k8s-dp"\nstate_dir = "{workdir}"\n[ovn]\nnb = "{host.ovn.nb_remote}"\n'
        f'[api]\nlisten = "unix:{workdir}/api.sock"\n'
        f'[adapters.k8s]\ntype = "k8s"\ncluster = "test"\nkubeconfig = "{kubeconfig}"\n{fabric}'
    )
    return h


async def plug_pods(host: OneHostOvn, pods: dict[str, dict[str, Any]]) -> tuple[dict[str, Endpoint], dict[str, str]]:
    """Wait for the hub's port of every pod, plug a netns in for it, wait for ``up``.
    Returns the endpoints and netns names by pod name."""
    eps = {name: endpoint(p) for name, p in pods.items()}

    async def all_ports() -> bool:
        have = {r["name"] for r in await nb(host, "Logical_Switch_Port")}
        return {lsp_name(ep) for ep in eps.values()} <= have

    await wait_until(all_ports, WAIT, "the hub's ports for the pods")
    rows = {r["name"]: r for r in await nb(host, "Logical_Switch_Port")}
    for ep in eps.values():
        assert ovs_map(rows[lsp_name(ep)]["options"]) == {"requested-chassis": NODE}, rows[lsp_name(ep)]
    ns = {name: await asyncio.to_thread(host.add_port, ep) for name, ep in eps.items()}
    for ep in eps.values():
        await asyncio.to_thread(host.wait_up, lsp_name(ep), WAIT)
    return eps, ns


@contextlib.contextmanager
def tcp_servers(specs: dict[str, tuple[str, tuple[int, ...]]]) -> Iterator[None]:
    """A TCP server per pod (name -> (netns, ports)), each answering with the pod's
    name; all stopped (by pid) on exit."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for name, (ns, ports) in specs.items():
            proc = subprocess.Popen(
                [_which("ip"), "netns", "exec", ns, sys.executable, "-c", SERVER, name, str(SERVER_LIFETIME)]
                + [str(p) for p in ports],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            procs.append(proc)
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()  # bounded: the server prints "L" or exits (EOF)
            assert line == "L", f"server {name} in {ns} did not start (exit {proc.poll()})"
        yield
    finally:
        for proc in procs:  # ip netns exec execs: the pid is the server's own
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)
            if proc.stdout is not None:
                proc.stdout.close()


def connect(ns: str, ip: str, port: int, n: int = 1, timeout: float = 2.0) -> list[str | None]:
    """``n`` TCP connections from ``ns`` to ``ip:port``: what each was answered (None: no connection)."""
    res = subprocess.run(
        [_which("ip"), "netns", "exec", ns, sys.executable, "-c", CLIENT, ip, str(port), str(n), str(timeout)],
        capture_output=True,
        text=True,
        timeout=n * (timeout + 1) + 10,
        check=True,
    )
    out: list[str | None] = json.loads(res.stdout)
    return out


async def ask(ns: str, ip: str, port: int, n: int = 1, timeout: float = 2.0) -> list[str | None]:
    return await asyncio.to_thread(connect, ns, ip, port, n, timeout)


async def ping(host: OneHostOvn, ns: str, dst: str, count: int = 1, wait: int = 1) -> bool:
    return await asyncio.to_thread(host.ping, ns, dst, count, wait)


# ---------------------------------------------------------------- tests
async def test_network_policy_default_deny_and_allow_by_packets(
    host: OneHostOvn, fake: FakeKubeApi, tmpdir_short: Path, hubd_factory: Any
) -> None:
    fake.add("Namespace", {"metadata": {"name": "default"}})
    pods = {
        name: fake.add("Pod", mkpod(name, ip, node=NODE))
        for name, ip in (("db-1", "10.244.0.8"), ("client-1", "10.244.0.7"), ("web-1", "10.244.0.5"))
    }
    h = start_hubd(hubd_factory, host, fake, tmpdir_short)
    await asyncio.to_thread(h.wait_ready, WAIT)
    eps, ns = await plug_pods(host, pods)
    db_ip = eps["db-1"].ips[0]
    db_port = lsp_name(eps["db-1"])

    with tcp_servers({"db-1": (ns["db-1"], (5432, 5433))}):
        # no policy: everything reaches db (so the drops below are the policy's doing)
        assert await ping(host, ns["client-1"], db_ip, count=3, wait=2), "client -> db ping without policy"
        assert await ask(ns["client-1"], db_ip, 5432) == ["db-1"]
        assert await ask(ns["client-1"], db_ip, 5433) == ["db-1"]
        assert await ask(ns["web-1"], db_ip, 5432) == ["db-1"]

        # default deny: db isolated for ingress
        fake.add(
            "NetworkPolicy",
            {
                "metadata": {"name": "db-deny-all", "namespace": "default"},
                "spec": {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"]},
            },
        )
        deny_pg = deny_pg_name(SRC, "in")

        async def denied_in_nb() -> bool:
            pgs = {r["name"]: r for r in await nb(host, "Port_Group")}
            lsps = {r["_uuid"][1]: r["name"] for r in await nb(host, "Logical_Switch_Port")}
            acls = await nb(host, "ACL")
            members = {lsps.get(u) for u in uuids(pgs[deny_pg]["ports"])} if deny_pg in pgs else set()
            return members == {db_port} and any(a["action"] == "drop" for a in acls)

        await wait_until(denied_in_nb, WAIT, "default-deny ACL and port group in NB")
        await hv_sync(host)
        assert not await ping(host, ns["client-1"], db_ip), "default deny must drop ping"
        assert await ask(ns["client-1"], db_ip, 5432, timeout=1.5) == [None], "default deny must drop TCP"
        # only db is isolated: client still answers pings from web
        assert await ping(host, ns["web-1"], eps["client-1"].ips[0], count=3, wait=2), "web -> client (no policy)"

        # allow TCP 5432 from client pods only
        fake.add(
            "NetworkPolicy",
            {
                "metadata": {"name": "db-from-client", "namespace": "default"},
                "spec": {
                    "podSelector": {"matchLabels": {"app": "db"}},
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {
                            "from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                            "ports": [{"protocol": "TCP", "port": 5432}],
                        }
                    ],
                },
            },
        )

        async def allowed_in_nb() -> bool:
            acls = await nb(host, "ACL")
            sets = await nb(host, "Address_Set")
            has_acl = any(a["action"] == "allow-related" and "tcp.dst == 5432" in a["match"] for a in acls)
            return has_acl and any(ovs_set(s["addresses"]) == [eps["client-1"].ips[0]] for s in sets)

        await wait_until(allowed_in_nb, WAIT, "allow ACL and peer address set in NB")
        await hv_sync(host)
        assert await ask(ns["client-1"], db_ip, 5432, timeout=5) == ["db-1"], "the allowed port must pass"
        assert await ask(ns["client-1"], db_ip, 5433, timeout=1.5) == [None], "another port stays dropped"
        assert not await ping(host, ns["client-1"], db_ip), "ping stays dropped"
        assert await ask(ns["web-1"], db_ip, 5432, timeout=1.5) == [None], "a pod outside the peers stays dropped"

    status = json.loads((await asyncio.to_thread(h.ctl, "status", "--json")).stdout)
    assert status["ready"] and status["adapters"][0]["restarts"] == 0, status


async def test_service_vip_answers_from_each_backend_by_packets(
    host: OneHostOvn, fake: FakeKubeApi, tmpdir_short: Path, hubd_factory: Any
) -> None:
    fake.add("Namespace", {"metadata": {"name": "default"}})
    pods = {
        name: fake.add("Pod", mkpod(name, ip, node=NODE))
        for name, ip in (("web-1", "10.244.0.5"), ("web-2", "10.244.0.6"), ("client-1", "10.244.0.7"))
    }
    fake.add("Service", mksvc("web", VIP))
    fake.add("EndpointSlice", mkslice("web-abc", "web", "10.244.0.5", "10.244.0.6"))
    h = start_hubd(hubd_factory, host, fake, tmpdir_short, routed=True)
    await asyncio.to_thread(h.wait_ready, WAIT)

    async def vips_are(backends: str) -> bool:
        lbs = await nb(host, "Load_Balancer")
        return len(lbs) == 1 and ovs_map(lbs[0]["vips"]) == {f"{VIP}:80": backends}

    await wait_until(lambda: vips_are("10.244.0.5:8080,10.244.0.6:8080"), WAIT, "the service's load balancer")

    # the hub's router answers at the pod network's gateway (no operator router any more)
    async def routed() -> bool:
        return any(r["name"] == f"ovn-hub/rtos/{SWITCH}" for r in await nb(host, "Logical_Router_Port"))

    await wait_until(routed, WAIT, "the hub's router port on the pod network")
    eps, ns = await plug_pods(host, pods)
    host.ns_run(ns["client-1"], "ip", "route", "add", "default", "via", GATEWAY, "dev", "eth0")

    with tcp_servers({name: (ns[name], (8080,)) for name in ("web-1", "web-2")}):
        await hv_sync(host)
        # each backend answers directly (so a missing answer via the VIP is the VIP's doing)
        assert await ask(ns["client-1"], "10.244.0.5", 8080) == ["web-1"]
        assert await ask(ns["client-1"], "10.244.0.6", 8080) == ["web-2"]
        # both backends ready: every connection answered, and by both over 40 connections
        # (select-group hashing on the 5-tuple: one backend missing all 40 is 2**-39)
        answers = await ask(ns["client-1"], VIP, 80, n=40)
        assert set(answers) == {"web-1", "web-2"}, answers

        # web-1 leaves the slice (not ready): only web-2 answers, though web-1's server still runs
        fake.update("EndpointSlice", mkslice("web-abc", "web", ("10.244.0.5", False), "10.244.0.6"))
        await wait_until(lambda: vips_are("10.244.0.6:8080"), WAIT, "web-1 out of the VIP")
        await hv_sync(host)
        answers = await ask(ns["client-1"], VIP, 80, n=10)
        assert answers == ["web-2"] * 10, answers

        # web-1 back, pod web-2 deleted (and out of the slice, as the EndpointSlice controller does)
        fake.delete("Pod", "web-2")
        fake.update("EndpointSlice", mkslice("web-abc", "web", "10.244.0.5"))

        async def only_web1() -> bool:
            names = {r["name"] for r in await nb(host, "Logical_Switch_Port")}
            return await vips_are("10.244.0.5:8080") and lsp_name(eps["web-2"]) not in names

        await wait_until(only_web1, WAIT, "web-2 out of the VIP and its port deleted")
        await hv_sync(host)
        answers = await ask(ns["client-1"], VIP, 80, n=10)
        assert answers == ["web-1"] * 10, answers

    # the VIP was served through the hub's own router port and its load-balancer group
    switch = next(s for s in await nb(host, "Logical_Switch") if s["name"] == SWITCH)
    lsps = {r["_uuid"][1]: r for r in await nb(host, "Logical_Switch_Port")}
    router_lsp = [lsps[u] for u in uuids(switch["ports"]) if lsps[u]["type"] == "router"]
    assert [r["name"] for r in router_lsp] == [f"ovn-hub/stor/{SWITCH}"], router_lsp
    assert ovs_set(switch["load_balancer_group"]), switch
    status = json.loads((await asyncio.to_thread(h.ctl, "status", "--json")).stdout)
    assert status["ready"] and status["adapters"][0]["restarts"] == 0, status
