"""Cloud Foundry adapter: the Diego BBS (real time), the Cloud Controller v3 and
the policy server's internal API (polled) → canonical events.

Sources::

    BBS (mutual TLS, HTTP/1.1, one connection per call)
      POST /v1/events/lrp_instances.r1   EventsByCellId      SSE, hand-chunked, data = base64 protobuf
      POST /v1/actual_lrps/list          ActualLRPsRequest   ActualLRPsResponse (after every (re)connect)
    UAA        POST /oauth/token  grant_type=client_credentials (HTTP basic); refreshed before it expires
    CC v3      GET /v3/organizations, /v3/spaces, /v3/apps, /v3/processes   paged, every poll_interval
    policy server (mutual TLS)
               GET /networking/v1/internal/policies                          every policy_poll_interval
               GET /networking/v1/internal/security_groups?limit=&from=      paged, every asg_poll_interval

One run() = one session: the Cloud Controller and the policy server are read
first (a failure raises: the hub restarts run() with backoff), then the BBS
stream is opened, the LRPs listed and ONE Snapshot emitted (the overlay
Network, every instance Endpoint, every space's Namespace and Policies, the
c2c Policies).  Then stream events and poll results become Upserts and
Deletes, no-ops filtered by an :class:`~core.adapter.ObjectCache`.  The BBS has
no resume: when the stream drops (or ends: ``0\\r\\n\\r\\n``), the adapter
reconnects with backoff, lists again and emits the diff and a Snapshot.  A
failed later poll keeps what the last good one said and is retried at the
next interval.

**Records, not instances.**  The BBS keys an ActualLRP record by
(process guid, index, presence); during an evacuation an EVACUATING record
and an ORDINARY one exist for one index.  The adapter keeps every record, and
an instance guid's Endpoint is made of the best up record carrying it
(:func:`.normalize.best_records`): a twin never makes a second port, and the
removal of one record never deletes the port of an instance another record
still holds.  When the last record of an instance goes by an *event*, the
Delete waits ``evacuation_grace`` seconds (a record created for that instance
meanwhile cancels it): the BBS reports an evacuation as separate events, in
an order the adapter does not rely on.  A relist's Snapshot is exact at once.

Hostile input: a malformed frame (no data, not base64, not protobuf, an
unknown event, a bad field) is a Rejected (``ref`` ``event <id>``) and the
stream goes on; broken chunk framing drops the connection (relist).  A bad
CC resource, policy or security group is a Rejected once (repeated polls say
it again only when it changes) and counts as absent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import socket
import ssl
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from core.adapter import AdapterSpec, EventSink, ObjectCache, OptionsError, describe_exception, parse_options
from core.backoff import Backoff
from core.model import (
    NETWORK_NAME,
    Endpoint,
    Invalid,
    Namespace,
    Object,
    Policy,
    Rejected,
    validate_subnet,
)

from . import proto
from .normalize import (
    APP_GUID,
    DEFAULT_SUBNETS,
    LRP,
    Asg,
    C2CPolicy,
    Catalog,
    LrpChange,
    best_records,
    decode_event,
    lrp_endpoint,
    lrp_from_proto,
    overlay_network,
    parse_c2c,
    parse_cc_resource,
    parse_security_groups,
    platform_objects,
)
from .wire import ChunkDecoder, FramingError, SSEParser

__all__ = ["CFAdapter", "CFOptions"]

log = logging.getLogger(__name__)

STREAM_PATH = "/v1/events/lrp_instances.r1"
LIST_PATH = "/v1/actual_lrps/list"
CC_LISTS = (("org", "/v3/organizations"), ("space", "/v3/spaces"), ("app", "/v3/apps"), ("process", "/v3/processes"))
POLICIES_PATH = "/networking/v1/internal/policies"
ASG_PATH = "/networking/v1/internal/security_groups"
MAX_RESPONSE = 256 << 20
MAX_HEADER = 64 << 10


class CFOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``[adapters.<name>]`` options of ``type = "cloudfoundry"`` (README "Cloud Foundry")."""

    bbs_url: str
    bbs_ca: str
    bbs_cert: str
    bbs_key: str
    cell_id: str = ""
    cc_url: str = ""
    uaa_url: str = ""
    uaa_client_id: str = ""
    uaa_client_secret: str = ""
    uaa_client_secret_file: str = ""
    cc_ca: str = ""
    policy_server_url: str = ""
    policy_server_ca: str = ""
    policy_server_cert: str = ""
    policy_server_key: str = ""
    network: str = "apps"
    subnets: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_SUBNETS))
    gateway: str = ""
    poll_interval: float = 30.0
    policy_poll_interval: float = 5.0
    asg_poll_interval: float = 60.0
    page_size: int = 5000
    token_refresh_margin: float = 60.0
    evacuation_grace: float = 2.0
    request_timeout: float = 60.0
    backoff_max: float = 30.0
    #: Seconds without an event on the BBS event stream before it is given up as dead (a BBS
    #: or proxy that stopped answering sends nothing, and neither does a quiet one): reconnect
    #: and list again - as Diego's route-emitter syncs every minute.
    stream_idle_timeout: float = 60.0


