"""Docker Engine adapter: list + ``GET /events`` → canonical events.

Session (one per connection to the daemon)::

    GET /info                 node name + daemon clock (the "since" of a first stream)
    GET /events?since=…       opened BEFORE listing, so nothing falls between list and watch
    GET /networks, GET /containers/json?all=1 + inspect each  →  Snapshot
    read event lines          →  re-inspect the container (level-triggered) → Upsert/Delete
    every resync_interval     →  relist → Snapshot

When the stream ends or fails (daemon restart, socket gone) the adapter
reconnects with exponential backoff and jitter, resumes the stream at the last
seen ``timeNano`` (events are de-duplicated by :func:`normalize.event_key`) and
relists, because the gap may exceed dockerd's 256-event replay buffer.

Bad input (an unparsable event line, an inspect payload that fails
normalization) becomes a :class:`~core.model.Rejected` event, a warning and a
count in :attr:`DockerAdapter.rejected`; it never stops :meth:`DockerAdapter.run`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import ipaddress
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Annotated, Any

import aiodocker
import aiohttp
import msgspec

from core.adapter import AdapterSpec, EventSink, ObjectCache, OptionsError, describe_exception, parse_options
from core.backoff import Backoff
from core.metrics import ADAPTER_EVENT_LAG
from core.model import LIMITS, Endpoint, Invalid, Network, Object, Policy, Rejected, Snapshot, Source, validate

from .driver import MIRROR_LABEL
from .normalize import (
    container_event,
    decode_inspect,
    event_container_id,
    event_key,
    event_time_nano,
    is_host_network,
    normalize_container,
    normalize_inspect,
    normalize_network,
    parse_event_line,
)

__all__ = ["DockerAdapter", "DockerOptions"]


def _json_body(body: bytes) -> Any:
    """A response body as aiohttp's ``json()`` gives it to aiodocker (an empty body is None)."""
    text = body.strip()
    return json.loads(text.decode("utf-8")) if text else None


def _network_ids(data: Any) -> list[tuple[str, object]]:
    """(network name, NetworkID) of an inspect's attachments (a bad type: none; normalize rejects it)."""
    settings = data.get("NetworkSettings") if isinstance(data, dict) else None
    nets = settings.get("Networks") if isinstance(settings, dict) else None
    if not isinstance(nets, dict):
        return []
    return [(name, att.get("NetworkID") if isinstance(att, dict) else None) for name, att in nets.items()]


#: Container actions that cannot change networking or run state: not worth an inspect.
_NOISE_ACTIONS = frozenset(
    {
        "attach", "detach", "resize", "top", "export", "commit", "copy", "archive-path",
        "extract-to-dir", "exec_create", "exec_start", "exec_die", "exec_detach", "health_status",
    }
)  # fmt: skip
#: Container states (``/containers/json`` ``State``) that never have endpoints: no inspect needed.
_IDLE_STATES = frozenset({"created", "exited", "dead", "removing"})
_MAX_LINE = 1 << 20
_SEEN_KEYS = 4096
_INSPECT_CONCURRENCY = 8
#: Connecting to the daemon (seconds); plain requests (info, list, inspect, ping) get ``request_timeout``.
_CONNECT_TIMEOUT = 10.0
_URL_SCHEMES = re.compile(r"^(unix|tcp|http|https|ssh|npipe)://.")
_SYSTEM_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


class HubNetworkOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[adapters.<name>.networks.<net>]``: an OVN Hub network (wrapper mode)."""

    #: CIDR; OVN's dynamic IPAM allocates from it for containers without ``ovn-hub.ip``.
    subnet: Annotated[str, msgspec.Meta(min_length=1)]
    #: The default route of plugged containers (excluded from IPAM); none if empty.
    gateway: str = ""


class DockerOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[adapters.<name>.options]`` of a docker adapter."""

    url: Annotated[str, msgspec.Meta(min_length=1)] = "unix:///var/run/docker.sock"
    #: Node/host name stamped on every endpoint; default: the daemon's ``/info`` ``Name``.
    node: str = ""
    #: Namespace of containers without a compose/stack label.
    namespace: Annotated[str, msgspec.Meta(min_length=1)] = "default"
    #: Seconds between full relists (each emits a Snapshot).
    resync_interval: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    #: Seconds one plain request (info, list, inspect, ping) may take, from connecting to its last byte.
    request_timeout: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    #: Seconds without a byte on the events stream (Docker sends no heartbeat) before the
    #: daemon is pinged: no answer within ``request_timeout`` ends the session (reconnect, relist).
    stream_idle_timeout: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    #: OVN Hub networks for ``--network none`` containers labeled ``ovn-hub.network=<name>``
    #: (wrapper mode: they exist only in OVN; ``hubd --role node`` plugs the containers in).
    #: (Each value is a HubNetworkOptions table, checked by hub_networks so errors name the network.)
    networks: dict[str, dict[str, Any]] = {}
    #: A JSON file of canonical Policy objects (a list; ``source`` may be left out) for this
    #: engine's containers, matched by container labels; re-read when it changes.
    policies: str = ""
    #: The OVN Hub Docker network driver's name (``hubd --role node`` ``[node] driver_name``): networks of
    #: this driver are hub networks (their IPAM subnet and gateway), their containers' attachments endpoints.
    driver: Annotated[str, msgspec.Meta(min_length=1)] = "ovn-hub"
    #: Also map networks that Docker's own drivers serve (bridge, macvlan, ipvlan, overlay, other plugins)
    #: and their containers.  Off by default: OVN never carries their packets, so such a port never comes up.
    mirror_bridge_networks: bool = False
    #: Networks of the OVN Hub driver are shared hub networks (one switch ``ovn-hub/net/<name>`` for
    #: every engine that has a network of that name, which the node agents create on every engine): the
    #: same L2 network on every node.  False: each engine's driver network is its own (``docker/<cluster>/<name>``).
    share_driver_networks: bool = True


def load_policies(path: str, source: Source) -> list[Policy]:
    """Read a policies file: a JSON array of canonical Policy objects (``type``
    may be left out; ``source`` too, it must otherwise be this adapter's).
    Raises :class:`Invalid` naming the first bad entry."""
    try:
        data = Path(path).read_bytes()
        if len(data) > LIMITS["object_bytes"]:
            raise Invalid("too-long", f"policies file {path}: {len(data)} bytes, more than {LIMITS['object_bytes']}")
        raw = msgspec.json.decode(data)
    except OSError as exc:
        raise Invalid("policies-file", f"policies file {path}: {exc.strerror or exc}") from None
    except msgspec.DecodeError as exc:
        raise Invalid("bad-json", f"policies file {path}: not JSON: {exc}") from None
    except RecursionError:
        raise Invalid("bad-json", f"policies file {path}: nested too deeply") from None
    if not isinstance(raw, list):
        raise Invalid("not-array", f"policies file {path}: expected a JSON array of policies")
    out: list[Policy] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"policies file {path} [{i}]"
        if not isinstance(item, dict):
            raise Invalid("not-object", f"{where}: expected an object")
        item = {"type": "policy", "source": {"orchestrator": source.orchestrator, "cluster": source.cluster}, **item}
        try:
            pol = msgspec.convert(item, Policy)
        except msgspec.ValidationError as exc:
            raise Invalid("schema", f"{where}: {exc}") from None
        except RecursionError:
            raise Invalid("bad-json", f"{where}: nested too deeply") from None
        if pol.source != source:
            raise Invalid("wrong-source", f"{where}: source {pol.source} is not this adapter's ({source})")
        try:
            validate(pol)
        except Invalid as exc:
            raise Invalid(exc.reason, f"{where}: {exc}") from None
        if pol.uid in seen:
            raise Invalid("duplicate", f"{where}: uid {pol.uid!r} appears twice")
        seen.add(pol.uid)
        out.append(pol)
    return out


