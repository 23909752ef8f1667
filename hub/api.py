"""Local admin API (aiohttp) on a unix socket or loopback only.

``/healthz``  200 while the event loop and the NB writer run.
``/readyz``   200 once READY=1 was sent (NB synced, first snapshots applied); the body
              says the writer's ``role``: ``active``, ``standby`` or ``paused``.
``POST /v1/pause``, ``POST /v1/resume``  hand the hub's NB lock over on purpose
              (``hubctl pause|resume``); the answer is the role after it.
``/metrics``  Prometheus text format.
``/v1/status``, ``/v1/endpoints``, ``/v1/plan``  JSON for hubctl.
``/v1/trace?src=&dst=[&port=&proto=&network=]``  ovn-trace of one new connection
              (hub/trace.py); 4xx ``{"error": …}`` for a request that cannot be
              traced (an unknown SRC), 502 when ovn-trace or the SB did not answer.
``POST /v1/ingest/<orchestrator>/<cluster>``  one canonical event (core.model's
              JSON) of a node agent's own source (``cni/<node>``), with
              ``Authorization: Bearer <[api] ingest token>``: 401 without the token,
              403 for a source ingest does not take, 413 over 64 MiB, 422 refused
              (the reason), 200 ``{"accepted": true, "rejected": [...]}``.
``POST /v1/ipam/request|release``  an address of a shared network's subnet for a
              node's Docker driver (hub/ipam.py), same token: 200 ``{"address": …}``,
              409 taken or full, 400 malformed.

The API reads the hub through :class:`HubView` only (``hub.daemon.Hub`` is
one); it never imports the daemon.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from core.model import Endpoint
from core.names import lsp_name
from hub.http import Site, json_response, metrics_response
from hub.trace import Request as TraceRequest
from hub.trace import TraceError, TraceFailed

if TYPE_CHECKING:
    from core.nb import PortStatus


class HubView(Protocol):
    """What the admin API reads of a running hub."""

    def status(self) -> dict[str, Any]:
        """``/v1/status`` (``hubctl status --json``)."""
        ...

    def nb_connected(self) -> bool:
        """The NB writer is connected (``/healthz``)."""
        ...

    def is_ready(self) -> bool:
        """READY=1 was sent: NB synced, every first snapshot applied (``/readyz``)."""
        ...

    def endpoints(self) -> Iterable[Endpoint]:
        """Every endpoint in the desired state."""
        ...

    def role(self) -> str:
        """The NB writer's role: "active", "standby" or "paused" (``/readyz``)."""
        ...

    async def set_paused(self, paused: bool) -> str:
        """``POST /v1/pause`` / ``/v1/resume`` (``hubctl pause|resume``): the role after it."""
        ...

    def port_status(self, port: str) -> PortStatus:
        """The NB state of one Logical_Switch_Port."""
        ...

    def port_addresses(self, port: str) -> tuple[str, tuple[str, ...]] | None:
        """The MAC and IPs of an endpoint's port: its own, or what OVN allocated
        to a ``dynamic`` one (None until northd has)."""
        ...

    def plan(self) -> Sequence[Any]:
        """Everything the writer would do now (``/v1/plan``)."""
        ...

    async def trace(self, request: TraceRequest) -> dict[str, Any]:
        """``/v1/trace``: raises TraceError (4xx) or TraceFailed (502)."""
        ...

    async def ingest(self, orchestrator: str, cluster: str, payload: bytes) -> tuple[int, dict[str, Any]]:
        """``POST /v1/ingest``, the token already checked: (HTTP status, body)."""
        ...

    async def ipam(self, op: str, payload: bytes) -> tuple[int, dict[str, Any]]:
        """``POST /v1/ipam/<request|release>``, the token already checked: (HTTP status, body)."""
        ...


#: the largest ingest body (a node's snapshot is a few KB per endpoint)
MAX_INGEST = 64 << 20


