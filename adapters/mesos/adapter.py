"""Mesos adapter: the master's operator API v1 ``SUBSCRIBE`` stream (and, optionally,
Marathon) → canonical events.

Session with the masters (aiohttp)::

    POST <master>/api/v1 {"type":"SUBSCRIBE"}     each configured master in turn, the last
                                                  leader first; a 307 is followed to the
                                                  leading master (Location ``//host:port/api/v1``),
                                                  a 503 (recovering, no leader) tries the next
    200: a RecordIO body (adapters/mesos/streams.py)
        SUBSCRIBED {get_state, heartbeat_interval_seconds}
                                  → the whole state: deltas against what was emitted
                                    (deletes of tasks that vanished meanwhile), then ONE
                                    Snapshot (the configured Networks, the task Endpoints,
                                    Marathon's VIP Services)
        TASK_ADDED / TASK_UPDATED / AGENT_ADDED / AGENT_REMOVED /
        FRAMEWORK_ADDED / _UPDATED / _REMOVED     → Upsert / Delete (no-ops filtered)
        HEARTBEAT                 → nothing (but it is a byte: see silence)
    no byte for 5 x heartbeat_interval_seconds    → close, re-SUBSCRIBE with backoff
    the stream ends or breaks     → re-SUBSCRIBE with backoff

Mesos has no resume cursor: every SUBSCRIBED is a resync point, and correctness
rests on it (a task killed while the adapter was away is gone from the new
state: its endpoints are deleted).  The backoff (core.backoff) starts over once
a subscription got its SUBSCRIBED.

Marathon (``[adapters.<name>.marathon]``), beside it, on its own connection::

    GET <marathon>/v2/events (Accept: text/event-stream)    a redirect is followed
                                  to the leader; every event but the stream's own
                                  is an invalidation
    GET <marathon>/v2/apps?embed=apps.tasks
                                  → right after the stream attached, then once the
                                    events pause for ``debounce`` seconds (at most
                                    ``max_delay`` after the first), and every
                                    ``resync_interval``: tasks' namespaces and names,
                                    VIP Services (adapters/mesos/marathon.py)
    the stream closed (Marathon cuts off a consumer more than 1024 events behind)
                                  → attach again with backoff, and relist

Marathon's results wait for the first SUBSCRIBED (they are part of its Snapshot).
A task Mesos reports ended leaves its VIPs' backends at once, before Marathon's
relist says so.

Bad input never ends :meth:`MesosAdapter.run`: a record that is not an event, a
task whose endpoint is invalid, a bad app → a :class:`~core.model.Rejected`
(counted in :attr:`MesosAdapter.rejected`), and the stream goes on.  Broken
framing (a length prefix that is not a number) cannot be resynchronised: the
adapter re-subscribes.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import functools
import ipaddress
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Literal

import aiohttp
import msgspec
from yarl import URL

from core.adapter import AdapterSpec, EventSink, ObjectCache, OptionsError, describe_exception, parse_options
from core.backoff import Backoff
from core.model import (
    LIMITS,
    NETWORK_NAME,
    Endpoint,
    InputEvent,
    Invalid,
    Network,
    Object,
    Rejected,
    Service,
    Snapshot,
    validate,
)

from . import marathon as mt
from .normalize import Change, GetState, MesosState, Removed, decode_event
from .streams import FramingError, RecordIOReader, SSEReader

__all__ = ["MarathonOptions", "MesosAdapter", "MesosOptions", "NetworkOptions"]

#: heartbeat_interval_seconds until SUBSCRIBED says otherwise (the master's DEFAULT_HEARTBEAT_INTERVAL)
DEFAULT_HEARTBEAT = 15.0
#: silence = this many heartbeat intervals without a byte
SILENCE_FACTOR = 5.0
_MAX_REDIRECTS = 5
_SUBSCRIBE = b'{"type":"SUBSCRIBE"}'
_REJECT_MEMORY = 4096


class NetworkOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[adapters.<name>.networks.<net>]``: a Mesos network (a ``NetworkInfo.name``) as OVN knows it."""

    #: CIDR(s): OVN's IPAM (tasks with no address yet get a dynamic one) and the router's port.
    subnet: str | list[str]
    #: The gateway the tasks' CNI configuration gives them (the router answers there).
    gateway: str = ""


class MarathonOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[adapters.<name>.marathon]``: Marathon as a second source of the same adapter."""

    #: Marathon URLs (any instance: requests are redirected to the leader).
    urls: Annotated[list[str], msgspec.Meta(min_length=1)]
    username: str = ""
    #: A file holding the HTTP Basic password (Marathon's ``--http_credentials``).
    password_file: str = ""
    #: PEM CA bundle for https:// URLs (empty: the system's); ``tls_verify = false`` skips the check.
    ca_file: str = ""
    tls_verify: bool = True
    #: Seconds without an event before the relist an event asked for.
    debounce: Annotated[float, msgspec.Meta(ge=0)] = 0.25
    #: A steady stream of events still relists this many seconds after the first.
    max_delay: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    #: Seconds between relists without any event.
    resync_interval: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    #: Named VIPs (``/name:port``) get their address from this subnet (DC/OS: 11.0.0.0/8).
    vip_cidr: str = "11.0.0.0/8"
    #: The network of apps whose container network has no name.
    network: str = ""


class MesosOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[adapters.<name>]`` options of a mesos adapter."""

    #: Master URLs (``http://host:5050``; ``https://`` for TLS), tried in turn.
    masters: Annotated[list[str], msgspec.Meta(min_length=1)]
    #: What a task's namespace is: its framework's ``name``, or its ``role``.
    namespace: Literal["framework", "role"] = "framework"
    #: HTTP Basic credentials (the master's ``--authenticate_http_readwrite``).
    username: str = ""
    password_file: str = ""
    ca_file: str = ""
    tls_verify: bool = True
    #: Cap of the re-subscribe backoff (seconds).
    backoff_max: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    #: Seconds to connect to a master or Marathon; connecting and the response headers
    #: together get twice that (a server that accepts and never answers is left then).
    connect_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    #: Seconds a whole request (a Marathon relist) may take.
    request_timeout: Annotated[float, msgspec.Meta(gt=0)] = 120.0
    #: Mesos networks as OVN networks (subnet, gateway), by ``NetworkInfo.name``.
    networks: dict[str, NetworkOptions] = {}
    marathon: MarathonOptions | None = None


class _StreamError(Exception):
    """The subscription makes no sense any more (bad framing, no SUBSCRIBED first, silence): re-subscribe."""


class _Unavailable(Exception):
    """No master (or Marathon) answered usefully."""


#: Failures of the connection or the server: reconnect, never a Rejected.
_RECOVERABLE: tuple[type[BaseException], ...] = (aiohttp.ClientError, OSError, TimeoutError, _StreamError, _Unavailable)


def _base_url(text: str, where: str) -> URL:
    url = URL(text.rstrip("/"))
    if url.scheme not in ("http", "https") or not url.host:
        raise OptionsError(f"{where}: {text!r} is not an http:// or https:// URL")
    return url


def _networks(spec: AdapterSpec, opts: MesosOptions) -> dict[str, Network]:
    out: dict[str, Network] = {}
    for name, net in sorted(opts.networks.items()):
        where = f"adapters.{spec.name}.networks.{name}"
        if not NETWORK_NAME.fullmatch(name):
            raise OptionsError(f"{where}: {name!r} is not a network name")
        subnets = [net.subnet] if isinstance(net.subnet, str) else list(net.subnet)
        try:
            cidrs = [ipaddress.ip_network(s, strict=False) for s in subnets]
        except ValueError:
            raise OptionsError(f"{where}.subnet: {net.subnet!r} is not a CIDR (or a list of them)") from None
        gateway = net.gateway or None
        if gateway is not None:
            try:
                gw = ipaddress.ip_address(gateway)
            except ValueError:
                raise OptionsError(f"{where}.gateway: {gateway!r} is not an IP address") from None
            if not any(gw in c and gw not in (c.network_address, c.broadcast_address) for c in cidrs):
                raise OptionsError(f"{where}.gateway: {gateway} is not a host address of {net.subnet}")
            gateway = str(gw)
        obj = Network(source=spec.source, name=name, subnets=tuple(str(c) for c in cidrs), gateway=gateway)
        try:
            validate(obj)
        except Invalid as exc:
            raise OptionsError(f"{where}: {exc}") from None
        out[name] = obj
    return out


@functools.lru_cache(maxsize=8)
def _ssl(ca_file: str, verify: bool) -> ssl.SSLContext | bool:
    if not verify:
        return False
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    return True