def hub_networks(spec: AdapterSpec, options: DockerOptions) -> dict[str, Network]:
    """The configured OVN Hub networks as canonical Networks (OptionsError if invalid)."""
    out: dict[str, Network] = {}
    for name, table in sorted(options.networks.items()):
        where = f"adapters.{spec.name}.networks.{name}"
        try:
            opt = msgspec.convert(table, HubNetworkOptions, strict=True)
        except msgspec.ValidationError as exc:
            raise OptionsError(f"{where}: {exc}") from None
        if name in ("host", "none", "bridge", "default"):
            raise OptionsError(f"{where}: {name!r} is a Docker network name of its own")
        try:
            subnet = ipaddress.ip_network(opt.subnet, strict=False)
        except ValueError:
            raise OptionsError(f"{where}.subnet: {opt.subnet!r} is not a CIDR") from None
        gateway = opt.gateway or None
        if gateway is not None:
            try:
                gw = ipaddress.ip_address(gateway)
            except ValueError:
                raise OptionsError(f"{where}.gateway: {gateway!r} is not an IP address") from None
            if gw not in subnet or gw in (subnet.network_address, subnet.broadcast_address):
                raise OptionsError(f"{where}.gateway: {gateway} is not a host address of {subnet}")
            gateway = str(gw)
        net = Network(
            source=spec.source, name=name, subnets=(str(subnet),), gateway=gateway, labels={"ovn-hub.wrapper": "true"}
        )
        try:
            validate(net)
        except Invalid as exc:
            raise OptionsError(f"{where}: {exc}") from None
        out[name] = net
    return out


class _StreamEnded(Exception):
    """The daemon closed the events stream (typically: it is restarting)."""


#: Failures of the connection or the daemon: reconnect + relist, never a Rejected.
_RECOVERABLE: tuple[type[BaseException], ...] = (
    aiodocker.DockerError,
    aiohttp.ClientError,
    OSError,
    asyncio.TimeoutError,
    _StreamEnded,
)


