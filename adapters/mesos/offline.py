"""``hubctl normalize --from mesos``: Mesos and Marathon payloads from files → canonical.

The input is recognised by its shape:

* **operator API events** - one JSON object (``{"type": "TASK_UPDATED", …}``), a
  JSON array of them, or a RecordIO stream (``<length>\\n<event>…``, as the
  master's ``SUBSCRIBE`` body): read in order by the adapter's own
  :class:`~adapters.mesos.normalize.MesosState`, starting empty.  SUBSCRIBED
  gives every task endpoint of its state; TASK_ADDED / TASK_UPDATED an endpoint
  when the task's container and network are known (a TASK_UPDATED of a task the
  input never added is named by its id), a terminal state a ``Delete`` of each
  endpoint its status names; AGENT_* / FRAMEWORK_* the endpoints whose node or
  namespace they change;
* a **GET_STATE** or **GET_TASKS** response: like SUBSCRIBED;
* **Marathon events** - a JSON object with ``eventType``, or an SSE capture of
  ``/v2/events``: checked, but nothing canonical (they only invalidate);
* a **/v2/apps** response (``?embed=apps.tasks``, or ``/v2/apps/<id>``'s
  ``{"app": …}``): the VIP Services (named VIPs get addresses from 11.0.0.0/8,
  the adapter's default ``vip_cidr``); a **/v2/tasks** response: checked (tasks
  are only backends of their app's VIPs).

Bad input (not JSON, JSON with a trailing comma like two of the operator API
documentation's examples, a record that is not an event, a task whose endpoint
is invalid, broken RecordIO framing) is an :class:`Invalid` with a one-line
reason; what can still be read is.  Every valid input object that yields nothing
is reported to ``on_skip(reason, message)``: ``heartbeat``, ``no-container``
(the task's agent has not reported its container yet), ``no-network`` (host or
bridge networking: no named network), ``finished`` (a completed task),
``unchanged`` (an update that changes no endpoint), ``joined`` (an agent or a
framework event that changes no endpoint), ``invalidation`` (a Marathon event),
``marathon-task``, ``no-vip`` (an app without VIP labels), ``host-network`` (a
VIP on a host-networked port), ``empty``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from core.model import Delete, Invalid, Object, Source

from . import marathon as mt
from .normalize import TERMINAL, Change, Event, MesosState, Removed, TaskRec, decode_event
from .streams import FramingError, RecordIOReader, SSEReader

__all__ = ["normalize_text"]

OnSkip = Callable[[str, str], None]
_SSE_FIELDS = ("event:", "data:", ":", "id:", "retry:")
_DEFAULT_VIP_CIDR = "11.0.0.0/8"


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _why(t: TaskRec | None) -> tuple[str, str]:
    if t is None or not t.cid:
        what = f"task {t.tid}" if t is not None else "the task"
        return "no-container", f"{what}: its container is not known until its agent reports a status: no endpoint yet"
    return "no-network", f"task {t.tid}: no named network (host or bridge networking): no OVN endpoint"


class _Operator:
    """Operator events in input order, through one MesosState."""

    def __init__(self, source: Source, on_skip: OnSkip | None) -> None:
        self.state = MesosState(source, report_unknown=True)
        self.source = source
        self.on_skip = on_skip

    def skip(self, reason: str, message: str) -> None:
        if self.on_skip is not None:
            self.on_skip(reason, message)

    def _out(self, changes: list[Change]) -> Iterator[Object | Delete | Invalid]:
        for ch in changes:
            if isinstance(ch, Removed):
                yield Delete(source=self.source, kind="endpoint", key=ch.key)
            else:
                yield ch

    def event(self, ev: Event) -> Iterator[Object | Delete | Invalid]:
        if ev.type == "HEARTBEAT":
            self.skip("heartbeat", "HEARTBEAT: the master is alive, no object")
            return
        if ev.type in ("SUBSCRIBED", "GET_STATE", "GET_TASKS"):
            yield from self._out(self.state.apply(ev))
            yield from self.state.endpoints()
            with_eps = {k for eps in self.state.emitted.values() for k in eps}
            for t in self.state.tasks.values():
                if not any(k.endswith("/" + t.cid) for k in with_eps) or not t.cid:
                    self.skip(*_why(t))
            st = ev.get_state or (ev.subscribed.get_state if ev.subscribed else None)
            tasks = ev.get_tasks or (st.get_tasks if st is not None else None)
            for _ in tasks.completed_tasks if tasks is not None else ():
                self.skip("finished", f"{ev.type}: a completed task has no endpoint")
            return
        changes = self.state.apply(ev)
        if changes:
            yield from self._out(changes)
            return
        if ev.task_added is not None or ev.task_updated is not None:
            tid = ev.task_updated.status.task_id.value if ev.task_updated is not None else ""
            key = self.state.by_tid.get(tid) if tid else None
            task = self.state.tasks.get(key) if key else None
            if ev.task_added is not None and task is None:
                task = next(reversed(self.state.tasks.values()), None)
            if ev.task_updated is not None and (ev.task_updated.state or ev.task_updated.status.state) in TERMINAL:
                self.skip("finished", f"TASK_UPDATED {tid}: the task ended; its status names no endpoint to delete")
            elif task is not None and task.cid and self.state.emitted.get(task.cid):
                self.skip("unchanged", f"{ev.type} {task.tid}: no endpoint changes")
            else:
                self.skip(*_why(task))
            return
        self.skip("joined", f"{ev.type}: changes no endpoint of the input (agents name nodes, frameworks namespaces)")

    def record(self, data: bytes) -> Iterator[Object | Delete | Invalid]:
        try:
            ev = decode_event(data)
        except Invalid as exc:
            yield exc
            return
        yield from self.event(ev)


def _recordio(text: bytes, op: _Operator) -> Iterator[Object | Delete | Invalid]:
    reader = RecordIOReader()
    try:
        records = reader.feed(text)
    except FramingError as exc:
        yield Invalid("bad-framing", f"RecordIO: {exc}")
        return
    for rec in records:
        yield from op.record(rec)
    if reader.pending:
        yield Invalid("truncated", f"RecordIO: the stream ends inside a record ({reader.pending} bytes left over)")


def _marathon_events(items: list[tuple[str, str]], on_skip: OnSkip | None) -> Iterator[Invalid]:
    for event, data in items:
        try:
            ev = mt.decode_event(data)
        except Invalid as exc:
            yield Invalid(exc.reason, f"event {event[:40]}: {exc}")
            continue
        if on_skip is not None:
            on_skip("invalidation", f"Marathon {ev.eventType}: only an invalidation (the adapter relists /v2/apps)")


def _apps(body: bytes, source: Source, on_skip: OnSkip | None) -> Iterator[Object | Invalid]:
    try:
        apps, bad = mt.decode_apps(body)
    except Invalid as exc:
        yield exc
        return
    yield from bad
    svcs, worse = mt.services(apps, source, mt.VipAllocator(_DEFAULT_VIP_CIDR), on_skip=on_skip)
    yield from svcs
    yield from worse
    if on_skip is not None:
        for app in apps:
            if not mt.vip_ports(app.spec)[0] and not mt.vip_ports(app.spec)[1]:
                on_skip("no-vip", f"app {app.spec.id}: no VIP label (its tasks take namespace "
                                  f"{mt.group_namespace(app.spec.id)!r} and name {mt.app_name(app.spec.id)!r} in the adapter)")  # fmt: skip
    if not apps and on_skip is not None:
        on_skip("empty", "a /v2/apps response without apps")


def normalize_text(text: str, source: Source, *, on_skip: OnSkip | None = None) -> Iterator[Object | Delete | Invalid]:
    """Offline normalizer (entry point ``ovn_hub.normalizers``: ``mesos``); see the module docstring."""
    stripped = text.lstrip()
    data = text.encode("utf-8", errors="replace")
    if not stripped:
        if on_skip is not None:
            on_skip("empty", "no input")
        return
    if stripped[0].isdigit():
        yield from _recordio(data.lstrip(), _Operator(source, on_skip))
        return
    if stripped.startswith(_SSE_FIELDS):
        try:
            items = SSEReader().feed(data + b"\n\n")
        except FramingError as exc:
            yield Invalid("bad-framing", f"event stream: {exc}")
            return
        yield from _marathon_events(items, on_skip)
        return
    try:
        value: Any = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        yield Invalid("bad-json", f"not JSON: {_first_line(exc)}")
        return
    except RecursionError:
        yield Invalid("bad-json", "not JSON: nested too deeply")
        return
    op = _Operator(source, on_skip)
    for item in value if isinstance(value, list) else [value]:
        yield from _one(item, source, op, on_skip)


def _one(item: Any, source: Source, op: _Operator, on_skip: OnSkip | None) -> Iterator[Object | Delete | Invalid]:
    if not isinstance(item, dict):
        yield Invalid("not-object", f"input item is {type(item).__name__}, expected a JSON object")
        return
    body = msgspec.json.encode(item)
    if "type" in item:
        yield from op.record(body)
    elif "eventType" in item:
        yield from _marathon_events([(str(item.get("eventType")), body.decode())], on_skip)
    elif "apps" in item or "app" in item:
        yield from _apps(body, source, on_skip)
    elif "tasks" in item:
        try:
            tasks, bad = mt.decode_tasks(body)
        except Invalid as exc:
            yield exc
            return
        yield from bad
        for t in tasks:
            if on_skip is not None:
                on_skip("marathon-task", f"Marathon task {t.id}: a VIP backend of its app (give /v2/apps?embed=apps.tasks)")
        if not tasks and not bad and on_skip is not None:
            on_skip("empty", "a /v2/tasks response without tasks")
    else:
        keys = ", ".join(sorted(str(k) for k in item)[:6])
        yield Invalid("unknown-input", f"a JSON object with keys {keys or 'none'}: not an operator API event or "
                                       "response, a Marathon event, or a /v2/apps or /v2/tasks response")  # fmt: skip
