"""``hubd --role node``: the per-host half of Docker wrapper mode.

Runs :class:`adapters.docker.node.DockerNode` (veths into ``--network none``
containers, ports on br-int through ovsdbapp) with the daemon's manners:
``READY=1`` once the first reconciliation is done, ``STATUS=`` with the number
of plugged containers, ``WATCHDOG=1``, ``STOPPING=1`` on SIGTERM.  Stopping the
node leaves the plumbing in place (containers keep their network); a restarted
node adopts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import msgspec
from aiohttp import web

from adapters.docker.node import DockerNode, NodeOptions
from hub.config import Config, ConfigError, parse_listen
from hub.http import Site, json_response, metrics_response
from hub.notify import Notifier
from hub.supervise import watchdog

log = logging.getLogger("ovn_hub.node")


def node_options(cfg: Config) -> NodeOptions:
    """``[node]`` → NodeOptions, or ConfigError naming the key."""
    try:
        opts = msgspec.convert(cfg.node, NodeOptions)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"node: {exc}") from None
    if opts.listen:
        try:
            parse_listen(opts.listen)
        except ValueError as exc:
            raise ConfigError(f"node.listen: {exc}") from None
    return opts


def node_site(node: DockerNode) -> Site:
    async def healthz(request: web.Request) -> web.Response:
        return json_response({"ok": node.ready.is_set()}, 200 if node.ready.is_set() else 503)

    async def status(request: web.Request) -> web.Response:
        return json_response(node.status())

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", healthz)
    app.router.add_get("/metrics", metrics_response)
    app.router.add_get("/v1/status", status)
    return Site(app)


async def run_node(cfg: Config, notifier: Notifier | None = None) -> int:
    options = node_options(cfg)
    node = DockerNode(options, hub_id=cfg.hub.id, nb_remote=cfg.ovn.nb)
    notifier = notifier or Notifier()
    site = node_site(node) if options.listen else None
    if site is not None:
        await site.start(options.listen)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    loop.add_signal_handler(
        signal.SIGHUP, lambda: log.info("SIGHUP: a node reloads nothing; restart it to apply a changed [node]")
    )
    task = asyncio.create_task(node.run(), name="node")
    pings = asyncio.create_task(watchdog(notifier), name="watchdog")
    interval = max(1.0, notifier.watchdog_usec / 2e6) if notifier.watchdog_usec else 5.0
    ready_sent = False
    try:
        while not stopping.is_set() and not task.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval if ready_sent else 0.2):
                    await stopping.wait()
            if node.ready.is_set() and not ready_sent:
                ready_sent = True
                notifier.notify("READY=1")
            notifier.status(
                f"node {node.chassis or '?'}: {len(node.plugged)} containers plugged"
                if node.ready.is_set()
                else "connecting to Docker, NB and Open_vSwitch"
            )
        notifier.notify("STOPPING=1", "STATUS=stopping")
    finally:
        t0 = loop.time()
        for t in (task, pings):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        try:
            # ovsdbapp's thread may be inside a transaction waiting for ovs-vswitchd (its timeout is 10 s)
            async with asyncio.timeout(15):
                await node.close()
        except TimeoutError:
            log.warning("the Open_vSwitch connection did not close within 15 s; exiting anyway")
        if site is not None:
            await site.stop()
        notifier.close()
        log.info("node stopped in %.1f s", loop.time() - t0)
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
    log.info("node stopped (plumbing left in place for the next start to adopt)")
    return 0