@dataclass
class _Url:
    scheme: str
    host: str
    port: int
    base: str

    @classmethod
    def parse(cls, text: str, key: str, *, https: bool = True) -> _Url:
        u = urllib.parse.urlsplit(text)
        if u.scheme not in (("https",) if https else ("https", "http")) or not u.hostname:
            raise OptionsError(f"{key}: {text!r} is not an {'https' if https else 'http(s)'} URL")
        port = u.port or (443 if u.scheme == "https" else 80)
        return cls(u.scheme, u.hostname, port, text.rstrip("/"))


def _tls(ca: str, cert: str, key: str, what: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca or None)
    if cert or key:
        ctx.load_cert_chain(cert, key)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class BBSError(ConnectionError):
    """The BBS answered with an error (HTTP status or the response's ``error`` field)."""


class _StreamIdle(TimeoutError):
    """No event for ``stream_idle_timeout``: a quiet BBS or a dead one - the relist tells (a dead one fails it)."""


# ---------------------------------------------------------------- the BBS's HTTP/1.1
async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        raise BBSError("the connection closed before a response (was the client certificate refused?)") from None
    if len(head) > MAX_HEADER:
        raise BBSError("response header too long")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise BBSError(f"not an HTTP/1.x response: {lines[0][:60]!r}")
    try:
        status = int(parts[1])
    except ValueError:
        raise BBSError(f"bad status line {lines[0][:60]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return status, headers


def _request(url: _Url, path: str, body: bytes, *, stream: bool) -> bytes:
    hdrs = [
        f"POST {path} HTTP/1.1",
        f"Host: {url.host}:{url.port}",
        "User-Agent: ovn-hub",
        f"Content-Length: {len(body)}",
        "Accept-Encoding: identity",
    ]
    if stream:
        hdrs.append("Accept: text/event-stream")
    else:
        hdrs += ["Content-Type: application/x-protobuf", "Connection: close"]
    return ("\r\n".join(hdrs) + "\r\n\r\n").encode() + body


def _keepalive(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)


SSL_SHUTDOWN_TIMEOUT = 2.0


class BBSClient:
    """The two BBS calls over mutual TLS, on asyncio streams (the event stream's
    chunk framing is read by hand: :class:`.wire.ChunkDecoder`)."""

    def __init__(self, url: _Url, ctx: ssl.SSLContext, timeout: float) -> None:
        self.url = url
        self.ctx = ctx
        self.timeout = timeout

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with asyncio.timeout(self.timeout):
            # a BBS that stops answering must not hold a close (hubd's SIGTERM) for asyncio's default 30 s TLS shutdown
            return await asyncio.open_connection(
                self.url.host, self.url.port, ssl=self.ctx, server_hostname=self.url.host, limit=MAX_HEADER,
                ssl_shutdown_timeout=SSL_SHUTDOWN_TIMEOUT,
            )  # fmt: skip

    async def list_lrps(self, cell_id: str = "") -> list[Any]:
        """``POST /v1/actual_lrps/list`` → ActualLRP messages; raises :class:`BBSError` / OSError."""
        req = proto.ActualLRPsRequest(cell_id=cell_id).SerializeToString()
        reader, writer = await self._open()
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(_request(self.url, LIST_PATH, req, stream=False))
                await writer.drain()
                status, headers = await _read_head(reader)
                body = await _read_body(reader, headers)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        if status != 200:
            raise BBSError(f"BBS {LIST_PATH}: HTTP {status}")
        if headers.get("x-cf-routererror"):
            raise BBSError(f"BBS {LIST_PATH}: router error {headers['x-cf-routererror'][:80]}")
        try:
            resp = proto.ActualLRPsResponse.FromString(body)
        except Exception as exc:  # noqa: BLE001 - any bytes
            raise BBSError(f"BBS {LIST_PATH}: not an ActualLRPsResponse: {exc}") from None
        if resp.HasField("error"):
            kind = proto.ERROR_TYPES.get(resp.error.type, str(resp.error.type))
            raise BBSError(f"BBS {LIST_PATH}: {kind}: {resp.error.message[:200]}")
        return list(resp.actual_lrps)

    @contextlib.asynccontextmanager
    async def stream(self, cell_id: str = "") -> AsyncIterator[FrameReader]:
        """Open the LRP-instance stream (headers read); iterate it for batches of
        :class:`.wire.Frame` (one batch per read: what arrived together is applied together)."""
        body = proto.EventsByCellId(cell_id=cell_id).SerializeToString() if cell_id else b""
        reader, writer = await self._open()
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(_request(self.url, STREAM_PATH, body, stream=True))
                await writer.drain()
                status, headers = await _read_head(reader)
            if status != 200:
                raise BBSError(f"BBS {STREAM_PATH}: HTTP {status}")
            chunked = "chunked" in headers.get("transfer-encoding", "").lower()
            yield FrameReader(reader, chunked)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        dec = ChunkDecoder()
        out = bytearray()
        while not dec.done:
            data = await reader.read(1 << 16)
            if not data:
                raise BBSError("response ended inside its chunked body")
            try:
                out += dec.feed(data)
            except FramingError as exc:
                raise BBSError(f"bad chunked body: {exc}") from None
            if len(out) > MAX_RESPONSE:
                raise BBSError("response too large")
        return bytes(out)
    length = headers.get("content-length")
    if length is not None:
        try:
            n = int(length)
        except ValueError:
            raise BBSError(f"bad Content-Length {length[:20]!r}") from None
        if not 0 <= n <= MAX_RESPONSE:
            raise BBSError("response too large")
        return await reader.readexactly(n)
    return await reader.read(MAX_RESPONSE)


class FrameReader:
    """Batches of frames from the event stream: :meth:`next` returns what one
    read brought (cancellable: nothing read is lost); raises :class:`BBSError`
    when the stream ends or its framing breaks."""

    def __init__(self, reader: asyncio.StreamReader, chunked: bool) -> None:
        self.reader = reader
        self.dec = ChunkDecoder() if chunked else None
        self.sse = SSEParser()

    async def next(self) -> list[Any]:
        while True:
            data = await self.reader.read(1 << 16)
            if not data:
                raise BBSError("the BBS closed the event stream")
            try:
                body = self.dec.feed(data) if self.dec is not None else data
            except FramingError as exc:
                raise BBSError(f"bad chunk framing on the event stream: {exc}") from None
            frames = self.sse.feed(body)
            if self.dec is not None and self.dec.done:
                if frames:
                    return frames
                raise BBSError("the BBS ended the event stream")
            if frames:
                return frames


# ---------------------------------------------------------------- UAA, CC, policy server
class HTTPFailed(ConnectionError):
    pass


class TokenSource:
    """A UAA client-credentials token, fetched on first use and again ``margin``
    seconds before it expires (or at half its life, if that is sooner)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, client_id: str, secret: str,
                 ctx: ssl.SSLContext | None, margin: float) -> None:  # fmt: skip
        self.session = session
        self.url = url.rstrip("/") + "/oauth/token"
        self.auth = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        self.ctx = ctx
        self.margin = margin
        self.token = ""
        self.refresh_at = 0.0
        self.fetches = 0

    async def get(self, *, force: bool = False) -> str:
        if self.token and not force and time.monotonic() < self.refresh_at:
            return self.token
        async with self.session.post(
            self.url, data={"grant_type": "client_credentials"}, ssl=self.ctx or True,
            headers={"Accept": "application/json", "Authorization": self.auth},
        ) as resp:  # fmt: skip
            if resp.status != 200:
                raise HTTPFailed(f"UAA {self.url}: HTTP {resp.status}")
            doc = await resp.json(content_type=None)
        token = doc.get("access_token") if isinstance(doc, dict) else None
        expires = doc.get("expires_in") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token or isinstance(expires, bool) or not isinstance(expires, int | float):
            raise HTTPFailed(f"UAA {self.url}: no access_token/expires_in in the answer")
        self.token = token
        self.fetches += 1
        self.refresh_at = time.monotonic() + max(0.0, min(float(expires) - self.margin, float(expires) / 2))
        return token


async def _get_json(session: aiohttp.ClientSession, url: str, *, ctx: ssl.SSLContext | None,
                    headers: dict[str, str] | None = None) -> tuple[int, Any]:  # fmt: skip
    async with session.get(url, ssl=ctx or True, headers=headers or {}) as resp:
        if resp.status != 200:
            return resp.status, None
        raw = await resp.read()
    try:
        return 200, json.loads(raw)
    except (ValueError, RecursionError):
        raise HTTPFailed(f"GET {url}: not JSON") from None


def _same_origin(a: str, b: str) -> bool:
    x, y = urllib.parse.urlsplit(a), urllib.parse.urlsplit(b)
    return (x.scheme, x.hostname, x.port) == (y.scheme, y.hostname, y.port)


# ---------------------------------------------------------------- the adapter
class CFAdapter:
    """See the module docstring."""

    backoff_initial = 0.5

    def __init__(self, spec: AdapterSpec) -> None:
        self.spec = spec
        self.opts = o = parse_options(spec, CFOptions)
        self.source = spec.source
        self.log = spec.logger()
        where = f"adapters.{spec.name}"
        self.bbs_url = _Url.parse(o.bbs_url, f"{where}.bbs_url")
        for key in ("bbs_ca", "bbs_cert", "bbs_key"):
            if not getattr(o, key):
                raise OptionsError(f"{where}.{key}: the BBS needs mutual TLS (a CA, a client certificate and key)")
        if not NETWORK_NAME.fullmatch(o.network):
            raise OptionsError(f"{where}.network: {o.network!r} is not a network name")
        try:
            for s in o.subnets:
                validate_subnet(s)
            self.network_obj = overlay_network(self.source, o.network, o.subnets, o.gateway or None)
        except Invalid as exc:
            raise OptionsError(f"{where}.subnets: {exc}") from None
        if o.cc_url:
            _Url.parse(o.cc_url, f"{where}.cc_url", https=False)
            if not (o.uaa_url and o.uaa_client_id and (o.uaa_client_secret or o.uaa_client_secret_file)):
                raise OptionsError(f"{where}.uaa_url: the Cloud Controller needs uaa_url, uaa_client_id and a secret")
        if o.policy_server_url:
            _Url.parse(o.policy_server_url, f"{where}.policy_server_url")
            if not (o.policy_server_cert and o.policy_server_key):
                raise OptionsError(f"{where}.policy_server_cert: the policy server's internal API needs mutual TLS")
        for key in ("poll_interval", "policy_poll_interval", "asg_poll_interval", "request_timeout", "backoff_max",
                    "stream_idle_timeout"):  # fmt: skip
            if getattr(o, key) <= 0:
                raise OptionsError(f"{where}.{key}: must be above 0")
        if o.evacuation_grace < 0 or o.page_size < 1:
            raise OptionsError(f"{where}: evacuation_grace must be >= 0 and page_size >= 1")
        # state (reset at the start of every run)
        self.cache = ObjectCache(self.source)
        self.records: dict[tuple[str, int, str], LRP] = {}
        self.by_guid: dict[str, set[tuple[str, int, str]]] = {}
        self.catalog = Catalog()
        self.c2c: list[C2CPolicy] = []
        self.asgs: list[Asg] | None = None
        self.pending_deletes: dict[str, float] = {}
        self._reported: dict[str, set[tuple[str, str]]] = {}
        self.token: TokenSource | None = None
        self.relists = 0
        self.polls = 0
        #: BBS sessions that failed (connect, TLS, list or stream), each followed by a backoff
        self.bbs_failures = 0

    # ------------------------------------------------------------ wiring
    def _secret(self) -> str:
        o = self.opts
        if o.uaa_client_secret_file:
            return Path(o.uaa_client_secret_file).read_text().strip()
        return o.uaa_client_secret

    async def run(self, sink: EventSink) -> None:
        o = self.opts
        self.sink = sink
        self.cache = ObjectCache(self.source)
        self.records, self.by_guid, self.pending_deletes = {}, {}, {}
        self._reported = {}
        bbs_ctx = _tls(o.bbs_ca, o.bbs_cert, o.bbs_key, "bbs")
        self.bbs = BBSClient(self.bbs_url, bbs_ctx, o.request_timeout)
        self.cc_ctx = _tls(o.cc_ca, "", "", "cc") if o.cc_url and o.cc_url.startswith("https") else None
        self.ps_ctx = (
            _tls(o.policy_server_ca, o.policy_server_cert, o.policy_server_key, "policy-server")
            if o.policy_server_url else None
        )  # fmt: skip
        timeout = aiohttp.ClientTimeout(total=o.request_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self.session = session
            if o.cc_url:
                self.token = TokenSource(session, o.uaa_url, o.uaa_client_id, self._secret(),
                                         self.cc_ctx, o.token_refresh_margin)  # fmt: skip
                self.catalog = await self._read_cc()
            if o.policy_server_url:
                self.c2c = await self._read_c2c()
                self.asgs = await self._read_asgs()
            try:
                async with asyncio.TaskGroup() as tg:
                    if o.cc_url:
                        tg.create_task(self._poll(o.poll_interval, self._cc_changed), name="cf cc poll")
                    if o.policy_server_url:
                        tg.create_task(self._poll(o.policy_poll_interval, self._c2c_changed), name="cf c2c poll")
                        tg.create_task(self._poll(o.asg_poll_interval, self._asgs_changed), name="cf asg poll")
                    await self._bbs_loop()
            except BaseExceptionGroup as group:  # the hub logs and restarts run(): say what failed, not "a TaskGroup"
                first = next((e for e in group.exceptions if not isinstance(e, asyncio.CancelledError)), None)
                if first is None:
                    raise
                raise first from None

    async def _bbs_loop(self) -> None:
        backoff = Backoff(min(self.backoff_initial, self.opts.backoff_max), self.opts.backoff_max)
        while True:
            try:
                async with self.bbs.stream(self.opts.cell_id) as frames:
                    lrps = await self.bbs.list_lrps(self.opts.cell_id)
                    await self._relisted(lrps)
                    backoff.reset()
                    await self._consume(frames)
            except (OSError, BBSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError,
                    TimeoutError) as exc:  # fmt: skip
                delay = backoff.next()
                if isinstance(exc, _StreamIdle):  # not a failure yet: a quiet foundation is no news
                    self.log.info("BBS: %s; reconnecting and listing in %.1fs", exc, delay)
                else:
                    self.bbs_failures += 1
                    self.log.warning("BBS: %s; reconnecting in %.1fs", describe_exception(exc), delay)
                await asyncio.sleep(delay)

    # ------------------------------------------------------------ emission
    async def _emit(self, ev: Any) -> None:
        if ev is not None:
            await self.sink.emit(ev)

    async def _reject(self, reason: str, message: str, ref: str = "") -> None:
        await self.sink.emit(Rejected(source=self.source, reason=reason, message=message, ref=ref))

    async def _report(self, channel: str, bad: Iterable[Invalid], ref: str) -> None:
        """Rejections of one poller: each distinct one once, until it goes away."""
        now = {(b.reason, str(b)) for b in bad}
        for reason, message in sorted(now - self._reported.get(channel, set())):
            await self._reject(reason, message, ref)
        self._reported[channel] = now

    def _app_namespaces(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for ep in self.cache.endpoints():
            guid = ep.labels.get(APP_GUID)
            if guid:
                out.setdefault(guid, ep.namespace)
        return out

    def _platform(self, endpoints_ns: dict[str, str] | None = None) -> list[Namespace | Policy]:
        return list(platform_objects(self.source, self.catalog, self.c2c, self.asgs, self.opts.subnets,
                                     app_namespaces=endpoints_ns if endpoints_ns is not None else self._app_namespaces()))  # fmt: skip

    def _endpoint(self, rec: LRP) -> Endpoint | None:
        return lrp_endpoint(rec, self.source, self.catalog.lrp_meta(rec), self.opts.network)

    async def _relisted(self, lrps: list[Any]) -> None:
        """A fresh list: records replaced, the diff and a Snapshot emitted."""
        records: dict[tuple[str, int, str], LRP] = {}
        for msg in lrps:
            try:
                rec = lrp_from_proto(msg)
            except Invalid as exc:
                key = msg.actual_lrp_key
                await self._reject(exc.reason, f"ActualLRP {key.process_guid[:80]} index {key.index}: {exc}",
                                   f"lrp {key.process_guid[:80]}/{key.index}")  # fmt: skip
                continue
            records[rec.record] = rec
        self._set_records(records)
        self.pending_deletes.clear()
        objs: list[Object] = [self.network_obj]
        ns: dict[str, str] = {}
        for guid, rec in best_records(records.values()).items():
            try:
                ep = self._endpoint(rec)
            except Invalid as exc:
                await self._reject(exc.reason, f"instance {guid[:80]}: {exc}", f"instance {guid[:80]}")
                continue
            if ep is not None:
                objs.append(ep)
                ns.setdefault(ep.labels.get(APP_GUID, ""), ep.namespace)
        try:
            objs += self._platform(ns)
        except Invalid as exc:
            await self._reject(exc.reason, f"policies: {exc}", "platform")
        self.relists += 1
        await self.sink.emit(self.cache.snapshot(objs))

    def _set_records(self, records: dict[tuple[str, int, str], LRP]) -> None:
        self.records = records
        self.by_guid = {}
        for key, rec in records.items():
            if rec.instance_guid:
                self.by_guid.setdefault(rec.instance_guid, set()).add(key)

    def _put(self, rec: LRP) -> set[str]:
        """Store one record; the instance guids whose Endpoint may change."""
        touched = {rec.instance_guid} if rec.instance_guid else set()
        old = self.records.get(rec.record)
        if old is not None and old.instance_guid and old.instance_guid != rec.instance_guid:
            self._unindex(old)
            touched.add(old.instance_guid)
        self.records[rec.record] = rec
        if rec.instance_guid:
            self.by_guid.setdefault(rec.instance_guid, set()).add(rec.record)
        return touched

    def _unindex(self, rec: LRP) -> None:
        keys = self.by_guid.get(rec.instance_guid)
        if keys is not None:
            keys.discard(rec.record)
            if not keys:
                del self.by_guid[rec.instance_guid]

    def _drop(self, key: tuple[str, int, str]) -> set[str]:
        old = self.records.pop(key, None)
        if old is None or not old.instance_guid:
            return set()
        self._unindex(old)
        return {old.instance_guid}

    def _apply(self, change: LrpChange) -> set[str]:
        touched: set[str] = set()
        for key in change.moved_from:
            old = self.records.get(key)
            if old is not None and change.upserts and old.instance_guid == change.upserts[0].instance_guid:
                touched |= self._drop(key)
        for key in change.removes:
            touched |= self._drop(key)
        for rec in change.upserts:
            if not rec.tags:  # a changed event has no metric_tags: the record keeps the ones it had
                prev = self.records.get(rec.record) or next(
                    (self.records[k] for k in change.moved_from if k in self.records), None
                )
                if prev is not None and prev.tags:
                    rec = msgspec.structs.replace(rec, tags=prev.tags)
            touched |= self._put(rec)
        return touched

    async def _sync_guids(self, guids: Iterable[str], *, grace: bool) -> None:
        now = time.monotonic()
        for guid in sorted(guids):
            keys = self.by_guid.get(guid, ())
            best = best_records(self.records[k] for k in keys).get(guid)
            ep: Endpoint | None = None
            if best is not None:
                try:
                    ep = self._endpoint(best)
                except Invalid as exc:
                    await self._reject(exc.reason, f"instance {guid[:80]}: {exc}", f"instance {guid[:80]}")
            if ep is not None:
                self.pending_deletes.pop(guid, None)
                await self._emit(self.cache.upsert(ep))
            elif ("endpoint", f"{self.opts.network}/{guid}") in self.cache.objects:
                if grace and self.opts.evacuation_grace > 0:
                    self.pending_deletes.setdefault(guid, now + self.opts.evacuation_grace)
                else:
                    self.pending_deletes.pop(guid, None)
                    await self._emit(self.cache.delete("endpoint", f"{self.opts.network}/{guid}"))

    async def _flush_deletes(self) -> None:
        now = time.monotonic()
        due = [g for g, t in self.pending_deletes.items() if t <= now]
        for guid in due:
            del self.pending_deletes[guid]
            if guid not in self.by_guid or best_records(self.records[k] for k in self.by_guid[guid]).get(guid) is None:
                await self._emit(self.cache.delete("endpoint", f"{self.opts.network}/{guid}"))

    async def _consume(self, frames: FrameReader) -> None:
        idle = self.opts.stream_idle_timeout
        silent_until = time.monotonic() + idle
        while True:
            timeout = silent_until
            if self.pending_deletes:
                timeout = min(timeout, min(self.pending_deletes.values()))
            try:
                async with asyncio.timeout(max(0.0, timeout - time.monotonic())):
                    batch = await frames.next()
            except TimeoutError:
                await self._flush_deletes()
                if time.monotonic() >= silent_until:
                    raise _StreamIdle(f"no event from the BBS for {idle:g} s (stream_idle_timeout)") from None
                continue
            silent_until = time.monotonic() + idle
            touched: set[str] = set()
            platform = False
            for frame in batch:
                ref = f"event {frame.id}" if frame.id else "event"
                if frame.error:
                    reason, _, message = frame.error.partition(": ")
                    await self._reject(reason, f"BBS {ref}: {message}", ref)
                    continue
                try:
                    change = decode_event(frame.event, frame.data)
                except Invalid as exc:
                    await self._reject(exc.reason, f"BBS {ref} ({frame.event[:60]}): {exc}", ref)
                    continue
                if change is None:
                    continue
                before = {g for k in change.removes if (r := self.records.get(k)) is not None for g in (r.instance_guid,)}
                touched |= self._apply(change) | before
                platform = platform or any(self._new_app(r) for r in change.upserts)
            await self._sync_guids(touched, grace=True)
            if platform:
                await self._sync_platform()
            await self._flush_deletes()

    def _new_app(self, rec: LRP) -> bool:
        """An instance of an app the catalog does not know: its c2c policies may now be placeable."""
        return bool(self.c2c) and rec.process_guid[:36] not in self.catalog.processes

    async def _sync_platform(self) -> None:
        try:
            want = self._platform()
        except Invalid as exc:
            await self._reject(exc.reason, f"policies: {exc}", "platform")
            return
        keys = set()
        for obj in want:
            keys.add((type(obj).__name__.lower(), obj.key))
            await self._emit(self.cache.upsert(obj))
        for kind, key in [k for k in self.cache.objects if k[0] in ("namespace", "policy")]:
            if (kind, key) not in keys:
                await self._emit(self.cache.delete(kind, key))

    async def _sync_all_endpoints(self) -> None:
        await self._sync_guids(list(self.by_guid), grace=False)

    # ------------------------------------------------------------ pollers
    async def _poll(self, interval: float, step: Any) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await step()
                self.polls += 1
            except (OSError, aiohttp.ClientError, HTTPFailed, TimeoutError) as exc:
                self.log.warning("poll: %s (keeping the last state; next try in %.0fs)", describe_exception(exc),
                                 interval)  # fmt: skip

    async def _cc_changed(self) -> None:
        cat = await self._read_cc()
        if cat != self.catalog:
            self.catalog = cat
            await self._sync_all_endpoints()
            await self._sync_platform()

    async def _c2c_changed(self) -> None:
        c2c = await self._read_c2c()
        if c2c != self.c2c:
            self.c2c = c2c
            await self._sync_platform()

    async def _asgs_changed(self) -> None:
        asgs = await self._read_asgs()
        if asgs != self.asgs:
            self.asgs = asgs
            await self._sync_platform()

    async def _cc_get(self, url: str) -> Any:
        assert self.token is not None
        for attempt in (0, 1):
            token = await self.token.get(force=attempt == 1)
            status, doc = await _get_json(self.session, url, ctx=self.cc_ctx, headers={"Authorization": f"bearer {token}"})
            if status == 401 and attempt == 0:
                continue  # revoked or expired early: one fresh token
            if status != 200:
                raise HTTPFailed(f"CC GET {url}: HTTP {status}")
            return doc
        raise HTTPFailed(f"CC GET {url}: unauthorized")

    async def _read_cc(self) -> Catalog:
        cat = Catalog()
        bad: list[Invalid] = []
        base = self.opts.cc_url.rstrip("/")
        for kind, path in CC_LISTS:
            url: str | None = f"{base}{path}?per_page={self.opts.page_size}"
            pages = 0
            while url:
                doc = await self._cc_get(url)
                pages += 1
                if not isinstance(doc, dict) or not isinstance(doc.get("resources"), list):
                    raise HTTPFailed(f"CC GET {path}: not a v3 list")
                for i, res in enumerate(doc["resources"]):
                    try:
                        cat.add(parse_cc_resource(res, kind))
                    except Invalid as exc:
                        guid = res.get("guid") if isinstance(res, dict) else None
                        bad.append(Invalid(exc.reason, f"CC {kind} {str(guid)[:80] if guid else f'#{i}'}: {exc}"))
                nxt = (doc.get("pagination") or {}).get("next") if isinstance(doc.get("pagination"), dict) else None
                href = nxt.get("href") if isinstance(nxt, dict) else None
                if isinstance(href, str) and href and pages < 100_000:
                    if not _same_origin(href, base):
                        raise HTTPFailed(f"CC GET {path}: pagination leads to another server ({href[:80]})")
                    url = href
                else:
                    url = None
        await self._report("cc", bad, "cc")
        return cat

    async def _read_c2c(self) -> list[C2CPolicy]:
        url = self.opts.policy_server_url.rstrip("/") + POLICIES_PATH
        status, doc = await _get_json(self.session, url, ctx=self.ps_ctx)
        if status != 200:
            raise HTTPFailed(f"policy server GET {POLICIES_PATH}: HTTP {status}")
        try:
            policies, bad = parse_c2c(doc)
        except Invalid as exc:
            raise HTTPFailed(f"policy server GET {POLICIES_PATH}: {exc}") from None
        await self._report("c2c", bad, "policy-server")
        return sorted(set(policies), key=lambda p: (p.destination, p.source, p.protocol, p.start, p.end))

    async def _read_asgs(self) -> list[Asg]:
        base = self.opts.policy_server_url.rstrip("/") + ASG_PATH
        out: list[Asg] = []
        bad: list[Invalid] = []
        start = 0
        for _ in range(100_000):
            url = f"{base}?limit={self.opts.page_size}" + (f"&from={start}" if start else "")
            status, doc = await _get_json(self.session, url, ctx=self.ps_ctx)
            if status != 200:
                raise HTTPFailed(f"policy server GET {ASG_PATH}: HTTP {status}")
            try:
                groups, page_bad, nxt = parse_security_groups(doc)
            except Invalid as exc:
                raise HTTPFailed(f"policy server GET {ASG_PATH}: {exc}") from None
            out += groups
            bad += page_bad
            for g in groups:
                bad += g.unsupported
            if not nxt or nxt == start:
                break
            start = nxt
        await self._report("asg", bad, "policy-server")
        return sorted(out, key=lambda g: g.guid)


def frame_data(msg: Any) -> str:
    """base64 of a message, as the BBS puts it in ``data:`` (the fake BBS and benchmarks use it)."""
    return base64.b64encode(msg.SerializeToString()).decode()


__all__ += ["BBSClient", "BBSError", "TokenSource", "frame_data"]
