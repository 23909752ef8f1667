"""The adapter conformance kit: README's adapter rules, checked against a live adapter.

A pytest plugin (entry point ``pytest11: ovn_hub = testkit.conformance``), so an
installed ``ovn-hub`` gives every test run the ``conformance_timeouts`` fixture,
the ``--conformance-timeout`` option and :class:`AdapterConformance`.  An adapter
writer subclasses :class:`AdapterConformance` as a ``Test*`` class and gives it a
fake of the orchestrator (:class:`FakeOrchestrator`: start/stop, add / change /
touch / remove an object, inject a bad one, break and restore the connection);
the adapter comes from its ``ovn_hub.adapters`` entry point, as hubd loads it
(override the ``adapter_factory`` fixture to tune it).  The tests follow, one per
rule (``faults``: one per fault the fake injects), each failing with a
:class:`ConformanceError` that names the rule:

``snapshot``
    Every list ends in a Snapshot: the first event of a run() that carries
    objects is a Snapshot, and a new adapter's Snapshot holds what existed
    before it listed.
``no-op``
    An unchanged object emits nothing: no Upsert of an equal object, no Delete
    of an absent one - after a change the adapter sees but that leaves the
    canonical object equal (``touch``), and in the relist after a reconnect.
``rejected``
    Bad input gives ``Rejected`` (this source, a reason, a message), no object,
    and never ends run(); the adapter goes on with the next object.
``cancel``
    Cancelling run() ends it promptly, as cancelled, with every task it started
    finished - after a list, while the orchestrator is unreachable, and in the
    middle of the first list.
``relist``
    After a connection loss (the adapter raised, or reconnected by itself) a
    Snapshot comes that reflects what changed while it was away; a raise is
    followed by that relist when run() is started again on the same instance
    (stricter than hubd, which builds a new one: run() must not rely on state
    an earlier run() left).
``faults``
    Orchestrator faults end in the orchestrator's state (:func:`check_fault`,
    one test per fault the fake can inject - :class:`FaultyOrchestrator`): a
    stream cut in the middle of a record, an expired resume point (HTTP 410, or
    no resume at all), events delivered twice and out of order, a server that
    accepts and never answers.  While the fault is on the orchestrator changes;
    once it is healed the adapter's state must equal a fresh adapter's first
    Snapshot (the orchestrator's state as this adapter maps it), with no
    redundant event on the way; a silent server must also be logged (WARNING)
    and an adapter listing into it must still cancel promptly.
``normalizer``
    The offline normalizer (the ``ovn_hub.normalizers`` entry point) is pure:
    the same text gives the same output - twice in this process and once in a
    fresh interpreter with another hash seed - and it opens no file or socket
    and starts no process (an audit hook refuses them while it runs).

The checks are plain functions too (``check_snapshot`` … ``check_normalizer``,
run by :func:`run_check`), which is how the kit's own tests feed it broken
adapters.  Events are judged the way the hub uses them: the kit keeps the
state they amount to (a Snapshot replaces the source's objects, Upsert/Delete
change one) and asks the orchestrator fake nothing about canonical objects -
it learns which keys an added object maps to from what the adapter emits.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import json
import logging
import os
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import pytest

from core.adapter import ENTRY_POINT_GROUP, Adapter, AdapterFactory, AdapterSpec
from core.model import (
    Delete,
    InputEvent,
    Invalid,
    Object,
    Rejected,
    Snapshot,
    Source,
    Upsert,
    encode,
    kind_of,
    validate,
)

__all__ = [
    "FAULTS",
    "NORMALIZER_GROUP",
    "RULES",
    "AdapterConformance",
    "CheckReport",
    "ConformanceError",
    "FakeOrchestrator",
    "FaultyOrchestrator",
    "IOBlocked",
    "Recorder",
    "Timeouts",
    "check_cancel",
    "check_fault",
    "check_noop",
    "check_normalizer",
    "check_rejected",
    "check_relist",
    "check_snapshot",
    "conformance_timeouts",
    "entry_point_factory",
    "pytest_addoption",
    "pytest_configure",
    "run_check",
]

NORMALIZER_GROUP = "ovn_hub.normalizers"
RULES = ("snapshot", "no-op", "rejected", "cancel", "relist", "faults", "normalizer")
#: The orchestrator faults of :func:`check_fault`, and the FaultyOrchestrator method injecting each.
FAULTS: dict[str, str] = {
    "cut-mid-record": "cut_mid_record",
    "expire": "expire",
    "duplicate-reorder": "duplicate_and_reorder",
    "black-hole": "black_hole",
}
Key = tuple[str, str]
T = TypeVar("T")


class ConformanceError(AssertionError):
    """An adapter broke a rule; ``rule`` is one of :data:`RULES`."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"[{rule}] {message}")
        self.rule = rule