def endpoint_rows(view: HubView) -> list[dict[str, Any]]:
    rows = []
    for ep in view.endpoints():
        name = lsp_name(ep)
        st = view.port_status(name)
        ips, mac, allocated = list(ep.ips), ep.mac, False
        if not ep.ips and (got := view.port_addresses(name)) is not None:  # a dynamic port: OVN's allocation
            mac, ips, allocated = got[0], list(got[1]), True
        rows.append(
            {
                "source": str(ep.source),
                "namespace": ep.namespace,
                "name": ep.name,
                "kind": ep.kind,
                "network": ep.network,
                "uid": ep.uid,
                "node": ep.node,
                "ips": ips,
                "mac": mac,
                "allocated": allocated,
                "port": name,
                "programmed": st.programmed,
                "up": bool(st.up),
                "error": st.error or "",
            }
        )
    rows.sort(key=lambda r: (r["source"], r["namespace"], r["name"], r["network"]))
    return rows


class ApiServer(Site):
    def __init__(self, view: HubView, ingest_token: str = "") -> None:
        self.view = view
        self.ingest_token = ingest_token  # "": no ingest endpoint
        app = web.Application(client_max_size=MAX_INGEST)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", metrics_response)
        app.router.add_get("/v1/status", self.status)
        app.router.add_get("/v1/endpoints", self.endpoints)
        app.router.add_get("/v1/plan", self.plan)
        app.router.add_get("/v1/trace", self.trace)
        app.router.add_post("/v1/pause", self.pause)
        app.router.add_post("/v1/resume", self.resume)
        if ingest_token:
            app.router.add_post("/v1/ingest/{orchestrator}/{cluster}", self.ingest)
            app.router.add_post("/v1/ipam/{op}", self.ipam)
        super().__init__(app)

    _json = staticmethod(json_response)

    async def healthz(self, request: web.Request) -> web.Response:
        ok = self.view.nb_connected()
        return self._json({"ok": ok}, 200 if ok else 503)

    async def readyz(self, request: web.Request) -> web.Response:
        ready = self.view.is_ready()
        return self._json({"ready": ready, "role": self.view.role()}, 200 if ready else 503)

    async def pause(self, request: web.Request) -> web.Response:
        return self._json({"role": await self.view.set_paused(True)})

    async def resume(self, request: web.Request) -> web.Response:
        return self._json({"role": await self.view.set_paused(False)})

    async def status(self, request: web.Request) -> web.Response:
        return self._json(self.view.status())

    async def endpoints(self, request: web.Request) -> web.Response:
        return self._json(endpoint_rows(self.view))

    async def plan(self, request: web.Request) -> web.Response:
        return self._json(self.view.plan())

    async def trace(self, request: web.Request) -> web.Response:
        q = request.query
        unknown = sorted(set(q) - {"src", "dst", "port", "proto", "network"})
        if unknown:
            return self._json({"error": f"unknown parameter {unknown[0]!r}"}, 400)
        if not q.get("src") or not q.get("dst"):
            return self._json({"error": "src and dst are required"}, 400)
        port = q.get("port", "")
        if port and not port.isdigit():
            return self._json({"error": f"port {port[:20]!r} is not a number"}, 400)
        req = TraceRequest(src=q["src"], dst=q["dst"], port=int(port) if port else None,
                           proto=q.get("proto", "").lower(), network=q.get("network", ""))  # fmt: skip
        try:
            return self._json(await self.view.trace(req))
        except TraceError as exc:
            return self._json({"error": str(exc)}, exc.status)
        except TraceFailed as exc:
            return self._json({"error": str(exc)}, 502)

    def _authorized(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.ingest_token.encode())

    async def ipam(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._json({"error": "ipam needs Authorization: Bearer <the hub's ingest token>"}, 401)
        payload = await request.read()
        if len(payload) > 1 << 20:
            return self._json({"error": "an ipam request is at most 1 MiB"}, 413)
        status, body = await self.view.ipam(request.match_info["op"], payload)
        return self._json(body, status)

    async def ingest(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._json({"error": "ingest needs Authorization: Bearer <the hub's ingest token>"}, 401)
        try:
            payload = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._json({"error": f"an ingest event is at most {MAX_INGEST} bytes"}, 413)
        status, body = await self.view.ingest(request.match_info["orchestrator"], request.match_info["cluster"],
                                              payload)  # fmt: skip
        return self._json(body, status)
