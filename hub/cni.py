"""The node agent's CNI side: serves ``ovn-hub-cni`` on a unix socket.

One request per connection (hub/cniplugin.py sends the runtime's ``CNI_*``
environment and stdin; they are checked again here with the plugin's own
:func:`~hub.cniplugin.parse`), one JSON answer.  The work is core.vif's:

* an ADD registers an attachment (container id + ifname → netns, ifname,
  network, and the uid its logical port is found by) and marks it dirty; the
  level-triggered :class:`~core.vif.Reconciler` (its Interfaces tagged
  ``ovn-hub:via=cni``) plugs it once the NB view (ports requesting this
  chassis) gives its address.  The ADD waits for exactly that, at most the
  conflist's ``timeout``, and otherwise says what is missing: the hub never
  took the endpoint, NB has no port for it on this chassis, the port has no
  address yet (OVN's IPAM, the hub's lock), or the plumbing failed and why.
* **Who owns the endpoint.**  ``CNI_ARGS`` with ``K8S_POD_UID``: the k8s
  adapter's port (``ovn-hub:uid`` = the pod uid, on the conflist's network);
  a pod without podIPs has a ``dynamic`` port and the result is OVN's
  allocation.  Otherwise the agent is the source ``cni/<node>``: the ADD makes
  an Endpoint (uid = container id + "-" + ifname, labels from CNI_ARGS and
  ``runtimeConfig.labels``, a fixed address from the ``ips``/``mac``
  capabilities or ``IP=``/``MAC=``; a Mesos container - ``args`` with
  ``org.apache.mesos.network_info``, as the ``network/cni`` isolator sends it -
  gets uid = its ContainerID, ``NetworkInfo.labels`` and
  ``ovn-hub.io/workload=mesos:<ContainerID>`` with a MAC of its own: it yields to
  the Mesos adapter's endpoint once the master knows the task, whose port then
  takes the MAC over and this agent re-plugs onto it; a Cloud Foundry app
  instance - Garden's ``metadata``, :func:`core.vif.cni.garden_app_instance` -
  gets uid = ``CNI_CONTAINERID`` (the ActualLRP's instance guid), the app, space
  and org guid labels and ``ovn-hub.io/workload=cloudfoundry:<instance guid>``,
  and no MAC: the rep claimed the instance before Garden made the container, so
  the cloudfoundry adapter's endpoint of that workload normally has its port
  already and this one yields at once; it is programmed only while the hub does
  not know the instance), and :class:`HubPublisher` posts the
  source's whole Snapshot (with its ``[cni.networks]``) to the hub's
  ``/v1/ingest/cni/<node>`` after every change and every ``resync_interval``
  (level-triggered: a restarted hub has it again within that time).
* DEL forgets the attachment and removes its veth at once (the reconciler takes
  the OVS Interface off the bridge right after); it succeeds when nothing is left
  (also for an attachment never seen, or a netns already gone).  CHECK compares the
  plugged attachment with NB and with the interface the kernel has
  (:func:`core.vif.cni.check`).  GC (1.1.0) forgets the attachments of the
  conflist that the runtime no longer lists; STATUS says whether ADDs can work.

The attachments are kept in a small state file (written atomically after
every change), so a restarted agent sends the same snapshot and adopts the
plumbing untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from core.backoff import Backoff
from core.model import LABEL_WORKLOAD, Endpoint, Invalid, Network, Object, Snapshot, Source, encode, validate
from core.names import lsp_name, stable_mac
from core.ovsdb import ConnectionLost, OvsdbClient, OvsdbError, Tls
from core.vif import Attachment, NbView, PlumbError, Reconciler, veth_name
from core.vif.attachment import I_VIA
from core.vif.cni import (
    check,
    dns_search,
    endpoint_uid,
    garden_app_instance,
    garden_labels,
    labels_of,
    mesos_network_info,
    network_info_labels,
    result,
    static_address,
)
from core.vif.link import LinkState
from hub import cniplugin as P
from hub.config import CniSection

log = logging.getLogger("ovn_hub.cni")

VIA = "cni"
_VIA_TAG = ((I_VIA, VIA),)
_POLL = 0.1  # seconds between looks of a waiting request (besides the wake-ups)


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One attachment a runtime added (the state file's unit)."""

    container_id: str
    ifname: str
    netns: str
    network: str
    conf_name: str  # the network configuration's name (GC is per configuration)
    uid: str  # the logical port's ovn-hub:uid (a pod's uid, or this source's endpoint uid)
    pod: str = ""  # "namespace/name" of a Kubernetes pod
    namespace: str = ""  # for the DNS search domain
    source: str = ""  # the source that owns the port ("k8s/<cluster>" known once seen in NB)
    endpoint: Endpoint | None = None  # the cni/<node> source's object (None: an adapter owns the port)

    @property
    def key(self) -> str:
        return f"{self.container_id}/{self.ifname}"