@runtime_checkable
class FakeOrchestrator(Protocol):
    """What the kit drives.  Every method is awaited in the check's own event loop.

    ``name`` is a short lowercase name the kit makes up (``kit-a``, ``kit-b``, …;
    valid as a container, pod or file-line name).  Objects are opaque to the kit:

    * ``add(name)``: create an object the adapter maps to one or more canonical
      objects (of keys no other object has);
    * ``change(name)``: change it so that at least one of its canonical objects
      changes but keeps its key (a label, a name, a state);
    * ``touch(name)``: a change the adapter *sees* (an event, a new resource
      version, a rewritten file) that leaves its canonical objects equal;
    * ``remove(name)``: delete it (its canonical objects go);
    * ``add_bad(name)``: create an object the adapter must reject (it yields no
      canonical object and a ``Rejected``);
    * ``break_connection()``: make the orchestrator unreachable (abort open
      connections, refuse new ones; :class:`testkit.proxy.BreakableProxy` does it
      for any socket); ``add``/``remove`` must still work while broken;
    * ``restore_connection()``: reachable again, at the same address.

    The kit uses a later ``add`` as a barrier: it assumes an adapter that has
    shown a later object has also processed the earlier change (true for one
    ordered watch stream or one file).  ``spec()`` is the AdapterSpec of an
    adapter watching this orchestrator (called after ``start``)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def spec(self) -> AdapterSpec: ...
    async def add(self, name: str) -> None: ...
    async def change(self, name: str) -> None: ...
    async def touch(self, name: str) -> None: ...
    async def remove(self, name: str) -> None: ...
    async def add_bad(self, name: str) -> None: ...
    async def break_connection(self) -> None: ...
    async def restore_connection(self) -> None: ...


@runtime_checkable
class FaultyOrchestrator(Protocol):
    """The fault hooks of a :class:`FakeOrchestrator` (each optional: a fake has
    the ones its protocol allows; :attr:`AdapterConformance.faults` lists them).
    Each injects and returns at once; the fault stays on until ``heal()``:

    * ``cut_mid_record()``: the next record (event, frame, chunk) the server
      sends is cut in its middle and the connection dropped;
    * ``expire()``: the adapter's resume point is gone (a Kubernetes watch gets
      410 Gone; an orchestrator without resume just ends its streams) - what
      changes next must reach the adapter by a relist;
    * ``duplicate_and_reorder()``: events are delivered twice and, where the
      protocol allows it, swapped (or replayed from older versions);
    * ``black_hole()``: the server accepts connections and never sends a byte
      (list calls included); open streams fall silent;
    * ``heal()``: back to normal for new connections (a silent stream stays
      silent: the adapter must time out); returns how often the fault hit
      (records cut, streams expired, events repeated, connections or data
      swallowed) - 0 means the hook injected nothing and fails the check."""

    async def cut_mid_record(self) -> None: ...
    async def expire(self) -> None: ...
    async def duplicate_and_reorder(self) -> None: ...
    async def black_hole(self) -> None: ...
    async def heal(self) -> int: ...


@dataclass(frozen=True)
class Timeouts:
    """Seconds.  ``wait``: the most any expected event may take; ``quiet``: how
    long the kit listens for stragglers after a barrier; ``broken``: how long a
    connection stays broken; ``cancel``: how long run() may take to end once
    cancelled."""

    wait: float = 15.0
    quiet: float = 0.3
    broken: float = 0.5
    cancel: float = 5.0

    def scaled(self, factor: float) -> Timeouts:
        return Timeouts(self.wait * factor, self.quiet, self.broken, self.cancel * factor)


def entry_point_factory(type_name: str) -> AdapterFactory:
    """The factory registered as ``type_name`` in ``ovn_hub.adapters`` (how hubd finds it)."""
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == type_name]
    if not matches:
        raise ConformanceError("snapshot", f"no {ENTRY_POINT_GROUP} entry point named {type_name!r}")
    factory: AdapterFactory = matches[0].load()
    return factory


# ---------------------------------------------------------------- recording sink
def _describe(ev: InputEvent) -> str:
    if isinstance(ev, Snapshot):
        return f"Snapshot({len(ev.objects)} objects)"
    if isinstance(ev, Upsert):
        return f"Upsert({kind_of(ev.obj)} {ev.obj.key})"
    if isinstance(ev, Delete):
        return f"Delete({ev.kind} {ev.key})"
    if isinstance(ev, Rejected):
        return f"Rejected({ev.reason}: {ev.message[:80]})"
    return repr(ev)[:120]


@dataclass
class _Entry:
    run: int
    event: InputEvent
    redundant: bool = False  # an Upsert equal to the state, or a Delete of an absent key


class Recorder:
    """The EventSink the adapter under test writes to; keeps the state the
    events amount to, and every malformed event."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.entries: list[_Entry] = []
        self.view: dict[Key, Object] = {}
        self.malformed: list[str] = []
        #: Deltas a run() emitted before its first Snapshot.
        self.early: list[str] = []
        self.run = 0
        self._listed: set[int] = set()
        self._changed = asyncio.Event()

    async def emit(self, event: InputEvent) -> None:
        entry = _Entry(self.run, event)
        self._check(event)
        if isinstance(event, Upsert | Delete) and self.run not in self._listed:
            self.early.append(f"run {self.run}: {_describe(event)} before its first Snapshot")
        if isinstance(event, Snapshot):
            self._listed.add(self.run)
            self.view = {(kind_of(o), o.key): o for o in event.objects}
        elif isinstance(event, Upsert):
            k = (kind_of(event.obj), event.obj.key)
            entry.redundant = self.view.get(k) == event.obj
            self.view[k] = event.obj
        elif isinstance(event, Delete):
            entry.redundant = self.view.pop((event.kind, event.key), None) is None
        self.entries.append(entry)
        self._changed.set()

    def _check(self, ev: Any) -> None:
        what = _describe(ev)
        if not isinstance(ev, Snapshot | Upsert | Delete | Rejected):
            self.malformed.append(f"{what}: not a Snapshot, Upsert, Delete or Rejected")
            return
        objs: Iterable[Object] = ev.objects if isinstance(ev, Snapshot) else [ev.obj] if isinstance(ev, Upsert) else []
        src = ev.obj.source if isinstance(ev, Upsert) else ev.source
        if src != self.source:
            self.malformed.append(f"{what}: source {src} is not the adapter's {self.source}")
        seen: set[Key] = set()
        for o in objs:
            k = (kind_of(o), o.key)
            if k in seen:
                self.malformed.append(f"{what}: {k[0]} {k[1]} twice")
            seen.add(k)
            if o.source != self.source:
                self.malformed.append(f"{what}: {k[0]} {k[1]} has source {o.source}, not {self.source}")
            try:
                validate(o)
            except Invalid as exc:
                self.malformed.append(f"{what}: {k[0]} {k[1]} is not valid: {exc}")

    def since(self, mark: int) -> list[_Entry]:
        return self.entries[mark:]

    def tail(self, n: int = 12) -> str:
        return "\n".join(f"  run {e.run}: {_describe(e.event)}" for e in self.entries[-n:]) or "  (no events)"

    async def changed(self, timeout: float) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._changed.wait()


# ---------------------------------------------------------------- task bookkeeping
_IN_ADAPTER: contextvars.ContextVar[bool] = contextvars.ContextVar("ovn_hub_conformance_adapter", default=False)


