"""Supervision shared by every hubd role: adapter restarts, the systemd
watchdog and reconnect-with-backoff.

Every retry loop in the hub draws its delays from one :class:`core.backoff.Backoff`
(exponential, jittered into ``[d/2, d]``); each loop keeps its own reset rule,
said where the loop is built.  Nothing here imports aiohttp or aiomqtt, so the
roles that need neither (and ``import hub.daemon``) stay light.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from core import metrics
from core.adapter import Adapter, AdapterSpec
from core.backoff import Backoff
from core.model import Source
from hub.bus import AdapterSink
from hub.notify import Notifier
from hub.plugins import adapter_factory

log = logging.getLogger("ovn_hub.hubd")


class AdapterRunner:
    """One adapter instance: its task, restarts and state for ``hubctl status``."""

    def __init__(self, spec: AdapterSpec, sink: AdapterSink) -> None:
        self.spec = spec
        self.sink = sink
        self.task: asyncio.Task[None] | None = None
        self.state = "starting"
        self.restarts = 0
        self.last_error = ""

    @property
    def source(self) -> Source:
        return self.spec.source

    def status(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "type": self.spec.type,
            "cluster": self.spec.cluster,
            "state": self.state,
            "restarts": self.restarts,
            "snapshots": self.sink.snapshots,
            "last_error": self.last_error,
        }

    async def run(self, backoff_min: float = 1.0, backoff_max: float = 60.0) -> None:
        """Create and run the adapter until cancelled; restart it after a raise.
        Reset rule: a run that lasted longer than ``5 * backoff_max`` before
        failing starts the backoff over."""
        backoff = Backoff(backoff_min, backoff_max)
        name = self.spec.name
        while True:
            started = time.monotonic()
            try:
                adapter: Adapter = adapter_factory(self.spec.type)(self.spec)
                self.state = "running"
                metrics.ADAPTER_UP.labels(name).set(1)
                log.info("adapter %s (%s/%s) started", name, self.spec.type, self.spec.cluster)
                await adapter.run(self.sink)
                raise RuntimeError("run() returned")
            except asyncio.CancelledError:
                self.state = "stopped"
                metrics.ADAPTER_UP.labels(name).set(0)
                raise
            except Exception as exc:  # noqa: BLE001 - any adapter failure is contained here
                metrics.ADAPTER_UP.labels(name).set(0)
                metrics.ADAPTER_RESTARTS.labels(name).inc()
                self.restarts += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if time.monotonic() - started > 5 * backoff_max:
                    backoff.reset()
                wait = backoff.next()
                self.state = "backoff"
                log.warning("adapter %s failed (%s); restarting in %.1fs", name, self.last_error, wait)
                await asyncio.sleep(wait)


async def watchdog(notifier: Notifier) -> None:
    """``WATCHDOG=1`` at half of systemd's ``WatchdogSec`` until cancelled;
    returns at once when the service has no watchdog."""
    usec = notifier.watchdog_usec
    if not usec:
        return
    interval = usec / 2e6
    while True:
        notifier.notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def describe_errors(
    eg: BaseExceptionGroup[Exception], logger: logging.Logger, what: str, expected: tuple[type[BaseException], ...]
) -> str:
    """One line for a failed session's errors; a traceback in the log when
    one of them is not an ``expected`` (connection) failure."""
    if not all(isinstance(e, expected) for e in eg.exceptions):
        logger.error("%s failed", what, exc_info=eg)
    return "; ".join(f"{type(e).__name__}: {e}" for e in eg.exceptions)


def _is_refused(exc: BaseException) -> bool:
    """A connect refused outright (aiomqtt reports it as an MqttError naming errno 111)."""
    return isinstance(exc, ConnectionRefusedError) or "Connection refused" in str(exc)


async def reconnect(
    session: Callable[[], Awaitable[object]],
    backoff: Backoff,
    *,
    what: str,
    healthy_after: float,
    on_error: Callable[[BaseExceptionGroup[Exception]], str],
    on_down: Callable[[], object] | None = None,
    logger: logging.Logger = log,
    refused_cap: float = 2.0,
) -> NoReturn:
    """Run ``session`` until cancelled, again after each failure.

    After a session ends: ``on_error(errors)`` says why (and may record it),
    ``on_down()`` marks the connection lost, then the loop waits
    ``backoff.next()``.  Reset rule: a session that lasted longer than
    ``healthy_after`` seconds starts the backoff over.  A refused connection
    (nothing listens: the server is restarting) waits at most ``refused_cap``:
    probing is cheap, and the session is back within that of the server (a
    broker away for 30 s is not found again only 30 s later).  Cancellation
    passes through untouched; any other failure never leaves this loop."""
    while True:
        started = time.monotonic()
        reason = "session ended"
        refused = False
        try:
            await session()
        except* Exception as eg:  # noqa: BLE001 - never takes the process down: reconnect
            reason = on_error(eg)
            refused = eg.subgroup(_is_refused) is not None
        if on_down is not None:
            on_down()
        if time.monotonic() - started > healthy_after:
            backoff.reset()
        wait = backoff.next(cap=refused_cap if refused else None)
        logger.warning("%s: %s; reconnecting in %.1fs", what, reason, wait)
        await asyncio.sleep(wait)


__all__ = ["AdapterRunner", "describe_errors", "reconnect", "watchdog"]
