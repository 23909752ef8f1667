"""The conformance kit itself: a good in-memory adapter passes every check, and
each check fails on an adapter that breaks its rule (a kit that cannot fail
proves nothing).  No process, no socket: the orchestrator is a dict and queues."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import pytest

from core.adapter import Adapter, AdapterFactory, AdapterSpec, EventSink, ObjectCache
from core.model import Delete, Endpoint, Invalid, Rejected, Source, Upsert, validate, validate_ip
from testkit.conformance import (
    AdapterConformance,
    ConformanceError,
    FakeOrchestrator,
    Timeouts,
    check_cancel,
    check_fault,
    check_noop,
    check_normalizer,
    check_rejected,
    check_relist,
    check_snapshot,
    run_check,
)

SRC = Source("mem", "kit")
FAST = Timeouts(wait=2.0, quiet=0.05, broken=0.1, cancel=1.0)
CHECKS = {
    "snapshot": check_snapshot,
    "no-op": check_noop,
    "rejected": check_rejected,
    "cancel": check_cancel,
    "relist": check_relist,
}
FAULTS = ("cut-mid-record", "expire", "duplicate-reorder", "black-hole")
#: GoodAdapter: a watch quiet this long is probed (the orchestrator must answer within it too).
IDLE = 0.15


class Dropped(ConnectionError):
    pass


class MemoryOrchestrator:
    """A dict of raw objects ``{"name", "ip", "label", "rv"}``; watchers get
    (type, raw) tuples on queues; broken = connect() raises, watches end."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.watchers: list[asyncio.Queue[tuple[str, dict[str, Any]]]] = []
        self.broken = False
        self.rv = 0
        self.started = self.stopped = False
        self._n = 0
        # faults
        self.hits = 0
        self.cut = self.hole = self.duplicating = False
        self.held: tuple[str, dict[str, Any]] | None = None
        self.healed = asyncio.Event()

    # the protocol
    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def spec(self) -> AdapterSpec:
        return AdapterSpec(name="mem", type="mem", cluster="kit")

    async def add(self, name: str) -> None:
        self._n += 1
        self._put("ADDED", {"name": name, "ip": f"10.9.0.{self._n}", "label": "one"})

    async def change(self, name: str) -> None:
        self._put("MODIFIED", {**self.objects[name], "label": "two"})

    async def touch(self, name: str) -> None:
        self._put("MODIFIED", dict(self.objects[name]))  # only the resource version moves

    async def remove(self, name: str) -> None:
        self._put("DELETED", self.objects.pop(name))

    async def add_bad(self, name: str) -> None:
        self._put("ADDED", {"name": name, "ip": "10.9.0.300", "label": "bad"})

    async def break_connection(self) -> None:
        self.broken = True
        for q in self.watchers:
            q.put_nowait(("DROP", {}))
        self.watchers.clear()

    async def restore_connection(self) -> None:
        self.broken = False

    # what an adapter sees
    def connect(self) -> tuple[list[dict[str, Any]], asyncio.Queue[tuple[str, dict[str, Any]]]]:
        if self.broken:
            raise Dropped("connection refused")
        q: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.watchers.append(q)
        return [dict(o) for o in self.objects.values()], q

    async def answer(self) -> None:
        """A request's answer: never, while black-holed."""
        if self.hole:
            self.hits += 1
            await self.healed.wait()

    def _put(self, typ: str, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj["rv"] = self.rv
        if typ != "DELETED":
            self.objects[obj["name"]] = obj
        if self.hole:
            self.hits += 1  # the watches fell silent: nobody hears of it
            return
        if self.cut:
            self.cut = False
            self.hits += 1
            self._deliver("CUT", {})  # half a record: the watches break on it
            self.watchers.clear()
            return
        if not self.duplicating:
            self._deliver(typ, obj)
            return
        self.hits += 1
        held, self.held = self.held, (typ, dict(obj))
        if held is not None:
            pair = [held, (typ, obj)] if held[1]["name"] == obj["name"] else [(typ, obj), held]
            self.held = None
            for t, o in pair:
                self._deliver(t, o)
                self._deliver(t, o)

    def _deliver(self, typ: str, obj: dict[str, Any]) -> None:
        for q in self.watchers:
            q.put_nowait((typ, dict(obj)))

    # the faults (testkit.conformance.FaultyOrchestrator)
    async def cut_mid_record(self) -> None:
        self.cut = True

    async def expire(self) -> None:
        self.hits += len(self.watchers)  # no resume: every watch ends, a reconnect lists
        for q in self.watchers:
            q.put_nowait(("DROP", {}))
        self.watchers.clear()

    async def duplicate_and_reorder(self) -> None:
        self.duplicating = True

    async def black_hole(self) -> None:
        self.hole = True
        self.healed.clear()
        self.watchers.clear()  # silent from now on, and never again

    async def heal(self) -> int:
        self.hole = self.cut = self.duplicating = False
        self.healed.set()
        held, self.held = self.held, None
        if held is not None:
            self._deliver(*held)
            self._deliver(*held)
        return self.hits


def normalize(raw: dict[str, Any], source: Source) -> Endpoint:
    ep = Endpoint(
        source=source, uid=raw["name"], namespace="default", name=raw["name"], kind="container", network="mem",
        ips=(validate_ip(raw["ip"]),), labels={"l": raw["label"]},
    )  # fmt: skip
    validate(ep)
    return ep


class GoodAdapter:
    """Follows every rule (raises on a lost connection: the hub restarts it); a
    watch quiet for IDLE is probed, and an orchestrator that does not answer
    within IDLE is a lost connection (logged)."""

    read_timeout: float | None = IDLE

    def __init__(self, spec: AdapterSpec, orch: MemoryOrchestrator) -> None:
        self.orch = orch
        self.cache = ObjectCache(spec.source)
        self.log = spec.logger()

    async def _answer(self) -> None:
        try:
            async with asyncio.timeout(self.read_timeout):
                await self.orch.answer()
        except TimeoutError:
            self.log.warning("no answer for %gs; reconnecting", self.read_timeout)
            raise Dropped("no answer") from None

    async def _next(self, queue: asyncio.Queue[tuple[str, dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
        while True:
            try:
                async with asyncio.timeout(self.read_timeout):
                    return await queue.get()
            except TimeoutError:
                await self._answer()  # quiet: is it still there?

    async def run(self, sink: EventSink) -> None:
        await self._answer()
        raws, queue = self.orch.connect()
        objects = []
        for raw in raws:
            try:
                objects.append(normalize(raw, self.cache.source))
            except Invalid as exc:
                await sink.emit(Rejected(source=self.cache.source, reason=exc.reason, message=str(exc)))
        await sink.emit(self.cache.snapshot(list(objects)))
        await self.listed(sink)
        while True:
            typ, raw = await self._next(queue)
            await self.handle(typ, raw, sink)

    async def listed(self, sink: EventSink) -> None:
        """Called after each list's Snapshot."""

    async def handle(self, typ: str, raw: dict[str, Any], sink: EventSink) -> None:
        if typ in ("DROP", "CUT"):
            raise Dropped(f"watch ended ({typ})")
        if typ == "DELETED":
            ev: Any = self.cache.delete("endpoint", f"mem/{raw['name']}")
        else:
            try:
                ev = self.cache.upsert(normalize(raw, self.cache.source))
            except Invalid as exc:
                ev = Rejected(source=self.cache.source, reason=exc.reason, message=str(exc))
        if ev is not None:
            await sink.emit(ev)


# ---------------------------------------------------------------- broken adapters, one per rule
class UpsertsInsteadOfSnapshot(GoodAdapter):
    """Lists, then emits one Upsert per object and no Snapshot."""

    async def run(self, sink: EventSink) -> None:
        raws, queue = self.orch.connect()
        for raw in raws:
            ev = self.cache.upsert(normalize(raw, self.cache.source))
            if ev is not None:
                await sink.emit(ev)
        while True:
            typ, raw = await queue.get()
            await self.handle(typ, raw, sink)


class DeltasBeforeSnapshot(GoodAdapter):
    """Emits an Upsert per listed object, then the Snapshot."""

    async def run(self, sink: EventSink) -> None:
        raws, queue = self.orch.connect()
        for raw in raws:
            await sink.emit(Upsert(obj=normalize(raw, self.cache.source)))
        await sink.emit(self.cache.snapshot([normalize(r, self.cache.source) for r in raws]))
        while True:
            typ, raw = await queue.get()
            await self.handle(typ, raw, sink)


class EmitsEveryModification(GoodAdapter):
    """No no-op filter: every MODIFIED is an Upsert."""

    async def handle(self, typ: str, raw: dict[str, Any], sink: EventSink) -> None:
        if typ == "MODIFIED":
            ep = normalize(raw, self.cache.source)
            self.cache.objects[("endpoint", ep.key)] = ep
            await sink.emit(Upsert(obj=ep))
            return
        await super().handle(typ, raw, sink)


class RelistWithDeltas(GoodAdapter):
    """After a relist's Snapshot, an Upsert of every object again (unchanged ones too)."""

    lists = 0

    async def listed(self, sink: EventSink) -> None:
        self.lists += 1
        if self.lists > 1:
            for ep in self.cache.endpoints():
                await sink.emit(Upsert(obj=ep))


class RaisesOnBadInput(GoodAdapter):
    """Lets Invalid escape from run()."""

    async def handle(self, typ: str, raw: dict[str, Any], sink: EventSink) -> None:
        if typ == "ADDED":
            ev = self.cache.upsert(normalize(raw, self.cache.source))  # Invalid propagates
            if ev is not None:
                await sink.emit(ev)
            return
        await super().handle(typ, raw, sink)


class SilentOnBadInput(GoodAdapter):
    """Drops bad input without a Rejected."""

    async def handle(self, typ: str, raw: dict[str, Any], sink: EventSink) -> None:
        with contextlib.suppress(Invalid):
            normalize(raw, self.cache.source)
            await super().handle(typ, raw, sink)


class LeaksAHeartbeat(GoodAdapter):
    """Starts a background task and never cancels it."""

    async def run(self, sink: EventSink) -> None:
        asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="heartbeat")
        await super().run(sink)


class SwallowsCancellation(GoodAdapter):
    """Catches CancelledError (a bare ``except BaseException``) and returns."""

    async def run(self, sink: EventSink) -> None:
        try:
            await super().run(sink)
        except BaseException:  # noqa: BLE001 - the bug under test
            return


class ReconnectsWithoutRelist(GoodAdapter):
    """Reconnects by itself but goes on watching without listing again."""

    async def run(self, sink: EventSink) -> None:
        raws, queue = self.orch.connect()
        await sink.emit(self.cache.snapshot([normalize(r, self.cache.source) for r in raws]))
        while True:
            typ, raw = await queue.get()
            if typ == "DROP":
                while True:
                    await asyncio.sleep(0.02)
                    with contextlib.suppress(Dropped):
                        _, queue = self.orch.connect()
                        break
                continue
            await self.handle(typ, raw, sink)


class ListsOnlyOnce(GoodAdapter):
    """A run() started again on the same instance skips the list (and its Snapshot)."""

    did_list = False

    async def run(self, sink: EventSink) -> None:
        if self.did_list:
            _, queue = self.orch.connect()
            while True:
                typ, raw = await queue.get()
                await self.handle(typ, raw, sink)
        self.did_list = True
        await super().run(sink)


class NoReadTimeout(GoodAdapter):
    """Waits for its orchestrator forever (no read timeout)."""

    read_timeout = None


class NoNoopFilter(GoodAdapter):
    """Emits an Upsert for every event (a duplicate too) and a Delete for every DELETED."""

    async def handle(self, typ: str, raw: dict[str, Any], sink: EventSink) -> None:
        if typ in ("ADDED", "MODIFIED"):
            ep = normalize(raw, self.cache.source)
            self.cache.objects[("endpoint", ep.key)] = ep
            await sink.emit(Upsert(obj=ep))
            return
        if typ == "DELETED":
            self.cache.objects.pop(("endpoint", f"mem/{raw['name']}"), None)
            await sink.emit(Delete(source=self.cache.source, kind="endpoint", key=f"mem/{raw['name']}"))
            return
        await super().handle(typ, raw, sink)


class IgnoresCutRecords(GoodAdapter):
    """Skips a record it cannot read and goes on watching (what came with it is lost)."""

    async def handle(self, typ: str, raw: dict[str, Any], sink: EventSink) -> None:
        if typ != "CUT":
            await super().handle(typ, raw, sink)


def factory_of(cls: type[GoodAdapter], orch: MemoryOrchestrator) -> AdapterFactory:
    def factory(spec: AdapterSpec) -> Adapter:
        return cls(spec, orch)

    return factory


# ---------------------------------------------------------------- the kit passes a good adapter…
@pytest.mark.parametrize("rule", list(CHECKS))
def test_good_adapter_passes(rule: str) -> None:
    orch = MemoryOrchestrator()
    run_check(CHECKS[rule], factory_of(GoodAdapter, orch), orch, FAST)
    assert orch.started and orch.stopped


@pytest.mark.parametrize("fault", FAULTS)
def test_good_adapter_survives_faults(fault: str) -> None:
    orch = MemoryOrchestrator()
    report = run_check(functools.partial(check_fault, fault=fault), factory_of(GoodAdapter, orch), orch, FAST)
    assert report.fault == fault and report.injected > 0, report
    assert report.record()["converged"] is True


@pytest.mark.parametrize(
    ("cls", "fault", "words"),
    [
        (NoReadTimeout, "black-hole", "no warning from the adapter"),
        (NoNoopFilter, "duplicate-reorder", "redundant events after duplicate-reorder"),
        (IgnoresCutRecords, "cut-mid-record", "to equal the orchestrator's"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_fault_check_fails_broken_adapters(cls: type[GoodAdapter], fault: str, words: str) -> None:
    orch = MemoryOrchestrator()
    with pytest.raises(ConformanceError) as info:
        run_check(functools.partial(check_fault, fault=fault), factory_of(cls, orch), orch, FAST)
    assert info.value.rule == "faults", info.value
    assert words in str(info.value), info.value


def test_a_fault_hook_that_injects_nothing_fails() -> None:
    class Inert(MemoryOrchestrator):
        async def expire(self) -> None:
            pass  # forgets nothing

    orch = Inert()
    with pytest.raises(ConformanceError, match="injected nothing"):
        run_check(functools.partial(check_fault, fault="expire"), factory_of(GoodAdapter, orch), orch, FAST)


# ---------------------------------------------------------------- …and fails each broken one on its rule
@pytest.mark.parametrize(
    ("cls", "check", "rule", "words"),
    [
        (UpsertsInsteadOfSnapshot, check_snapshot, "snapshot", "waiting for the Snapshot of run 1's list"),
        (DeltasBeforeSnapshot, check_snapshot, "snapshot", "Upsert(endpoint mem/kit-a) before its first Snapshot"),
        (EmitsEveryModification, check_noop, "no-op", "after touch()"),
        (RelistWithDeltas, check_noop, "no-op", "in the relist of unchanged objects"),
        (RaisesOnBadInput, check_rejected, "rejected", "raised Invalid"),
        (SilentOnBadInput, check_rejected, "rejected", "waiting for a Rejected"),
        (LeaksAHeartbeat, check_cancel, "cancel", "heartbeat"),
        (SwallowsCancellation, check_cancel, "cancel", "swallowed the cancellation"),
        (ReconnectsWithoutRelist, check_relist, "relist", "a Snapshot after the connection came back"),
        (ListsOnlyOnce, check_relist, "relist", "a Snapshot after the connection came back"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_broken_adapter_fails(cls: type[GoodAdapter], check: Any, rule: str, words: str) -> None:
    orch = MemoryOrchestrator()
    with pytest.raises(ConformanceError) as info:
        run_check(check, factory_of(cls, orch), orch, FAST)
    assert info.value.rule == rule, info.value
    assert words in str(info.value), info.value
    assert orch.stopped, "the orchestrator is stopped even when a check fails"


def test_malformed_events_fail() -> None:
    class ForeignSource(GoodAdapter):
        def __init__(self, spec: AdapterSpec, orch: MemoryOrchestrator) -> None:
            super().__init__(AdapterSpec(name="x", type="other", cluster="kit"), orch)

    orch = MemoryOrchestrator()
    with pytest.raises(ConformanceError, match="is not the adapter's"):
        run_check(check_snapshot, factory_of(ForeignSource, orch), orch, FAST)


# ---------------------------------------------------------------- the normalizer check
def good_normalizer(text: str, source: Source) -> Iterator[Endpoint | Invalid]:
    for n, line in enumerate(text.splitlines()):
        name, _, ip = line.partition(" ")
        try:
            yield normalize({"name": name, "ip": ip, "label": "x"}, source)
        except Invalid as exc:
            yield Invalid(exc.reason, f"line {n}: {exc}")


_calls = [0]


def counting_normalizer(text: str, source: Source) -> Iterator[Endpoint | Invalid]:
    _calls[0] += 1
    for ep in good_normalizer(text, source):
        if isinstance(ep, Endpoint):
            yield Endpoint(**{**{f: getattr(ep, f) for f in ep.__struct_fields__}, "labels": {"call": str(_calls[0])}})


def reading_normalizer(text: str, source: Source) -> Iterator[Endpoint | Invalid]:
    with open("/etc/hostname") as fh:  # a node name from the machine: not offline
        host = fh.read().strip() or "h"
    for ep in good_normalizer(text, source):
        if isinstance(ep, Endpoint):
            yield Endpoint(**{**{f: getattr(ep, f) for f in ep.__struct_fields__}, "node": host[:60]})


def set_order_normalizer(text: str, source: Source) -> Iterator[Endpoint | Invalid]:
    names = {line.partition(" ")[0] for line in text.splitlines()}  # set iteration: hash-seed order
    for i, name in enumerate(names):
        yield normalize({"name": name, "ip": f"10.8.0.{i + 1}", "label": "x"}, source)


def raising_normalizer(text: str, source: Source) -> Iterator[Endpoint | Invalid]:
    yield from good_normalizer(text, source)
    raise KeyError("ip")


SAMPLES = [
    "a 10.0.0.1\nb 10.0.0.2\nbad 10.0.0.999",
    " ".join(f"n{i}" for i in range(3)) + "\n" + "\n".join(f"x{i} 10.1.0.{i + 1}" for i in range(40)),
]


def test_good_normalizer_passes() -> None:
    check_normalizer(good_normalizer, SAMPLES, SRC)


@pytest.mark.parametrize(
    ("fn", "words"),
    [
        (counting_normalizer, "different output the second time"),
        (reading_normalizer, "did I/O: open('/etc/hostname'"),
        (set_order_normalizer, "another interpreter"),
        (raising_normalizer, "raised KeyError"),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_impure_normalizer_fails(fn: Any, words: str) -> None:
    with pytest.raises(ConformanceError) as info:
        check_normalizer(fn, SAMPLES, SRC)
    assert info.value.rule == "normalizer"
    assert words in str(info.value), info.value


def test_normalizer_needs_samples_and_an_entry_point() -> None:
    with pytest.raises(ConformanceError, match="no sample inputs"):
        check_normalizer(good_normalizer, [], SRC)
    with pytest.raises(ConformanceError, match=r"no ovn_hub\.normalizers entry point named 'nope'"):
        check_normalizer("nope", SAMPLES, SRC)


# ---------------------------------------------------------------- the pytest interface
class TestMemoryAdapterThroughTheClass(AdapterConformance):
    """How a third-party adapter uses the kit (here with an in-memory orchestrator)."""

    normalizer = None  # "mem" registers no offline normalizer: the test checks exactly that

    @pytest.fixture
    def orchestrator(self) -> FakeOrchestrator:
        return MemoryOrchestrator()

    @pytest.fixture
    def adapter_factory(self, orchestrator: MemoryOrchestrator) -> AdapterFactory:
        return factory_of(GoodAdapter, orchestrator)

    @pytest.fixture
    def conformance_timeouts(self) -> Timeouts:
        return FAST


def test_the_plugin_is_registered(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("ovn_hub"), "pytest11 entry point ovn_hub = testkit.conformance"
    assert pytestconfig.getoption("--conformance-timeout") is None