class _Tasks:
    """Every task created (transitively) by an adapter's run(): they inherit the
    context of run()'s task, where ``_IN_ADAPTER`` is set."""

    def __init__(self) -> None:
        self.tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self.loop_errors: list[str] = []

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        def factory(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kw: Any) -> asyncio.Task[Any]:
            task = asyncio.Task(coro, loop=loop, **kw)
            ctx = kw.get("context")
            if ctx.get(_IN_ADAPTER, False) if ctx is not None else _IN_ADAPTER.get():
                self.tasks.add(task)
            return task

        def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            fut = context.get("task") or context.get("future")
            if fut is not None and fut in self.tasks:
                exc = context.get("exception")
                self.loop_errors.append(f"{context.get('message')}: {fut!r}" + (f": {exc!r}" if exc else ""))
            else:
                loop.default_exception_handler(context)

        loop.set_task_factory(factory)  # type: ignore[arg-type]
        loop.set_exception_handler(handler)

    def pending(self, exclude: asyncio.Task[Any] | None = None) -> list[asyncio.Task[Any]]:
        return [t for t in list(self.tasks) if not t.done() and t is not exclude]


class _Run:
    """One ``adapter.run(recorder)`` task, tagged so the tasks it starts are known."""

    def __init__(self, ctx: _Ctx, adapter: Adapter) -> None:
        self.ctx = ctx
        self.adapter = adapter
        ctx.rec.run += 1
        self.number = ctx.rec.run
        self.mark = len(ctx.rec.entries)
        context = contextvars.copy_context()
        context.run(_IN_ADAPTER.set, True)
        self.task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            adapter.run(ctx.rec), name=f"conformance run {self.number}", context=context
        )

    def how_it_ended(self) -> str:
        if self.task.cancelled():
            return "was cancelled"
        exc = self.task.exception()
        return "returned" if exc is None else f"raised {type(exc).__name__}: {exc}"


class _Runner:
    """An adapter and its current run().  With ``restart`` set (the connection-loss
    windows), a run() that raises is started again on the same adapter, as the
    hub's supervisor would; anywhere else a run() that ends is a violation."""

    def __init__(self, ctx: _Ctx, adapter: Adapter) -> None:
        self.ctx = ctx
        self.adapter = adapter
        self.run = _Run(ctx, adapter)
        self.restart = False
        self.raises: list[str] = []

    @property
    def mark(self) -> int:
        return self.run.mark

    def poll(self, rule: str, what: str) -> None:
        """Raise a violation if run() ended (restart it if allowed)."""
        task = self.run.task
        if not task.done():
            return
        if self.restart and not task.cancelled() and task.exception() is not None:
            self.raises.append(self.run.how_it_ended())
            self.run = _Run(self.ctx, self.adapter)
            return
        raise ConformanceError(rule, f"run() {self.run.how_it_ended()} while waiting for {what}\n{self.ctx.rec.tail()}")

    async def cancel(self, rule: str = "cancel", *, ended_ok: bool = False) -> None:
        """Cancel run(); it must end, cancelled, within ``cancel`` seconds, leaving
        no task behind.  ``ended_ok``: a run() that already raised is fine."""
        t = self.ctx.t
        task = self.run.task
        if task.done():
            how = self.run.how_it_ended()
            if not task.cancelled():
                task.exception()  # retrieved
            if ended_ok and how.startswith("raised"):
                return
            raise ConformanceError(rule, f"run() {how} before it was cancelled\n{self.ctx.rec.tail()}")
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=t.cancel)
        if not done:
            raise ConformanceError(rule, f"run() did not end within {t.cancel}s of being cancelled")
        if not task.cancelled():
            exc = task.exception()
            if exc is None:
                raise ConformanceError(rule, "run() swallowed the cancellation and returned")
            raise ConformanceError(rule, f"cancelled run() raised {type(exc).__name__}: {exc}")
        await _settle()
        leaked = self.ctx.tasks.pending()
        if leaked:
            names = ", ".join(sorted(f"{lt.get_name()} {lt.get_coro()!r:.100}" for lt in leaked))
            for lt in leaked:
                lt.cancel()
            raise ConformanceError(rule, f"tasks started by run() still pending after it was cancelled: {names}")
        if self.ctx.tasks.loop_errors:
            raise ConformanceError(rule, "the event loop reported: " + "; ".join(self.ctx.tasks.loop_errors[:3]))


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)
    await asyncio.sleep(0.02)


