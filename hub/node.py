"""``hubd --role node``: the per-host half of Docker wrapper mode and the CNI agent.

Runs :class:`adapters.docker.node.DockerNode` (veths into ``--network none``
containers, ports on br-int through ovsdbapp; off with ``[node] docker = ""``)
and, with ``[cni] enabled``, :class:`hub.cni.CniAgent` (``ovn-hub-cni``'s
socket; the same bridge connection) with the daemon's manners:
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
from typing import Any

import msgspec
from aiohttp import web

from adapters.docker.node import DockerNode, NodeOptions
from core.vif import NetlinkLinks, OvsBridge
from hub.cni import CniAgent
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
    if not opts.docker and not cfg.cni.enabled:
        raise ConfigError('node.docker: "" turns wrapper mode off, and [cni] is not enabled: nothing to do')
    return opts


def node_site(node: DockerNode | None, cni: CniAgent | None = None) -> Site:
    def ready() -> bool:
        return all(x.ready.is_set() for x in (node, cni) if x is not None)

    async def healthz(request: web.Request) -> web.Response:
        return json_response({"ok": ready()}, 200 if ready() else 503)

    async def status(request: web.Request) -> web.Response:
        out: dict[str, Any] = node.status() if node is not None else {"ready": ready()}
        if cni is not None:
            out["cni"] = cni.status()
        return json_response(out)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", healthz)
    app.router.add_get("/metrics", metrics_response)
    app.router.add_get("/v1/status", status)
    return Site(app)


async def run_node(cfg: Config, notifier: Notifier | None = None) -> int:
    options = node_options(cfg)
    node = DockerNode(options, hub_id=cfg.hub.id, nb_remote=cfg.ovn.nb) if options.docker else None
    cni = None
    if cfg.cni.enabled:  # one bridge connection for both (ovsdbapp keeps one per process)
        bridge = node.bridge if node is not None else OvsBridge(options.ovs, options.bridge)
        links = node.links if node is not None else NetlinkLinks(options.switch_netns)
        cni = CniAgent(cfg.cni, hub_id=cfg.hub.id, nb_remote=cfg.ovn.nb, chassis=options.chassis, bridge=bridge,
                       links=links, state_dir=cfg.hub.state_dir, own_bridge=node is None)  # fmt: skip
    parts = [x for x in (node, cni) if x is not None]
    notifier = notifier or Notifier()
    site = node_site(node, cni) if options.listen else None
    if site is not None:
        await site.start(options.listen)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    loop.add_signal_handler(
        signal.SIGHUP, lambda: log.info("SIGHUP: a node reloads nothing; restart it to apply a changed [node]")
    )
    tasks = [asyncio.create_task(x.run(), name=n) for x, n in ((node, "node"), (cni, "cni")) if x is not None]
    pings = asyncio.create_task(watchdog(notifier), name="watchdog")
    interval = max(1.0, notifier.watchdog_usec / 2e6) if notifier.watchdog_usec else 5.0
    ready_sent = False
    try:
        while not stopping.is_set() and not any(t.done() for t in tasks):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval if ready_sent else 0.2):
                    await stopping.wait()
            ready = all(x.ready.is_set() for x in parts)
            if ready and not ready_sent:
                ready_sent = True
                notifier.notify("READY=1")
            text = []
            if node is not None:
                text.append(f"node {node.chassis or '?'}: {len(node.plugged)} containers plugged"
                            if node.ready.is_set() else "connecting to Docker, NB and Open_vSwitch")  # fmt: skip
            if cni is not None:
                text.append(f"CNI: {len(cni.vif.plugged)} attachments plugged" if cni.ready.is_set()
                            else "CNI: connecting to NB and Open_vSwitch")  # fmt: skip
            notifier.status("; ".join(text))
        notifier.notify("STOPPING=1", "STATUS=stopping")
    finally:
        t0 = loop.time()
        for t in (*tasks, pings):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        try:
            # ovsdbapp's thread may be inside a transaction waiting for ovs-vswitchd (its timeout is 10 s)
            async with asyncio.timeout(15):
                if cni is not None:
                    await cni.close()
                if node is not None:
                    await node.close()
        except TimeoutError:
            log.warning("the Open_vSwitch connection did not close within 15 s; exiting anyway")
        if site is not None:
            await site.stop()
        notifier.close()
        log.info("node stopped in %.1f s", loop.time() - t0)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    log.info("node stopped (plumbing left in place for the next start to adopt)")
    return 0