class StateFile(msgspec.Struct, kw_only=True):
    version: int = 1
    source: str = ""
    entries: list[Entry] = []


def _read_token(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ValueError(f"cannot read the hub's ingest token {path}: {exc.strerror}") from None


def _clear_socket(path: str, parents: bool = False) -> None:
    if parents:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).unlink(missing_ok=True)


def _exists(path: str) -> bool:
    return os.path.exists(path)


def dns_label(text: str) -> str:
    """A chassis name made a DNS label (the cni source's cluster)."""
    label = re.sub(r"[^a-z0-9-]", "-", text.lower()).strip("-")[:63].strip("-")
    return label or "node"


class HubPublisher:
    """Posts the source's Snapshot to the hub's ingest endpoint: after every change
    (coalesced: one request in flight) and every ``interval`` seconds."""

    def __init__(self, url: str, token_file: str, source: Source, objects: Callable[[], list[Object]],
                 interval: float) -> None:  # fmt: skip
        self.url = url
        self.token_file = token_file
        self.source = source
        self.objects = objects
        self.interval = interval
        self.wanted = 0  # generation of the newest change
        self.acked = 0  # generation the hub last took
        self.last_error = ""
        self.refused: dict[str, str] = {}  # endpoint key → the hub's reason, from the last accepted snapshot
        self.posts = 0
        self._wake = asyncio.Event()
        self.changed = asyncio.Event()  # pulsed after every answer (waiters look again)

    def dirty(self) -> int:
        self.wanted += 1
        self._wake.set()
        return self.wanted

    def _endpoint_url(self) -> tuple[str, aiohttp.BaseConnector | None]:
        path = f"/v1/ingest/{self.source.orchestrator}/{self.source.cluster}"
        if self.url.startswith("unix:"):
            return f"http://hub{path}", aiohttp.UnixConnector(path=self.url[5:])
        return self.url.rstrip("/") + path, None

    async def run(self) -> None:
        backoff = Backoff(0.2, 10.0)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()
            gen = self.wanted
            try:
                await self.post()
                self.acked = max(self.acked, gen)
                self.last_error = ""
                backoff.reset()
            except (OSError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                first = not self.last_error
                self.last_error = str(exc) or type(exc).__name__
                (log.warning if first else log.debug)("publishing %s to the hub at %s failed: %s", self.source,
                                                      self.url, self.last_error)  # fmt: skip
                self._pulse()
                await asyncio.sleep(backoff.next())
                self._wake.set()
                continue
            self._pulse()

    def _pulse(self) -> None:
        ev, self.changed = self.changed, asyncio.Event()
        ev.set()

    async def post(self) -> None:
        token = _read_token(self.token_file)
        url, connector = self._endpoint_url()
        body = encode(Snapshot(source=self.source, objects=tuple(self.objects())))
        timeout = aiohttp.ClientTimeout(total=15)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            async with session.post(url, data=body, headers={"Authorization": f"Bearer {token}",
                                                             "Content-Type": "application/json"}) as resp:
                answer: Any = {}
                with contextlib.suppress(ValueError, aiohttp.ContentTypeError):
                    answer = await resp.json()
                self.posts += 1
                if resp.status != 200:
                    msg = answer.get("error") if isinstance(answer, dict) else None
                    raise ValueError(f"HTTP {resp.status}: {msg or resp.reason}")
        refused: dict[str, str] = {}
        for text in answer.get("rejected", []) if isinstance(answer, dict) else []:
            m = re.search(r"snapshot endpoint (\S+): ", str(text))
            if m:
                refused[m.group(1)] = str(text)
        self.refused = refused


class CniAgent:
    """Attachments asked by ``ovn-hub-cni``, plugged by a :class:`Reconciler` of their own."""

    backoff_initial = 0.5
    backoff_max = 30.0

    def __init__(self, cfg: CniSection, *, hub_id: str, nb_remote: str, chassis: str, bridge: Any, links: Any,
                 state_dir: str, own_bridge: bool = True, nb_tls: Tls | None = None) -> None:  # fmt: skip
        self.cfg = cfg
        self.nb_tls = nb_tls
        self.hub_id = hub_id
        self.nb_remote = nb_remote
        self.chassis = chassis
        self.bridge = bridge
        self.links = links
        self.own_bridge = own_bridge
        self.state_path = Path(cfg.state_file or Path(state_dir) / f"cni-{hub_id}.json")
        self.entries: dict[str, Entry] = {}
        self.nb = NbView()
        self.vif = Reconciler(links, bridge, owner=hub_id, concurrency=8, retry=1.0, via=VIA,
                              expected=(PlumbError, OSError), what="CNI attachment")  # fmt: skip
        self.vif.on_plugged = lambda _a, _s: self._pulse()
        self.ready = asyncio.Event()
        self.last_error = "starting"
        self.source: Source | None = None
        self.publisher: HubPublisher | None = None
        self.requests: dict[str, int] = {}
        self._changed = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None
        self._load()

    # ------------------------------------------------------------ state
    def _load(self) -> None:
        try:
            data = self.state_path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("cannot read the CNI state %s: %s; starting empty", self.state_path, exc.strerror)
            return
        try:
            st = msgspec.json.decode(data, type=StateFile)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("the CNI state %s is damaged (%s); starting empty", self.state_path, exc)
            return
        self.entries = {e.key: e for e in st.entries}
        if st.source:
            orch, _, cluster = st.source.partition("/")
            self.source = Source(orch, cluster)
        log.info("CNI state: %d attachments from %s", len(self.entries), self.state_path)

    def _save(self) -> None:
        st = StateFile(source=str(self.source) if self.source else "", entries=sorted(self.entries.values(),
                                                                                      key=lambda e: e.key))
        tmp = self.state_path.with_suffix(".tmp")
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(msgspec.json.encode(st))
        os.replace(tmp, self.state_path)

    def objects(self) -> list[Object]:
        """The cni source's snapshot: its networks, then its endpoints."""
        assert self.source is not None
        out: list[Object] = []
        for name, net in sorted(self.cfg.networks.items()):
            out.append(Network(source=self.source, name=name, subnets=(net.subnet,) if net.subnet else (),
                               gateway=net.gateway or None))  # fmt: skip
        out.extend(e.endpoint for e in sorted(self.entries.values(), key=lambda e: e.key) if e.endpoint is not None)
        return out

    def status(self) -> dict[str, Any]:
        return {
            "ready": self.ready.is_set(),
            "socket": self.cfg.socket,
            "source": str(self.source) if self.source else None,
            "last_error": self.last_error,
            "attachments": len(self.entries),
            "plugged": len(self.vif.plugged),
            "requests": dict(self.requests),
            "hub": None if self.publisher is None else {
                "url": self.publisher.url, "posts": self.publisher.posts, "last_error": self.publisher.last_error,
                "in_sync": self.publisher.acked >= self.publisher.wanted},
        }  # fmt: skip

    # ------------------------------------------------------------ run
    async def run(self) -> None:
        """Serve the socket; keep NB/OVS sessions (reconnecting with backoff) until cancelled."""
        sock = self.cfg.socket
        _clear_socket(sock, parents=True)
        self._server = await asyncio.start_unix_server(self._serve, path=sock, limit=P._MAX_STDIN + 65536)
        os.chmod(sock, 0o600)  # runtimes run as root; nobody else may plug
        log.info("CNI agent listening on %s", sock)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._sessions(), name="cni-sessions")
                while self.source is None:
                    await self._wait_change(1.0)
                if self.cfg.hub_api:
                    self.publisher = HubPublisher(self.cfg.hub_api, self.cfg.hub_token_file, self.source, self.objects,
                                                  self.cfg.resync_interval)  # fmt: skip
                    self.publisher.dirty()
                    tg.create_task(self.publisher.run(), name="cni-publisher")
        finally:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            _clear_socket(sock)

    async def _sessions(self) -> None:
        backoff = Backoff(self.backoff_initial, self.backoff_max)
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except (OSError, OvsdbError, TimeoutError, PlumbError, ConnectionError) as exc:
                self.last_error = str(exc) or type(exc).__name__
                log.warning("CNI session failed: %s; reconnecting", self.last_error)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("CNI session failed unexpectedly; reconnecting")
            self.ready.clear()
            if loop.time() - began > 30:
                backoff.reset()
            await asyncio.sleep(backoff.next())

    async def _session(self) -> None:
        if self.own_bridge or not self.chassis:
            await self.bridge.connect()
        if not self.chassis:
            self.chassis = getattr(self.bridge, "system_id", "")
            if not self.chassis:
                raise PlumbError("no [node] chassis configured and Open_vSwitch has no external_ids:system-id")
        if self.source is None:
            self.source = Source("cni", self.cfg.cluster or dns_label(self.chassis))
            self._pulse()
        nb = OvsdbClient(self.nb_remote, tls=self.nb_tls)
        try:
            await nb.connect()
            nb.on_update = self._on_nb_update
            self.nb.clear()
            await nb.monitor_cond(NbView.monitor_spec(self.hub_id, self.chassis), monitor_id="cni")
            await self.vif.adopt()
            self.vif.mark(self.entries)
            await self.vif.reconcile(self._desired)
            self.last_error = ""
            if not self.ready.is_set():
                log.info("CNI agent ready: %d attachments plugged on chassis %s", len(self.vif.plugged), self.chassis)
            self.ready.set()
            self._pulse()
            async def relist() -> list[str]:
                return list(self.entries)

            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self.vif.run(self._desired, relist, 60.0))
                    tg.create_task(self._watch_nb(nb))
            except BaseExceptionGroup as group:
                raise group.exceptions[0] from None
        finally:
            nb.on_update = None
            await nb.close()

    @staticmethod
    async def _watch_nb(nb: OvsdbClient) -> None:
        await nb.closed.wait()
        raise ConnectionLost("NB session lost")

    def _on_nb_update(self, updates: dict[str, Any]) -> None:
        changed = self.nb.apply(updates)
        self.vif.mark(k for k, e in self.entries.items() if e.uid in changed)
        self._pulse()

    def _pulse(self) -> None:
        ev, self._changed = self._changed, asyncio.Event()
        ev.set()

    async def _wait_change(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._changed.wait()

    async def close(self) -> None:
        if self.own_bridge:
            await self.bridge.close()

    # ------------------------------------------------------------ desired
    async def _desired(self, key: str) -> Attachment | None:
        return self._want(key)

    def _want(self, key: str) -> Attachment | None:
        e = self.entries.get(key)
        if e is None or not os.path.exists(e.netns):
            return None
        addr = self.nb.address(e.uid, e.network)
        if addr is None:
            return None
        return Attachment(key=key, network=e.network, netns_path=e.netns, ifname=e.ifname, port=addr.port,
                          mac=addr.mac, addrs=addr.addrs, gateway=addr.gateway, extra=_VIA_TAG)  # fmt: skip

    # ------------------------------------------------------------ the socket
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        version = "1.0.0"
        try:
            try:
                raw = await reader.read(P._MAX_STDIN + 65536)
                while not reader.at_eof():
                    more = await reader.read(65536)
                    if not more:
                        break
                    raw += more
                try:
                    msg = msgspec.json.decode(raw)
                except RecursionError:
                    raise P.CniError(P.DECODE_FAILURE, "the request is nested too deeply", "") from None
                if not isinstance(msg, dict) or not isinstance(msg.get("env"), dict):
                    raise P.CniError(P.DECODE_FAILURE, "not a request of ovn-hub-cni", "")
                env = {str(k): str(v) for k, v in msg["env"].items()}
                stdin = str(msg.get("stdin", ""))
                with contextlib.suppress(ValueError, AttributeError, RecursionError):  # P.parse says what is wrong
                    v = msgspec.json.decode(stdin).get("cniVersion")
                    version = v if v in P.SUPPORTED_VERSIONS else version
                req = P.parse(env, stdin)
                answer: dict[str, Any] = {"result": await self.handle(req)}
            except P.CniError as exc:
                answer = {"error": {"code": exc.code, "msg": exc.msg, "details": exc.details}}
            except msgspec.DecodeError as exc:
                answer = {"error": {"code": P.DECODE_FAILURE, "msg": "the request is not JSON", "details": str(exc)}}
            except Exception as exc:
                log.exception("CNI request failed")
                answer = {"error": {"code": P.AGENT_ERROR, "msg": f"the node agent failed: {type(exc).__name__}",
                                    "details": str(exc)[:500]}}  # fmt: skip
            writer.write(msgspec.json.encode(answer))
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # the plugin went away (its runtime gave up): nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def handle(self, req: dict[str, Any]) -> dict[str, Any] | None:
        """One checked request (hub.cniplugin.parse) → its result (None: an empty success)."""
        cmd = req["command"]
        self.requests[cmd] = self.requests.get(cmd, 0) + 1
        conf = req["conf"]
        deadline = time.monotonic() + max(0.5, float(conf.get("timeout", P.DEFAULT_TIMEOUT)) - 1.0)
        if cmd == "ADD":
            return await self.add(req, deadline)
        if cmd == "DEL":
            await self.delete(req, deadline)
            return None
        if cmd == "CHECK":
            await self.check(req)
            return None
        if cmd == "GC":
            await self.gc(conf, deadline)
            return None
        if cmd == "STATUS":
            if not self.ready.is_set():
                raise P.CniError(P.NOT_AVAILABLE, "the node agent is not connected to NB and Open_vSwitch",
                                 self.last_error)  # fmt: skip
            if self.publisher is not None and self.publisher.last_error:
                raise P.CniError(P.NOT_AVAILABLE, f"the hub at {self.cfg.hub_api} does not take this node's endpoints",
                                 self.publisher.last_error)  # fmt: skip
            return None
        raise P.CniError(P.INVALID_ENV, f"CNI_COMMAND {cmd} is not served by the agent", "")

    # ------------------------------------------------------------ ADD
    def _entry(self, req: dict[str, Any]) -> Entry:
        conf, args = req["conf"], req["args"]
        network = conf["network"]
        rc = conf.get("runtimeConfig") or {}
        cid, ifname = req["container_id"], req["ifname"]
        pod_uid = args.get("K8S_POD_UID", "")
        if pod_uid:
            pod = f"{args.get('K8S_POD_NAMESPACE', '')}/{args.get('K8S_POD_NAME', '')}"
            known = {net for _src, net in self.nb.switches}
            if self.ready.is_set() and network not in known:
                raise P.CniError(P.INVALID_CONFIG, f"network {network!r} is not a network of the hub",
                                 f"no switch of hub {self.hub_id} is network {network!r} (known: "
                                 f"{', '.join(sorted(known)) or 'none'}); the conflist's network must be the k8s "
                                 "adapter's option network")  # fmt: skip
            return Entry(container_id=cid, ifname=ifname, netns=req["netns"], network=network, conf_name=conf["name"],
                         uid=pod_uid, pod=pod, namespace=args.get("K8S_POD_NAMESPACE", ""))  # fmt: skip
        if network not in self.cfg.networks:
            raise P.CniError(P.INVALID_CONFIG, f"network {network!r} is not one of this node's [cni.networks]",
                             f"known: {', '.join(sorted(self.cfg.networks)) or 'none'}; a Kubernetes pod names"
                             " itself with CNI_ARGS K8S_POD_UID")  # fmt: skip
        if not self.cfg.hub_api or self.source is None:
            raise P.CniError(P.INVALID_CONFIG, "this node publishes no endpoints of its own ([cni] hub_api is unset)",
                             "only Kubernetes pods (CNI_ARGS K8S_POD_UID, ports the k8s adapter writes) can be"
                             " added")  # fmt: skip
        try:
            ips, mac = static_address(args, rc)
        except ValueError as exc:
            raise P.CniError(P.INVALID_CONFIG, "the requested address is invalid", str(exc)) from None
        namespace = args.get("K8S_POD_NAMESPACE") or "default"
        uid, labels = endpoint_uid(cid, ifname), labels_of(args, rc)
        mesos = mesos_network_info(conf)
        if mesos is not None:
            # Mesos' network/cni isolator: the Mesos adapter's endpoint of the task has uid = the ContainerID,
            # but the master learns it only from the executor's first status, after this ADD. So this node's
            # endpoint (same uid, declaring the workload) gets the port now and yields to the adapter's once
            # the master knows the task; a fixed MAC, so the adapter's port takes it over unchanged.
            uid = cid
            labels = {**network_info_labels(mesos), **labels, LABEL_WORKLOAD: f"mesos:{cid}"}
            mac = mac or stable_mac(f"mesos:{cid}")
        elif (garden := garden_app_instance(conf)) is not None:
            # Garden (garden-external-networker): CNI_CONTAINERID is the instance guid, the cloudfoundry adapter's
            # uid, and the rep claimed the instance (the adapter's dynamic port) before Garden made the container,
            # so this endpoint normally yields at once and the ADD plugs the adapter's port. No MAC of its own:
            # a winner would take it over and rewrite the port this ADD may have plugged already.
            uid = cid
            labels = {**garden_labels(garden), **labels, LABEL_WORKLOAD: f"cloudfoundry:{cid}"}
        ep = Endpoint(source=self.source, uid=uid, namespace=namespace,
                      name=args.get("K8S_POD_NAME") or cid[:12], kind="container", network=network,
                      node=self.chassis, ips=ips, mac=mac, labels=labels)  # fmt: skip
        try:
            validate(ep)
        except Invalid as exc:
            raise P.CniError(P.INVALID_CONFIG, f"the endpoint is not valid ({exc.reason})", str(exc)) from None
        return Entry(container_id=cid, ifname=ifname, netns=req["netns"], network=network, conf_name=conf["name"],
                     uid=ep.uid, namespace=namespace, source=str(self.source), endpoint=ep)  # fmt: skip

    async def add(self, req: dict[str, Any], deadline: float) -> dict[str, Any]:
        if not _exists(req["netns"]):
            raise P.CniError(P.INVALID_ENV, f"CNI_NETNS {req['netns']} does not exist",
                             "the runtime must create the network namespace before ADD")  # fmt: skip
        while self.source is None and time.monotonic() < deadline:
            await self._wait_change(min(_POLL, max(0.0, deadline - time.monotonic())))
        entry = self._entry(req)
        key = entry.key
        changed = self.entries.get(key) != entry
        if changed:
            self.entries[key] = entry
            self._save()
            log.info("CNI ADD %s on %s (%s)", key[:24], entry.network, entry.pod or f"endpoint {entry.uid[:24]}")
        gen = 0
        if entry.endpoint is not None and self.publisher is not None:
            gen = self.publisher.dirty() if changed else self.publisher.wanted
        self.vif.mark((key,))
        a = await self._wait_plugged(entry, deadline, gen)
        try:
            host_mac = await self.links.host_mac(a.dev)
        except (OSError, PlumbError):
            host_mac = ""
        src = entry.source or self._port_source(entry)
        # a Cloud Foundry app instance keeps the cell's resolver (BOSH DNS, apps.internal): OVN's would
        # answer only the hub's names; a conflist may turn the result's DNS off too ("dns": false)
        dns = req["conf"].get("dns", True) is not False and garden_app_instance(req["conf"]) is None
        return result(req["conf"]["cniVersion"], a, host_mac=host_mac,
                      search=dns_search(entry.namespace, src, self.cfg.dns_zone), dns=dns)  # fmt: skip

    def _port_source(self, e: Entry) -> str:
        row = self.nb.ports.get((e.uid, e.network))
        return str(row.get("source", "")) if row else ""

    async def _wait_plugged(self, e: Entry, deadline: float, gen: int) -> Attachment:
        key = e.key
        while True:
            want = self._want(key)
            have = self.vif.plugged.get(key)
            if want is not None and have == want and key not in self.vif.dirty:
                return have
            if e.endpoint is not None and self.publisher is not None and e.endpoint.key in self.publisher.refused:
                raise P.CniError(P.INVALID_CONFIG, f"the hub refused endpoint {lsp_name(e.endpoint)}",
                                 self.publisher.refused[e.endpoint.key])  # fmt: skip
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._missing(e, gen)
            await self._wait_change(min(_POLL, left))

    def _missing(self, e: Entry, gen: int) -> P.CniError:
        """What an ADD that timed out is waiting for, as precisely as the agent knows it."""
        if not self.ready.is_set():
            return P.CniError(P.TRY_AGAIN, "the node agent is not connected to NB and Open_vSwitch yet",
                              self.last_error or "connecting")  # fmt: skip
        plug_error = self.vif.errors.get(e.key)
        if plug_error:
            return P.CniError(P.PLUMBING_FAILED, f"plugging {e.ifname} into {e.netns} failed", plug_error)
        row = self.nb.ports.get((e.uid, e.network))
        who = f"pod {e.pod} (uid {e.uid})" if e.pod else f"endpoint {e.uid}"
        if row is None:
            if e.endpoint is not None and self.publisher is not None and self.publisher.acked < max(gen, 1):
                return P.CniError(P.HUB_UNREACHABLE, f"the hub has not taken {who} yet",
                                  f"POST {self.publisher.url}/v1/ingest/{self.source}: "
                                  f"{self.publisher.last_error or 'no answer yet'}")  # fmt: skip
            hint = ("the hub took the endpoint: is hubd connected to NB (hubctl status)?" if e.endpoint is not None
                    else "is the pod scheduled on this node (the k8s adapter maps its nodeName to this chassis), is"
                         f" the adapter's network {e.network!r}, and is hubd running?")  # fmt: skip
            return P.CniError(P.NO_PORT, f"NB has no logical switch port for {who} on network {e.network} requesting"
                                         f" chassis {self.chassis}", hint)  # fmt: skip
        addresses = [a for a in row.get("addresses", ()) if a]
        dyn = row.get("dynamic_addresses") or ""
        if not addresses:
            return P.CniError(P.NO_ADDRESS, f"port {row['name']} has no addresses", "the hub wrote it without any")
        if "dynamic" in addresses[0].split():
            sw = self.nb.switches.get((row.get("source", ""), e.network))
            if not dyn:
                return P.CniError(P.NO_ADDRESS, f"port {row['name']} is dynamic and OVN has not allocated its address",
                                  f"ovn-northd fills dynamic_addresses from switch {row.get('source')}/{e.network}'s"
                                  f" subnet ({(sw or ('none', ''))[0] or 'none'}): is ovn-northd running, and is the"
                                  " subnet full?")  # fmt: skip
            return P.CniError(P.NO_ADDRESS, f"port {row['name']} got {dyn} from OVN, but the hub has not locked it yet",
                              "the hub writes port_security to the allocation next: is hubd connected to NB?")
        return P.CniError(P.PLUMBING_FAILED, f"{who} is not plugged yet", "the reconciler has not finished in time")

    # ------------------------------------------------------------ DEL, CHECK, GC
    async def delete(self, req: dict[str, Any], deadline: float) -> None:
        """Forget the attachment, remove its veth; succeeds when nothing is left (SPEC: DEL is idempotent)."""
        key = f"{req['container_id']}/{req['ifname']}"
        entry = self.entries.pop(key, None)
        if entry is not None:
            self._save()
            log.info("CNI DEL %s on %s", key[:24], entry.network)
            if entry.endpoint is not None and self.publisher is not None:
                self.publisher.dirty()
        # The runtime's part is gone once the veth is (its peer goes with it): delete it now, the
        # reconciler removes the OVS Interface next (an ovsdbapp transaction waits for ovs-vswitchd to
        # reconfigure; a burst of DELs would queue behind each other for that).
        await self.links.delete(veth_name(key, entry.network if entry else req["conf"]["network"]))
        if entry is None and self.vif.plugged.get(key) is not None:
            await self.links.delete(self.vif.plugged[key].dev)  # plugged for another network
        self.vif.mark((key,))

    async def check(self, req: dict[str, Any]) -> None:
        key = f"{req['container_id']}/{req['ifname']}"
        e = self.entries.get(key)
        if e is None:
            raise P.CniError(P.UNKNOWN_CONTAINER, f"no attachment of {req['container_id'][:24]} {req['ifname']} on"
                                                  " this node", "CHECK follows an ADD")  # fmt: skip
        if not self.ready.is_set():
            raise P.CniError(P.TRY_AGAIN, "the node agent is not connected to NB and Open_vSwitch yet",
                             self.last_error)  # fmt: skip
        have = self.vif.plugged.get(key)
        want = self._want(key)
        if have is None:
            raise P.CniError(P.CHECK_FAILED, f"{e.ifname} of {e.container_id[:24]} is not plugged",
                             self.vif.errors.get(key, "NB has no usable port for it"))  # fmt: skip
        if want != have:
            raise P.CniError(P.CHECK_FAILED, "NB no longer says what was plugged",
                             f"plugged {have.mac} {' '.join(have.addrs)} on {have.port}; NB: "
                             f"{'nothing' if want is None else want.mac + ' ' + ' '.join(want.addrs)}")  # fmt: skip
        if not await self.links.exists(have.dev):
            raise P.CniError(P.CHECK_FAILED, f"the host end {have.dev} is gone", "")
        try:
            state: LinkState | None = await self.links.inspect(e.netns, e.ifname)
        except PlumbError as exc:
            raise P.CniError(P.CHECK_FAILED, "the sandbox cannot be read", str(exc)) from None
        problems = check(have, state, req["conf"].get("prevResult"))
        if problems:
            raise P.CniError(P.CHECK_FAILED, problems[0], "; ".join(problems))

    async def gc(self, conf: dict[str, Any], deadline: float) -> None:
        valid = {(str(a.get("containerID")), str(a.get("ifname"))) for a in conf.get("cni.dev/attachments") or []
                 if isinstance(a, dict)}  # fmt: skip
        gone = [k for k, e in self.entries.items()
                if e.conf_name == conf["name"] and (e.container_id, e.ifname) not in valid]  # fmt: skip
        for key in gone:
            e = self.entries.pop(key)
            log.info("CNI GC %s on %s", key[:24], e.network)
        if gone:
            self._save()
            if self.publisher is not None:
                self.publisher.dirty()
            self.vif.mark(gone)