class _Ctx:
    def __init__(self, factory: AdapterFactory, orch: FakeOrchestrator, t: Timeouts, tasks: _Tasks) -> None:
        self.factory = factory
        self.orch = orch
        self.t = t
        self.tasks = tasks
        self.spec = orch.spec()
        self.rec = Recorder(self.spec.source)
        self.keys: dict[str, set[Key]] = {}
        self.runners: list[_Runner] = []
        self.fault = ""
        self.injected = 0
        self.converge_seconds = 0.0

    def start(self) -> _Runner:
        """A new adapter from the factory (as hubd makes one), running."""
        runner = _Runner(self, self.factory(self.spec))
        self.runners.append(runner)
        return runner

    async def wait(self, rule: str, what: str, pred: Callable[[], T | None], runner: _Runner) -> T:
        """Wait until ``pred()`` is truthy, checking the events and run() as it goes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.t.wait
        while True:
            self.check_events(rule)
            res = pred()
            if res:
                return res
            runner.poll(rule, what)
            left = deadline - loop.time()
            if left <= 0:
                raise ConformanceError(
                    rule, f"timed out after {self.t.wait}s waiting for {what}; events:\n{self.rec.tail()}"
                )
            await self.rec.changed(min(left, 0.05))

    def check_events(self, rule: str) -> None:
        if self.rec.malformed:
            raise ConformanceError(rule, "malformed events: " + "; ".join(self.rec.malformed[:5]))
        if self.rec.early:
            raise ConformanceError(
                "snapshot", f"{self.rec.early[0]} (a run() lists, emits a Snapshot, then deltas)\n{self.rec.tail()}"
            )

    def snapshot_since(self, mark: int) -> Snapshot | None:
        return next((e.event for e in self.rec.since(mark) if isinstance(e.event, Snapshot)), None)

    async def first_snapshot(self, rule: str, runner: _Runner) -> Snapshot:
        return await self.wait(
            rule, f"the Snapshot of run {runner.run.number}'s list", lambda: self.snapshot_since(runner.mark), runner
        )

    async def add(self, rule: str, name: str, runner: _Runner) -> set[Key]:
        """``orch.add(name)``; returns (and remembers) the keys it brought."""
        before = set(self.rec.view)
        await self.orch.add(name)

        def new() -> set[Key]:
            return set(self.rec.view) - before

        keys = await self.wait(rule, f"the canonical object(s) of the added {name!r}", new, runner)
        await asyncio.sleep(0.01)
        keys = new() or keys
        self.keys[name] = keys
        return keys

    async def remove(self, rule: str, name: str, runner: _Runner) -> None:
        keys = self.keys[name]
        await self.orch.remove(name)
        await self.wait(rule, f"the removal of {name!r} ({_keys(keys)})", lambda: not keys & set(self.rec.view), runner)

    async def change(self, rule: str, name: str, runner: _Runner) -> None:
        keys = self.keys[name]
        before = {k: self.rec.view.get(k) for k in keys}
        await self.orch.change(name)
        await self.wait(
            rule,
            f"the changed object of {name!r} ({_keys(keys)})",
            lambda: any(self.rec.view.get(k) not in (None, before[k]) for k in keys),
            runner,
        )

    async def outage(self, runner: _Runner, during: Callable[[], Awaitable[None]] | None = None) -> None:
        """Break the connection for ``broken`` seconds (running ``during`` while
        broken), restore it; run() may raise meanwhile (it is started again)."""
        runner.restart = True
        await self.orch.break_connection()
        await asyncio.sleep(self.t.broken)
        if during is not None:
            await during()
            await asyncio.sleep(self.t.broken / 2)
        await self.orch.restore_connection()


def _keys(keys: Iterable[Key]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(keys))


# ---------------------------------------------------------------- the checks
async def check_snapshot(ctx: _Ctx) -> None:
    """A Snapshot ends every list, before any delta; it holds what existed before the list."""
    rule = "snapshot"
    runner = ctx.start()
    await ctx.first_snapshot(rule, runner)
    keys = await ctx.add(rule, "kit-a", runner)
    await runner.cancel()
    # a new adapter (a hubd restart) lists again: its Snapshot holds kit-a
    runner = ctx.start()
    snap = await ctx.first_snapshot(rule, runner)
    got = {(kind_of(o), o.key) for o in snap.objects}
    if not keys <= got:
        raise ConformanceError(
            rule, f"the Snapshot of a new adapter lacks objects that existed before it listed: {_keys(keys - got)}"
        )
    await ctx.change(rule, "kit-a", runner)
    await ctx.remove(rule, "kit-a", runner)
    ctx.check_events(rule)
    await runner.cancel()


async def check_noop(ctx: _Ctx) -> None:
    """Unchanged objects emit nothing, live and in a relist."""
    rule = "no-op"
    runner = ctx.start()
    await ctx.first_snapshot(rule, runner)
    keys = await ctx.add(rule, "kit-a", runner)
    await ctx.add(rule, "kit-b", runner)  # barrier: kit-a's creation is processed
    mark = len(ctx.rec.entries)
    before = {k: ctx.rec.view[k] for k in keys}
    await ctx.orch.touch("kit-a")
    await ctx.add(rule, "kit-c", runner)  # barrier: the touch is processed
    await asyncio.sleep(ctx.t.quiet)
    for e in ctx.rec.since(mark):
        ev = e.event
        if isinstance(ev, Upsert) and (kind_of(ev.obj), ev.obj.key) in keys:
            same = "equal to the current one" if e.redundant else "although touch() changed nothing canonical"
            raise ConformanceError(rule, f"{_describe(ev)} after touch(): the object is {same}")
        if isinstance(ev, Delete) and (ev.kind, ev.key) in keys:
            raise ConformanceError(rule, f"{_describe(ev)} after touch() of an object that still exists")
        if isinstance(ev, Snapshot):
            now: dict[Key, Object] = {(kind_of(o), o.key): o for o in ev.objects}
            if any(now.get(k) != v for k, v in before.items()):
                raise ConformanceError(rule, "a Snapshot after touch() holds a different object for the touched one")
    _no_redundant(ctx, rule, "")
    # a relist of unchanged objects: a Snapshot, no deltas
    mark = len(ctx.rec.entries)
    state = dict(ctx.rec.view)
    await ctx.outage(runner)
    await ctx.wait(rule, "the Snapshot of the relist after a reconnect", lambda: ctx.snapshot_since(mark), runner)
    await asyncio.sleep(ctx.t.quiet)
    for e in ctx.rec.since(mark):
        if isinstance(e.event, Upsert | Delete):
            raise ConformanceError(
                rule, f"{_describe(e.event)} in the relist of unchanged objects (only a Snapshot is due)"
            )
    if ctx.rec.view != state:
        raise ConformanceError(rule, "the relist of unchanged objects changed the state")
    _no_redundant(ctx, rule, " (over the whole check)")
    runner.restart = False
    await runner.cancel()


def _no_redundant(ctx: _Ctx, rule: str, where: str, since: int = 0) -> None:
    bad = [e for e in ctx.rec.since(since) if e.redundant]
    if bad:
        what = "; ".join(_describe(e.event) for e in bad[:5])
        raise ConformanceError(
            rule,
            f"{len(bad)} redundant events{where} (an Upsert of an equal object, a Delete of an absent one): {what}",
        )


async def check_rejected(ctx: _Ctx) -> None:
    """Bad input: a Rejected with a reason, no object, run() goes on."""
    rule = "rejected"
    runner = ctx.start()
    await ctx.first_snapshot(rule, runner)
    await ctx.add(rule, "kit-a", runner)
    mark = len(ctx.rec.entries)
    state = set(ctx.rec.view)
    await ctx.orch.add_bad("kit-bad")

    def rejected() -> Rejected | None:
        return next((e.event for e in ctx.rec.since(mark) if isinstance(e.event, Rejected)), None)

    rej = await ctx.wait(rule, "a Rejected for the bad object", rejected, runner)
    if not (isinstance(rej.reason, str) and rej.reason.strip()):
        raise ConformanceError(rule, f"Rejected without a reason: {rej!r}")
    if not (isinstance(rej.message, str) and rej.message.strip()):
        raise ConformanceError(rule, f"Rejected without a message: {rej!r}")
    await asyncio.sleep(ctx.t.quiet)
    runner.poll(rule, "the adapter to go on after the bad object")
    extra = set(ctx.rec.view) - state
    if extra:
        raise ConformanceError(rule, f"the bad object still produced canonical objects: {_keys(extra)}")
    await ctx.add(rule, "kit-after", runner)  # it goes on (wait() fails if run() ended)
    await runner.cancel()


async def check_cancel(ctx: _Ctx) -> None:
    """Cancellation ends run() promptly, cancelled, with no task left behind."""
    rule = "cancel"
    runner = ctx.start()
    await ctx.first_snapshot(rule, runner)
    await ctx.add(rule, "kit-a", runner)
    await runner.cancel(rule)
    # while the orchestrator is unreachable (reconnecting, or backing off)
    runner = ctx.start()
    await ctx.first_snapshot(rule, runner)
    await ctx.orch.break_connection()
    await asyncio.sleep(ctx.t.broken)
    await runner.cancel(rule, ended_ok=True)  # a run() that raised meanwhile is fine: the hub restarts it
    await ctx.orch.restore_connection()
    # in the middle of the first list
    runner = ctx.start()
    await asyncio.sleep(0)
    await asyncio.sleep(0.005)
    await runner.cancel(rule)


async def check_relist(ctx: _Ctx) -> None:
    """A connection loss is followed by a relist whose Snapshot shows what changed meanwhile."""
    rule = "relist"
    runner = ctx.start()
    await ctx.first_snapshot(rule, runner)
    gone = await ctx.add(rule, "kit-a", runner)
    stays = await ctx.add(rule, "kit-b", runner)
    mark = len(ctx.rec.entries)

    async def remove_a() -> None:
        await ctx.orch.remove("kit-a")  # while the adapter cannot see it

    await ctx.outage(runner, remove_a)

    def relisted() -> Snapshot | None:
        for e in ctx.rec.since(mark):
            if isinstance(e.event, Snapshot):
                got = {(kind_of(o), o.key) for o in e.event.objects}
                if not gone & got and stays <= got:
                    return e.event
        return None

    await ctx.wait(rule, f"a Snapshot after the connection came back, without {_keys(gone)}", relisted, runner)
    runner.restart = False
    await ctx.add(rule, "kit-c", runner)  # and it watches again
    await runner.cancel()


# ---------------------------------------------------------------- orchestrator faults
class _LogTap(logging.Handler):
    """WARNING+ records of the adapter while a fault is on (it must say why it
    reconnects): its spec's logger, or a logger of its own top-level package."""

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__(logging.WARNING)
        self.names = names
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if any(record.name == n or record.name.startswith(n + ".") for n in self.names):
            self.records.append(record)


