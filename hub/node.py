"""``hubd --role node``: the per-host half of Docker wrapper mode, the Docker network driver and the CNI agent.

Runs :class:`adapters.docker.node.DockerNode` (veths into ``--network none``
containers, ports on br-int through ovsdbapp; off with ``[node] docker = ""``),
with ``[node] driver_socket`` the Docker network + IPAM driver
(:class:`adapters.docker.drivernode.DriverNode`, on that socket) and, with
``[cni] enabled``, :class:`hub.cni.CniAgent` (``ovn-hub-cni``'s socket), all on
the same bridge connection, with the daemon's manners:
``READY=1`` once the first reconciliation is done, ``STATUS=`` with the number
of plugged containers, ``WATCHDOG=1``, ``STOPPING=1`` on SIGTERM.  Stopping the
node leaves the plumbing in place (containers keep their network); a restarted
node adopts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from adapters.docker.drivernode import DriverNode
from adapters.docker.node import DockerNode, NodeOptions
from core.vif import NetlinkLinks, OvsBridge
from hub.cni import CniAgent
from hub.config import Config, ConfigError, check_tls, ovn_tls, parse_listen
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
    if opts.ovs.startswith("ssl:"):
        check_tls(cfg, "node.ovs")
    if not opts.docker and not cfg.cni.enabled:
        raise ConfigError('node.docker: "" turns wrapper mode off, and [cni] is not enabled: nothing to do')
    if opts.driver_socket and not opts.driver_socket.startswith("/"):
        raise ConfigError(f"node.driver_socket: {opts.driver_socket!r} must be an absolute path")
    if opts.driver_socket and not opts.docker:
        raise ConfigError('node.driver_socket: the Docker network driver needs node.docker (the engine it serves)')
    if opts.hub_api and not opts.hub_api.startswith(("unix:/", "http://", "https://")):
        raise ConfigError(f"node.hub_api: {opts.hub_api!r} must be unix:/PATH or http(s)://HOST:PORT")
    if opts.hub_api and not opts.hub_token_file:
        raise ConfigError("node.hub_token_file: the hub's ingest token is needed with hub_api")
    if not _PLUGIN_NAME.fullmatch(opts.driver_name):
        raise ConfigError(f"node.driver_name: {opts.driver_name!r} is not a plugin name ([a-z0-9][a-z0-9_.-]*)")
    return opts


_PLUGIN_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")


def driver_node(cfg: Config, options: NodeOptions, node: DockerNode | None) -> DriverNode | None:
    """The Docker network + IPAM driver, if ``[node] driver_socket`` is set (sharing the node's bridge)."""
    if not options.driver_socket or node is None:
        return None
    return DriverNode(
        name=options.driver_name, socket=options.driver_socket, hub_id=cfg.hub.id, nb_remote=cfg.ovn.nb,
        state_path=str(Path(cfg.hub.state_dir) / f"docker-driver-{options.driver_name}.json"),
        docker_url=options.docker, bridge=node.bridge, switch_netns=options.switch_netns, chassis=options.chassis,
        resync_interval=options.resync_interval, hub_api=options.hub_api, hub_token_file=options.hub_token_file,
        nb_tls=ovn_tls(cfg),
    )  # fmt: skip


def node_site(node: DockerNode | None, cni: CniAgent | None = None, driver: DriverNode | None = None) -> Site:
    def ready() -> bool:
        return all(x.ready.is_set() for x in (node, cni, driver) if x is not None)

    async def healthz(request: web.Request) -> web.Response:
        return json_response({"ok": ready()}, 200 if ready() else 503)

    async def status(request: web.Request) -> web.Response:
        out: dict[str, Any] = node.status() if node is not None else {"ready": ready()}
        if cni is not None:
            out["cni"] = cni.status()
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
    tls = ovn_tls(cfg)
    node = DockerNode(options, hub_id=cfg.hub.id, nb_remote=cfg.ovn.nb, tls=tls) if options.docker else None
    cni = None
    if cfg.cni.enabled:  # one bridge connection for both (ovsdbapp keeps one per process)
        bridge = node.bridge if node is not None else OvsBridge(options.ovs, options.bridge, tls=tls)
        links = node.links if node is not None else NetlinkLinks(options.switch_netns)
        cni = CniAgent(cfg.cni, hub_id=cfg.hub.id, nb_remote=cfg.ovn.nb, chassis=options.chassis, bridge=bridge,
                       links=links, state_dir=cfg.hub.state_dir, own_bridge=node is None, nb_tls=tls)  # fmt: skip
    driver = driver_node(cfg, options, node)
    parts = [x for x in (node, cni, driver) if x is not None]
    notifier = notifier or Notifier()
    site = node_site(node, cni, driver) if options.listen else None
    if site is not None:
        await site.start(options.listen)
    if driver is not None:
        await driver.start_server()  # Docker's calls are answered from here on (from the state file)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    loop.add_signal_handler(
        signal.SIGHUP, lambda: log.info("SIGHUP: a node reloads nothing; restart it to apply a changed [node]")
    )
    tasks = [asyncio.create_task(x.run(), name=n) for x, n in ((node, "node"), (cni, "cni"), (driver, "docker driver"))
             if x is not None]  # fmt: skip
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
            if driver is not None:
                text.append(f"Docker driver: {len(driver.bound)} endpoints bound" if driver.ready.is_set()
                            else "Docker driver: connecting to Docker, NB and Open_vSwitch")  # fmt: skip
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
        if driver is not None:
            await driver.stop_server()
        if site is not None:
            await site.stop()
        notifier.close()
        log.info("node stopped in %.1f s", loop.time() - t0)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    log.info("node stopped (plumbing left in place for the next start to adopt)")
    return 0
