"""The Docker network + IPAM driver at work on a node: plugin socket, binding, adoption.

``hubd --role node`` with ``[node] driver_socket`` runs :class:`DriverNode`
beside wrapper mode's :class:`~adapters.docker.node.DockerNode`:

* **the plugin socket** (aiohttp on a unix socket, content type
  ``application/vnd.docker.plugins.v1.2+json``): Docker's calls are answered by
  :class:`~adapters.docker.driver.Driver` from its state file and netlink only —
  never a call back into the Engine API (Docker holds the container's lock
  while it waits for ``Join``) and never NB — so they are served whenever the
  process runs;
* **binding**: a joined endpoint's veth goes on br-int once NB holds the port of
  its (container, network) requesting this chassis (what the hub wrote from its
  Docker adapter), with ``iface-id`` = that port's name.  Which container an
  endpoint belongs to comes from ``GET /networks/<id>`` (``Containers`` map
  endpoint ids to containers), looked at again on the network's ``connect``
  event; NB updates come from a read-only monitor (:class:`core.vif.NbView`);
  ovn-controller then binds the port and NB ``up`` turns true;
* **adoption and orphans**: at every session start and every
  ``resync_interval``, the bridge's Interfaces tagged
  ``ovn-hub:docker-driver=<hub id>`` and the state file are compared with what
  Docker holds (:meth:`DriverState.adopt`): a restarted agent touches nothing
  that still matches, plumbing of endpoints Docker no longer has goes, and
  Interfaces of endpoints the state does not know are removed.  An engine
  restart is Docker's own Leave/DeleteEndpoint calls on the way down, then its
  cleanup of stale endpoints on the way up; the resync catches what it missed;
* **shared networks**: every driver network is a shared hub network (switch
  ``ovn-hub/net/<name>``).  For each one NB holds, the agent creates a Docker
  network of that name on its engine (this driver, its IPAM, the switch's subnet
  and gateway, label ``ovn-hub.io/shared-mirror=<hub id>``), and removes such a copy
  once the switch is gone and no container uses it (:func:`~.driver.mirror_plan`);
  looked at when NB's shared switches change, when a network is destroyed, and at
  every resync;
* **addresses from the hub** (``[node] hub_api``): an endpoint's ``RequestAddress``
  is answered by the hub's ``POST /v1/ipam/request`` (hub/ipam.py) with the
  ingest token, so two engines never hand out one address; the gateway stays local
  (the same on every engine).  The hub unreachable is a Docker error naming it.

Level-triggered like the rest: events only mark endpoints or networks dirty.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp
import msgspec
from aiohttp import web
from prometheus_client import Counter

from core.backoff import Backoff
from core.ovsdb import ConnectionLost, OvsdbClient, OvsdbError, Tls
from core.vif import NbView, OvsBridge, PlumbError
from core.vif.handoff import DRIVER_OWNER, Handoff, HandoffLinks, HandoffPorts, OvsHandoff

from .driver import (
    CONTENT_TYPE,
    LOCAL_SPACE,
    MIRROR_LABEL,
    DockerNet,
    DockerView,
    Driver,
    DriverError,
    DriverState,
    Endpoint,
    handoff_names,
    mirror_plan,
)

__all__ = ["I_CONTAINER", "I_ENDPOINT", "I_NETWORK_ID", "DriverNode", "plugin_app"]

log = logging.getLogger("ovn_hub.driver")

DRIVER_CALLS = Counter(
    "ovn_hub_docker_driver_calls_total", "Docker network/IPAM driver: plugin calls by method and result",
    ["method", "result"],
)  # fmt: skip

#: external_ids of a bound Interface (besides iface-id and DRIVER_OWNER)
I_ENDPOINT = "ovn-hub:docker-endpoint"
I_NETWORK_ID = "ovn-hub:docker-network"
I_CONTAINER = "ovn-hub:docker-container"
_REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)
_OVS_WAIT = 10.0  # seconds a Join waits for the Open_vSwitch connection (the datapath type decides TX offload)
_INSPECTS = 32  # container inspects in flight (most wait for Docker to finish starting their container)
_RETRY = 2.0


def plugin_app(
    driver: Driver, *, gate: Callable[[], Any] | None = None, on_call: Callable[[str, float], None] | None = None
) -> web.Application:
    """The plugin protocol over HTTP: ``POST /<Method>`` with a JSON body (or none).
    Unknown methods are 404 (libnetwork's "not implemented"), a body that is not
    JSON 400, a request that cannot be served 500 with ``{"Err": …}``.  ``gate``
    (awaited before Join) holds joins until the bridge is known."""
    methods = driver.methods()

    async def handle(request: web.Request) -> web.Response:
        name = request.match_info["method"]
        fn = methods.get(name)
        if fn is None:
            DRIVER_CALLS.labels("unknown", "not-found").inc()
            return web.json_response({"Err": f"{name} is not implemented"}, status=404, content_type=CONTENT_TYPE)
        raw = await request.read()
        try:
            body = msgspec.json.decode(raw) if raw.strip() else {}
        except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested too deeply
            DRIVER_CALLS.labels(name, "bad-request").inc()
            return web.json_response({"Err": f"not JSON: {exc}"}, status=400, content_type=CONTENT_TYPE)
        t0 = time.monotonic()
        try:
            if gate is not None and name == "NetworkDriver.Join":
                await gate()
            out = await fn(body)
        except (DriverError, PlumbError, OSError) as exc:
            DRIVER_CALLS.labels(name, "error").inc()
            log.warning("%s: %s", name, exc)
            return web.json_response({"Err": str(exc)}, status=500, content_type=CONTENT_TYPE)
        except Exception as exc:  # a bug: Docker gets the reason, the log the traceback
            DRIVER_CALLS.labels(name, "error").inc()
            log.exception("%s failed", name)
            return web.json_response({"Err": f"internal error: {type(exc).__name__}: {exc}"}, status=500,
                                     content_type=CONTENT_TYPE)  # fmt: skip
        DRIVER_CALLS.labels(name, "ok").inc()
        if on_call is not None:
            on_call(name, time.monotonic() - t0)
        log.debug("%s %s -> %s", name, raw[:300], out)
        return web.Response(body=msgspec.json.encode(out), content_type=CONTENT_TYPE)

    app = web.Application(client_max_size=1 << 20)
    app.router.add_post("/{method}", handle)
    return app


def _ours(ids: dict[str, str] | None) -> dict[str, str]:
    """The external_ids this driver writes (ovs-vswitchd and ovn-controller add keys of their own)."""
    return {k: v for k, v in (ids or {}).items() if k in ("iface-id", "attached-mac") or k.startswith("ovn-hub:")}


def _holds(have: dict[str, str] | None, want: dict[str, str]) -> bool:
    """The Interface's external_ids are ``want`` as far as this driver is concerned (a stale key of ours differs)."""
    return have is not None and _ours(have) == want


def _read_token(path: str) -> str:
    """The first line of the hub's ingest token file (a small file, read per call: it may be rotated)."""
    try:
        return Path(path).read_text().partition("\n")[0].strip()
    except OSError as exc:
        raise DriverError(f"cannot read the hub's ingest token {path}: {exc.strerror}") from None


def _first_host(subnet: str) -> str:
    net = ipaddress.ip_network(subnet, strict=False)
    return str(net.network_address + 1) if net.num_addresses > 2 else str(net.network_address)


class DriverNode:
    """Serves the plugin socket and keeps br-int's driver ports equal to Docker's endpoints."""

    backoff_initial = 0.5
    backoff_max = 30.0

    def __init__(
        self,
        *,
        name: str,
        socket: str,
        state_path: str,
        hub_id: str,
        nb_remote: str,
        docker_url: str,
        bridge: OvsBridge | None = None,
        switch_netns: str = "",
        chassis: str = "",
        resync_interval: float = 60.0,
        handoff: Handoff | None = None,
        hub_api: str = "",
        hub_token_file: str = "",
        nb_tls: Tls | None = None,
    ) -> None:
        self.name = name
        self.nb_tls = nb_tls
        self.socket = socket
        self.hub_id = hub_id
        self.nb_remote = nb_remote
        self.docker_url = docker_url
        self.chassis = chassis
        self.resync_interval = resync_interval
        self.bridge = bridge
        if handoff is None:
            assert bridge is not None
            self.links: Handoff = OvsHandoff(HandoffLinks(switch_netns), HandoffPorts(bridge))
        else:
            self.links = handoff
        self.state = DriverState(state_path)
        self.hub_api = hub_api
        self.hub_token_file = hub_token_file
        central = bool(hub_api)
        self.driver = Driver(self.state, self.links, on_change=self.mark, deleted=self._deleted,
                             allocate=self._allocate if central else None,
                             release=self._release if central else None)  # fmt: skip
        #: shared networks: what NB held when they were last mirrored; networks of this driver made here
        #: by someone else than this agent (by name); names removed here while NB still had them
        self._shared_seen: dict[str, tuple[str, str]] | None = None
        self._own: set[str] = set()
        self.declined: set[str] = set()
        self._mirror_due = True
        self.mirrored = 0
        self.unmirrored = 0
        self.nb = NbView()
        self.ready = asyncio.Event()
        self.ovs_ready = asyncio.Event()
        #: endpoint id → (container id, network name), from Docker's network inspects
        self.owners: dict[str, tuple[str, str]] = {}
        #: bridge Interface name → external_ids, as this process last wrote or read them
        self.bound: dict[str, dict[str, str]] = {}
        self.dirty: set[str] = set()
        self._inspecting: dict[str, bool] = {}  # container → inspect in flight (True: look once more after it)
        self._inspects: set[asyncio.Task[None]] = set()
        self._inspect_sem = asyncio.Semaphore(_INSPECTS)
        self.wake = asyncio.Event()
        self.binds = 0
        self.unbinds = 0
        self.failures = 0
        self.adoptions = 0
        #: endpoint id → monotonic time of its Join (bench: join → bound)
        self.joined_at: dict[str, float] = {}
        self.on_bound: Callable[[str, str, float | None], None] | None = None
        #: when set (the bench): endpoint id → {"owner"|"nb"|"bind": monotonic time it was first seen}
        self.timings: dict[str, dict[str, float]] | None = None
        #: method → the latest answer times (seconds), for the bench and /v1/status
        self.call_seconds: dict[str, list[float]] = {}
        self._recent: dict[str, int] = {}  # endpoint id → state seq when Docker deleted it
        self._docker: aiodocker.Docker | None = None
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------ plugin socket
    async def start_server(self) -> None:
        """Listen on the plugin socket (mode 0660; a stale socket file is replaced)."""
        path = self.socket
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._runner = web.AppRunner(plugin_app(self.driver, gate=self._wait_ovs, on_call=self._on_call),
                                     access_log=None, handle_signals=False)  # fmt: skip
        await self._runner.setup()
        site = web.UnixSite(self._runner, path)
        await site.start()
        os.chmod(path, 0o660)
        log.info("docker network + IPAM driver %r listening on %s (%d networks, %d endpoints in %s)", self.name,
                 path, len(self.state.networks), len(self.state.endpoints), self.state.path or "memory")  # fmt: skip

    def _on_call(self, method: str, seconds: float) -> None:
        self.call_seconds.setdefault(method, []).append(seconds)
        if len(self.call_seconds[method]) > 10_000:
            del self.call_seconds[method][:5_000]

    async def stop_server(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        with contextlib.suppress(OSError):
            os.unlink(self.socket)

    async def _wait_ovs(self) -> None:
        if self.ovs_ready.is_set():
            return
        try:
            async with asyncio.timeout(_OVS_WAIT):
                await self.ovs_ready.wait()
        except TimeoutError:
            raise DriverError(
                f"the node agent has no Open_vSwitch connection yet (waited {_OVS_WAIT:.0f} s); Docker retries"
            ) from None

    # ------------------------------------------------------------ marks
    def mark(self, eid: str) -> None:
        ep = self.state.endpoints.get(eid)
        if ep is not None and ep.joined:
            self.joined_at.setdefault(eid, time.monotonic())
        self.dirty.add(eid)
        self.wake.set()

    def _deleted(self, eid: str) -> None:
        self._recent[eid] = self.state.seq
        self.owners.pop(eid, None)
        self.joined_at.pop(eid, None)
        self.dirty.add(eid)
        self.wake.set()

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "socket": self.socket,
            "ready": self.ready.is_set(),
            "networks": len(self.state.networks),
            "pools": len(self.state.pools),
            "binds": self.binds,
            "unbinds": self.unbinds,
            "mirrored": self.mirrored,
            "unmirrored": self.unmirrored,
            "addresses_from": self.hub_api or "this engine's pools",
            "failures": self.failures,
            "endpoints": [
                {"endpoint": ep.id, "network": ep.network, "addresses": ep.ips, "mac": ep.mac, "joined": ep.joined,
                 "dev": ep.dev, "container": self.owners.get(ep.id, ("", ""))[0],
                 "port": self.bound.get(ep.dev, {}).get("iface-id", "")}
                for ep in sorted(self.state.endpoints.values(), key=lambda e: e.id)
            ],
        }  # fmt: skip

    # ------------------------------------------------------------ run loop
    async def run(self) -> None:
        """Reconnect (Open_vSwitch, NB, Docker) with backoff until cancelled; the
        plugin socket is served throughout (start_server before)."""
        backoff = Backoff(min(self.backoff_initial, self.backoff_max), self.backoff_max)
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except (OSError, aiohttp.ClientError, aiodocker.DockerError, OvsdbError, TimeoutError, PlumbError) as exc:
                log.warning("docker driver session failed: %s; reconnecting", exc)
            except Exception:
                log.exception("docker driver session failed unexpectedly; reconnecting")
            self.ready.clear()
            if loop.time() - began > 30:
                backoff.reset()
            await asyncio.sleep(backoff.next())

    async def _session(self) -> None:
        if self.bridge is not None:
            await self.bridge.connect()
            if not self.chassis:
                self.chassis = self.bridge.system_id
        self.ovs_ready.set()
        if not self.chassis:
            raise PlumbError("no [node] chassis configured and Open_vSwitch has no external_ids:system-id")
        nb = OvsdbClient(self.nb_remote, tls=self.nb_tls)
        try:
            await nb.connect()
            nb.on_update = self._on_nb_update
            self.nb.clear()
            await nb.monitor_cond(NbView.monitor_spec(self.hub_id, self.chassis), monitor_id="driver")
            async with aiodocker.Docker(url=self.docker_url, timeout=_REQUEST_TIMEOUT) as docker:
                self._docker = docker
                filters = {"type": ["container", "network"], "event": ["start", "connect", "destroy"]}
                params = {"filters": msgspec.json.encode(filters).decode()}
                stream_timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=30)
                async with docker._query("events", params=params, timeout=stream_timeout) as resp:
                    await self.reconcile()
                    if not self.ready.is_set():
                        log.info("docker driver %r ready: %d endpoints, %d bound on the bridge", self.name,
                                 len(self.state.endpoints), len(self.bound))  # fmt: skip
                    self.ready.set()
                    try:
                        async with asyncio.TaskGroup() as tg:
                            tg.create_task(self._read_events(resp))
                            tg.create_task(self._bind_loop())
                            tg.create_task(self._watch_nb(nb))
                    except BaseExceptionGroup as group:
                        raise group.exceptions[0] from None
        finally:
            for task in list(self._inspects):
                task.cancel()
            await asyncio.gather(*self._inspects, return_exceptions=True)
            self._docker = None
            nb.on_update = None
            await nb.close()

    @staticmethod
    async def _watch_nb(nb: OvsdbClient) -> None:
        await nb.closed.wait()
        raise ConnectionLost("NB session lost")

    def _on_nb_update(self, updates: dict[str, Any]) -> None:
        cids = self.nb.apply(updates)
        if "Logical_Switch" in updates and self.nb.shared() != self._shared_seen:
            self._mirror_due = True
            self.wake.set()
        if not cids:
            return
        for eid, (cid, _net) in self.owners.items():
            if cid in cids:
                self.dirty.add(eid)
                self._timed(eid, "nb")
        self.wake.set()

    def _timed(self, eid: str, what: str) -> None:
        if self.timings is not None:
            self.timings.setdefault(eid, {}).setdefault(what, time.monotonic())

    async def _read_events(self, resp: aiohttp.ClientResponse) -> None:
        buf = bytearray()
        while True:
            chunk = await resp.content.readany()
            if not chunk:
                raise ConnectionLost("docker events stream closed")
            buf += chunk
            while (nl := buf.find(b"\n")) >= 0:
                line = bytes(buf[:nl])
                del buf[: nl + 1]
                self._on_event(line)
            if len(buf) > 1 << 20:
                buf.clear()

    def _on_event(self, line: bytes) -> None:
        try:
            ev = msgspec.json.decode(line)
        except msgspec.DecodeError:
            return
        if not isinstance(ev, dict):
            return
        actor = ev.get("Actor") or {}
        if not isinstance(actor, dict):
            return
        attrs = actor.get("Attributes") or {}
        if ev.get("Type") == "network" and ev.get("Action") == "destroy":
            self._mirror_due = True  # a shared network removed here, or one of its copies
            self.wake.set()
            return
        if ev.get("Type") == "container" and ev.get("Action") == "start":
            cid = actor.get("ID")
        elif ev.get("Type") == "network" and ev.get("Action") == "connect" and actor.get("ID") in self.state.networks:
            cid = attrs.get("container") if isinstance(attrs, dict) else None
        else:
            return
        if isinstance(cid, str) and cid:
            self.look_at(cid)

    def look_at(self, cid: str) -> None:
        """Inspect ``cid`` for its endpoints, in a task of its own: a container Docker is still
        starting (its ``connect`` event comes from inside the start) answers only once the start is
        done, and must not hold up the binding of the others."""
        if cid in self._inspecting:
            self._inspecting[cid] = True
            return
        self._inspecting[cid] = False
        task = asyncio.create_task(self._inspect_task(cid), name=f"inspect {cid[:12]}")
        self._inspects.add(task)
        task.add_done_callback(self._inspects.discard)

    async def _inspect_task(self, cid: str) -> None:
        try:
            while True:
                async with self._inspect_sem:
                    await self._inspect_container(cid)
                if not self._inspecting.get(cid):
                    break
                self._inspecting[cid] = False
        except (aiodocker.DockerError, aiohttp.ClientError, OSError, AssertionError) as exc:
            log.debug("inspect of %s failed: %s (the next resync looks again)", cid[:12], exc)
        finally:
            self._inspecting.pop(cid, None)
            self.wake.set()

    # ------------------------------------------------------------ reconciliation with Docker
    async def reconcile(self) -> None:
        """Adopt what exists, remove orphans (session start and every resync_interval)."""
        assert self._docker is not None
        before = self.state.seq
        view, owners = await self._docker_view(self._docker)
        gone: list[Endpoint] = []
        recent = [e for e, s in self._recent.items() if s >= before]
        there = {eid for eid in view.endpoints if eid not in self.state.endpoints
                 and await self.links.exists(handoff_names(eid)[0])}  # fmt: skip
        changes = self.state.adopt(view, before, exists=lambda dev: dev in {handoff_names(e)[0] for e in there},
                                   gone=gone.append, recent=recent)  # fmt: skip
        self._recent = {e: s for e, s in self._recent.items() if s >= before}
        if changes:
            self.adoptions += len(changes)
            for c in changes:
                log.warning("docker driver: %s", c)
            self.state.save()
        for ep in gone:
            await self._unplumb(ep.dev)
        self.owners.update(owners)
        # the bridge: what is bound, and Interfaces of endpoints the state does not know
        self.bound = await self.links.bound(self.hub_id)
        devs = {ep.dev: ep for ep in self.state.endpoints.values()}
        for dev, ids in sorted(self.bound.items()):
            known = devs.get(dev)
            if known is None or ids.get(I_ENDPOINT) != known.id:
                log.warning("removing bridge interface %s: endpoint %s is not Docker's", dev,
                            ids.get(I_ENDPOINT, "?")[:12])  # fmt: skip
                await self._unplumb(dev)
        for ep in self.state.endpoints.values():
            if ep.joined and not await self.links.exists(ep.dev):
                log.warning("endpoint %s: its veth %s is gone; it stays unplugged", ep.id[:12], ep.dev)
        self.dirty.update(self.state.endpoints)
        self.dirty.update(self.bound_endpoints())
        self._mirror_due = True  # the engine may have changed while this agent was away
        self.wake.set()

    def bound_endpoints(self) -> set[str]:
        return {ids.get(I_ENDPOINT, "") for ids in self.bound.values()} - {""}

    async def _docker_view(self, docker: aiodocker.Docker) -> tuple[DockerView, dict[str, tuple[str, str]]]:
        listed: Any = await docker._query_json("networks")
        view = DockerView()
        owners: dict[str, tuple[str, str]] = {}
        for item in listed if isinstance(listed, list) else []:
            if not isinstance(item, dict):
                continue
            ipam = item.get("IPAM") or {}
            ours, our_ipam = item.get("Driver") == self.name, ipam.get("Driver") == self.name
            if not (ours or our_ipam):
                continue
            nid = item.get("Id", "")
            try:
                detail: Any = await docker._query_json(f"networks/{nid}")
            except aiodocker.DockerError as exc:
                if exc.status == 404:
                    continue
                raise
            self._fold_network(detail, view, owners, ours=ours, our_ipam=our_ipam)
        return view, owners

    def _fold_network(self, detail: Any, view: DockerView, owners: dict[str, tuple[str, str]], *, ours: bool,
                      our_ipam: bool) -> None:  # fmt: skip
        nid, name = detail.get("Id", ""), detail.get("Name", "")
        pools, gws, pids = [], [], []
        known = self.state.networks.get(nid)
        for cfg in (detail.get("IPAM") or {}).get("Config") or []:
            subnet = cfg.get("Subnet") or ""
            if not subnet:
                continue
            subnet = str(ipaddress.ip_network(subnet, strict=False))
            gw = cfg.get("Gateway") or ""
            if not gw and known is not None and subnet in known.pools:
                gw = known.gateways[known.pools.index(subnet)].split("/")[0]
            gw = gw or _first_host(subnet)  # this IPAM's rule when Docker did not say
            prefix = subnet.split("/")[1]
            pools.append(subnet)
            gws.append(f"{gw}/{prefix}")
            iprange = cfg.get("IPRange") or ""
            pid = DriverState.pool_id(LOCAL_SPACE, subnet, str(ipaddress.ip_network(iprange)) if iprange else "")
            pids.append((pid, subnet))
            if our_ipam:
                view.pools[pid] = view.pools.get(pid, 0) + 1
                used = view.used.setdefault(pid, set())
                used.add(gw)
                used.update(a for a in (cfg.get("AuxiliaryAddresses") or {}).values() if isinstance(a, str))
        if ours:
            view.networks[nid] = (pools, gws)
        for key, c in (detail.get("Containers") or {}).items():
            if not isinstance(c, dict):
                continue
            eid = c.get("EndpointID") or ""
            a4, a6 = c.get("IPv4Address") or "", c.get("IPv6Address") or ""
            if ours and eid:
                view.endpoints[eid] = (nid, a4, a6, (c.get("MacAddress") or "").lower())
                if not key.startswith("ep-"):
                    owners[eid] = (key, name)
            if our_ipam:
                for addr in (a4, a6):
                    if not addr:
                        continue
                    ip = ipaddress.ip_address(addr.split("/")[0])
                    for pid, subnet in pids:
                        if ip in ipaddress.ip_network(subnet):
                            view.used.setdefault(pid, set()).add(str(ip))

    async def _inspect_container(self, cid: str) -> None:
        """Which of this driver's endpoints the container holds (its inspect waits
        while Docker still starts it: that is when its attachments are complete)."""
        assert self._docker is not None
        try:
            data: Any = await self._docker.containers.container(cid).show()
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return
            raise
        cid = data.get("Id", cid)
        nets = (data.get("NetworkSettings") or {}).get("Networks") or {}
        for name, att in nets.items():
            if not isinstance(att, dict) or att.get("NetworkID") not in self.state.networks:
                continue
            eid = att.get("EndpointID")
            if isinstance(eid, str) and eid in self.state.endpoints and self.owners.get(eid) != (cid, name):
                self.owners[eid] = (cid, name)
                self.dirty.add(eid)
                self._timed(eid, "owner")

    # ------------------------------------------------------------ shared networks
    async def mirror(self) -> None:
        """This engine's networks follow NB's shared networks (module docstring).  A failed
        Docker call is logged and tried again at the next change or resync."""
        assert self._docker is not None
        shared = self.nb.shared()
        try:
            listed: Any = await self._docker._query_json("networks")
            nets = [
                DockerNet(id=str(n.get("Id", "")), name=str(n.get("Name", "")), driver=str(n.get("Driver", "")),
                          mirror_of=str((n.get("Labels") or {}).get(MIRROR_LABEL, "")))
                for n in (listed if isinstance(listed, list) else []) if isinstance(n, dict)
            ]  # fmt: skip
            own = {n.name for n in nets if n.driver == self.name and n.mirror_of != self.hub_id}
            self.declined |= (self._own - own) & set(shared)  # deleted here while the hub has it: not copied back
            self.declined &= set(shared)
            self._own = own
            create, remove = mirror_plan(shared, nets, driver=self.name, hub_id=self.hub_id, declined=self.declined)
            for name, subnet, gateway in create:
                cfg: dict[str, str] = {"Subnet": subnet}
                if gateway:
                    cfg["Gateway"] = gateway
                await self._docker.networks.create({
                    "Name": name, "Driver": self.name, "CheckDuplicate": True, "Labels": {MIRROR_LABEL: self.hub_id},
                    "IPAM": {"Driver": self.name, "Config": [cfg]},
                })  # fmt: skip
                self.mirrored += 1
                log.info("shared network %s (%s, gateway %s) created on this engine", name, subnet, gateway or "-")
            for n in remove:
                detail: Any = await self._docker._query_json(f"networks/{n.id}")
                if (detail.get("Containers") or {}) if isinstance(detail, dict) else {}:
                    continue  # containers still use it here: removed once they are gone
                async with self._docker._query(f"networks/{n.id}", method="DELETE"):
                    pass
                self.unmirrored += 1
                log.info("shared network %s is gone from the hub: removed from this engine", n.name)
            self._shared_seen = shared
        except (aiodocker.DockerError, aiohttp.ClientError, OSError) as exc:
            log.warning("following the hub's shared networks failed: %s (tried again at the next change)", exc)

    # ------------------------------------------------------------ addresses from the hub
    async def _hub_call(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.hub_api.startswith("unix:"):
            url, connector = f"http://hub/v1/ipam/{op}", aiohttp.UnixConnector(path=self.hub_api[5:])
        else:
            url, connector = self.hub_api.rstrip("/") + f"/v1/ipam/{op}", None
        try:
            token = _read_token(self.hub_token_file)
            async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as s:
                async with s.post(url, data=msgspec.json.encode(body), headers={
                        "Authorization": f"Bearer {token}", "Content-Type": "application/json"}) as resp:  # fmt: skip
                    answer: Any = {}
                    with contextlib.suppress(ValueError, aiohttp.ContentTypeError):
                        answer = await resp.json(content_type=None)
                    if resp.status != 200:
                        why = answer.get("error") if isinstance(answer, dict) else None
                        raise DriverError(f"the hub refused the address: {why or f'HTTP {resp.status}'}")
                    return answer if isinstance(answer, dict) else {}
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            raise DriverError(
                f"the hub at {self.hub_api} did not answer ({exc or type(exc).__name__}): an ovn-hub network is"
                " shared by every engine, so its addresses come from the hub ([node] hub_api); is hubd running?"
            ) from None

    async def _allocate(self, subnet: str, sub: str, address: str, exclude: list[str]) -> str:
        answer = await self._hub_call("request", {"node": self.chassis or self.hub_id, "subnet": subnet, "range": sub,
                                                  "address": address, "exclude": exclude})  # fmt: skip
        got = answer.get("address")
        if not isinstance(got, str) or not got:
            raise DriverError(f"the hub's answer has no address: {str(answer)[:200]}")
        return got

    async def _release(self, subnet: str, address: str) -> None:
        await self._hub_call("release", {"node": self.chassis or self.hub_id, "subnet": subnet, "address": address})

    # ------------------------------------------------------------ binding
    async def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_full = loop.time() + self.resync_interval
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_full - loop.time())):
                    await self.wake.wait()
            self.wake.clear()
            if loop.time() >= next_full:
                await self.reconcile()
                next_full = loop.time() + self.resync_interval
            if self._mirror_due:
                self._mirror_due = False
                await self.mirror()
            dirty, self.dirty = self.dirty, set()
            if dirty:
                await self.fix(dirty)

    def desired(self, ep: Endpoint | None) -> dict[str, str] | None:
        """The external_ids the endpoint's Interface should have, or None (not on the bridge)."""
        if ep is None or not ep.joined:
            return None
        owner = self.owners.get(ep.id)
        if owner is None:
            return None
        cid, net = owner
        row = self.nb.ports.get((cid, net))
        if row is None or not row.get("name"):
            return None  # the hub has not written the port (yet): an NB update marks it again
        return {"iface-id": row["name"], DRIVER_OWNER: self.hub_id, I_ENDPOINT: ep.id, I_NETWORK_ID: ep.network,
                I_CONTAINER: cid, "attached-mac": ep.mac}  # fmt: skip

    async def fix(self, eids: set[str]) -> None:
        """Bind what should be bound (all in one bridge transaction), unbind what should not."""
        binds: list[tuple[str, str, dict[str, str], list[str]]] = []
        unbinds: list[tuple[str, str]] = []
        for eid in sorted(eids):
            ep = self.state.endpoints.get(eid)
            dev = ep.dev if ep is not None else next(
                (d for d, ids in self.bound.items() if ids.get(I_ENDPOINT) == eid), "")  # fmt: skip
            if not dev:
                continue
            want = self.desired(ep)
            have = self.bound.get(dev)
            if want is not None and not _holds(have, want):
                stale = sorted(k for k in _ours(have) if k not in want)
                binds.append((eid, dev, want, stale))
            elif have is not None and (ep is None or not ep.joined):
                unbinds.append((eid, dev))
        if binds:
            for b in binds:
                self._timed(b[0], "bind")
            try:
                await self.links.bind([(dev, want, stale) for _, dev, want, stale in binds])
            except (PlumbError, OSError) as exc:
                if len(binds) == 1:
                    self._failed(binds[0][0], exc)
                else:  # one bad row fails the transaction: find it, bind the rest
                    for b in binds:
                        await self.fix({b[0]})
                binds = []
            for eid, dev, want, _ in binds:
                self.bound[dev] = want
                self.binds += 1
                started = self.joined_at.pop(eid, None)
                log.info("bound %s (container %s) to %s", dev, want[I_CONTAINER][:12], want["iface-id"])
                if self.on_bound is not None:
                    self.on_bound(eid, want["iface-id"], started)
        for eid, dev in unbinds:
            try:
                await self.links.unbind(dev)
            except (PlumbError, OSError) as exc:
                self._failed(eid, exc)
                continue
            self.bound.pop(dev, None)
            self.unbinds += 1

    def _failed(self, eid: str, exc: BaseException) -> None:
        self.failures += 1
        log.warning("endpoint %s: %s; retrying in %.0fs", eid[:12], exc, _RETRY)
        asyncio.get_running_loop().call_later(_RETRY, self.mark, eid)

    async def _unplumb(self, dev: str) -> None:
        await self.links.unbind(dev)
        await self.links.destroy(dev)
        if self.bound.pop(dev, None) is not None:
            self.unbinds += 1