async def _fresh_state(ctx: _Ctx, rule: str) -> dict[Key, Object]:
    """The orchestrator's state as the adapter maps it: a new adapter's first Snapshot."""
    rec = Recorder(ctx.spec.source)
    context = contextvars.copy_context()
    context.run(_IN_ADAPTER.set, True)
    task = asyncio.get_running_loop().create_task(
        ctx.factory(ctx.spec).run(rec), name="conformance oracle", context=context
    )
    try:
        async with asyncio.timeout(ctx.t.wait):
            while not any(isinstance(e.event, Snapshot) for e in rec.entries):
                if task.done():
                    how = "was cancelled" if task.cancelled() else f"ended: {task.exception()!r}"
                    raise ConformanceError(rule, f"a fresh adapter's run() {how} before its Snapshot")
                await rec.changed(0.05)
    except TimeoutError:
        raise ConformanceError(rule, f"a fresh adapter gave no Snapshot within {ctx.t.wait}s") from None
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=ctx.t.cancel)
    snap = next(e.event for e in rec.entries if isinstance(e.event, Snapshot))
    return {(kind_of(o), o.key): o for o in snap.objects}


async def _cancel_in_hole(ctx: _Ctx, rule: str) -> None:
    """An adapter started while nothing answers (its list hangs) cancels promptly."""
    rec = Recorder(ctx.spec.source)
    context = contextvars.copy_context()
    context.run(_IN_ADAPTER.set, True)
    task = asyncio.get_running_loop().create_task(
        ctx.factory(ctx.spec).run(rec), name="conformance hole", context=context
    )
    await asyncio.sleep(ctx.t.broken / 2)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=ctx.t.cancel)
    if not done:
        raise ConformanceError(rule, f"run() listing from a server that never answers did not end within "
                                     f"{ctx.t.cancel}s of being cancelled (it would stall hubd's shutdown)")  # fmt: skip
    if not task.cancelled() and task.exception() is not None:
        task.exception()  # retrieved: a raise while unreachable is fine (the hub restarts it)


def _diff(want: dict[Key, Object], got: dict[Key, Object]) -> str:
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    changed = sorted(k for k in set(want) & set(got) if want[k] != got[k])
    parts = [
        f"{what}: {_keys(ks[:5])}" for what, ks in (("missing", missing), ("extra", extra), ("differ", changed)) if ks
    ]
    return "; ".join(parts) or "equal"