def _ns_to_since(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def _daemon_now_ns(info: Any) -> int:
    """The daemon's clock from ``/info`` ``SystemTime`` (RFC 3339, ns); local clock if absent."""
    text = info.get("SystemTime") if isinstance(info, dict) else None
    if isinstance(text, str):
        m = _SYSTEM_TIME.match(text.strip())
        if m:
            base, frac, tz = m.groups()
            try:
                stamp = dt.datetime.fromisoformat(base + ("+00:00" if tz == "Z" else tz))
            except ValueError:
                pass
            else:
                return int(stamp.timestamp()) * 1_000_000_000 + int((frac or "0")[:9].ljust(9, "0"))
    return time.time_ns()


class DockerAdapter:
    """Watches one Docker Engine; implements :class:`core.adapter.Adapter`."""

    #: Reconnect backoff: first delay, cap (seconds); each delay is jittered into [d/2, d].
    backoff_initial = 0.5
    backoff_max = 30.0

    def __init__(self, spec: AdapterSpec, options: DockerOptions | None = None) -> None:
        self.spec = spec
        self.options = options if options is not None else parse_options(spec, DockerOptions)
        if not _URL_SCHEMES.match(self.options.url):
            raise OptionsError(
                f"adapters.{spec.name}.url: {self.options.url!r} is not unix://, tcp://, http(s)://, ssh:// or npipe://"
            )
        self.source = spec.source
        #: Wrapper-mode networks by name (they shadow a Docker network of the same name).
        self.hub_networks = hub_networks(spec, self.options)
        self.log = spec.logger()
        self.cache = ObjectCache(self.source)
        #: Rejected inputs by reason (the hub also counts Rejected events).
        self.rejected: collections.Counter[str] = collections.Counter()
        #: Number of completed (re)lists, i.e. Snapshots emitted.
        self.relists = 0
        self.node = self.options.node
        self.connected = False
        self._last_ns = 0  # newest event timeNano seen (resume point)
        self._seen: collections.deque[tuple[int, str, str, str]] = collections.deque()
        self._seen_set: set[tuple[int, str, str, str]] = set()
        self._by_container: dict[str, set[str]] = {}  # container id → endpoint keys in the cache
        self._net_names: dict[str, str] = {}  # network id → name (destroy events)
        self._drivers: dict[str, str] = {}  # network name → its Docker driver
        self._unmirrored_logged: set[str] = set()
        self._host_logged: set[str] = set()
        self._shadow_logged: set[str] = set()
        self._policies: list[Policy] = []  # from the policies file, as last read successfully
        self._policies_stamp: tuple[int, int, int] | None = None
        self._policies_loaded = False
        #: Times the policies file was checked for a change (tests wait on it).
        self.policy_checks = 0

    # ------------------------------------------------------------ run loop
    async def run(self, sink: EventSink) -> None:
        """Reconnect until cancelled.  Reset rule: a session that got connected
        (info read, events stream open) starts the backoff over."""
        backoff = Backoff(min(self.backoff_initial, self.backoff_max), self.backoff_max)
        while True:
            reason = "events stream ended"
            try:
                timeout = aiohttp.ClientTimeout(
                    total=self.options.request_timeout, sock_connect=min(_CONNECT_TIMEOUT, self.options.request_timeout)
                )
                async with aiodocker.Docker(url=self.options.url, timeout=timeout) as docker:
                    await self._session(docker, sink)
            except _RECOVERABLE as exc:
                reason = describe_exception(exc)
            if self.connected:
                self.connected = False
                backoff.reset()
                self.log.warning("disconnected from docker at %s: %s; reconnecting", self.options.url, reason)
            else:
                self.log.debug("docker at %s unavailable: %s", self.options.url, reason)
            await asyncio.sleep(backoff.next())

    async def _session(self, docker: aiodocker.Docker, sink: EventSink) -> None:
        info = await docker.system.info()
        if not self.options.node and isinstance(info, dict) and isinstance(info.get("Name"), str):
            self.node = info["Name"]
        since_ns = self._last_ns or _daemon_now_ns(info)
        params: dict[str, Any] = {
            "since": _ns_to_since(since_ns),
            "filters": {"type": ["container", "network"]},
        }
        stream_timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=30)
        async with contextlib.AsyncExitStack() as stack:
            # the stream has no read timeout (Docker sends no heartbeat: _read_events pings), but its
            # response headers must come within request_timeout (a daemon that accepts and never answers)
            async with asyncio.timeout(self.options.request_timeout):
                resp = await stack.enter_async_context(docker._query("events", params=params, timeout=stream_timeout))
            watcher = None
            try:
                if self.options.policies:
                    await self.reload_policies(sink, emit=False)
                    watcher = asyncio.create_task(self._watch_policies(sink), name=f"{self.spec.name} policies")
                await self.relist(docker, sink, reason="connect")
                if not self.connected:
                    self.connected = True
                    self.log.info(
                        "connected to docker at %s (node %r, API %s)",
                        self.options.url,
                        self.node,
                        docker.api_version,
                    )
                await self._read_events(docker, resp, sink)
            finally:
                if watcher is not None:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher
                resp.close()

    async def _ping(self, docker: aiodocker.Docker, idle: float) -> None:
        """``GET /_ping`` after a quiet events stream; a daemon that does not answer ends the session."""
        try:
            async with docker._query("_ping") as resp:
                await resp.read()
        except (aiohttp.ClientError, OSError, TimeoutError, aiodocker.DockerError) as exc:
            raise _StreamEnded(
                f"no event for {idle:g} s and the daemon does not answer a ping ({describe_exception(exc)})"
            ) from None

    async def _read_events(self, docker: aiodocker.Docker, resp: aiohttp.ClientResponse, sink: EventSink) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.resync_interval
        buf = bytearray()
        skipping = False  # inside an over-long line: drop bytes until its newline
        idle = self.options.stream_idle_timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                await self.relist(docker, sink, reason="resync")
                deadline = loop.time() + self.options.resync_interval
                continue
            try:
                # readany() is cancellation-safe: unread data stays in aiohttp's buffer.
                async with asyncio.timeout(min(remaining, idle)):
                    chunk = await resp.content.readany()
            except TimeoutError:
                if deadline - loop.time() > 0:  # quiet for stream_idle_timeout: is the daemon still there?
                    await self._ping(docker, idle)
                continue
            if not chunk:
                raise _StreamEnded("events stream closed by the daemon")
            buf += chunk
            while (nl := buf.find(b"\n")) >= 0:
                line = bytes(buf[:nl])
                del buf[: nl + 1]
                if skipping:
                    skipping = False
                    continue
                await self.handle_line(line, sink, docker)
            if len(buf) > _MAX_LINE and not skipping:
                buf.clear()
                skipping = True
                await self._reject(sink, Invalid("too-long", f"event line is longer than {_MAX_LINE} bytes"), "")
            elif skipping:
                buf.clear()

    # ------------------------------------------------------------ events
    async def handle_line(self, line: bytes | str, sink: EventSink, docker: aiodocker.Docker) -> None:
        """Process one raw ``/events`` line; bad input becomes a Rejected."""
        if not line.strip():
            return
        fast = container_event(line)  # the usual container event, typed (its labels skipped)
        if fast is not None:
            if self._first_time(fast.key, fast.time_nano):
                await self._container_event(fast.action, fast.container, fast.time_nano, fast.key, sink, docker)
            return
        try:
            ev = parse_event_line(line)
        except Invalid as exc:
            await self._reject(sink, exc, "")
            return
        await self.handle_event(ev, sink, docker)

    def _first_time(self, key: tuple[int, str, str, str], time_nano: int) -> bool:
        """De-duplication: False if the event of this key was seen (among the last ``_SEEN_KEYS``)."""
        if key in self._seen_set:
            return False
        self._seen.append(key)
        self._seen_set.add(key)
        if len(self._seen) > _SEEN_KEYS:
            self._seen_set.discard(self._seen.popleft())
        self._last_ns = max(self._last_ns, time_nano)
        return True

    async def _container_event(
        self, action: str, cid: str | None, stamp: int, key: tuple[int, str, str, str], sink: EventSink,
        docker: aiodocker.Docker,
    ) -> None:  # fmt: skip
        try:
            if action in _NOISE_ACTIONS:
                return
            if cid:
                await self.sync_container(docker, cid, sink)
                if stamp:  # the engine's clock: same host, or NTP-close
                    ADAPTER_EVENT_LAG.labels(self.spec.name).observe(max(0.0, time.time() - stamp / 1e9))
        except _RECOVERABLE:
            raise
        except Exception as exc:  # a bug or an unforeseen payload: one event must not kill run()
            self.log.exception("failed to process %s %s event", "container", action)
            await self._reject(sink, Invalid("internal-error", f"container {action}: {describe_exception(exc)}"), key[3])

    async def handle_event(self, ev: dict[str, Any], sink: EventSink, docker: aiodocker.Docker) -> None:
        """Process one decoded event (level-triggered: re-inspect what it concerns)."""
        key = event_key(ev)
        if not self._first_time(key, event_time_nano(ev)):
            return
        typ, action = ev["Type"], ev["Action"]
        if typ == "container":
            await self._container_event(action, event_container_id(ev), event_time_nano(ev), key, sink, docker)
            return
        try:
            if typ == "network":
                actor = ev.get("Actor") or {}
                nid = actor.get("ID") or ""
                attrs = actor.get("Attributes") or {}
                if action in ("connect", "disconnect"):
                    cid = event_container_id(ev)
                    # "none"/"host" come with every start of such a container (its start event follows)
                    if cid and attrs.get("name") not in ("none", "host"):
                        if action == "connect" and not await self._running(docker, cid):
                            return  # being started: Docker holds its lock (an inspect would wait); start follows
                        await self.sync_container(docker, cid, sink)
                elif action == "create" and nid:
                    await self.sync_network(docker, nid, sink)
                elif action in ("destroy", "remove"):
                    name = attrs.get("name") if isinstance(attrs.get("name"), str) else None
                    name = name or self._net_names.get(nid)
                    self._net_names.pop(nid, None)
                    if name:
                        self._drivers.pop(name, None)
                    if name and name not in self.hub_networks:
                        await self._emit(sink, self.cache.delete("network", name))
        except _RECOVERABLE:
            raise
        except Exception as exc:  # a bug or an unforeseen payload: one event must not kill run()
            self.log.exception("failed to process %s %s event", typ, action)
            await self._reject(sink, Invalid("internal-error", f"{typ} {action}: {describe_exception(exc)}"), key[3])

    async def sync_container(self, docker: aiodocker.Docker, cid: str, sink: EventSink) -> None:
        """Re-inspect one container and upsert/delete its endpoints (no-ops emit nothing)."""
        # The body is decoded here, typed (the fields the endpoints need, the rest skipped); an inspect
        # that decode refuses, or that normalize_inspect is not sure of, takes the dict path (json.loads
        # as aiohttp does it for aiodocker's show(), normalize_container), which decides.
        try:
            async with docker._query(f"containers/{cid}/json") as resp:
                body = await resp.read()
        except aiodocker.DockerError as exc:
            if exc.status != 404:
                raise
            body = None
        body = body or b""  # aiohttp's json() of an empty body is None: the container is gone
        typed = decode_inspect(body) if body else None
        data: Any = _json_body(body) if typed is None else None
        endpoints: list[Endpoint] | None = None
        if typed is None and data is None:
            endpoints = []
            self._host_logged.discard(cid)
        else:
            await self._learn_networks(docker, typed.network_ids() if typed is not None else _network_ids(data))
            kw: dict[str, Any] = {"node": self.node, "default_namespace": self.options.namespace,
                                  "hub_networks": self.hub_networks, "skip_networks": self._unmirrored()}  # fmt: skip
            if typed is not None:
                endpoints = normalize_inspect(typed, self.source, **kw)
            if endpoints is None:
                if data is None:
                    data = _json_body(body)
                try:
                    endpoints = normalize_container(data, self.source, **kw)
                except Invalid as exc:
                    await self._reject(sink, exc, cid)
                    return
            if typed is not None and data is None:
                uid = typed.Id
                if typed.host_network():
                    self._log_host_network(uid or "", (typed.Name or "").removeprefix("/"))
            else:
                self._note_host_network(data)
                uid = data.get("Id")
            if isinstance(uid, str) and uid != cid:  # event carried a short id
                self._by_container.setdefault(uid, set()).update(self._by_container.pop(cid, set()))
                cid = uid
        new_keys: set[str] = set()
        for ep in endpoints or ():
            new_keys.add(ep.key)
            await self._emit(sink, self.cache.upsert(ep))
        for key in sorted(self._by_container.get(cid, set()) - new_keys):
            await self._emit(sink, self.cache.delete("endpoint", key))
        if new_keys:
            self._by_container[cid] = new_keys
        else:
            self._by_container.pop(cid, None)

    async def _running(self, docker: aiodocker.Docker, cid: str) -> bool:
        """Whether ``cid`` runs, from the container list (which takes no container lock): a ``connect``
        event from inside a container's start comes while Docker holds the container, and an inspect
        would wait for the whole start, holding up every event behind it; that start's own event
        follows, so such a connect needs no look of its own."""
        listed: Any = await docker._query_json(
            "containers/json", params={"all": "1", "filters": msgspec.json.encode({"id": [cid]}).decode()}
        )
        states = [c.get("State") for c in listed if isinstance(c, dict)] if isinstance(listed, list) else []
        return not states or any(st in ("running", "paused") for st in states)

    async def sync_network(self, docker: aiodocker.Docker, nid: str, sink: EventSink) -> None:
        try:
            data: Any = await docker._query_json(f"networks/{nid}")
        except aiodocker.DockerError as exc:
            if exc.status != 404:
                raise
            return  # already gone again; its destroy event follows
        try:
            net = self._map_network(data)
        except Invalid as exc:
            await self._reject(sink, exc, nid)
            return
        if net is not None and not self._shadowed(net):
            self._net_names[nid] = net.name
            await self._emit(sink, self.cache.upsert(net))

    # ------------------------------------------------------------ relist
    async def relist(self, docker: aiodocker.Docker, sink: EventSink, *, reason: str = "resync") -> Snapshot:
        """List networks and containers, emit and return a Snapshot."""
        objects: list[Object] = []
        net_names: dict[str, str] = {}
        raw_networks: Any = await docker.networks.list()
        self._drivers = {}
        for raw in raw_networks if isinstance(raw_networks, list) else []:
            nid = raw.get("Id", "") if isinstance(raw, dict) else ""
            try:
                net = self._map_network(raw)
            except Invalid as exc:
                await self._reject(sink, exc, nid if isinstance(nid, str) else "")
                continue
            if net is not None:
                objects.append(net)
                if isinstance(nid, str) and nid:
                    net_names[nid] = net.name
        objects = [n for n in objects if not (isinstance(n, Network) and self._shadowed(n))]
        objects.extend(self.hub_networks.values())

        containers = await docker.containers.list(all=True)
        sem = asyncio.Semaphore(_INSPECT_CONCURRENCY)

        async def inspect(c: aiodocker.containers.DockerContainer) -> Any:
            async with sem:
                try:
                    return await c.show()
                except aiodocker.DockerError as exc:
                    if exc.status == 404:  # vanished between list and inspect
                        return None
                    raise

        wanted = [c for c in containers if not ("State" in c and c["State"] in _IDLE_STATES)]
        results = await asyncio.gather(*(inspect(c) for c in wanted), return_exceptions=True)
        for res in results:
            if isinstance(res, BaseException):
                raise res
        by_container: dict[str, set[str]] = {}
        live: set[str] = set()
        for data, c in zip(results, wanted, strict=True):
            if data is None:
                continue
            live.add(c.id)
            try:
                endpoints = normalize_container(
                    data,
                    self.source,
                    node=self.node,
                    default_namespace=self.options.namespace,
                    hub_networks=self.hub_networks,
                    skip_networks=self._unmirrored(),
                )
            except Invalid as exc:
                await self._reject(sink, exc, c.id)
                continue
            self._note_host_network(data)
            for ep in endpoints:
                objects.append(ep)
                by_container.setdefault(ep.uid, set()).add(ep.key)

        objects.extend(self._policies)  # no await since: a concurrent policies reload is not lost
        snap = self.cache.snapshot(objects)
        self._by_container = by_container
        self._net_names = net_names
        self._host_logged &= live
        self.relists += 1
        await sink.emit(snap)
        level = logging.DEBUG if reason == "resync" else logging.INFO
        self.log.log(
            level,
            "relisted %d containers (%s): %d endpoints on %d networks",
            len(containers),
            reason,
            sum(len(v) for v in by_container.values()),
            len(net_names),
        )
        return snap

    # ------------------------------------------------------------ policies file
    async def _watch_policies(self, sink: EventSink) -> None:
        """Re-read the policies file when its mtime/size/inode change (polled every second)."""
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.reload_policies(sink)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the watcher die silently
                self.log.exception("policies file %s: reload failed", self.options.policies)

    async def reload_policies(self, sink: EventSink, *, emit: bool = True) -> None:
        """Load the policies file if it changed; emit Upserts/Deletes for the
        difference.  A bad file is rejected (Rejected event, warning, metric)
        and the policies last read stay in force."""
        path = self.options.policies
        self.policy_checks += 1
        try:
            st = os.stat(path)
            stamp: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        if stamp == self._policies_stamp and self._policies_loaded:
            return  # unchanged (a missing file is reported once, not every second)
        self._policies_stamp = stamp
        self._policies_loaded = True
        try:
            policies = load_policies(path, self.source)
        except Invalid as exc:
            await self._reject(sink, exc, "")
            return
        old = {p.uid for p in self._policies}
        self._policies = policies
        self.log.info("policies file %s: %d policies", path, len(policies))
        if not emit:
            return
        for pol in policies:
            await self._emit(sink, self.cache.upsert(pol))
        for uid in sorted(old - {p.uid for p in policies}):
            await self._emit(sink, self.cache.delete("policy", uid))

    # ------------------------------------------------------------ Docker's networks or the hub's
    def _map_network(self, raw: Any) -> Network | None:
        """A Docker network as a hub Network, or None: not an L2 domain, or served by one of
        Docker's own drivers (bridge, macvlan, …: OVN never carries its packets) unless
        ``mirror_bridge_networks``.  A network of the hub's driver without a gateway in its
        IPAM config has the first host address as gateway (the driver's IPAM and Docker's
        default IPAM both give a network that gateway, and Docker's inspect does not show it)."""
        driver = raw.get("Driver") if isinstance(raw, dict) else None
        name = raw.get("Name") if isinstance(raw, dict) else None
        if isinstance(name, str) and isinstance(driver, str):
            self._drivers[name] = driver
            if self._served_by_docker(name):
                return None
        net = normalize_network(raw, self.source)
        if net is not None and driver == self.options.driver and net.gateway is None:
            v4 = [ipaddress.ip_network(s) for s in net.subnets if ":" not in s]
            if v4 and v4[0].num_addresses > 2:
                net = msgspec.structs.replace(net, gateway=str(v4[0].network_address + 1))
        if net is not None and driver == self.options.driver and self.options.share_driver_networks:
            # one L2 network across engines; a copy the node agent made of the hub's is a mirror
            net = msgspec.structs.replace(net, shared=True, mirror=MIRROR_LABEL in net.labels)
        return net

    def _served_by_docker(self, name: str) -> bool:
        driver = self._drivers.get(name, "")
        if self.options.mirror_bridge_networks or driver in ("", self.options.driver, "host", "null"):
            return False
        if name not in self._unmirrored_logged:
            self._unmirrored_logged.add(name)
            self.log.info(
                "docker network %r (driver %s) is served by Docker's own driver: not mapped to OVN"
                " (adapter option mirror_bridge_networks = true maps it)", name, driver,
            )  # fmt: skip
        return True

    def _unmirrored(self) -> frozenset[str]:
        return frozenset(n for n in self._drivers if self._served_by_docker(n))

    async def _learn_networks(self, docker: aiodocker.Docker, attached: list[tuple[str, object]]) -> None:
        """The drivers of networks a container is attached to (name, NetworkID) that no list or event named yet."""
        for name, nid in attached:
            if name in self._drivers or name in ("host", "none") or not isinstance(nid, str) or not nid:
                continue
            try:
                raw: Any = await docker._query_json(f"networks/{nid}")
            except aiodocker.DockerError as exc:
                if exc.status != 404:
                    raise
                continue
            if isinstance(raw, dict) and isinstance(raw.get("Driver"), str):
                self._drivers[name] = raw["Driver"]

    # ------------------------------------------------------------ helpers
    def _shadowed(self, net: Network) -> bool:
        """A Docker network named like an OVN Hub network is not mapped (logged once)."""
        if net.name not in self.hub_networks:
            return False
        if net.name not in self._shadow_logged:
            self._shadow_logged.add(net.name)
            self.log.warning("docker network %r is shadowed by the OVN Hub network of that name: not mapped", net.name)
        return True

    def _note_host_network(self, data: Any) -> None:
        if is_host_network(data):
            self._log_host_network(data.get("Id", ""), str(data.get("Name", "")).removeprefix("/"))

    def _log_host_network(self, cid: Any, name: str) -> None:
        if cid not in self._host_logged:
            self._host_logged.add(cid)
            self.log.info("container %s (%s) uses host networking: not mapped", cid[:12], name)

    async def _emit(self, sink: EventSink, ev: Any) -> None:
        if ev is not None:
            await sink.emit(ev)

    async def _reject(self, sink: EventSink, exc: Invalid, ref: str) -> None:
        self.rejected[exc.reason] += 1
        self.log.warning("rejected %s (%s): %s", ref[:12] or "event", exc.reason, exc)
        await sink.emit(Rejected(source=self.source, reason=exc.reason, message=str(exc), ref=ref))

    def networks(self) -> list[Network]:
        return self.cache.networks()

    def endpoints(self) -> list[Endpoint]:
        return self.cache.endpoints()