def _auth(username: str, password_file: str) -> dict[str, str]:
    """The HTTP Basic ``Authorization`` header ({} without a username); the password file is read each time."""
    if not username:
        return {}
    password = ""
    if password_file:
        try:
            password = Path(password_file).read_text().strip()
        except OSError as exc:
            raise _Unavailable(f"cannot read password_file {password_file}: {exc.strerror}") from None
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


class MesosAdapter:
    """Watches one Mesos cluster (and its Marathon); implements :class:`core.adapter.Adapter`."""

    #: First re-subscribe delay (seconds), doubled per failure up to ``backoff_max``.
    backoff_initial = 0.5

    def __init__(self, spec: AdapterSpec, options: MesosOptions | None = None) -> None:
        self.spec = spec
        self.options = options if options is not None else parse_options(spec, MesosOptions)
        self.masters = [_base_url(m, f"adapters.{spec.name}.masters") for m in self.options.masters]
        self.networks = _networks(spec, self.options)
        self.marathon = self.options.marathon
        self.marathon_urls: list[URL] = []
        self.vips: mt.VipAllocator | None = None
        if self.marathon is not None:
            where = f"adapters.{spec.name}.marathon"
            self.marathon_urls = [_base_url(u, f"{where}.urls") for u in self.marathon.urls]
            try:
                self.vips = mt.VipAllocator(self.marathon.vip_cidr)
            except ValueError as exc:
                raise OptionsError(f"{where}.vip_cidr: {self.marathon.vip_cidr!r}: {exc}") from None
            if self.marathon.network and not NETWORK_NAME.fullmatch(self.marathon.network):
                raise OptionsError(f"{where}.network: {self.marathon.network!r} is not a network name")
        self.source = spec.source
        self.log = spec.logger()
        self.cache = ObjectCache(self.source)
        self.state = MesosState(self.source, namespace_by=self.options.namespace)
        #: Rejected inputs by reason.
        self.rejected: collections.Counter[str] = collections.Counter()
        #: SUBSCRIBED events handled; Marathon relists done; subscriptions given up for silence.
        self.subscriptions = 0
        self.marathon_relists = 0
        self.silences = 0
        #: the master (base URL) that last accepted a subscription, and Marathon's leader
        self.leader: URL | None = None
        self.marathon_leader: URL | None = None
        self.heartbeat = DEFAULT_HEARTBEAT
        self.connected = False
        self.apps: list[mt.App] = []
        self.services: dict[str, Service] = {}
        self._vip_tids: set[str] = set()
        self._listed = False  # this run() emitted its Snapshot
        self._lock = asyncio.Lock()
        self._sink: EventSink | None = None
        self._logged_rejects: set[tuple[str, str]] = set()
        self._relist_now = False
        self._wake = asyncio.Event()

    # ------------------------------------------------------------ run
    async def run(self, sink: EventSink) -> None:
        """Subscribe (and watch Marathon) until cancelled; reconnects by itself."""
        self._sink = sink
        self._listed = False
        self.connected = False
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.options.connect_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            loops = [asyncio.create_task(self._mesos_loop(session), name=f"mesos-{self.spec.name}")]
            if self.marathon is not None:
                loops.append(asyncio.create_task(self._marathon_loop(session), name=f"marathon-{self.spec.name}"))
            try:
                done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_EXCEPTION)
                for t in done:
                    t.result()
            finally:
                for t in loops:
                    t.cancel()
                await asyncio.gather(*loops, return_exceptions=True)

    async def _retry(self, what: str, session: aiohttp.ClientSession, once: Callable[[aiohttp.ClientSession], Awaitable[None]],
                     healthy: Callable[[], bool]) -> None:  # fmt: skip
        """Run ``once`` again and again with backoff; reset once it got ``healthy``."""
        backoff = Backoff(min(self.backoff_initial, self.options.backoff_max), self.options.backoff_max)
        while True:
            try:
                await once(session)
                reason = "the stream ended"
            except _RECOVERABLE as exc:
                reason = describe_exception(exc)
            except FramingError as exc:
                reason = f"broken RecordIO framing: {exc}"
            if healthy():
                backoff.reset()
                self.log.warning("%s: %s; reconnecting", what, reason)
            else:
                self.log.debug("%s unavailable: %s", what, reason)
            await asyncio.sleep(backoff.next())

    # ------------------------------------------------------------ the masters
    async def _mesos_loop(self, session: aiohttp.ClientSession) -> None:
        got = [False]

        async def once(s: aiohttp.ClientSession) -> None:
            got[0] = False
            await self._subscription(s, got)

        def healthy() -> bool:
            if got[0]:
                got[0] = False
                return True
            return False

        await self._retry("the Mesos subscription", session, once, healthy)

    async def _post(self, session: aiohttp.ClientSession, url: URL) -> aiohttp.ClientResponse:
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   **_auth(self.options.username, self.options.password_file)}  # fmt: skip
        async with asyncio.timeout(self.options.connect_timeout * 2):
            return await session.post(url, data=_SUBSCRIBE, headers=headers, allow_redirects=False,
                                      ssl=_ssl(self.options.ca_file, self.options.tls_verify))  # fmt: skip

    async def _subscribe(self, session: aiohttp.ClientSession) -> tuple[URL, aiohttp.ClientResponse]:
        """The SUBSCRIBE response of the leading master (every master tried, 307s followed)."""
        order = [m for m in ([self.leader] if self.leader else []) + self.masters]
        seen: set[URL] = set()
        errors: list[str] = []
        for base in order:
            if base in seen:
                continue
            seen.add(base)
            url = base / "api" / "v1"
            for _hop in range(_MAX_REDIRECTS + 1):
                try:
                    resp = await self._post(session, url)
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    errors.append(f"{url}: {describe_exception(exc)}")
                    break
                if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                    location = resp.headers["Location"]
                    resp.release()
                    url = url.join(URL(location))
                    self.log.info("master %s redirects to the leader %s", base, url)
                    continue
                if resp.status == 200:
                    leader = url.with_path(url.path.removesuffix("/api/v1") or "/").with_query(None)
                    return URL(str(leader).rstrip("/")), resp
                body = (await resp.read())[:200].decode(errors="replace").strip()
                resp.release()
                errors.append(f"{url}: HTTP {resp.status}{': ' + body if body else ''}")
                break
            else:
                errors.append(f"{base}: more than {_MAX_REDIRECTS} redirects")
        raise _Unavailable("no master took the subscription: " + "; ".join(errors))

    async def _subscription(self, session: aiohttp.ClientSession, got: list[bool]) -> None:
        leader, resp = await self._subscribe(session)
        try:
            reader = RecordIOReader(LIMITS["event_bytes"])
            first = True
            silence = SILENCE_FACTOR * DEFAULT_HEARTBEAT
            while True:
                try:
                    async with asyncio.timeout(silence):
                        chunk = await resp.content.readany()  # cancellation-safe: unread data stays buffered
                except TimeoutError:
                    self.silences += 1
                    raise _StreamError(f"no byte from {leader} for {silence:g} s ({SILENCE_FACTOR:g} x the heartbeat "
                                       "interval)") from None  # fmt: skip
                if not chunk:
                    return
                for record in reader.feed(chunk):
                    if first:
                        await self._first(record, leader)
                        first = False
                        got[0] = True
                        silence = SILENCE_FACTOR * self.heartbeat
                    else:
                        await self._record(record)
        finally:
            resp.close()

    async def _first(self, record: bytes, leader: URL) -> None:
        """The first record must be SUBSCRIBED: the resync point."""
        try:
            ev = decode_event(record)
        except Invalid as exc:
            raise _StreamError(f"the first event from {leader} is not SUBSCRIBED: {exc}") from None
        if ev.type != "SUBSCRIBED" or ev.subscribed is None:
            raise _StreamError(f"the first event from {leader} is {ev.type}, not SUBSCRIBED")
        hb = ev.subscribed.heartbeat_interval_seconds
        self.heartbeat = hb if hb is not None and hb > 0 else DEFAULT_HEARTBEAT
        async with self._lock:
            bad = self.state.subscribed(ev.subscribed.get_state or GetState())
            events: list[InputEvent | None] = [self._reject(b) for b in bad]
            events += self._services_changed()
            await self._emit_all(events)
            await self._emit_relist()
        self.subscriptions += 1
        self.leader = leader
        if not self.connected:
            self.connected = True
            self.log.info("subscribed to the Mesos master %s: %d tasks, %d agents, %d frameworks, %d endpoints "
                          "(heartbeat %g s)", leader, len(self.state.tasks), len(self.state.agents),
                          len(self.state.frameworks), len(self.state.emitted), self.heartbeat)  # fmt: skip

    async def _record(self, record: bytes) -> None:
        try:
            ev = decode_event(record)
        except Invalid as exc:
            await self._emit_all([self._reject(exc)])
            return
        if ev.type == "HEARTBEAT":
            return
        if ev.type == "SUBSCRIBED":  # not sent twice by a master; a resync point all the same
            await self._first(record, self.leader or self.masters[0])
            return
        async with self._lock:
            try:
                changes = self.state.apply(ev)
            except Exception as exc:  # a bug or an unforeseen payload: one event must not end the stream
                self.log.exception("failed to process a %s event", ev.type)
                changes = [Invalid("internal-error", f"{ev.type}: {describe_exception(exc)}")]
            events = self._changes(changes)
            tid = ev.task_updated.status.task_id.value if ev.task_updated is not None else ""
            if tid and tid in self._vip_tids:
                events += self._services_changed()
            await self._emit_all(events)

    # ------------------------------------------------------------ Marathon
    async def _marathon_loop(self, session: aiohttp.ClientSession) -> None:
        got = [False]

        async def once(s: aiohttp.ClientSession) -> None:
            got[0] = False
            await self._marathon_session(s, got)

        def healthy() -> bool:
            if got[0]:
                got[0] = False
                return True
            return False

        await self._retry("the Marathon event stream", session, once, healthy)

    async def _marathon_get(self, session: aiohttp.ClientSession, path: str, *, query: dict[str, str] | None = None,
                            accept: str = "application/json") -> tuple[URL, aiohttp.ClientResponse]:  # fmt: skip
        """``GET path`` of the leading Marathon (redirects followed by hand, keeping the credentials)."""
        assert self.marathon is not None
        opts = self.marathon
        headers = {"Accept": accept, **_auth(opts.username, opts.password_file)}
        tls = _ssl(opts.ca_file, opts.tls_verify)
        order = ([self.marathon_leader] if self.marathon_leader else []) + self.marathon_urls
        seen: set[URL] = set()
        errors: list[str] = []
        for base in order:
            if base in seen:
                continue
            seen.add(base)
            url = base.with_path(base.path.rstrip("/") + path).with_query(query or {})
            for _hop in range(_MAX_REDIRECTS + 1):
                try:
                    async with asyncio.timeout(self.options.connect_timeout * 2):
                        resp = await session.get(url, headers=headers, allow_redirects=False, ssl=tls)
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    errors.append(f"{url}: {describe_exception(exc)}")
                    break
                if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                    location = resp.headers["Location"]
                    resp.release()
                    url = url.join(URL(location))
                    continue
                if resp.status == 200:
                    leader = url.with_query(None).with_path(url.path.removesuffix(path) or "/")
                    self.marathon_leader = URL(str(leader).rstrip("/"))
                    return url, resp
                body = (await resp.read())[:200].decode(errors="replace").strip()
                resp.release()
                errors.append(f"{url}: HTTP {resp.status}{': ' + body if body else ''}")
                break
        self.marathon_leader = None
        raise _Unavailable("no Marathon answered: " + "; ".join(errors))

    async def _marathon_session(self, session: aiohttp.ClientSession, got: list[bool]) -> None:
        url, resp = await self._marathon_get(session, "/v2/events", accept="text/event-stream")
        relister = asyncio.create_task(self._relist_loop(session, got), name=f"marathon-relist-{self.spec.name}")
        reader = asyncio.create_task(self._read_events(resp, url), name=f"marathon-events-{self.spec.name}")
        try:
            self._invalidate(now=True)  # attached: whatever happened before is only in a relist
            done, _ = await asyncio.wait({relister, reader}, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()
        finally:
            for t in (relister, reader):
                t.cancel()
            await asyncio.gather(relister, reader, return_exceptions=True)
            resp.close()

    async def _read_events(self, resp: aiohttp.ClientResponse, url: URL) -> None:
        sse = SSEReader()
        while True:
            chunk = await resp.content.readany()
            if not chunk:
                raise _StreamError(f"{url} closed the event stream (a consumer falling behind is cut off): relisting")
            for event, _data in sse.feed(chunk):
                if event not in ("event_stream_attached", "event_stream_detached"):
                    self._invalidate()

    def _invalidate(self, now: bool = False) -> None:
        self._relist_now = self._relist_now or now
        self._wake.set()

    async def _relist_loop(self, session: aiohttp.ClientSession, got: list[bool]) -> None:
        assert self.marathon is not None
        opts = self.marathon
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(opts.resync_interval):
                    await self._wake.wait()
            first = time.monotonic()
            while not self._relist_now:  # debounce: until the events pause, at most max_delay
                self._wake.clear()
                left = min(opts.debounce, first + opts.max_delay - time.monotonic())
                if left <= 0:
                    break
                try:
                    async with asyncio.timeout(left):
                        await self._wake.wait()
                except TimeoutError:
                    break
            self._wake.clear()
            self._relist_now = False
            await self._marathon_relist(session)
            got[0] = True

    async def _marathon_relist(self, session: aiohttp.ClientSession) -> None:
        url, resp = await self._marathon_get(session, "/v2/apps", query={"embed": "apps.tasks"})
        try:
            async with asyncio.timeout(self.options.request_timeout):
                body = await resp.read()
        finally:
            resp.release()
        try:
            apps, bad = mt.decode_apps(body)
        except Invalid as exc:
            raise _Unavailable(f"{url}: {exc}") from None
        async with self._lock:
            self.apps = apps
            events: list[InputEvent | None] = [self._reject(b) for b in bad]
            events += self._changes(self.state.set_overrides(mt.task_overrides(apps)))
            events += self._services_changed()
            await self._emit_all(events)
        self.marathon_relists += 1

    def _services_changed(self) -> list[InputEvent | None]:
        """Recompute the VIP Services (Marathon's apps, Mesos' ended tasks); their deltas."""
        if self.vips is None:
            return []
        assert self.marathon is not None
        svcs, bad = mt.services(self.apps, self.source, self.vips, gone=self.state.is_gone, mesos_ips=self.state.task_ips,
                                default_network=self.marathon.network)  # fmt: skip
        self._vip_tids = mt.vip_task_ids(self.apps)
        new = {s.uid: s for s in svcs}
        events: list[InputEvent | None] = [self._reject(b) for b in bad]
        old, self.services = self.services, new
        if self._listed:
            events += [self.cache.delete("service", uid) for uid in old.keys() - new.keys()]
            events += [self.cache.upsert(s) for s in new.values()]
        return events

    # ------------------------------------------------------------ emitting
    def _changes(self, changes: list[Change]) -> list[InputEvent | None]:
        out: list[InputEvent | None] = []
        for ch in changes:
            if isinstance(ch, Endpoint):
                if self._listed:
                    out.append(self.cache.upsert(ch))
            elif isinstance(ch, Removed):
                if self._listed:
                    out.append(self.cache.delete("endpoint", ch.key))
            else:
                out.append(self._reject(ch))
        return out

    def objects(self) -> list[Object]:
        """Everything this adapter says exists now (what a Snapshot holds)."""
        objs: list[Object] = list(self.networks.values())
        objs += self.state.endpoints()
        objs += self.services.values()
        return objs

    async def _emit_relist(self) -> None:
        """After a SUBSCRIBED: the deltas against what was emitted (not on this run's first), then the Snapshot."""
        objs = self.objects()
        if self._listed:
            keys = {(o.key, type(o)) for o in objs}
            gone = [(k, o) for (_kind, k), o in self.cache.objects.items() if (k, type(o)) not in keys]
            events: list[InputEvent | None] = []
            for k, o in gone:
                kind = "endpoint" if isinstance(o, Endpoint) else "service" if isinstance(o, Service) else "network"
                events.append(self.cache.delete(kind, k))
            events += [self.cache.upsert(o) for o in objs]
            await self._emit_all(events)
        snap = self.cache.snapshot(objs)
        self._listed = True
        await self._emit(snap)

    def _reject(self, exc: Invalid) -> Rejected:
        self.rejected[exc.reason] += 1
        key = (str(exc)[:120], exc.reason)
        if key not in self._logged_rejects:
            if len(self._logged_rejects) >= _REJECT_MEMORY:
                self._logged_rejects.clear()
            self._logged_rejects.add(key)
            self.log.warning("rejected (%s): %s", exc.reason, exc)
        return Rejected(source=self.source, reason=exc.reason, message=str(exc))

    async def _emit(self, ev: InputEvent) -> None:
        assert self._sink is not None
        await self._sink.emit(ev)

    async def _emit_all(self, events: list[InputEvent | None]) -> None:
        for ev in events:
            if ev is not None:
                await self._emit(ev)

    def snapshot(self) -> Snapshot:
        return Snapshot(source=self.source, objects=tuple(self.cache.objects.values()))