async def check_fault(ctx: _Ctx, fault: str) -> None:
    """One orchestrator fault: inject it, change the orchestrator meanwhile (kit-b
    changes, kit-a goes, kit-d comes), heal; the adapter's state must end equal
    to a fresh adapter's Snapshot, without redundant events."""
    rule = "faults"
    method = FAULTS.get(fault)
    if method is None:
        raise ConformanceError(rule, f"unknown fault {fault!r} (one of {', '.join(FAULTS)})")
    inject = getattr(ctx.orch, method, None)
    heal = getattr(ctx.orch, "heal", None)
    if inject is None or heal is None:
        raise ConformanceError(
            rule, f"the orchestrator fake has no {method}() and heal(): implement them (FaultyOrchestrator) "
                  f"or leave {fault!r} out of the class's faults"
        )  # fmt: skip
    ctx.fault = fault
    runner = ctx.start()
    own = (ctx.spec.logger().name, type(runner.adapter).__module__.partition(".")[0])
    await ctx.first_snapshot(rule, runner)
    await ctx.add(rule, "kit-a", runner)
    await ctx.add(rule, "kit-b", runner)
    await ctx.add(rule, "kit-c", runner)
    mark = len(ctx.rec.entries)
    tap = _LogTap(own)
    logging.getLogger().addHandler(tap)
    want: dict[Key, Object] | None = None
    loop = asyncio.get_running_loop()
    runner.restart = True  # the adapter may raise meanwhile: started again, as the hub would
    started = loop.time()
    try:
        await inject()
        if fault == "black-hole":
            await _cancel_in_hole(ctx, rule)
        await ctx.orch.change("kit-b")
        await ctx.orch.remove("kit-a")
        await ctx.orch.add("kit-d")
        if fault == "black-hole":
            # until the adapter gives its silent server up (and says so), then a while longer, so
            # that its reconnect lands in the hole too and must time out by itself
            try:
                async with asyncio.timeout(ctx.t.wait):
                    while not tap.records:
                        runner.poll(rule, "the adapter to notice that its server does not answer")
                        await asyncio.sleep(0.05)
            except TimeoutError:
                raise ConformanceError(
                    rule, f"no warning from the adapter within {ctx.t.wait}s of its server falling silent "
                          "(a read timeout on its streams? it must say why it reconnects)"
                ) from None  # fmt: skip
            await asyncio.sleep(ctx.t.broken)
        ctx.injected = int(await heal())
        if ctx.injected <= 0:
            raise ConformanceError(
                rule, f"{method}() injected nothing (heal() counted 0 hits): the check proves nothing"
            )
        want = await _fresh_state(ctx, rule)
        await ctx.wait(
            rule, f"the state after {fault} to equal the orchestrator's (a fresh adapter's Snapshot)",
            lambda: ctx.rec.view == want, runner,
        )  # fmt: skip
        ctx.converge_seconds = loop.time() - started
    except ConformanceError as exc:
        if "timed out" in str(exc) and want is not None:
            msg = str(exc).removeprefix(f"[{exc.rule}] ")
            raise ConformanceError(exc.rule, f"{msg}\nversus a fresh adapter: {_diff(want, ctx.rec.view)}") from None
        raise
    finally:
        logging.getLogger().removeHandler(tap)
    await asyncio.sleep(ctx.t.quiet)
    runner.poll(rule, "the adapter to go on after the fault")
    assert want is not None
    if ctx.rec.view != want:
        raise ConformanceError(
            rule, f"after {fault} the state moved away from the orchestrator's: {_diff(want, ctx.rec.view)}"
        )
    _no_redundant(ctx, rule, f" after {fault}", since=mark)
    runner.restart = False
    await ctx.add(rule, "kit-e", runner)  # and it watches again
    await runner.cancel()


# ---------------------------------------------------------------- the offline normalizer
class IOBlocked(OSError):
    """Raised inside a normalizer that tries I/O while the kit checks it."""


_io_lock = threading.Lock()
_io_log: list[str] | None = None
_io_thread = 0
_hook_installed = False
_CODE_SUFFIXES = (".py", ".pyc", ".so", ".pyd", ".pth")
_IO_EVENTS = frozenset(
    {
        "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname",
        "socket.gethostbyaddr", "socket.sendto", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
        "os.spawn", "os.fork", "os.forkpty", "os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.truncate",
        "os.chmod", "os.chown", "os.utime", "os.symlink", "os.link", "os.listdir", "os.scandir", "shutil.copyfile",
        "shutil.rmtree", "shutil.move", "sqlite3.connect", "urllib.Request",
    }
)  # fmt: skip


def _audit(event: str, args: tuple[Any, ...]) -> None:
    log = _io_log
    if log is None or threading.get_ident() != _io_thread:
        return
    if event == "open":
        path = args[0] if args else None
        if isinstance(path, str | bytes | os.PathLike) and os.fsdecode(path).endswith(_CODE_SUFFIXES):
            return  # the import system
        log.append(f"open({path!r}, {args[1] if len(args) > 1 else ''!r})")
        raise IOBlocked(f"the conformance kit refuses I/O in a normalizer: open({path!r})")
    if event in _IO_EVENTS:
        log.append(f"{event}{tuple(a if isinstance(a, str | int) else type(a).__name__ for a in args)!r}")
        raise IOBlocked(f"the conformance kit refuses I/O in a normalizer: {event}")


@contextlib.contextmanager
def _no_io() -> Iterator[list[str]]:
    global _io_log, _io_thread, _hook_installed
    with _io_lock:
        if not _hook_installed:
            sys.addaudithook(_audit)  # cannot be removed; idle (one global read) outside _no_io
            _hook_installed = True
        log: list[str] = []
        _io_thread, _io_log = threading.get_ident(), log
        try:
            yield log
        finally:
            _io_log = None


Normalizer = Callable[..., Iterable[Any]]


def _load_normalizer(name: str) -> tuple[Normalizer, str]:
    matches = [ep for ep in entry_points(group=NORMALIZER_GROUP) if ep.name == name]
    if not matches:
        raise ConformanceError("normalizer", f"no {NORMALIZER_GROUP} entry point named {name!r}")
    fn: Normalizer = matches[0].load()
    return fn, matches[0].value


def _accepts_on_skip(fn: Normalizer) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "on_skip" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _run_normalizer(fn: Normalizer, text: str, source: Source) -> list[str]:
    """The normalizer's output for ``text`` as comparable strings (objects and
    Deletes as canonical JSON, Invalids as reason + message, skip reports)."""
    out: list[str] = []
    kwargs: dict[str, Any] = {}
    if _accepts_on_skip(fn):
        kwargs["on_skip"] = lambda reason, message: out.append(f"skipped {reason}: {message}")
    for item in fn(text, source, **kwargs):
        if isinstance(item, Invalid):
            out.append(f"invalid {item.reason}: {item}")
        else:
            out.append(encode(item).decode())
    return out


