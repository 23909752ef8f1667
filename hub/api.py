"""Local admin API (aiohttp) on a unix socket or loopback only.

``/healthz``  200 while the event loop and the NB writer run.
``/readyz``   200 once READY=1 was sent (NB synced, first snapshots applied).
``/metrics``  Prometheus text format.
``/v1/status``, ``/v1/endpoints``, ``/v1/plan``  JSON for hubctl.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core.model import encode
from core.names import lsp_name
from hub.config import parse_listen

if TYPE_CHECKING:
    from hub.daemon import Hub


def endpoint_rows(hub: Hub) -> list[dict[str, Any]]:
    p = hub.programmer
    if p is None:
        return []
    rows = []
    for ep, _row in p.endpoints():
        name = lsp_name(ep)
        st = p.port_status(name)
        rows.append(
            {
                "source": str(ep.source),
                "namespace": ep.namespace,
                "name": ep.name,
                "kind": ep.kind,
                "network": ep.network,
                "uid": ep.uid,
                "node": ep.node,
                "ips": list(ep.ips),
                "mac": ep.mac,
                "port": name,
                "programmed": st.programmed,
                "up": bool(st.up),
                "error": st.error or "",
            }
        )
    rows.sort(key=lambda r: (r["source"], r["namespace"], r["name"], r["network"]))
    return rows


class Site:
    """An aiohttp application served on a ``[api] listen``-style address
    (``unix:/path`` created mode 0660, or ``tcp:host:port``)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.runner: web.AppRunner | None = None
        self.path: Path | None = None

    async def start(self, listen: str) -> None:
        kind, addr = parse_listen(listen)
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site: web.BaseSite
        if kind == "unix":
            assert isinstance(addr, str)
            self.path = Path(addr)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.unlink(missing_ok=True)
            site = web.UnixSite(self.runner, addr)
            await site.start()
            os.chmod(addr, 0o660)
        else:
            assert isinstance(addr, tuple)
            site = web.TCPSite(self.runner, addr[0], addr[1])
            await site.start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


async def metrics_response(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=encode(data), status=status, content_type="application/json")


class ApiServer(Site):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", metrics_response)
        app.router.add_get("/v1/status", self.status)
        app.router.add_get("/v1/endpoints", self.endpoints)
        app.router.add_get("/v1/plan", self.plan)
        super().__init__(app)

    _json = staticmethod(json_response)

    async def healthz(self, request: web.Request) -> web.Response:
        ok = self.hub.programmer is not None and self.hub.programmer.connected.is_set()
        return self._json({"ok": ok}, 200 if ok else 503)

    async def readyz(self, request: web.Request) -> web.Response:
        ready = self.hub.ready.is_set()
        return self._json({"ready": ready}, 200 if ready else 503)

    async def status(self, request: web.Request) -> web.Response:
        return self._json(self.hub.status())

    async def endpoints(self, request: web.Request) -> web.Response:
        return self._json(endpoint_rows(self.hub))

    async def plan(self, request: web.Request) -> web.Response:
        p = self.hub.programmer
        return self._json(p.plan() if p else [])
