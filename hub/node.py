"""``hubd --role node``: the per-host half of Docker wrapper mode and of the Docker network driver.

Runs :class:`adapters.docker.node.DockerNode` (veths into ``--network none``
containers, ports on br-int through ovsdbapp) with the daemon's manners:
``READY=1`` once the first reconciliation is done, ``STATUS=`` with the number
of plugged containers, ``WATCHDOG=1``, ``STOPPING=1`` on SIGTERM.  Stopping the
node leaves the plumbing in place (containers keep their network); a restarted
node adopts it.  With ``[node] driver_socket`` it also serves the Docker network +
IPAM driver (:class:`adapters.docker.drivernode.DriverNode`) on that socket,
sharing the bridge connection; READY then waits for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from pathlib import Path

import msgspec
from aiohttp import web

from adapters.docker.drivernode import DriverNode
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
    if opts.driver_socket and not opts.driver_socket.startswith("/"):
        raise ConfigError(f"node.driver_socket: {opts.driver_socket!r} must be an absolute path")
    if not _PLUGIN_NAME.fullmatch(opts.driver_name):
        raise ConfigError(f"node.driver_name: {opts.driver_name!r} is not a plugin name ([a-z0-9][a-z0-9_.-]*)")
    return opts


_PLUGIN_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")


def driver_node(cfg: Config, options: NodeOptions, node: DockerNode) -> DriverNode | None:
    """The Docker network + IPAM driver, if ``[node] driver_socket`` is set (sharing the node's bridge)."""
    if not options.driver_socket:
        return None
    return DriverNode(
        name=options.driver_name, socket=options.driver_socket, hub_id=cfg.hub.id, nb_remote=cfg.ovn.nb,
        state_path=str(Path(cfg.hub.state_dir) / f"docker-driver-{options.driver_name}.json"),
        docker_url=options.docker, bridge=node.bridge, switch_netns=options.switch_netns, chassis=options.chassis,
        resync_interval=options.resync_interval,
    )  # fmt: skip


def node_site(node: DockerNode, driver: DriverNode | None = None) -> Site:
    def ok() -> bool:
        return node.ready.is_set() and (driver is None or driver.ready.is_set())

    async def healthz(request: web.Request) -> web.Response:
        return json_response({"ok": ok()}, 200 if ok() else 503)

    async def status(request: web.Request) -> web.Response:
        out = node.status()
        if driver is not None:
            out["driver"] = driver.status()
        return json_response(out)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", healthz)
    app.router.add_get("/metrics", metrics_response)
    app.router.add_get("/v1/status", status)
    return Site(app)


async def run_node(cfg: Config, notifier: Notifier | None = None) -> int:
    options = node_options(cfg)
    node = DockerNode(options, hub_id=cfg.hub.id, nb_remote=cfg.ovn.nb)
    driver = driver_node(cfg, options, node)
    notifier = notifier or Notifier()
    site = node_site(node, driver) if options.listen else None
    if site is not None:
        await site.start(options.listen)
    if driver is not None:
        await driver.start_server()  # Docker's calls are answered from here on (the state file is read)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    loop.add_signal_handler(
        signal.SIGHUP, lambda: log.info("SIGHUP: a node reloads nothing; restart it to apply a changed [node]")
    )
    task = asyncio.create_task(node.run(), name="node")
    drv = asyncio.create_task(driver.run(), name="docker driver") if driver is not None else None
    pings = asyncio.create_task(watchdog(notifier), name="watchdog")

    def ready() -> bool:
        return node.ready.is_set() and (driver is None or driver.ready.is_set())

    interval = max(1.0, notifier.watchdog_usec / 2e6) if notifier.watchdog_usec else 5.0
    ready_sent = False
    try:
        while not stopping.is_set() and not task.done() and not (drv is not None and drv.done()):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval if ready_sent else 0.2):
                    await stopping.wait()
            if ready() and not ready_sent:
                ready_sent = True
                notifier.notify("READY=1")
            notifier.status(
                f"node {node.chassis or '?'}: {len(node.plugged)} containers plugged"
                + (f", {len(driver.bound)} driver endpoints bound" if driver is not None else "")
                if ready()
                else "connecting to Docker, NB and Open_vSwitch"
            )
        notifier.notify("STOPPING=1", "STATUS=stopping")
    finally:
        t0 = loop.time()
        for t in (task, drv, pings):
            if t is None:
                continue
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if driver is not None:
            await driver.stop_server()
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
    for t in (task, drv):
        if t is not None and t.done() and not t.cancelled() and t.exception() is not None:
            raise t.exception()  # type: ignore[misc]
    log.info("node stopped (plumbing left in place for the next start to adopt)")
    return 0