def _check_items(fn: Normalizer, text: str, source: Source, what: str) -> None:
    kwargs: dict[str, Any] = {"on_skip": lambda reason, message: None} if _accepts_on_skip(fn) else {}
    for item in fn(text, source, **kwargs):
        if isinstance(item, Invalid):
            if not item.reason:
                raise ConformanceError("normalizer", f"{what}: an Invalid without a reason")
            continue
        if isinstance(item, Delete):
            if item.source != source:
                raise ConformanceError(
                    "normalizer", f"{what}: {_describe(item)} has source {item.source}, not {source}"
                )
            continue
        try:
            k = kind_of(item)
        except Exception:  # noqa: BLE001 - anything that is not a canonical object
            raise ConformanceError(
                "normalizer", f"{what}: yielded {type(item).__name__}, not a canonical object, Delete or Invalid"
            ) from None
        if item.source != source:
            raise ConformanceError("normalizer", f"{what}: {k} {item.key} has source {item.source}, not {source}")
        try:
            validate(item)
        except Invalid as exc:
            raise ConformanceError("normalizer", f"{what}: {k} {item.key} is not valid: {exc}") from None


def check_normalizer(
    normalizer: str | Normalizer, samples: list[str], source: Source, *, subprocess_check: bool = True
) -> None:
    """The offline normalizer (an ``ovn_hub.normalizers`` entry-point name, or the
    function) is pure: same text → same output, no I/O, no hash-order dependence."""
    rule = "normalizer"
    if isinstance(normalizer, str):
        fn, ref = _load_normalizer(normalizer)
    else:
        fn, ref = normalizer, f"{normalizer.__module__}:{normalizer.__qualname__}"
    if not samples:
        raise ConformanceError(rule, "no sample inputs to normalize (give the normalizer_inputs fixture real payloads)")
    first: list[list[str]] = []
    for i, text in enumerate(samples):
        what = f"sample {i}"
        try:
            first.append(_run_normalizer(fn, text, source))  # also imports what it needs lazily
            _check_items(fn, text, source, what)
        except ConformanceError:
            raise
        except Exception as exc:  # noqa: BLE001 - a normalizer must turn bad input into Invalid
            raise ConformanceError(
                rule, f"{what}: raised {type(exc).__name__}: {exc} (bad input must be yielded as Invalid)"
            ) from None
    for i, text in enumerate(samples):
        with _no_io() as attempts:
            try:
                again = _run_normalizer(fn, text, source)
            except Exception as exc:  # noqa: BLE001
                again = [f"raised {type(exc).__name__}: {exc}"]
        if attempts:
            raise ConformanceError(rule, f"sample {i}: the normalizer did I/O: {'; '.join(attempts[:3])}")
        if again != first[i]:
            raise ConformanceError(
                rule, f"sample {i}: the same text gave different output the second time: {_first_diff(first[i], again)}"
            )
    if subprocess_check:
        other = _in_subprocess(ref, samples, source)
        for i, (a, b) in enumerate(zip(first, other, strict=True)):
            if a != b:
                raise ConformanceError(
                    rule, f"sample {i}: another interpreter (hash seed) gave different output: {_first_diff(a, b)}"
                )


