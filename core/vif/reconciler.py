"""Desired vs plugged, level-triggered, per key.

The *actual* set is what the bridge records (:meth:`adopt` reads the
Interfaces tagged with this hub's owner id, so a restarted node knows what it
plugged before); the *desired* one is asked per key from the orchestrator glue
(``desired(key) → Attachment | None``).  Events, NB updates and the periodic
relist only :meth:`mark` keys dirty; a fix compares the two and changes only
what differs:

* equal, and the host end still exists → nothing (adoption touches nothing);
* plugged but no longer desired (the workload went away, also while the node
  was down: an orphan) → unplug;
* desired and different (a new netns after a restart, a new address) →
  unplug, then plug;
* desired, not plugged → plug.

At most ``concurrency`` fixes run at once (no batch barrier: a key marked
while others are being plugged starts as soon as a slot frees; one being fixed
that is marked again is looked at once more after it is done).  A fix that
fails is retried after ``retry`` seconds.  An exception of a ``lost`` type
(the orchestrator's connection went away) ends the loop after the key is
marked again, so the caller reconnects and looks again.

Counted in ``ovn_hub_node_operations_total`` (plugged / unplugged / failed),
``ovn_hub_node_plugged_containers`` and ``ovn_hub_node_plug_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from core.metrics import NODE_OPS, NODE_PLUG_SECONDS, NODE_PLUGGED

from .attachment import I_VIA, Attachment
from .bridge import Bridge
from .link import Links, PlumbError

__all__ = ["Desired", "Reconciler", "Relist"]

log = logging.getLogger("ovn_hub.node")

#: What ``key`` should look like plugged, or None (not a workload to plug, or NB has no address yet).
Desired = Callable[[str], Awaitable[Attachment | None]]
#: Every key that exists now (the periodic full pass).
Relist = Callable[[], Awaitable[Iterable[str]]]


class Reconciler:
    """Keeps the bridge's attachments equal to what ``desired`` says."""

    def __init__(
        self,
        links: Links,
        bridge: Bridge,
        *,
        owner: str,
        concurrency: int = 8,
        retry: float = 2.0,
        lost: tuple[type[BaseException], ...] = (ConnectionError,),
        expected: tuple[type[BaseException], ...] = (PlumbError, OSError),
        complete_ids: Callable[[dict[str, str]], dict[str, str]] | None = None,
        what: str = "attachment",
        via: str = "",
    ) -> None:
        self.links = links
        self.bridge = bridge
        self.owner = owner
        self.concurrency = concurrency
        self.retry = retry
        self.lost = lost  # end the loop: the caller reconnects
        self.expected = expected  # logged as a warning without a traceback
        #: Fills in what an Interface recorded by an older version lacks (before :meth:`Attachment.from_ids`).
        self.complete_ids = complete_ids
        self.what = what  # "container": log lines name the unit the way the operator knows it
        #: The ``ovn-hub:via`` tag of the Interfaces this reconciler owns ("": none, wrapper mode):
        #: several glues share one bridge and owner, each adopts (and collects) only its own.
        self.via = via
        #: key → the last failure of its fix (cleared by a success): what a waiting caller reports.
        self.errors: dict[str, str] = {}
        #: Actual: key → attachment, from the bridge's Interfaces.
        self.plugged: dict[str, Attachment] = {}
        self.dirty: set[str] = set()
        self.wake = asyncio.Event()
        self.plugs = 0
        self.unplugs = 0
        self.failures = 0
        #: Called after every successful plug with the attachment and the plug's seconds.
        self.on_plugged: Callable[[Attachment, float], None] | None = None
        self._lost: BaseException | None = None

    def mark(self, keys: Iterable[str]) -> None:
        """Look at ``keys`` again."""
        self.dirty.update(keys)
        self.wake.set()

    async def adopt(self) -> None:
        """Read what the bridge holds (the start of every session); mark all of it dirty.
        An Interface with incomplete tags is removed."""
        self._lost = None
        found = await self.bridge.owned(self.owner)
        plugged: dict[str, Attachment] = {}
        for name, ids in sorted(found.items()):
            if ids.get(I_VIA, "") != self.via:
                continue  # another glue's
            a = Attachment.from_ids(self.complete_ids(ids) if self.complete_ids is not None else ids)
            if a is None or a.dev != name:
                log.warning("removing interface %s: its ovn-hub external_ids are incomplete", name)
                await self.bridge.delete(name)
                continue
            plugged[a.key] = a
        self.plugged = plugged
        self.dirty.update(plugged)

    async def reconcile(self, desired: Desired) -> None:
        """Fix every dirty key, a few at a time, and return when all are done
        (the first pass of a session: READY follows it)."""
        dirty, self.dirty = self.dirty, set()
        sem = asyncio.Semaphore(self.concurrency)

        async def one(key: str) -> None:
            async with sem:
                await self._work(desired, key)

        async with asyncio.TaskGroup() as tg:
            for key in sorted(dirty):
                tg.create_task(one(key))
        NODE_PLUGGED.set(len(self.plugged))
        if self._lost is not None:
            raise self._lost

    async def run(self, desired: Desired, relist: Relist, interval: float) -> None:
        """Dispatch dirty keys until cancelled (or a ``lost`` error); every
        ``interval`` seconds every key ``relist`` names and every plugged one
        is looked at."""
        loop = asyncio.get_running_loop()
        next_full = loop.time() + interval
        inflight: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                if self._lost is not None:
                    raise self._lost
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(1.0, max(0.0, next_full - loop.time()))):
                        await self.wake.wait()
                self.wake.clear()
                if loop.time() >= next_full:
                    self.dirty.update(await relist())
                    self.dirty.update(self.plugged)
                    next_full = loop.time() + interval
                for key in sorted(self.dirty - inflight.keys()):
                    if len(inflight) >= self.concurrency:
                        break
                    self.dirty.discard(key)
                    task = asyncio.create_task(self._work(desired, key), name=f"plug {key[:12]}")
                    inflight[key] = task
                    task.add_done_callback(functools.partial(self._done, inflight, key))
        finally:
            for task in inflight.values():
                task.cancel()
            if inflight:
                await asyncio.gather(*inflight.values(), return_exceptions=True)

    def _done(self, inflight: dict[str, asyncio.Task[None]], key: str, _task: asyncio.Task[None]) -> None:
        inflight.pop(key, None)
        NODE_PLUGGED.set(len(self.plugged))
        self.wake.set()  # a slot is free (and key may be dirty again)

    async def _work(self, desired: Desired, key: str) -> None:
        """Fix one key; its failure is retried later, a lost connection ends the session."""
        try:
            await self.fix(desired, key)
            self.errors.pop(key, None)
        except self.lost as exc:
            self.dirty.add(key)
            self._lost = exc  # the orchestrator is gone: reconnect, then look again
            self.wake.set()
        except Exception as exc:  # noqa: BLE001 - one key must not stop the others
            self._failed(key, exc)

    def _failed(self, key: str, exc: BaseException) -> None:
        self.failures += 1
        self.errors[key] = str(exc) or type(exc).__name__
        NODE_OPS.labels("failed").inc()
        if isinstance(exc, self.expected):
            log.warning("%s %s: %s; retrying in %.0fs", self.what, key[:12], exc, self.retry)
        else:
            log.error("%s %s: %s: %s; retrying in %.0fs", self.what, key[:12], type(exc).__name__, exc, self.retry,
                      exc_info=exc)  # fmt: skip
        asyncio.get_running_loop().call_later(self.retry, self.mark, (key,))

    async def fix(self, desired: Desired, key: str) -> None:
        """Make the bridge's attachment of ``key`` what ``desired`` says."""
        want = await desired(key)
        have = self.plugged.get(key)
        if want is not None and have == want and await self.links.exists(want.dev):
            return
        if have is not None and (want is None or have != want):
            await self.unplug(have)
        if want is not None:
            await self.plug(want)

    async def plug(self, a: Attachment) -> None:
        t0 = time.monotonic()
        await self.links.delete(a.dev)  # stale leftovers
        await self.links.add(a, tx_offload_off=self.bridge.netdev)
        try:
            await self.bridge.add(a, self.owner)
        except BaseException:
            await self.links.delete(a.dev)
            raise
        self.plugged[a.key] = a
        self.plugs += 1
        seconds = time.monotonic() - t0
        NODE_OPS.labels("plugged").inc()
        NODE_PLUG_SECONDS.observe(seconds)
        log.info(
            "plugged %s (%s) into %s: %s %s in %.0f ms", a.key[:12], a.network, a.port, a.mac, " ".join(a.addrs),
            seconds * 1000,
        )  # fmt: skip
        if self.on_plugged is not None:
            self.on_plugged(a, seconds)

    async def unplug(self, a: Attachment) -> None:
        await self.bridge.delete(a.dev)
        await self.links.delete(a.dev)
        self.plugged.pop(a.key, None)
        self.unplugs += 1
        NODE_OPS.labels("unplugged").inc()
        log.info("unplugged %s (%s) from %s", a.key[:12], a.network, a.port)
