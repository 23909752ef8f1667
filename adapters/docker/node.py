"""Node side of wrapper mode: plug ``--network none`` containers into OVN.

``hubd --role node`` runs :class:`DockerNode` on every Docker host that runs
ovs-vswitchd and ovn-controller.  The hub (its docker adapter, with the
``networks`` option) turns a container started as::

    docker run --network none --label ovn-hub.network=blue [--label ovn-hub.ip=10.50.0.5] ...

into a Logical_Switch_Port.  This module is the Docker glue on top of
:mod:`core.vif`, which does the plumbing and knows no orchestrator:

* Docker events (filtered on the label) and a periodic list say which
  containers to look at; ``inspect`` says whether one is a running
  ``--network none`` container with the label, and its pid;
* :class:`core.vif.NbView` (a read-only NB monitor of the ports requesting
  this chassis) gives its port's address, prefix and gateway;
* together they are an :class:`core.vif.Attachment` with
  ``netns_path=/proc/<pid>/ns/net`` and ``ifname=eth0``, which
  :class:`core.vif.Reconciler` plugs: a veth into the container's namespace,
  the host end on the integration bridge with ``external_ids:iface-id=<port
  name>``.  ovn-controller binds it, NB ``up`` turns true, the hub publishes
  ``ready``.

Level-triggered, like the hub: the bridge's Interfaces carrying
``ovn-hub:owner=<hub id>`` record what was plugged (container, pid, netns,
address).  So a restarted node adopts what it plugged before (nothing is
touched when nothing changed), removes ports of containers that went away
while it was down, and re-plugs a container that restarted (new pid, new
netns: its old veth is gone).  Interfaces plugged by versions before
:mod:`core.vif` lack ``ovn-hub:netns``; it is derived from their
``ovn-hub:pid``, so an upgrade adopts them untouched too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any

import aiodocker
import aiohttp
import msgspec

from core.backoff import Backoff
from core.metrics import NODE_OPS
from core.ovsdb import ConnectionLost, OvsdbClient, OvsdbError, Tls
from core.vif import Attachment, NbView, NetlinkLinks, OvsBridge, PlumbError, Reconciler, veth_name
from core.vif.attachment import I_NETNS

from .normalize import LABEL_NETWORK

__all__ = ["DockerNode", "NodeOptions", "veth_name"]

log = logging.getLogger("ovn_hub.node")

#: The container's pid when it was plugged (its netns is /proc/<pid>/ns/net).
I_PID = "ovn-hub:pid"
_REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)
_RETRY = 2.0  # seconds before a failed plug is tried again
_CONCURRENCY = 8  # containers plugged at once
_WAIT_WARN = 30.0  # seconds a running labeled container may wait for its port before a warning


class NodeOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[node]`` of hubd.toml (``hubd --role node``)."""

    #: Docker Engine of this host.
    docker: str = "unix:///var/run/docker.sock"
    #: Open_vSwitch database of this host.
    ovs: str = "unix:/var/run/openvswitch/db.sock"
    #: The integration bridge ovn-controller uses.
    bridge: str = "br-int"
    #: This chassis' name (what the hub writes as requested-chassis: the docker adapter's
    #: ``node``); default: Open_vSwitch ``external_ids:system-id``.
    chassis: str = ""
    #: Network namespace (``ip netns`` name) ovs-vswitchd runs in, if not the host's.
    switch_netns: str = ""
    #: Seconds between full reconciliations.
    resync_interval: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    #: /healthz, /readyz, /metrics, /v1/status (``unix:/path`` or loopback ``host:port``); none if empty.
    listen: str = ""
    #: Unix socket of the Docker network + IPAM driver (libnetwork's remote API, adapters/docker/driver.py);
    #: none if empty.  Docker finds ``/run/docker/plugins/<driver_name>.sock`` by itself; elsewhere a spec file
    #: ``/etc/docker/plugins/<driver_name>.spec`` holding ``unix://<driver_socket>`` names it.
    driver_socket: str = ""
    #: The driver's name: ``docker network create -d <name> --ipam-driver <name>`` (the hub's docker
    #: adapter option ``driver`` must be the same).
    driver_name: str = "ovn-hub"
    #: The hub's admin API (``unix:/path`` or ``http(s)://host:port``) the driver takes endpoint addresses
    #: from: every engine's driver network is one shared network, so one allocator (hub/ipam.py).  "" = this
    #: engine's pool alone (then only one engine may run containers on a shared network without collisions).
    hub_api: str = ""
    #: the hub's ingest token (its ``[api] ingest_token_file``), the bearer of ``hub_api`` calls
    hub_token_file: str = ""


def complete_ids(ids: dict[str, str]) -> dict[str, str]:
    """An Interface plugged before core.vif records the pid, not the netns path: derive it."""
    if I_NETNS not in ids and ids.get(I_PID, "").isdigit():
        return {**ids, I_NETNS: f"/proc/{ids[I_PID]}/ns/net"}
    return ids


