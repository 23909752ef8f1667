"""One Docker driver network across two engines, proven by packets through OVN.

Two private dockerds (testkit/dockerd.py), each with its node agent (``hubd --role
node`` serving the driver) on its own chassis of testkit/chassis.py (two userspace
chassis joined by Geneve), and one hubd with a Docker adapter per engine
(sources ``docker/a`` and ``docker/b``).  ``docker network create -d <driver>
--ipam-driver <driver> --subnet 10.60.0.0/24 green`` on engine A becomes the shared
switch ``ovn-hub/net/green``; engine B's agent sees it in NB and creates ``green``
on B with the same subnet and gateway.  A container on each engine gets its
address from the hub's allocator (``[node] hub_api``: no collision), and they ping
each other across the tunnel through OVN.  With the hub stopped, ``docker run`` fails
with the driver's reason; a restarted hub (no reservations left) still hands out
an address no container holds.  ``docker network rm green`` on A removes
the switch, and B's agent removes its copy.

Both engines run on one machine, whose plugin discovery directory
(``/etc/docker/plugins``) they share: each engine's driver therefore has a name of
its own (on separate hosts both would be ``ovn-hub``); a shared network is found
by its name, whatever the engine's driver is called.  Every process, spec file,
namespace and veth made here goes, also when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit import dockerplugin
from testkit.chassis import TwoChassisOvn
from testkit.dockerd import PrivateDockerd, docker, import_busybox
from testkit.hubd import Hubd
from testkit.nb import nb_rows, ovs_map, ovs_set
from testkit.wait import sync_wait_until

_MISSING = [b for b in ("ovs-vswitchd", "ovn-controller", "ip", "ethtool")
            if not (shutil.which(b) or shutil.which(b, path="/usr/sbin:/sbin"))]  # fmt: skip
if os.geteuid() != 0 or _MISSING:
    raise RuntimeError(f"the shared network tests need root and {_MISSING or 'root'} (make test installs them)")

HUB_ID = "shr"
NODES = ("engine-a", "engine-b")
SUBNET, GATEWAY = "10.60.0.0/24", "10.60.0.1"
SHARED = "ovn-hub/net/green"
WAIT = 40.0


class Engine:
    def __init__(self, root: Path, tag: str, d: PrivateDockerd, chassis: Any) -> None:
        self.tag, self.d, self.chassis = tag, d, chassis
        self.driver = dockerplugin.unique_name()
        self.socket = root / f"plugin-{tag}" / "driver.sock"


def hub_config(workdir: Path, nb: str, engines: list[Engine]) -> str:
    text = (f'[hub]\nid = "{HUB_ID}"\nstate_dir = "{workdir}"\n[ovn]\nnb = "{nb}"\n'
            f'[api]\nlisten = "unix:{workdir}/api.sock"\n[routers.default]\nnetworks = ["*"]\n')  # fmt: skip
    for e in engines:
        text += (f'[adapters.docker-{e.tag}]\ntype = "docker"\ncluster = "{e.tag}"\nurl = "{e.d.url}"\n'
                 f'node = "{e.chassis.name}"\ndriver = "{e.driver}"\n')  # fmt: skip
    return text


def node_config(workdir: Path, nb: str, e: Engine, hub_dir: Path) -> str:
    c = e.chassis
    return (
        f'[hub]\nid = "{HUB_ID}"\nstate_dir = "{workdir}"\n[ovn]\nnb = "{nb}"\n'
        f'[node]\ndocker = "{e.d.url}"\novs = "{c.db_remote}"\nchassis = "{c.name}"\nswitch_netns = "{c.ns}"\n'
        f'resync_interval = 5\nlisten = "unix:{workdir}/node.sock"\ndriver_socket = "{e.socket}"\n'
        f'driver_name = "{e.driver}"\nhub_api = "unix:{hub_dir}/api.sock"\nhub_token_file = "{hub_dir}/ingest.token"\n'
    )


def start(workdir: Path, config: str, made: list[Hubd], *args: str) -> Hubd:
    workdir.mkdir()
    h = Hubd(workdir, config, args=args)
    made.append(h)
    h.start()
    try:
        h.wait_ready(60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- log of {workdir.name}:\n{h.logtext()[-3000:]}") from None
    return h


def network(e: Engine, name: str) -> dict[str, Any] | None:
    out = docker(e.d, "network", "inspect", name, check=False)
    try:
        found = json.loads(out)
    except ValueError:
        return None
    return found[0] if isinstance(found, list) and found else None


def ip_of(e: Engine, name: str) -> str:
    return docker(e.d, "inspect", "--format", '{{(index .NetworkSettings.Networks "green").IPAddress}}', name)


def can_ping(e: Engine, name: str, ip: str) -> bool:
    res = subprocess.run(["docker", "-H", e.d.url, "exec", name, "ping", "-c", "2", "-W", "2", ip],
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    return res.returncode == 0


def switches(pair: TwoChassisOvn) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in nb_rows(pair.ovn, "Logical_Switch")}


def ports(pair: TwoChassisOvn) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in nb_rows(pair.ovn, "Logical_Switch_Port") if r["type"] == ""}


@pytest.fixture
def engines(tmpdir_short: Path) -> Iterator[tuple[TwoChassisOvn, list[Engine], Path]]:
    with contextlib.ExitStack() as stack:
        pair = TwoChassisOvn(tmpdir_short / "ovn", chassis_names=NODES)
        stack.callback(pair.stop)
        pair.start()
        out = []
        for i, tag in enumerate(("a", "b")):
            d = PrivateDockerd()
            stack.callback(d.stop)
            d.start()
            import_busybox(d.sock)
            e = Engine(tmpdir_short, tag, d, pair.chassis[i])
            stack.enter_context(dockerplugin.installed(e.driver, e.socket))
            out.append(e)
        yield pair, out, tmpdir_short


def test_a_network_created_on_one_engine_is_one_l2_network_on_both(
    engines: tuple[TwoChassisOvn, list[Engine], Path],
) -> None:
    pair, (a, b), root = engines
    made: list[Hubd] = []
    try:
        nb = pair.nb_remote
        hub = start(root / "hub", hub_config(root / "hub", nb, [a, b]), made)
        for e in (a, b):
            start(root / f"node-{e.tag}", node_config(root / f"node-{e.tag}", nb, e, root / "hub"), made, "--role", "node")

        docker(a.d, "network", "create", "-d", a.driver, "--ipam-driver", a.driver, "--subnet", SUBNET, "green")
        # the hub's one switch, and engine B's copy: same name, subnet and gateway, B's driver and IPAM
        sync_wait_until(lambda: SHARED in switches(pair), WAIT, "the shared switch")
        sync_wait_until(lambda: network(b, "green") is not None, WAIT, "green on engine B")
        copy = network(b, "green")
        assert copy is not None
        assert (copy["Driver"], copy["IPAM"]["Driver"]) == (b.driver, b.driver)
        assert [(c["Subnet"], c.get("Gateway")) for c in copy["IPAM"]["Config"]] == [(SUBNET, GATEWAY)]
        assert copy["Labels"] == {"ovn-hub.io/shared-mirror": HUB_ID}
        sw = switches(pair)
        assert not {"docker/a/green", "docker/b/green"} & set(sw)
        assert ovs_map(sw[SHARED]["other_config"])["subnet"] == SUBNET
        assert ovs_map(sw[SHARED]["external_ids"])["ovn-hub:gateway"] == GATEWAY

        # a container on each engine: addresses from the hub, never the same; ports on the one switch
        ca = docker(a.d, "run", "-d", "--name", "ca", "--network", "green", "busybox:hub", "sleep", "3600")
        cb = docker(b.d, "run", "-d", "--name", "cb", "--network", "green", "busybox:hub", "sleep", "3600")
        names = {f"docker/a/green/{ca}", f"docker/b/green/{cb}"}

        def up() -> bool:
            p = ports(pair)
            return names <= set(p) and all(p[n]["up"] is True for n in names)

        sync_wait_until(up, WAIT, "both containers' ports up")
        ip_a, ip_b = ip_of(a, "ca"), ip_of(b, "cb")
        assert ip_a != ip_b and {ip_a, ip_b} <= {f"10.60.0.{i}" for i in range(2, 255)}, (ip_a, ip_b)
        sw_ports = {u[1] for u in ovs_set(switches(pair)[SHARED]["ports"])}
        assert {p["_uuid"][1] for p in ports(pair).values()} <= sw_ports
        assert (pair.bound_chassis(f"docker/a/green/{ca}"), pair.bound_chassis(f"docker/b/green/{cb}")) == NODES

        pair.ovn.nbctl(f"--timeout={int(WAIT)}", "--wait=hv", "sync")
        assert can_ping(a, "ca", ip_b), "a container on A reaches one on B over the shared network"
        assert can_ping(b, "cb", ip_a), "and back"

        # the hub away: no address can be had, and Docker says why
        hub.stop()
        res = subprocess.run(["docker", "-H", b.d.url, "run", "-d", "--name", "cx", "--network", "green", "busybox:hub",
                              "sleep", "3600"], capture_output=True, text=True, timeout=60)  # fmt: skip
        assert res.returncode != 0 and "did not answer" in res.stderr and "is hubd running" in res.stderr, res.stderr
        docker(b.d, "rm", "-f", "cx")
        # a restarted hub has forgotten its reservations, but its desired state holds A's and B's addresses
        hub.notify.drain()
        hub.notify.messages.clear()  # the first start's READY=1
        hub.start()
        hub.wait_ready(60)
        cx = docker(b.d, "run", "-d", "--name", "cx", "--network", "green", "busybox:hub", "sleep", "3600")
        ip_x = ip_of(b, "cx")
        assert ip_x not in {ip_a, ip_b, GATEWAY}, (ip_x, ip_a, ip_b)
        sync_wait_until(lambda: ports(pair).get(f"docker/b/green/{cx}", {}).get("up") is True, WAIT, "cx up")
        pair.ovn.nbctl(f"--timeout={int(WAIT)}", "--wait=hv", "sync")
        assert can_ping(a, "ca", ip_x), "the third one, from A"
        docker(b.d, "rm", "-f", "cx")

        # the network removed where it was made: the switch goes, and B's copy once B's container left it
        docker(a.d, "rm", "-f", "ca")
        docker(b.d, "rm", "-f", "cb")
        docker(a.d, "network", "rm", "green")
        sync_wait_until(lambda: SHARED not in switches(pair), WAIT, "the shared switch collected")
        sync_wait_until(lambda: network(b, "green") is None, WAIT, "B's copy removed")
        assert network(a, "green") is None  # not copied back to where it was removed
        assert ports(pair) == {}
    except AssertionError as exc:
        logs = "\n".join(f"--- {h.dir.name}:\n{h.logtext()[-4000:]}" for h in made)
        raise AssertionError(f"{exc}\n{logs}") from None
    finally:
        for e in (a, b):
            docker(e.d, "rm", "-f", "ca", "cb", "cx", check=False)
            docker(e.d, "network", "rm", "green", check=False)
        for h in made:
            h.close()