def _first_diff(a: list[str], b: list[str]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"item {i}: {x[:160]!r} vs {y[:160]!r}"
    return f"{len(a)} items vs {len(b)}"


def _in_subprocess(ref: str, samples: list[str], source: Source) -> list[list[str]]:
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = "1" if env.get("PYTHONHASHSEED") != "1" else "2"
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if isinstance(p, str) and p)
    payload = json.dumps({"ref": ref, "samples": samples, "source": [source.orchestrator, source.cluster]})
    res = subprocess.run(
        [sys.executable, "-c", "import testkit.conformance as k; k._subprocess_main()"],
        input=payload,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    if res.returncode != 0:
        raise ConformanceError(
            "normalizer", f"the normalizer failed in a fresh interpreter: {res.stderr.strip()[-800:]}"
        )
    out: list[list[str]] = json.loads(res.stdout)
    return out


def _subprocess_main() -> None:
    import importlib

    args = json.loads(sys.stdin.read())
    mod, _, attr = args["ref"].partition(":")
    fn: Any = importlib.import_module(mod)
    for part in attr.split("."):
        fn = getattr(fn, part)
    source = Source(*args["source"])
    print(json.dumps([_run_normalizer(fn, text, source) for text in args["samples"]]))


# ---------------------------------------------------------------- running a check
Check = Callable[[_Ctx], Awaitable[None]]


@dataclass(frozen=True)
class CheckReport:
    """What a passed check saw: run() calls, how the ones that raised ended
    (connection losses on the raise path), events emitted, wall time."""

    runs: int
    raises: tuple[str, ...]
    events: int
    seconds: float
    #: check_fault only: the fault, how often it hit, seconds from injection to converged state.
    fault: str = ""
    injected: int = 0
    converge_seconds: float = 0.0

    def record(self) -> dict[str, Any]:
        """A machine-readable line for a fault-suite report."""
        return {"fault": self.fault, "injected": self.injected, "converged": True,
                "converge_seconds": round(self.converge_seconds, 3), "runs": self.runs, "events": self.events}  # fmt: skip


def run_check(
    check: Check, factory: AdapterFactory, orchestrator: FakeOrchestrator, timeouts: Timeouts | None = None
) -> CheckReport:
    """Run one check in a fresh event loop: start the orchestrator, run the
    check, cancel what is left, stop the orchestrator (also on failure)."""
    t = timeouts or Timeouts()
    started = time.monotonic()
    report: list[CheckReport] = []

    async def main() -> None:
        tasks = _Tasks()
        tasks.install(asyncio.get_running_loop())
        await orchestrator.start()
        ctx: _Ctx | None = None
        try:
            ctx = _Ctx(factory, orchestrator, t, tasks)
            await check(ctx)
            raises = tuple(r for runner in ctx.runners for r in runner.raises)
            runs = sum(1 + len(runner.raises) for runner in ctx.runners)
            report.append(
                CheckReport(
                    runs, raises, len(ctx.rec.entries), time.monotonic() - started,
                    ctx.fault, ctx.injected, ctx.converge_seconds,
                )
            )  # fmt: skip
        finally:
            try:
                if ctx is not None:
                    for runner in ctx.runners:
                        runner.run.task.cancel()
                    pending = [r.run.task for r in ctx.runners if not r.run.task.done()]
                    if pending:
                        await asyncio.wait(pending, timeout=t.cancel)
                    for runner in ctx.runners:
                        task = runner.run.task
                        if task.done() and not task.cancelled():
                            task.exception()  # retrieved
                    for task in tasks.pending():
                        task.cancel()
            finally:
                await orchestrator.stop()

    asyncio.run(main())
    return report[0]


# ---------------------------------------------------------------- pytest
class AdapterConformance:
    """Subclass as ``class TestMyAdapterConformance(AdapterConformance)`` and
    provide the ``orchestrator`` fixture (an unstarted :class:`FakeOrchestrator`;
    the kit starts and stops it in each check's event loop).  Optional:

    * ``adapter_factory`` fixture: default the ``ovn_hub.adapters`` entry point
      named like the spec's ``type`` (override to tune backoffs for tests);
    * ``normalizer``: the ``ovn_hub.normalizers`` entry-point name (default:
      the spec's type), or ``None`` when the adapter has none - the test then
      checks that none is registered under its type;
    * ``normalizer_inputs`` fixture: real payload texts for the normalizer check.
    """

    normalizer: ClassVar[str | None] = ""  # "" = the adapter type
    #: The orchestrator faults (keys of :data:`FAULTS`) the fake injects: one test each.
    #: All by default - a fake that cannot inject one leaves it out, and says why.
    faults: ClassVar[tuple[str, ...]] = tuple(FAULTS)
    pytestmark: ClassVar[Any] = pytest.mark.conformance

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "orchestrator_fault" in metafunc.fixturenames:
            faults = list(getattr(metafunc.cls, "faults", ())) or [None]
            metafunc.parametrize("orchestrator_fault", faults, ids=[f or "none" for f in faults])

    @pytest.fixture
    def orchestrator(self) -> FakeOrchestrator:
        raise NotImplementedError("an AdapterConformance subclass provides the orchestrator fixture")

    @pytest.fixture
    def adapter_factory(self, orchestrator: FakeOrchestrator) -> AdapterFactory:
        return _LazyEntryPoint()

    @pytest.fixture
    def normalizer_inputs(self) -> list[str]:
        return []

    def test_snapshot_after_every_list(
        self, adapter_factory: AdapterFactory, orchestrator: FakeOrchestrator, conformance_timeouts: Timeouts
    ) -> None:
        run_check(check_snapshot, adapter_factory, orchestrator, conformance_timeouts)

    def test_unchanged_objects_emit_nothing(
        self, adapter_factory: AdapterFactory, orchestrator: FakeOrchestrator, conformance_timeouts: Timeouts
    ) -> None:
        run_check(check_noop, adapter_factory, orchestrator, conformance_timeouts)

    def test_bad_input_is_rejected_and_run_goes_on(
        self, adapter_factory: AdapterFactory, orchestrator: FakeOrchestrator, conformance_timeouts: Timeouts
    ) -> None:
        run_check(check_rejected, adapter_factory, orchestrator, conformance_timeouts)

    def test_cancellation_is_clean(
        self, adapter_factory: AdapterFactory, orchestrator: FakeOrchestrator, conformance_timeouts: Timeouts
    ) -> None:
        run_check(check_cancel, adapter_factory, orchestrator, conformance_timeouts)

    def test_relist_after_connection_loss(
        self, adapter_factory: AdapterFactory, orchestrator: FakeOrchestrator, conformance_timeouts: Timeouts
    ) -> None:
        run_check(check_relist, adapter_factory, orchestrator, conformance_timeouts)

    def test_orchestrator_fault_converges(
        self,
        adapter_factory: AdapterFactory,
        orchestrator: FakeOrchestrator,
        conformance_timeouts: Timeouts,
        orchestrator_fault: str | None,
        request: pytest.FixtureRequest,
    ) -> None:
        if orchestrator_fault is None:  # faults = (): the fake must not have hooks it does not use
            hooks = [m for m in FAULTS.values() if callable(getattr(orchestrator, m, None))]
            if hooks:
                raise ConformanceError("faults", f"the fake has {', '.join(hooks)}() but faults is empty")
            return
        report = run_check(functools.partial(check_fault, fault=orchestrator_fault), adapter_factory, orchestrator,
                           conformance_timeouts)  # fmt: skip
        # a user property (what record_property keeps, without its junit-xunit2 warning): the fault-suite report reads it
        request.node.user_properties.append(("orchestrator_fault", json.dumps(report.record())))

    def test_normalizer_is_pure_and_offline(self, orchestrator: FakeOrchestrator, normalizer_inputs: list[str]) -> None:
        spec = orchestrator.spec()
        name = spec.type if self.normalizer == "" else self.normalizer
        if name is None:
            registered = {ep.name for ep in entry_points(group=NORMALIZER_GROUP)}
            if spec.type in registered:
                raise ConformanceError(
                    "normalizer", f"{NORMALIZER_GROUP} has {spec.type!r}: set normalizer and give samples"
                )
            return
        check_normalizer(name, normalizer_inputs, spec.source)


class _LazyEntryPoint:
    """The default factory: the entry point named like ``spec.type``."""

    def __call__(self, spec: AdapterSpec) -> Adapter:
        return entry_point_factory(spec.type)(spec)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ovn-hub conformance")
    group.addoption(
        "--conformance-timeout",
        type=float,
        default=None,
        help="the conformance kit's longest wait for an expected event, seconds (default 15)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conformance: an OVN Hub adapter conformance check")


@pytest.fixture
def conformance_timeouts(request: pytest.FixtureRequest) -> Timeouts:
    wait = request.config.getoption("--conformance-timeout", default=None)
    return Timeouts(wait=wait) if wait else Timeouts()
