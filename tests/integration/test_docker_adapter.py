"""DockerAdapter against a REAL private dockerd (see testkit/dockerd.py).

Fails (never skips) when dockerd/busybox are missing or we are not root.  The daemon is
module-scoped and always stopped (and its data root removed) at the end.  What
needs no daemon (options, malformed lines, stream framing) is in
tests/unit/test_docker_adapter.py.

Most tests here watch the adapter follow containers on Docker bridge networks
(``hub-a``, ``hub-b``): real addresses and MACs, events, relists.  Those run
with ``mirror_bridge_networks = true`` (:func:`mirroring`), the option that maps
networks Docker's own drivers serve; by default the adapter leaves them out
(:func:`test_bridge_networks_are_not_mirrored_by_default`), and networks of the
OVN Hub driver are mapped (tests/integration/test_docker_driver.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiodocker
import pytest

from adapters.docker import DockerAdapter
from core.model import Delete, Endpoint, InputEvent, Network, Policy, Rejected, Snapshot, Source, Upsert, validate
from testkit.dockerd import DOCKERD, PrivateDockerd, import_busybox
from tests.unit.test_docker_adapter import WAIT, WRAP_NETS, Sink, make_adapter


def mirroring(url: str, **options: Any) -> DockerAdapter:
    """An adapter that maps Docker's own networks too (the subject of most tests here)."""
    return make_adapter(url, mirror_bridge_networks=True, **options)


# ---------------------------------------------------------------- fixtures
@dataclass
class Env:
    dockerd: PrivateDockerd
    image: str
    net_a: str
    net_b: str
    subnet_a: str
    subnet_b: str

    @property
    def url(self) -> str:
        return self.dockerd.url


def _can_run_dockerd() -> str | None:
    if not os.path.exists(DOCKERD):
        return f"{DOCKERD} not installed"
    if not os.path.exists("/bin/busybox"):
        return "/bin/busybox not installed"
    if os.geteuid() != 0:
        return "dockerd needs root"
    if shutil.which("containerd") is None:
        return "containerd not installed"
    return None


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    why = _can_run_dockerd()
    if why:
        pytest.fail(f"the real dockerd is required (make test installs it): {why}")
    d = PrivateDockerd()
    try:
        d.start()
        image = import_busybox(d.sock)
        # Random /24s so parallel private daemons on this host do not collide.
        third = random.sample(range(0, 256), 2)
        second = random.randint(100, 250)
        subnet_a, subnet_b = (f"10.{second}.{t}.0/24" for t in third)

        async def make_networks() -> None:
            async with aiodocker.Docker(url=d.url) as docker:
                # hub-a with an explicit gateway, hub-b without (IPAM.Config then has none)
                for name, cfg in (
                    ("hub-a", {"Subnet": subnet_a, "Gateway": subnet_a.replace(".0/24", ".254")}),
                    ("hub-b", {"Subnet": subnet_b}),
                ):
                    await docker.networks.create({"Name": name, "Driver": "bridge", "IPAM": {"Config": [cfg]}})

        asyncio.run(make_networks())
        yield Env(d, image, "hub-a", "hub-b", subnet_a, subnet_b)
    finally:
        d.stop()


@contextlib.asynccontextmanager
async def running(adapter: DockerAdapter, sink: Sink) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(adapter.run(sink))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(WAIT):
                await task


async def start_container(
    docker: aiodocker.Docker,
    env: Env,
    name: str,
    networks: list[str],
    *,
    start: bool = True,
    restart_always: bool = False,
    labels: dict[str, str] | None = None,
) -> str:
    host_config: dict[str, Any] = {"NetworkMode": networks[0], "Init": True}
    if restart_always:
        host_config["RestartPolicy"] = {"Name": "always"}
    config: dict[str, Any] = {
        "Image": env.image,
        "Cmd": ["sleep", "3600"],
        "Labels": labels or {},
        "StopTimeout": 1,
        "HostConfig": host_config,
    }
    c = await docker.containers.create(config, name=name)
    for net in networks[1:]:
        await docker._query_json(f"networks/{net}/connect", "POST", data={"Container": c.id})
    if start:
        await c.start()
    return c.id


def expected_endpoints(inspect: dict[str, Any]) -> dict[str, tuple[tuple[str, ...], str]]:
    """network → (ips, mac) as the daemon reports them."""
    out: dict[str, tuple[tuple[str, ...], str]] = {}
    for net, att in inspect["NetworkSettings"]["Networks"].items():
        ips = tuple(ip for ip in (att["IPAddress"], att["GlobalIPv6Address"]) if ip)
        out[net] = (ips, att["MacAddress"])
    return out