class DockerNode:
    """Keeps this host's OVS ports equal to its wrapper-mode containers."""

    backoff_initial = 0.5
    backoff_max = 30.0

    def __init__(self, options: NodeOptions, *, hub_id: str, nb_remote: str, tls: Tls | None = None) -> None:
        self.options = options
        #: the TLS files of ssl: remotes, for NB and for the node's own OVS (``[ovn]`` keys)
        self.tls = tls
        self.hub_id = hub_id
        self.nb_remote = nb_remote
        self.chassis = options.chassis
        self.nb = NbView()
        self.bridge = OvsBridge(options.ovs, options.bridge, tls=tls)
        self.links = NetlinkLinks(options.switch_netns)
        self.vif = Reconciler(
            self.links, self.bridge, owner=hub_id, concurrency=_CONCURRENCY, retry=_RETRY,
            lost=(aiohttp.ClientError, ConnectionError), expected=(PlumbError, OSError, aiodocker.DockerError),
            complete_ids=complete_ids, what="container",
        )  # fmt: skip
        self.vif.on_plugged = self._plugged
        self.ready = asyncio.Event()
        self._waiting: dict[str, float] = {}  # container id → when it was first seen without a port
        self._waited_warned: set[str] = set()
        self._seen_start: dict[str, float] = {}  # container id → monotonic time its start event arrived
        self.on_plugged: Callable[[Attachment, float | None], None] | None = None
        self._docker: aiodocker.Docker | None = None

    @property
    def plugged(self) -> dict[str, Attachment]:
        """Container id → what is plugged for it."""
        return self.vif.plugged

    @property
    def plugs(self) -> int:
        return self.vif.plugs

    @property
    def failures(self) -> int:
        return self.vif.failures

    def status(self) -> dict[str, Any]:
        """What /v1/status of ``hubd --role node`` shows."""
        return {
            "chassis": self.chassis,
            "ready": self.ready.is_set(),
            "bridge": self.options.bridge,
            "plugs": self.vif.plugs,
            "unplugs": self.vif.unplugs,
            "failures": self.vif.failures,
            "plugged": [
                {"container": p.key, "network": p.network, "port": p.port, "dev": p.dev, "mac": p.mac,
                 "addresses": list(p.addrs), "gateway": p.gateway}
                for p in sorted(self.plugged.values(), key=lambda p: (p.network, p.key))
            ],
        }  # fmt: skip

    # ------------------------------------------------------------ run loop
    async def run(self) -> None:
        """Reconnect (Docker, NB, OVS) with backoff until cancelled.  Reset rule:
        a session that lasted over 30 s (it had been working)."""
        backoff = Backoff(min(self.backoff_initial, self.backoff_max), self.backoff_max)
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except (OSError, aiohttp.ClientError, aiodocker.DockerError, OvsdbError, TimeoutError, PlumbError) as exc:
                log.warning("node session failed: %s; reconnecting", exc)
            except Exception as exc:  # a bug or an unforeseen failure: log it, start over
                if backoff.attempts == 0:
                    log.exception("node session failed unexpectedly; reconnecting")
                else:
                    log.warning("node session failed again: %s: %s", type(exc).__name__, exc)
            self.ready.clear()  # /healthz, STATUS: not connected
            if loop.time() - began > 30:  # it had been working: start the backoff over
                backoff.reset()
            await asyncio.sleep(backoff.next())

    async def _connect_ovs(self) -> None:
        await self.bridge.connect()
        if not self.chassis:
            self.chassis = self.bridge.system_id
            if not self.chassis:
                raise PlumbError("no [node] chassis configured and Open_vSwitch has no external_ids:system-id")

    async def _session(self) -> None:
        await self._connect_ovs()
        nb = OvsdbClient(self.nb_remote, tls=self.tls)
        try:
            await nb.connect()
            nb.on_update = self._on_nb_update
            self.nb.clear()
            await nb.monitor_cond(NbView.monitor_spec(self.hub_id, self.chassis), monitor_id="node")
            async with aiodocker.Docker(url=self.options.docker, timeout=_REQUEST_TIMEOUT) as docker:
                self._docker = docker
                params = {"filters": msgspec.json.encode({"type": ["container"], "label": [LABEL_NETWORK]}).decode()}
                stream_timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=30)
                async with docker._query("events", params=params, timeout=stream_timeout) as resp:
                    await self.vif.adopt()
                    self.vif.mark(await self._relist())
                    await self.vif.reconcile(self._desired)
                    if not self.ready.is_set():
                        log.info(
                            "node %s ready: %d containers plugged on %s", self.chassis, len(self.plugged),
                            self.options.bridge,
                        )  # fmt: skip
                    self.ready.set()
                    try:
                        async with asyncio.TaskGroup() as tg:
                            tg.create_task(self._read_events(resp))
                            tg.create_task(self.vif.run(self._desired, self._relist, self.options.resync_interval))
                            tg.create_task(self._watch_nb(nb))
                    except BaseExceptionGroup as group:  # report the cause, not the group
                        raise group.exceptions[0] from None
        finally:
            self._docker = None
            nb.on_update = None
            await nb.close()

    @staticmethod
    async def _watch_nb(nb: OvsdbClient) -> None:
        await nb.closed.wait()
        raise ConnectionLost("NB session lost")

    async def _relist(self) -> list[str]:
        assert self._docker is not None
        listed = await self._docker.containers.list(all=True, filters={"label": [LABEL_NETWORK]})
        return [c.id for c in listed]

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
                self._on_docker_event(line)
            if len(buf) > 1 << 20:
                log.warning("dropping an over-long docker event line")
                buf.clear()

    def _on_docker_event(self, line: bytes) -> None:
        try:
            ev = msgspec.json.decode(line)
            actor = ev.get("Actor") if isinstance(ev, dict) else None
            cid = actor.get("ID") if isinstance(actor, dict) else None
        except msgspec.DecodeError:
            cid = None
        if not isinstance(cid, str) or not cid:
            if line.strip():
                NODE_OPS.labels("bad-event").inc()
                log.warning("ignoring a docker event that is not a container event: %.120r", line)
            return
        if ev.get("Action") == "start":
            self._seen_start[cid] = time.monotonic()
        self.vif.mark((cid,))

    def _on_nb_update(self, updates: dict[str, Any]) -> None:
        self.vif.mark(self.nb.apply(updates))

    def _plugged(self, a: Attachment, _seconds: float) -> None:
        started = self._seen_start.pop(a.key, None)
        if self.on_plugged is not None:
            self.on_plugged(a, started)

    # ------------------------------------------------------------ desired
    async def _desired(self, cid: str) -> Attachment | None:
        """What ``cid`` should look like plugged, or None (not a running wrapped
        container, or NB has no usable port for it yet)."""
        assert self._docker is not None
        data = await self._inspect(self._docker, cid)
        if data is None:
            self._waiting.pop(cid, None)
            self._waited_warned.discard(cid)
            self._seen_start.pop(cid, None)
            return None
        network, pid = data
        addr = self.nb.address(cid, network)
        if addr is None:
            self._note_waiting(cid, network)
            self._seen_start.pop(cid, None)  # (as before core.vif: a start is timed only if NB was ready)
            return None  # the hub has not programmed it yet: an NB update will mark it dirty
        self._waiting.pop(cid, None)
        return Attachment(
            key=cid, network=network, netns_path=f"/proc/{pid}/ns/net", ifname="eth0", port=addr.port,
            mac=addr.mac, addrs=addr.addrs, gateway=addr.gateway, extra=((I_PID, str(pid)),),
        )  # fmt: skip

    async def _inspect(self, docker: aiodocker.Docker, cid: str) -> tuple[str, int] | None:
        """(network label, pid) of a running ``--network none`` container with the label, else None."""
        try:
            data: Any = await docker.containers.container(cid).show()
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(data, dict) or data.get("Id") not in (cid, None):
            return None  # (events and lists carry full ids; anything else is not ours to plug)
        state = data.get("State") or {}
        labels = (data.get("Config") or {}).get("Labels") or {}
        mode = (data.get("HostConfig") or {}).get("NetworkMode")
        pid = state.get("Pid") if isinstance(state, dict) else 0
        network = labels.get(LABEL_NETWORK) if isinstance(labels, dict) else None
        if mode != "none" or not isinstance(network, str) or not network:
            return None
        if not (isinstance(state, dict) and state.get("Running") and isinstance(pid, int) and pid > 0):
            return None
        return network, pid

    def _note_waiting(self, cid: str, network: str) -> None:
        """Warn once when a running labeled container has had no usable port for
        a while: usually the hub's docker adapter ``node`` is not this chassis."""
        now = time.monotonic()
        first = self._waiting.setdefault(cid, now)
        if now - first > _WAIT_WARN and cid not in self._waited_warned:
            self._waited_warned.add(cid)
            log.warning(
                "container %s (ovn-hub.network=%s) has had no logical port requesting chassis %r for %.0f s:"
                " is the hub's docker adapter option node = %r, and %r one of its networks?",
                cid[:12], network, self.chassis, now - first, self.chassis, network,
            )  # fmt: skip

    async def close(self) -> None:
        """Stop the Open_vSwitch connection (bounded by the caller; see :meth:`OvsBridge.close`), close netlink."""
        try:
            await self.bridge.close()
        finally:
            self.links.close()
