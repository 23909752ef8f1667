"""Fakes of Cloud Foundry's Diego BBS, UAA, Cloud Controller v3 and policy server, on 127.0.0.1.

* :func:`make_pki` writes a test CA, a server certificate (127.0.0.1,
  localhost) and a client certificate, generated with ``cryptography`` in a
  directory the test owns: nothing is committed.
* :class:`FakeBBS` (asyncio streams, TLS that **requires** a client certificate
  signed by the CA: a client without one fails the handshake):
  ``POST /v1/actual_lrps/list`` (protobuf ``ActualLRPsRequest`` →
  ``ActualLRPsResponse``, ``cell_id`` filter) and ``POST
  /v1/events/lrp_instances.r1`` (the headers, then per event a chunk written
  by hand: ``<hex>;\\r\\n``, the go-sse frame ``id/event/data`` with base64
  protobuf, ``\\r\\n``; ``0\\r\\n\\r\\n`` on a clean end).  Records are keyed
  as the BBS keys them, (process guid, index, presence); :meth:`FakeBBS.create`,
  :meth:`~FakeBBS.change`, :meth:`~FakeBBS.remove`, :meth:`~FakeBBS.evacuate`,
  :meth:`~FakeBBS.crash` emit the events the BBS emits; :meth:`~FakeBBS.inject`
  writes raw bytes into the streams, :meth:`~FakeBBS.drop_connections` aborts
  them, :meth:`~FakeBBS.end_streams` ends them cleanly.
* :class:`FakeUAA` (``POST /oauth/token``, client credentials over HTTP basic,
  ``expires_in`` settable), :class:`FakeCC` (``/v3/organizations``, ``/spaces``,
  ``/apps``, ``/processes``: ``page``/``per_page`` paging with absolute
  ``pagination.next.href``; 401 without a live UAA token) and
  :class:`FakePolicyServer` (mutual TLS; ``/networking/v1/internal/policies`` and
  ``/security_groups`` with ``limit``/``from``/``next``), on aiohttp.  The CC
  serves the repo's CC fixtures when given their directory, and apps the test
  generates (:meth:`FakeCC.add_app`: an app and its ``web`` process, whose guid
  is the app's, as in CF).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import ssl
import time
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.cloudfoundry import proto
from adapters.cloudfoundry.wire import encode_chunk, encode_frame
from testkit.pki import Pki, make_pki

__all__ = ["FakeBBS", "FakeCC", "FakePolicyServer", "FakeUAA", "Pki", "lrp", "make_pki"]


# ---------------------------------------------------------------- BBS
Key = tuple[str, int, str]
_PRESENCE = {"ORDINARY": 0, "EVACUATING": 1, "SUSPECT": 2}


def lrp(process_guid: str, index: int, instance_guid: str, cell_id: str, ip: str, *, state: str = "RUNNING",
        presence: str = "ORDINARY", ports: tuple[int, ...] = (8080,), ipv6: str = "",
        tags: dict[str, str] | None = None) -> Any:  # fmt: skip
    """An ActualLRP message."""
    m = proto.ActualLRP(state=state, presence=_PRESENCE[presence], since=time.time_ns(), crash_count=0)
    m.actual_lrp_key.process_guid = process_guid
    m.actual_lrp_key.index = index
    m.actual_lrp_key.domain = "cf-apps"
    m.actual_lrp_instance_key.instance_guid = instance_guid
    m.actual_lrp_instance_key.cell_id = cell_id
    m.actual_lrp_net_info.address = "10.0.16.5" if cell_id else ""
    m.actual_lrp_net_info.instance_address = ip
    m.actual_lrp_net_info.instance_ipv6_address = ipv6
    m.actual_lrp_net_info.preferred_address = 1
    for i, p in enumerate(ports):
        m.actual_lrp_net_info.ports.add(container_port=p, host_port=61000 + i)
    m.modification_tag.epoch = str(uuid.uuid4())
    m.modification_tag.index = 1
    for k, v in (tags or {}).items():
        m.metric_tags[k] = v
    return m


def _key(m: Any) -> Key:
    return (m.actual_lrp_key.process_guid, m.actual_lrp_key.index, proto.PRESENCE[m.presence])


def _info(m: Any) -> Any:
    info = proto.ActualLRPInfo(state=m.state, since=m.since, presence=m.presence, crash_count=m.crash_count,
                               crash_reason=m.crash_reason, placement_error=m.placement_error,
                               availability_zone=m.availability_zone)  # fmt: skip
    info.actual_lrp_net_info.CopyFrom(m.actual_lrp_net_info)
    info.modification_tag.CopyFrom(m.modification_tag)
    if m.HasField("routable"):
        info.Routable = m.routable
    return info


def _b64(msg: Any) -> str:
    return base64.b64encode(msg.SerializeToString()).decode()


class _Stream:
    def __init__(self, writer: asyncio.StreamWriter, cell: str) -> None:
        self.writer = writer
        self.cell = cell
        self.next_id = 0


class FakeBBS:
    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self.records: dict[Key, Any] = {}
        self.streams: list[_Stream] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self.requests: list[str] = []
        self.list_error: tuple[int, str] | None = None  # (Error.Type number, message) for the next lists
        self._tasks: set[asyncio.Task[None]] = set()
        #: duplicate_and_reorder(): every event twice, each held back and sent after the next when
        #: the two are about different instances (one instance's events keep their order).
        self.duplicating = False
        self.duplicated = 0
        self._held: tuple[str, str, str, str] | None = None  # (subject, event, data, cell)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        ctx = self.pki.server_context(require_client=True)
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", port, ssl=ctx, ssl_handshake_timeout=5)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.drop_connections()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)
        for t in list(self._tasks):
            t.cancel()

    # ------------------------------------------------------------ connections
    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            pass
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        method, path = lines[0].split(" ")[:2]
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:]) if k}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append(f"{method} {path}")
        if method == "POST" and path == "/v1/actual_lrps/list":
            req = proto.ActualLRPsRequest.FromString(body)
            resp = proto.ActualLRPsResponse()
            if self.list_error is not None:
                resp.error.type, resp.error.message = self.list_error
            else:
                for m in self.records.values():
                    if not req.cell_id or m.actual_lrp_instance_key.cell_id == req.cell_id:
                        resp.actual_lrps.add().CopyFrom(m)
            data = resp.SerializeToString()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(data) + data)  # fmt: skip
            await writer.drain()
            return
        if method == "POST" and path == "/v1/events/lrp_instances.r1":
            cell = proto.EventsByCellId.FromString(body).cell_id
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                         b"Cache-Control: no-cache, no-store, must-revalidate\r\nConnection: keep-alive\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
            await writer.drain()
            s = _Stream(writer, cell)
            self.streams.append(s)
            try:
                while not reader.at_eof():
                    if not await reader.read(1024):
                        break
            finally:
                if s in self.streams:
                    self.streams.remove(s)
            return
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()

    def _send(self, event: str, msg: Any, cell: str) -> None:
        data = _b64(msg)
        if not self.duplicating:
            self._write(event, data, cell)
            return
        self.duplicated += 1
        lrp = getattr(msg, "actual_lrp", None) or msg
        subject = f"{lrp.actual_lrp_key.process_guid}/{lrp.actual_lrp_key.index}"
        held, self._held = self._held, None
        if held is None:
            self._held = (subject, event, data, cell)
            return
        pairs = [(event, data, cell), held[1:]]
        if held[0] == subject:
            pairs.reverse()
        for ev, d, c in pairs:
            self._write(ev, d, c)
            self._write(ev, d, c)

    def _write(self, event: str, data: str, cell: str) -> None:
        for s in list(self.streams):
            if s.cell and cell != s.cell:
                continue
            s.writer.write(encode_chunk(encode_frame(s.next_id, event, data)))
            s.next_id += 1

    def duplicate_and_reorder(self) -> None:
        """From now on every event goes out twice, and events of different instances swapped."""
        self.duplicating = True

    def stop_duplicating(self) -> None:
        self.duplicating = False
        held, self._held = self._held, None
        if held is not None:
            self._write(*held[1:])
            self._write(*held[1:])

    def inject(self, raw: bytes, *, chunked: bool = True) -> None:
        """Raw bytes into every stream: one chunk of them (``chunked``), or as they are."""
        for s in list(self.streams):
            s.writer.write(encode_chunk(raw) if chunked else raw)

    def drop_connections(self) -> None:
        for s in list(self.streams):
            transport = s.writer.transport
            transport.abort()
        self.streams.clear()

    def end_streams(self) -> None:
        for s in list(self.streams):
            s.writer.write(b"0\r\n\r\n")
            s.writer.close()
        self.streams.clear()

    async def wait_streams(self, n: int = 1, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while len(self.streams) < n:
                await asyncio.sleep(0.01)

    # ------------------------------------------------------------ the BBS's records and events
    def create(self, m: Any) -> None:
        self.records[_key(m)] = m
        self._send("actual_lrp_instance_created", proto.ActualLRPInstanceCreatedEvent(actual_lrp=m),
                   m.actual_lrp_instance_key.cell_id)  # fmt: skip

    def change(self, m: Any, *, before_key: Key | None = None) -> None:
        old = self.records.pop(before_key or _key(m))
        self.records[_key(m)] = m
        ev = proto.ActualLRPInstanceChangedEvent()
        ev.actual_lrp_key.CopyFrom(m.actual_lrp_key)
        ikey = m.actual_lrp_instance_key if m.actual_lrp_instance_key.instance_guid else old.actual_lrp_instance_key
        ev.actual_lrp_instance_key.CopyFrom(ikey)
        ev.before.CopyFrom(_info(old))
        ev.after.CopyFrom(_info(m))
        self._send("actual_lrp_instance_changed", ev, ikey.cell_id)

    def remove(self, key: Key) -> None:
        m = self.records.pop(key)
        self._send("actual_lrp_instance_removed", proto.ActualLRPInstanceRemovedEvent(actual_lrp=m),
                   m.actual_lrp_instance_key.cell_id)  # fmt: skip

    def crash(self, key: Key) -> None:
        """The instance crashes; restarted later (state CRASHED, instance key and net info cleared)."""
        old = self.records[key]
        ev = proto.ActualLRPCrashedEvent(crash_count=1, crash_reason="exit 1", since=time.time_ns())
        ev.actual_lrp_key.CopyFrom(old.actual_lrp_key)
        ev.actual_lrp_instance_key.CopyFrom(old.actual_lrp_instance_key)
        self._send("actual_lrp_crashed", ev, old.actual_lrp_instance_key.cell_id)
        new = proto.ActualLRP()
        new.CopyFrom(old)
        new.state = "CRASHED"
        new.ClearField("actual_lrp_instance_key")
        new.ClearField("actual_lrp_net_info")
        self.change(new)

    def evacuate(self, key: Key, *, order: str = "created-first") -> None:
        """The cell of an ORDINARY RUNNING record evacuates: an EVACUATING twin of
        it is created and the ORDINARY record goes back to UNCLAIMED (no instance)."""
        old = self.records[key]
        twin = proto.ActualLRP()
        twin.CopyFrom(old)
        twin.presence = _PRESENCE["EVACUATING"]
        unclaimed = proto.ActualLRP()
        unclaimed.CopyFrom(old)
        unclaimed.state = "UNCLAIMED"
        unclaimed.ClearField("actual_lrp_instance_key")
        unclaimed.ClearField("actual_lrp_net_info")
        if order == "created-first":
            self.create(twin)
            self.change(unclaimed)
        else:
            self.change(unclaimed)
            self.create(twin)

    def desired(self) -> None:
        """A desired-LRP event (the stream carries them; an adapter skips them)."""
        self._send("desired_lrp_created", proto.DesiredLRPCreatedEvent(trace_id="t"), "")


# ---------------------------------------------------------------- UAA, CC, policy server
class _Http:
    def __init__(self, pki: Pki, *, client_certs: bool = False) -> None:
        self.pki = pki
        self.client_certs = client_certs
        self.app = web.Application()
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.requests: list[str] = []
        self.fail_next = 0  # answer 503 to that many requests

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0,
                           ssl_context=self.pki.server_context(require_client=self.client_certs))  # fmt: skip
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def _failing(self) -> bool:
        if self.fail_next > 0:
            self.fail_next -= 1
            return True
        return False


class FakeUAA(_Http):
    def __init__(self, pki: Pki, client_id: str = "ovn-hub", secret: str = "") -> None:
        super().__init__(pki)
        self.client_id = client_id
        self.secret = secret or secrets.token_hex(16)
        self.expires_in = 3600
        self.tokens: dict[str, float] = {}  # token → expiry (monotonic)
        self.app.router.add_post("/oauth/token", self._token)

    def valid(self, token: str) -> bool:
        exp = self.tokens.get(token)
        return exp is not None and time.monotonic() < exp

    async def _token(self, request: web.Request) -> web.Response:
        self.requests.append("POST /oauth/token")
        want = "Basic " + base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()
        form = await request.post()
        if request.headers.get("Authorization") != want or form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unauthorized"}, status=401)
        token = secrets.token_hex(16)
        self.tokens[token] = time.monotonic() + self.expires_in
        return web.json_response({"access_token": token, "token_type": "bearer", "expires_in": self.expires_in,
                                  "scope": "cloud_controller.admin_read_only", "jti": token})  # fmt: skip

    def revoke_all(self) -> None:
        self.tokens.clear()


_CC_PATHS = {"organizations": "org", "spaces": "space", "apps": "app", "processes": "process"}


class FakeCC(_Http):
    def __init__(self, pki: Pki, uaa: FakeUAA, fixtures: Path | None = None) -> None:
        super().__init__(pki)
        self.uaa = uaa
        self.resources: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in _CC_PATHS}
        self.app.router.add_get("/v3/{kind}", self._list)
        if fixtures is not None:
            for name, kind in (("cc-v3-organization.docs.json", "organizations"), ("cc-v3-space.docs.json", "spaces"),
                               ("cc-v3-app.docs.json", "apps"),
                               ("cc-v3-process-with-embedded-instances.docs.json", "processes")):  # fmt: skip
                res = json.loads((fixtures / name).read_text())
                self.resources[kind][res["guid"]] = res

    def _link(self, kind: str, guid: str) -> dict[str, Any]:
        return {"self": {"href": f"{self.url}/v3/{kind}/{guid}"}}

    def add_org(self, name: str, labels: dict[str, str] | None = None, guid: str = "") -> str:
        guid = guid or str(uuid.uuid4())
        self.resources["organizations"][guid] = {
            "guid": guid, "name": name, "suspended": False, "relationships": {"quota": {"data": None}},
            "metadata": {"labels": labels or {}, "annotations": {}}, "links": self._link("organizations", guid),
        }  # fmt: skip
        return guid

    def add_space(self, name: str, org: str, labels: dict[str, str] | None = None, guid: str = "") -> str:
        guid = guid or str(uuid.uuid4())
        self.resources["spaces"][guid] = {
            "guid": guid, "name": name, "relationships": {"organization": {"data": {"guid": org}}},
            "metadata": {"labels": labels or {}, "annotations": {}}, "links": self._link("spaces", guid),
        }  # fmt: skip
        return guid

    def add_app(self, name: str, space: str, labels: dict[str, str] | None = None, guid: str = "") -> str:
        """An app and its web process (same guid, as CF makes them)."""
        guid = guid or str(uuid.uuid4())
        self.resources["apps"][guid] = {
            "guid": guid, "name": name, "state": "STARTED", "lifecycle": {"type": "buildpack", "data": {}},
            "relationships": {"space": {"data": {"guid": space}}},
            "metadata": {"labels": labels or {}, "annotations": {}}, "links": self._link("apps", guid),
        }  # fmt: skip
        self.resources["processes"][guid] = {
            "guid": guid, "type": "web", "instances": 1, "relationships": {"app": {"data": {"guid": guid}}},
            "metadata": {"labels": {}, "annotations": {}}, "links": self._link("processes", guid),
        }  # fmt: skip
        return guid

    def rename_app(self, guid: str, name: str) -> None:
        self.resources["apps"][guid]["name"] = name

    async def _list(self, request: web.Request) -> web.Response:
        self.requests.append(f"GET {request.path_qs}")
        if self._failing():
            return web.Response(status=503)
        auth = request.headers.get("Authorization", "")
        if not auth.lower().startswith("bearer ") or not self.uaa.valid(auth[7:]):
            return web.json_response({"errors": [{"code": 10002, "title": "CF-NotAuthenticated"}]}, status=401)
        kind = request.match_info["kind"]
        if kind not in self.resources:
            return web.json_response({"errors": [{"code": 10000, "title": "CF-NotFound"}]}, status=404)
        items = list(self.resources[kind].values())
        per_page = int(request.query.get("per_page", "50"))
        page = int(request.query.get("page", "1"))
        chunk = items[(page - 1) * per_page : page * per_page]
        pages = max(1, -(-len(items) // per_page))
        nxt = ({"href": f"{self.url}/v3/{kind}?page={page + 1}&per_page={per_page}"} if page < pages else None)
        return web.json_response({
            "pagination": {"total_results": len(items), "total_pages": pages,
                           "first": {"href": f"{self.url}/v3/{kind}?page=1&per_page={per_page}"}, "next": nxt},
            "resources": chunk,
        })  # fmt: skip


class FakePolicyServer(_Http):
    def __init__(self, pki: Pki) -> None:
        super().__init__(pki, client_certs=True)
        self.policies: list[dict[str, Any]] = []
        self.groups: list[dict[str, Any]] = []
        self.app.router.add_get("/networking/v1/internal/policies", self._policies)
        self.app.router.add_get("/networking/v1/internal/security_groups", self._groups)

    def allow(self, source: str, dest: str, start: int, end: int | None = None, protocol: str = "tcp") -> None:
        self.policies.append({"source": {"id": source, "tag": "0001"},
                              "destination": {"id": dest, "tag": "0002", "protocol": protocol,
                                              "ports": {"start": start, "end": end or start}}})  # fmt: skip

    def add_group(self, name: str, rules: list[dict[str, Any]], *, running: tuple[str, ...] = (),
                  staging: tuple[str, ...] = (), running_default: bool = False, staging_default: bool = False) -> str:  # fmt: skip
        guid = str(uuid.uuid4())
        self.groups.append({
            "guid": guid, "name": name, "rules": json.dumps(rules), "running_default": running_default,
            "staging_default": staging_default, "running_space_guids": list(running),
            "staging_space_guids": list(staging),
        })  # fmt: skip
        return guid

    def remove_group(self, name: str) -> None:
        self.groups = [g for g in self.groups if g["name"] != name]

    async def _policies(self, request: web.Request) -> web.Response:
        self.requests.append(f"GET {request.path_qs}")
        if self._failing():
            return web.Response(status=503)
        return web.json_response({"total_policies": len(self.policies), "policies": self.policies})

    async def _groups(self, request: web.Request) -> web.Response:
        self.requests.append(f"GET {request.path_qs}")
        if self._failing():
            return web.Response(status=503)
        limit = int(request.query.get("limit", "1000"))
        start = int(request.query.get("from", "1"))
        page = self.groups[start - 1 : start - 1 + limit]
        nxt = start + limit if start - 1 + limit < len(self.groups) else 0
        return web.json_response({"next": nxt, "security_groups": page})