def endpoints_of(events: list[InputEvent] | Snapshot, cid: str) -> dict[str, Endpoint]:
    objs = events.objects if isinstance(events, Snapshot) else [e.obj for e in events if isinstance(e, Upsert)]
    return {o.network: o for o in objs if isinstance(o, Endpoint) and o.uid == cid}


def is_delete_of(key: str) -> Callable[[InputEvent], bool]:
    return lambda e: isinstance(e, Delete) and e.kind == "endpoint" and e.key == key


def is_upsert_of(
    cid: str, net: str, pred: Callable[[Endpoint], bool] = lambda ep: True
) -> Callable[[InputEvent], bool]:
    def match(e: InputEvent) -> bool:
        return (
            isinstance(e, Upsert)
            and isinstance(e.obj, Endpoint)
            and e.obj.uid == cid
            and e.obj.network == net
            and pred(e.obj)
        )

    return match


async def test_unreachable_daemon_keeps_retrying(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ovn_hub")
    adapter = make_adapter(f"unix://{tmp_path}/nothing.sock")
    sink = Sink()
    async with running(adapter, sink) as task:
        async with asyncio.timeout(WAIT):  # three failed attempts, the task still running
            while sum("unavailable" in r.getMessage() for r in caplog.records) < 3:
                await asyncio.sleep(0.05)
        assert not task.done()
    assert sink.events == []
    assert not adapter.connected


# ---------------------------------------------------------------- with a real daemon
async def test_first_snapshot_has_real_ips_and_macs(env: Env) -> None:
    async with aiodocker.Docker(url=env.url) as docker:
        c1 = await start_container(docker, env, "snap-one", [env.net_a], labels={"com.docker.compose.project": "p1"})
        c2 = await start_container(docker, env, "snap-two", [env.net_a, env.net_b])
        c3 = await start_container(docker, env, "snap-stopped", [env.net_b], start=False)
        host = await docker.containers.create(
            {"Image": env.image, "Cmd": ["sleep", "3600"], "HostConfig": {"NetworkMode": "host", "Init": True}},
            name="snap-host",
        )
        await host.start()
        info = await docker.system.info()
        inspects = {cid: await docker.containers.container(cid).show() for cid in (c1, c2)}

        adapter = mirroring(env.url)
        sink = Sink()
        async with running(adapter, sink):
            i = await sink.wait_for(lambda e: isinstance(e, Snapshot))
            snap = sink.events[i]
            assert isinstance(snap, Snapshot)
            await sink.wait_until(lambda: adapter.connected)

    assert not [e for e in sink.events[:i] if not isinstance(e, Rejected)]
    assert adapter.rejected == {}
    assert snap.source == Source("docker", "test")
    for obj in snap.objects:
        validate(obj)
    nets = {o.name: o for o in snap.objects if isinstance(o, Network)}
    assert nets[env.net_a].subnets == (env.subnet_a,)
    assert nets[env.net_b].subnets == (env.subnet_b,)
    assert nets[env.net_a].gateway == env.subnet_a.replace(".0/24", ".254")
    assert nets[env.net_b].gateway is None
    assert "host" not in nets and "none" not in nets

    for cid, want_nets in ((c1, {env.net_a}), (c2, {env.net_a, env.net_b})):
        got = endpoints_of(snap, cid)
        assert set(got) == want_nets
        real = expected_endpoints(inspects[cid])
        for net, ep in got.items():
            ips, mac = real[net]
            assert ep.ips == ips and ips  # the REAL addresses
            assert ep.mac == mac and mac
            assert ep.node == info["Name"]
            assert ep.state == "running"
            assert ep.kind == "container"
    assert endpoints_of(snap, c1)[env.net_a].namespace == "p1"
    assert endpoints_of(snap, c1)[env.net_a].name == "snap-one"
    assert endpoints_of(snap, c2)[env.net_b].namespace == "default"
    assert endpoints_of(snap, c3) == {}
    assert endpoints_of(snap, host.id) == {}
    assert host.id in adapter._host_logged  # logged once as host-networked


async def test_stop_start_pause_rename_connect(env: Env) -> None:
    async with aiodocker.Docker(url=env.url) as docker:
        cid = await start_container(docker, env, "life", [env.net_a, env.net_b])
        adapter = mirroring(env.url)
        sink = Sink()
        async with running(adapter, sink):
            i = await sink.wait_for(lambda e: isinstance(e, Snapshot))
            snap = sink.events[i]
            assert isinstance(snap, Snapshot)
            keys = {ep.key for ep in endpoints_of(snap, cid).values()}
            assert keys == {f"{env.net_a}/{cid}", f"{env.net_b}/{cid}"}

            # stop → a Delete per endpoint
            mark = len(sink.events)
            await docker.containers.container(cid).stop(t=1)
            for key in keys:
                await sink.wait_for(is_delete_of(key), mark)
            assert not adapter.cache.endpoints() or cid not in {e.uid for e in adapter.cache.endpoints()}

            # start → an Upsert per endpoint, with the new real addresses
            mark = len(sink.events)
            await docker.containers.container(cid).start()
            for net in (env.net_a, env.net_b):
                await sink.wait_for(is_upsert_of(cid, net), mark)
            real = expected_endpoints(await docker.containers.container(cid).show())
            await sink.wait_until(lambda: len(endpoints_of(sink.events[mark:], cid)) == 2)
            for net, ep in endpoints_of(sink.events[mark:], cid).items():
                assert (ep.ips, ep.mac) == real[net]

            # pause/unpause: harmless state changes on the same keys
            mark = len(sink.events)
            await docker.containers.container(cid).pause()
            await sink.wait_for(is_upsert_of(cid, env.net_a, lambda ep: ep.state == "paused"), mark)
            await docker.containers.container(cid).unpause()
            await sink.wait_for(is_upsert_of(cid, env.net_a, lambda ep: ep.state == "running"), mark)

            # rename → Upsert with the new name, same key
            mark = len(sink.events)
            await docker.containers.container(cid).rename("life-renamed")
            await sink.wait_for(is_upsert_of(cid, env.net_b, lambda ep: ep.name == "life-renamed"), mark)

            # network disconnect → Delete of that endpoint only; connect → Upsert
            mark = len(sink.events)
            await docker._query_json(f"networks/{env.net_b}/disconnect", "POST", data={"Container": cid})
            await sink.wait_for(is_delete_of(f"{env.net_b}/{cid}"), mark)
            await docker._query_json(f"networks/{env.net_b}/connect", "POST", data={"Container": cid})
            await sink.wait_for(is_upsert_of(cid, env.net_b), mark)

            # network create/destroy → Upsert/Delete Network
            mark = len(sink.events)
            tmp_net = await docker.networks.create({"Name": "hub-tmp", "Driver": "bridge"})
            await sink.wait_for(lambda e: isinstance(e, Upsert) and isinstance(e.obj, Network)
                                and e.obj.name == "hub-tmp", mark)  # fmt: skip
            await tmp_net.delete()
            await sink.wait_for(lambda e: isinstance(e, Delete) and e.kind == "network" and e.key == "hub-tmp", mark)

            # kill + remove → Deletes; nothing is left of it
            mark = len(sink.events)
            await docker.containers.container(cid).delete(force=True)
            for key in keys:
                await sink.wait_for(is_delete_of(key), mark)
            assert cid not in {e.uid for e in adapter.cache.endpoints()}

            # no-op filtering: a duplicate event emits nothing
            mark = len(sink.events)
            await adapter.sync_container(docker, cid, sink)
            assert len(sink.events) == mark
    assert adapter.rejected == {}
    assert sink.snapshots() == [i]  # no relist needed while connected


async def test_handle_line_on_live_daemon(env: Env) -> None:
    """A bad line, then a good one for a real container: Rejected, then Upsert."""
    async with aiodocker.Docker(url=env.url) as docker:
        cid = await start_container(docker, env, "lines", [env.net_b])
        adapter = mirroring(env.url)
        sink = Sink()
        await adapter.handle_line(b'{"Type":"container","Action":"sta', sink, docker)
        good = {"Type": "container", "Action": "start", "Actor": {"ID": cid, "Attributes": {}},
                "time": 1, "timeNano": 1_000_000_001}  # fmt: skip
        await adapter.handle_line(json.dumps(good).encode(), sink, docker)
        await adapter.handle_line(json.dumps(good).encode(), sink, docker)  # duplicate: de-duplicated
        gone = {**good, "Actor": {"ID": "f" * 64}, "timeNano": 1_000_000_002}
        await adapter.handle_line(json.dumps(gone).encode(), sink, docker)  # unknown container: nothing
        real = expected_endpoints(await docker.containers.container(cid).show())
    assert isinstance(sink.events[0], Rejected) and sink.events[0].reason == "bad-json"
    assert len(sink.events) == 2
    up = sink.events[1]
    assert isinstance(up, Upsert) and isinstance(up.obj, Endpoint)
    assert (up.obj.uid, up.obj.network, up.obj.ips, up.obj.mac) == (cid, env.net_b, *real[env.net_b])
    assert adapter.rejected == {"bad-json": 1}


async def test_periodic_resync_emits_snapshot(env: Env) -> None:
    adapter = make_adapter(env.url, resync_interval=0.5)
    sink = Sink()
    async with running(adapter, sink):
        await sink.wait_until(lambda: len(sink.snapshots()) >= 3)
    assert adapter.relists >= 3


async def test_daemon_restart_relists_and_keeps_working(env: Env) -> None:
    async with aiodocker.Docker(url=env.url) as docker:
        keeper = await start_container(docker, env, "keeper", [env.net_a], restart_always=True)
    adapter = mirroring(env.url)
    sink = Sink()
    async with running(adapter, sink) as task:
        first = await sink.wait_for(lambda e: isinstance(e, Snapshot))
        first_snap = sink.events[first]
        assert isinstance(first_snap, Snapshot)
        assert endpoints_of(first_snap, keeper)

        mark = len(sink.events)
        await asyncio.wait_for(asyncio.to_thread(env.dockerd.restart), WAIT)
        again = await sink.wait_for(lambda e: isinstance(e, Snapshot), mark)
        assert again > first
        await sink.wait_until(lambda: adapter.connected)
        assert not task.done()

        # the adapter still works: a new container shows up, the keeper is current
        async with aiodocker.Docker(url=env.url) as docker:
            mark = len(sink.events)
            fresh = await start_container(docker, env, "after-restart", [env.net_b])
            await sink.wait_for(is_upsert_of(fresh, env.net_b), mark)

            async def keeper_current() -> bool:
                data = await docker.containers.container(keeper).show()
                if not data["State"]["Running"]:
                    return False
                real = expected_endpoints(data)
                cached = {e.network: (e.ips, e.mac) for e in adapter.cache.endpoints() if e.uid == keeper}
                return cached == real

            async with asyncio.timeout(WAIT):
                while not await keeper_current():
                    await asyncio.sleep(0.1)
            real = expected_endpoints(await docker.containers.container(fresh).show())
            cached = {e.network: (e.ips, e.mac) for e in adapter.cache.endpoints() if e.uid == fresh}
            assert cached == real
    assert adapter.rejected == {}


async def test_bridge_networks_are_not_mirrored_by_default(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    """Docker's own bridge serves hub-a and hub-b: OVN never carries their packets, so by
    default neither the networks nor their containers are mapped (said once per network),
    also for a network created and a container started while the adapter runs; wrapper
    mode, which does not depend on Docker's networks, still maps."""
    caplog.set_level(logging.INFO)
    adapter = make_adapter(env.url, networks=WRAP_NETS)
    sink = Sink()
    async with aiodocker.Docker(url=env.url) as docker:
        c1 = await start_container(docker, env, "plain-1", [env.net_a])
        async with running(adapter, sink):
            first = sink.events[await sink.wait_for(lambda e: isinstance(e, Snapshot))]
            assert isinstance(first, Snapshot)
            assert {o.name for o in first.objects if isinstance(o, Network)} == set(WRAP_NETS)
            assert not [o for o in first.objects if isinstance(o, Endpoint)], first.objects
            later = await docker.networks.create({"Name": "hub-late", "Driver": "bridge"})
            c2 = await start_container(docker, env, "plain-2", ["hub-late", env.net_b])
            c3 = await start_container(docker, env, "wrapped", ["none"], labels={"ovn-hub.network": "blue"})
            await sink.wait_for(is_upsert_of(c3, "blue"))
            ups = [e.obj for e in sink.events if isinstance(e, Upsert) and isinstance(e.obj, (Network, Endpoint))]
            assert [(type(o).__name__, getattr(o, "uid", "")) for o in ups] == [("Endpoint", c3)], ups
            assert endpoints_of(await adapter.relist(docker, sink), c2) == {}
        for c in (c1, c2, c3):
            await docker.containers.container(c).delete(force=True)
        await later.delete()
    said = [r.getMessage() for r in caplog.records if "served by Docker's own driver" in r.getMessage()]
    assert any("'hub-a' (driver bridge)" in m for m in said) and any("'hub-late'" in m for m in said), said
    assert len([m for m in said if "'hub-a'" in m]) == 1, said


# ---------------------------------------------------------------- wrapper mode and the policies file
async def test_wrapped_containers_and_hub_networks(env: Env) -> None:
    """--network none + ovn-hub.network: an Endpoint on the hub network; an unknown
    network is Rejected (named), the adapter goes on."""
    adapter = make_adapter(env.url, networks=WRAP_NETS)
    sink = Sink()
    async with aiodocker.Docker(url=env.url) as docker:
        w1 = await start_container(docker, env, "w1", ["none"], labels={"ovn-hub.network": "blue"})
        async with running(adapter, sink):
            first = sink.events[await sink.wait_for(lambda e: isinstance(e, Snapshot))]
            assert isinstance(first, Snapshot)
            nets = {o.name: o for o in first.objects if isinstance(o, Network)}
            assert {"blue", "red"} <= set(nets) and nets["blue"].gateway == "10.70.0.1"
            (ep,) = endpoints_of(first, w1).values()
            assert (ep.network, ep.ips, ep.mac) == ("blue", (), None)
            w2 = await start_container(
                docker, env, "w2", ["none"], labels={"ovn-hub.network": "red", "ovn-hub.ip": "10.71.0.7"}
            )
            await sink.wait_for(is_upsert_of(w2, "red", lambda e: e.ips == ("10.71.0.7",)))
            bad = await start_container(docker, env, "w3", ["none"], labels={"ovn-hub.network": "green"})
            i = await sink.wait_for(lambda e: isinstance(e, Rejected) and e.ref == bad)
            rej = sink.events[i]
            assert isinstance(rej, Rejected) and rej.reason == "unknown-network" and "'green'" in rej.message
            await docker.containers.container(w1).stop(t=1)
            await sink.wait_for(is_delete_of(f"blue/{w1}"))
        for c in (w1, w2, bad):
            await docker.containers.container(c).delete(force=True)


async def test_policies_file_is_loaded_reloaded_and_bad_files_keep_the_last_good(env: Env, tmp_path: Any) -> None:
    path = tmp_path / "policies.json"
    deny = {"uid": "deny-db", "namespace": "default", "name": "deny-db",
            "pod_selector": {"match_labels": {"app": "db"}}, "ingress": []}  # fmt: skip
    path.write_text(json.dumps([deny]))
    adapter = make_adapter(env.url, policies=str(path))
    sink = Sink()
    async with running(adapter, sink):
        first = sink.events[await sink.wait_for(lambda e: isinstance(e, Snapshot))]
        assert isinstance(first, Snapshot)
        pols = [o for o in first.objects if isinstance(o, Policy)]
        assert [(p.uid, p.source, p.ingress) for p in pols] == [("deny-db", Source("docker", "test"), ())]

        allow = {**deny, "uid": "allow-web", "name": "allow-web", "ingress": [{"ports": [{"port": 80}]}]}
        path.write_text(json.dumps([deny, allow]))
        await sink.wait_for(lambda e: isinstance(e, Upsert) and isinstance(e.obj, Policy) and e.obj.uid == "allow-web")

        n = len(sink.events)
        path.write_text('[{"uid": "x", "namespace": "default"')  # truncated: rejected, policies stay
        i = await sink.wait_for(lambda e: isinstance(e, Rejected), start=n)
        assert isinstance(sink.events[i], Rejected) and sink.events[i].reason == "bad-json"
        path.write_text(json.dumps([{**deny, "source": {"orchestrator": "k8s", "cluster": "x"}}]))
        i = await sink.wait_for(lambda e: isinstance(e, Rejected) and e.reason == "wrong-source", start=n)
        assert not [e for e in sink.events[n:] if isinstance(e, Delete)], "a bad file must not delete policies"

        n = len(sink.events)
        path.unlink()  # a missing file: rejected once, not every second; the policies stay
        i = await sink.wait_for(lambda e: isinstance(e, Rejected) and e.reason == "policies-file", start=n)
        checks = adapter.policy_checks
        async with asyncio.timeout(WAIT):  # two more polls: nothing new may be reported for the same missing file
            while adapter.policy_checks < checks + 2:
                await asyncio.sleep(0.05)
        assert [e for e in sink.events[n:] if isinstance(e, (Rejected, Delete))] == [sink.events[i]]

        path.write_text(json.dumps([allow]))  # deny-db removed
        await sink.wait_for(lambda e: isinstance(e, Delete) and e.kind == "policy" and e.key == "deny-db", start=n)
        assert {p.uid for p in adapter.cache.objects.values() if isinstance(p, Policy)} == {"allow-web"}
