"""Node side of wrapper mode: plug ``--network none`` containers into OVN.

``hubd --role node`` runs :class:`DockerNode` on every Docker host that runs
ovs-vswitchd and ovn-controller.  The hub (its docker adapter, with the
``networks`` option) turns a container started as::

    docker run --network none --label ovn-hub.network=blue [--label ovn-hub.ip=10.50.0.5] ...

into a Logical_Switch_Port.  This component gives the container the port's
data path, reading everything it needs from what the hub wrote to NB:

* the address: ``addresses`` ("MAC IP…"), or northd's ``dynamic_addresses``
  when the hub asked OVN to allocate ("dynamic");
* the prefix length from the switch's ``other_config:subnet`` and the default
  route from its ``external_ids:ovn-hub:gateway``;

then creates a veth, moves one end into the container's network namespace as
``eth0`` with that MAC/IP and default route (iproute2 via ``nsenter``: the
container netns is ``/proc/<pid>/ns/net``), and adds the other end to the
integration bridge with ``external_ids:iface-id=<port name>`` through
ovsdbapp's Open_vSwitch API.  ovn-controller binds it, NB ``up`` turns true,
the hub publishes ``ready``.

Level-triggered, like the hub: the *desired* set (running labeled containers
whose port NB has) is compared with the *actual* set (Interfaces on the bridge
carrying ``ovn-hub:owner=<hub id>``, which record the container, its pid and
the address they were plugged with).  Differences are fixed per container;
Docker events, NB updates and a periodic resync only say which containers to
look at.  So a restarted node adopts what it plugged before (nothing is
touched when nothing changed), removes ports of containers that went away
while it was down, and re-plugs a container that restarted (new pid: its old
netns and veth are gone).

NB access is read-only: a conditional monitor on the hub's ports whose
``options:requested-chassis`` is this chassis, so a node sees only its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import ipaddress
import logging
import random
import shutil
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

import aiodocker
import aiohttp
import msgspec

from core.metrics import NODE_OPS, NODE_PLUG_SECONDS, NODE_PLUGGED
from core.nbmodel import GATEWAY, NETWORK, OWNER, SOURCE, UID
from core.ovsdb import ConnectionLost, OvsdbClient, OvsdbError, omap, py_map, py_set

from .normalize import LABEL_NETWORK

__all__ = ["DockerNode", "NodeOptions", "Plug", "veth_name"]

log = logging.getLogger("ovn_hub.node")

#: external_ids of the Interfaces this component owns.
I_CONTAINER = "ovn-hub:container"
I_NETWORK = "ovn-hub:network"
I_PID = "ovn-hub:pid"
I_ADDR = "ovn-hub:addresses"
I_GATEWAY = "ovn-hub:gateway"
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


class Plug(msgspec.Struct, frozen=True, kw_only=True):
    """One plugged (or to be plugged) container attachment."""

    container: str
    network: str
    port: str  # logical switch port name (iface-id)
    pid: int
    mac: str
    addrs: tuple[str, ...]  # "ip/prefix"
    gateway: str = ""

    @property
    def dev(self) -> str:
        return veth_name(self.container, self.network)

    def ids(self, owner: str) -> dict[str, str]:
        return {
            "iface-id": self.port,
            OWNER: owner,
            I_CONTAINER: self.container,
            I_NETWORK: self.network,
            I_PID: str(self.pid),
            I_ADDR: " ".join((self.mac, *self.addrs)),
            I_GATEWAY: self.gateway,
        }

    @classmethod
    def from_ids(cls, ids: dict[str, str]) -> Plug | None:
        try:
            mac, *addrs = ids.get(I_ADDR, "").split()
            return cls(
                container=ids[I_CONTAINER],
                network=ids[I_NETWORK],
                port=ids["iface-id"],
                pid=int(ids[I_PID]),
                mac=mac,
                addrs=tuple(addrs),
                gateway=ids.get(I_GATEWAY, ""),
            )
        except (KeyError, ValueError):
            return None


def veth_name(container: str, network: str) -> str:
    """Host end of a container's veth: 14 characters, stable per attachment."""
    return "ovh" + hashlib.sha1(f"{container}/{network}".encode()).hexdigest()[:11]


class PlumbError(Exception):
    pass


