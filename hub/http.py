"""HTTP plumbing shared by hubd's admin API and ``hubd --role node``: an
aiohttp application on a ``[api] listen``-style address, JSON and Prometheus
responses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core.model import encode
from hub.config import parse_listen


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
    """``/metrics``: the process's Prometheus registry in text format."""
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def json_response(data: Any, status: int = 200) -> web.Response:
    """``data`` encoded like every canonical object (:func:`core.model.encode`)."""
    return web.Response(body=encode(data), status=status, content_type="application/json")


__all__ = ["Site", "json_response", "metrics_response"]