class DockerNode:
    """Keeps this host's OVS ports equal to its wrapper-mode containers."""

    backoff_initial = 0.5
    backoff_max = 30.0

    def __init__(self, options: NodeOptions, *, hub_id: str, nb_remote: str) -> None:
        self.options = options
        self.hub_id = hub_id
        self.nb_remote = nb_remote
        self.chassis = options.chassis
        self.netdev = False  # userspace datapath: veths need TX checksum offload off
        #: NB view: (uid, network) → port row; (source, network) → (subnet, gateway)
        self.nb_ports: dict[tuple[str, str], dict[str, Any]] = {}
        self._port_uuid: dict[str, tuple[str, str]] = {}
        self.nb_switches: dict[tuple[str, str], tuple[str, str]] = {}
        self._switch_uuid: dict[str, tuple[str, str]] = {}
        self._switch_rows: dict[str, dict[str, dict[str, str]]] = {}
        #: Actual: container id → plug, from the bridge's Interfaces.
        self.plugged: dict[str, Plug] = {}
        self.plugs = 0
        self.unplugs = 0
        self.failures = 0
        self.ready = asyncio.Event()
        self._dirty: set[str] = set()
        self._lost: BaseException | None = None  # set by a fix that found the Docker engine gone
        self._wake = asyncio.Event()
        self._ovs: Any = None
        self._ovs_conn: Any = None
        self._waiting: dict[str, float] = {}  # container id → when it was first seen without a port
        self._waited_warned: set[str] = set()
        self._seen_start: dict[str, float] = {}  # container id → monotonic time its start event arrived
        self.on_plugged: Callable[[Plug, float | None], None] | None = None
        self._ethtool = shutil.which("ethtool") or shutil.which("ethtool", path="/usr/sbin:/sbin")
        self._ip = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin") or "ip"
        self._nsenter = shutil.which("nsenter") or "nsenter"

    def status(self) -> dict[str, Any]:
        """What /v1/status of ``hubd --role node`` shows."""
        return {
            "chassis": self.chassis,
            "ready": self.ready.is_set(),
            "bridge": self.options.bridge,
            "plugs": self.plugs,
            "unplugs": self.unplugs,
            "failures": self.failures,
            "plugged": [
                {"container": p.container, "network": p.network, "port": p.port, "dev": p.dev, "mac": p.mac,
                 "addresses": list(p.addrs), "gateway": p.gateway}
                for p in sorted(self.plugged.values(), key=lambda p: (p.network, p.container))
            ],
        }  # fmt: skip

    # ------------------------------------------------------------ run loop
    async def run(self) -> None:
        """Reconnect (Docker, NB, OVS) with backoff until cancelled."""
        attempt = 0
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
                if attempt == 0:
                    log.exception("node session failed unexpectedly; reconnecting")
                else:
                    log.warning("node session failed again: %s: %s", type(exc).__name__, exc)
            self.ready.clear()  # /healthz, STATUS: not connected
            if loop.time() - began > 30:  # it had been working: start the backoff over
                attempt = 0
            delay = min(self.backoff_max, self.backoff_initial * 2**attempt)
            attempt = min(attempt + 1, 30)
            await asyncio.sleep(random.uniform(delay / 2, delay))

    async def _session(self) -> None:
        self._lost = None
        await asyncio.to_thread(self._ovs_connect)
        nb = OvsdbClient(self.nb_remote)
        try:
            await nb.connect()
            nb.on_update = self._on_nb_update
            self.nb_ports.clear()
            self._port_uuid.clear()
            self.nb_switches.clear()
            self._switch_uuid.clear()
            self._switch_rows.clear()
            owner = ["external_ids", "includes", omap({OWNER: self.hub_id})]
            here = ["options", "includes", omap({"requested-chassis": self.chassis})]
            await nb.monitor_cond(
                {
                    "Logical_Switch_Port": [
                        {
                            "columns": ["name", "addresses", "dynamic_addresses", "port_security", "external_ids"],
                            "where": [owner, here],
                        }
                    ],
                    "Logical_Switch": [{"columns": ["name", "other_config", "external_ids"], "where": [owner]}],
                },
                monitor_id="node",
            )
            async with aiodocker.Docker(url=self.options.docker, timeout=_REQUEST_TIMEOUT) as docker:
                params = {"filters": msgspec.json.encode({"type": ["container"], "label": [LABEL_NETWORK]}).decode()}
                stream_timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=30)
                async with docker._query("events", params=params, timeout=stream_timeout) as resp:
                    self.plugged = await asyncio.to_thread(self._read_plugged)
                    listed = await docker.containers.list(all=True, filters={"label": [LABEL_NETWORK]})
                    self._dirty.update(c.id for c in listed)
                    self._dirty.update(self.plugged)
                    await self._reconcile(docker)
                    if not self.ready.is_set():
                        log.info(
                            "node %s ready: %d containers plugged on %s", self.chassis, len(self.plugged),
                            self.options.bridge,
                        )  # fmt: skip
                    self.ready.set()
                    try:
                        async with asyncio.TaskGroup() as tg:
                            tg.create_task(self._read_events(resp))
                            tg.create_task(self._loop(docker, nb))
                    except BaseExceptionGroup as group:  # report the cause, not the group
                        raise group.exceptions[0] from None
        finally:
            nb.on_update = None
            await nb.close()

    async def _loop(self, docker: aiodocker.Docker, nb: OvsdbClient) -> None:
        """Dispatch dirty containers to at most ``_CONCURRENCY`` concurrent
        fixes.  No batch barrier: a container marked while others are being
        plugged starts as soon as a slot frees up; one being fixed that is
        marked again is looked at once more after it is done."""
        loop = asyncio.get_running_loop()
        next_full = loop.time() + self.options.resync_interval
        inflight: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                if nb.closed.is_set():
                    raise ConnectionLost("NB session lost")
                if self._lost is not None:
                    raise self._lost
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(1.0, max(0.0, next_full - loop.time()))):
                        await self._wake.wait()
                self._wake.clear()
                if loop.time() >= next_full:
                    listed = await docker.containers.list(all=True, filters={"label": [LABEL_NETWORK]})
                    self._dirty.update(c.id for c in listed)
                    self._dirty.update(self.plugged)
                    next_full = loop.time() + self.options.resync_interval
                for cid in sorted(self._dirty - inflight.keys()):
                    if len(inflight) >= _CONCURRENCY:
                        break
                    self._dirty.discard(cid)
                    task = asyncio.create_task(self._work(docker, cid), name=f"plug {cid[:12]}")
                    inflight[cid] = task
                    task.add_done_callback(functools.partial(self._done, inflight, cid))
        finally:
            for task in inflight.values():
                task.cancel()
            if inflight:
                await asyncio.gather(*inflight.values(), return_exceptions=True)

    def _done(self, inflight: dict[str, asyncio.Task[None]], cid: str, _task: asyncio.Task[None]) -> None:
        inflight.pop(cid, None)
        NODE_PLUGGED.set(len(self.plugged))
        self._wake.set()  # a slot is free (and cid may be dirty again)

    async def _work(self, docker: aiodocker.Docker, cid: str) -> None:
        """Fix one container; its failure is retried later, a lost engine ends the session."""
        try:
            await self._reconcile_one(docker, cid)
        except (aiohttp.ClientError, ConnectionError) as exc:
            self._dirty.add(cid)
            self._lost = exc  # the engine is gone: reconnect, then look again
            self._wake.set()
        except Exception as exc:  # noqa: BLE001 - one container must not stop the others
            self._failed(cid, exc)

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
        self._dirty.add(cid)
        self._wake.set()

    # ------------------------------------------------------------ NB view
    def _on_nb_update(self, updates: dict[str, Any]) -> None:
        for uuid, change in updates.get("Logical_Switch", {}).items():
            old = self._switch_uuid.pop(uuid, None)
            if old is not None:
                self.nb_switches.pop(old, None)
            if "delete" in change:
                self._switch_rows.pop(uuid, None)
                continue
            full = self._switch_rows.setdefault(uuid, {"other_config": {}, "external_ids": {}})
            if "modify" in change:
                for col in ("other_config", "external_ids"):
                    if col in change["modify"]:
                        full[col] = _map_diff(full[col], py_map(change["modify"][col]))
            else:
                row = change.get("initial") or change.get("insert") or {}
                for col in ("other_config", "external_ids"):
                    full[col] = py_map(row.get(col, ["map", []]))
            ids, other = full["external_ids"], full["other_config"]
            key = (ids.get(SOURCE, ""), ids.get(UID, ""))
            self.nb_switches[key] = (other.get("subnet", ""), ids.get(GATEWAY, ""))
            self._switch_uuid[uuid] = key
            self._dirty.update(cid for cid, net in self.nb_ports if net == key[1])
        for uuid, change in updates.get("Logical_Switch_Port", {}).items():
            if "delete" in change:
                gone = self._port_uuid.pop(uuid, None)
                if gone is not None:
                    if self.nb_ports.get(gone, {}).get("uuid") == uuid:
                        del self.nb_ports[gone]
                    self._dirty.add(gone[0])
                continue
            if "modify" in change:
                pkey = self._port_uuid.get(uuid)
                row = self.nb_ports.get(pkey) if pkey is not None else None
                if pkey is None or row is None or row["uuid"] != uuid:
                    continue
                mod = change["modify"]
                if "addresses" in mod:  # a set: the diff toggles elements
                    row["addresses"] = _toggle(row["addresses"], py_set(mod["addresses"]))
                if "port_security" in mod:  # a set: update2 sends the elements to toggle
                    row["port_security"] = _toggle(row["port_security"], py_set(mod["port_security"]))
                if "dynamic_addresses" in mod:  # at most one value: update2 sends the new value
                    row["dynamic_addresses"] = py_set(mod["dynamic_addresses"])
                self._dirty.add(pkey[0])
                continue
            row = change.get("initial") or change.get("insert")
            if row is None:
                continue
            ids = py_map(row.get("external_ids", ["map", []]))
            key = (ids.get(UID, ""), ids.get(NETWORK, ""))
            self.nb_ports[key] = {
                "uuid": uuid,
                "name": row.get("name", ""),
                "source": ids.get(SOURCE, ""),
                "addresses": py_set(row.get("addresses", ["set", []])),
                "dynamic_addresses": py_set(row.get("dynamic_addresses", ["set", []])),
                "port_security": py_set(row.get("port_security", ["set", []])),
            }
            self._port_uuid[uuid] = key
            self._dirty.add(key[0])
        self._wake.set()

    def desired_address(self, cid: str, network: str) -> tuple[str, str, tuple[str, ...], str] | None:
        """(port name, mac, ("ip/prefix", …), gateway) from NB, or None if NB has no usable address yet."""
        row = self.nb_ports.get((cid, network))
        if row is None:
            return None
        addrs = [a for a in row["addresses"] if a]
        if not addrs:
            return None
        text = addrs[0]
        if "dynamic" in text.split():
            dyn = [d for d in row["dynamic_addresses"] if d]
            if not dyn or dyn[0] not in row["port_security"]:
                return None  # not allocated yet, or the hub has not locked the port to it yet
            text = dyn[0]
        mac, *ips = text.split()
        subnet, gateway = self.nb_switches.get((row["source"], network), ("", ""))
        net = ipaddress.ip_network(subnet) if subnet else None
        out = []
        for ip in ips:
            addr = ipaddress.ip_address(ip)
            if addr.version == 6:
                prefix = 64  # OVN's ipv6_prefix is a /64
            else:
                prefix = net.prefixlen if net is not None and net.version == 4 else 32
            out.append(f"{ip}/{prefix}")
        if not out:
            return None  # a MAC-only port (no subnet): nothing to configure a container with
        return row["name"], mac, tuple(out), gateway

    # ------------------------------------------------------------ reconcile
    async def _reconcile(self, docker: aiodocker.Docker) -> None:
        """Fix every dirty container, a few at a time, and return when all are
        done (the first pass of a session: READY follows it)."""
        dirty, self._dirty = self._dirty, set()
        sem = asyncio.Semaphore(_CONCURRENCY)

        async def one(cid: str) -> None:
            async with sem:
                await self._work(docker, cid)

        async with asyncio.TaskGroup() as tg:
            for cid in sorted(dirty):
                tg.create_task(one(cid))
        NODE_PLUGGED.set(len(self.plugged))
        if self._lost is not None:
            raise self._lost

    def _failed(self, cid: str, exc: BaseException) -> None:
        self.failures += 1
        NODE_OPS.labels("failed").inc()
        if isinstance(exc, (PlumbError, OSError, aiodocker.DockerError)):
            log.warning("container %s: %s; retrying in %.0fs", cid[:12], exc, _RETRY)
        else:
            log.error("container %s: %s: %s; retrying in %.0fs", cid[:12], type(exc).__name__, exc, _RETRY,
                      exc_info=exc)  # fmt: skip
        asyncio.get_running_loop().call_later(_RETRY, self._retry, cid)

    def _retry(self, cid: str) -> None:
        self._dirty.add(cid)
        self._wake.set()

    async def _reconcile_one(self, docker: aiodocker.Docker, cid: str) -> None:
        want = await self._desired(docker, cid)
        have = self.plugged.get(cid)
        if want is not None and have == want and await self._dev_exists(want.dev):
            return
        if want is None:
            self._seen_start.pop(cid, None)
        if have is not None and (want is None or have != want):
            await self._unplug(have)
        if want is not None:
            await self._plug(want)

    async def _desired(self, docker: aiodocker.Docker, cid: str) -> Plug | None:
        """What ``cid`` should look like plugged, or None (not a running wrapped
        container, or NB has no usable port for it yet)."""
        data = await self._inspect(docker, cid)
        if data is None:
            self._waiting.pop(cid, None)
            self._waited_warned.discard(cid)
            return None
        network, pid = data
        addr = self.desired_address(cid, network)
        if addr is None:
            self._note_waiting(cid, network)
            return None  # the hub has not programmed it yet: an NB update will mark it dirty
        self._waiting.pop(cid, None)
        port, mac, addrs, gateway = addr
        return Plug(container=cid, network=network, port=port, pid=pid, mac=mac, addrs=addrs, gateway=gateway)

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

    # ------------------------------------------------------------ plumbing
    async def _run(self, *argv: str, stdin: bytes | None = None, check: bool = True) -> str:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(30):
                out, err = await proc.communicate(stdin)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise PlumbError(f"{' '.join(argv)}: timed out") from None
        except asyncio.CancelledError:
            if proc.returncode is None:
                proc.kill()
            raise
        if check and proc.returncode != 0:
            raise PlumbError(f"{' '.join(argv)}: {err.decode(errors='replace').strip()}")
        return out.decode(errors="replace")

    def _sw(self, *argv: str) -> list[str]:
        """iproute2 in the switch's namespace."""
        ns = ("-n", self.options.switch_netns) if self.options.switch_netns else ()
        return [self._ip, *ns, *argv]

    async def _dev_exists(self, dev: str) -> bool:
        out = await self._run(*self._sw("-o", "link", "show", "dev", dev), check=False)
        return dev in out

    async def _plug(self, p: Plug) -> None:
        t0 = time.monotonic()
        dev, tmp = p.dev, "ovp" + p.dev[3:]
        await self._run(*self._sw("link", "del", "dev", dev), check=False)  # stale leftovers
        await self._run(*self._sw("link", "add", dev, "type", "veth", "peer", "name", tmp, "netns", str(p.pid)))
        try:
            batch = [f"link set dev {tmp} name eth0", f"link set dev eth0 address {p.mac}"]
            batch += [f"addr add {a} dev eth0" for a in p.addrs]
            batch.append("link set dev eth0 up")
            if p.gateway:
                batch.append(f"route add default via {p.gateway} dev eth0")
            in_ct = (self._nsenter, f"--net=/proc/{p.pid}/ns/net")
            await self._run(*in_ct, self._ip, "-batch", "-", stdin=("\n".join(batch) + "\n").encode())
            if self.netdev and self._ethtool:
                await self._run(*in_ct, self._ethtool, "-K", "eth0", "tx", "off", check=False)
                await self._run(*self._sw_exec(self._ethtool, "-K", dev, "tx", "off"), check=False)
            await self._run(*self._sw("link", "set", "dev", dev, "up"))
            await asyncio.to_thread(self._ovs_add, p)
        except BaseException:
            await self._run(*self._sw("link", "del", "dev", dev), check=False)
            raise
        self.plugged[p.container] = p
        self.plugs += 1
        NODE_OPS.labels("plugged").inc()
        NODE_PLUG_SECONDS.observe(time.monotonic() - t0)
        started = self._seen_start.pop(p.container, None)
        log.info(
            "plugged %s (%s) into %s: %s %s in %.0f ms", p.container[:12], p.network, p.port, p.mac,
            " ".join(p.addrs), (time.monotonic() - t0) * 1000,
        )  # fmt: skip
        if self.on_plugged is not None:
            self.on_plugged(p, started)

    def _sw_exec(self, *argv: str) -> list[str]:
        if self.options.switch_netns:
            return [self._ip, "netns", "exec", self.options.switch_netns, *argv]
        return list(argv)

    async def _unplug(self, p: Plug) -> None:
        await asyncio.to_thread(self._ovs_del, p.dev)
        await self._run(*self._sw("link", "del", "dev", p.dev), check=False)
        self.plugged.pop(p.container, None)
        self.unplugs += 1
        NODE_OPS.labels("unplugged").inc()
        log.info("unplugged %s (%s) from %s", p.container[:12], p.network, p.port)

    # ------------------------------------------------------------ Open_vSwitch (ovsdbapp, blocking: in a thread)
    def _ovs_connect(self) -> None:
        from ovsdbapp.backend.ovs_idl import connection  # type: ignore[import-untyped]
        from ovsdbapp.schema.open_vswitch import impl_idl  # type: ignore[import-untyped]

        if self._ovs is None:
            if self._ovs_conn is None:
                idl = connection.OvsdbIdl.from_server(self.options.ovs, "Open_vSwitch")
                self._ovs_conn = connection.Connection(idl=idl, timeout=10)
            # starts the connection thread (ovsdbapp keeps the connection on the class: one per process)
            self._ovs = impl_idl.OvsdbIdl(self._ovs_conn)
        api = self._ovs
        if not self.chassis:
            ids = api.db_get("Open_vSwitch", ".", "external_ids").execute(check_error=True)
            self.chassis = ids.get("system-id", "") if isinstance(ids, dict) else ""
            if not self.chassis:
                raise PlumbError("no [node] chassis configured and Open_vSwitch has no external_ids:system-id")
        if not api.br_exists(self.options.bridge).execute(check_error=True):
            raise PlumbError(f"bridge {self.options.bridge} does not exist (is ovn-controller running?)")
        dp = api.db_get("Bridge", self.options.bridge, "datapath_type").execute(check_error=True)
        self.netdev = dp == "netdev"
        if self.netdev and not self._ethtool:
            log.warning("%s uses the userspace datapath and ethtool is missing: TCP/UDP checksums will be wrong"
                        " in plugged containers (install ethtool)", self.options.bridge)  # fmt: skip

    def _read_plugged(self) -> dict[str, Plug]:
        rows = self._ovs.db_list_rows("Interface").execute(check_error=True)
        out: dict[str, Plug] = {}
        for row in rows:
            ids = row.external_ids
            if ids.get(OWNER) != self.hub_id:
                continue
            plug = Plug.from_ids(dict(ids))
            if plug is None or plug.dev != row.name:
                log.warning("removing interface %s: its ovn-hub external_ids are incomplete", row.name)
                self._ovs_del(row.name)
                continue
            out[plug.container] = plug
        return out

    def _ovs_add(self, p: Plug) -> None:
        api = self._ovs
        with api.transaction(check_error=True) as txn:
            txn.add(api.del_port(p.dev, if_exists=True))
            txn.add(api.add_port(self.options.bridge, p.dev))
            txn.add(api.db_set("Interface", p.dev, ("external_ids", p.ids(self.hub_id))))

    def _ovs_del(self, dev: str) -> None:
        self._ovs.del_port(dev, if_exists=True).execute(check_error=True)

    async def close(self) -> None:
        """Stop the Open_vSwitch connection.  Its thread is a daemon and is
        stopped from a daemon thread too, so a transaction stuck waiting for
        ovs-vswitchd can delay this call (the caller bounds it) but never the
        process exit."""
        conn, self._ovs_conn, self._ovs = self._ovs_conn, None, None
        if conn is None:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def finish() -> None:
            if not done.done():
                done.set_result(None)

        def stop() -> None:
            with contextlib.suppress(Exception):
                conn.stop()
            loop.call_soon_threadsafe(finish)

        threading.Thread(target=stop, name="ovs-close", daemon=True).start()
        await done


def _map_diff(current: dict[str, str], diff: dict[str, str]) -> dict[str, str]:
    """Apply an update2 map diff: a pair equal to the current one is removed,
    any other pair is set."""
    out = dict(current)
    for k, v in diff.items():
        if out.get(k) == v:
            del out[k]
        else:
            out[k] = v
    return out


def _toggle(current: tuple[str, ...] | list[str], diff: tuple[Any, ...]) -> tuple[str, ...]:
    """Apply an update2 set diff: listed elements are toggled."""
    out = list(current)
    for v in diff:
        if v in out:
            out.remove(v)
        else:
            out.append(v)
    return tuple(out)
