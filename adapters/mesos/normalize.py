"""Mesos operator API v1 payloads → canonical Endpoints: pure, no I/O.

The master's events are decoded into typed msgspec Structs (only the fields the
hub reads; unknown fields are skipped, a wrong type is an :class:`Invalid` naming
its path).  :class:`MesosState` holds what the stream has said - frameworks,
agents, tasks - and turns it into Endpoints; every method returns the
:data:`Change` list it causes.  The adapter, the offline normalizer and the
benchmark all drive the same class.

Field mapping (``shared/reference/protocols.md`` §3):

* **uid**: the task's container id - ``status.container_status.container_id``,
  the root of a nested one (tasks of a task group share their executor's
  container and its network namespace, and that is the container the
  ``network/cni`` isolator attaches: ``CNI_CONTAINERID``).  A task whose
  container is not known yet (no status from its agent) has no endpoint.
* **network**: ``NetworkInfo.name`` of the latest status's
  ``container_status.network_infos`` (an unnamed one takes the name of the
  TaskInfo's ``container.network_infos`` at the same index); one Endpoint per
  named network.  An attachment without a name (host or Docker bridge
  networking) is not an OVN network: no endpoint.
* **ips**: that NetworkInfo's ``ip_addresses[].ip_address`` (none yet: OVN's
  dynamic IPAM on the network's subnet);
* **name**: the task name (TASK_ADDED and the SUBSCRIBED state have it; a
  TASK_UPDATED does not: the cached one, else the task id);
* **namespace**: the framework's name (option ``namespace = "role"``: its role;
  ``*`` is ``default``); unknown framework: its id.  A Marathon app the task
  belongs to overrides it and the name (:meth:`MesosState.set_overrides`);
* **node**: the agent's hostname (from SUBSCRIBED / AGENT_ADDED; none once removed);
* **labels**: the task's labels, then ``NetworkInfo.labels`` (they win), and
  ``ovn-hub.io/workload=mesos:<container id>``: the Docker adapter's view of
  the same task (container ``mesos-<container id>``) yields to this one;
* **ports**: ``discovery.ports`` (number, protocol, and the name when it is an
  IANA service name);
* **state**: the task state without ``TASK_``, lower case; a terminal state
  (FINISHED, FAILED, KILLED, LOST, ERROR, DROPPED, GONE, GONE_BY_OPERATOR)
  deletes the task's endpoints;
* **mac**: the Docker executor's ``docker inspect``, base64 in ``status.data``
  (``NetworkSettings.Networks[<network>].MacAddress``), when present.

A task whose endpoint is invalid (a bad IP, network name…) is an
:class:`Invalid` and is treated as absent: the endpoints it had are deleted.
"""

from __future__ import annotations

import base64
import binascii
import collections
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import msgspec

from core.gcpause import gc_paused
from core.model import LABEL_WORKLOAD, Endpoint, Invalid, PortSpec, Source, validate, validate_mac

__all__ = [
    "EVENT_TYPES",
    "NON_TERMINAL",
    "TERMINAL",
    "Change",
    "Event",
    "GetState",
    "MesosState",
    "Removed",
    "decode_event",
    "decode_state",
    "namespace_of",
]

TERMINAL = frozenset({"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED",
                      "TASK_GONE", "TASK_GONE_BY_OPERATOR"})  # fmt: skip
NON_TERMINAL = frozenset({"TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_UNREACHABLE",
                          "TASK_UNKNOWN"})  # fmt: skip
EVENT_TYPES = frozenset({"SUBSCRIBED", "TASK_ADDED", "TASK_UPDATED", "AGENT_ADDED", "AGENT_REMOVED", "FRAMEWORK_ADDED",
                         "FRAMEWORK_UPDATED", "FRAMEWORK_REMOVED", "HEARTBEAT", "UNKNOWN"})  # fmt: skip
KIND = "task"
_PORT_NAME = re.compile(r"^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?!-))*(?<!-)$")
_PROTOCOLS = frozenset({"tcp", "udp", "sctp"})
#: a status.data larger than this is not read for a MAC (a docker inspect is a few KB)
_MAX_DATA = 1 << 20
#: task ids that ended recently (Marathon's VIP backends leave them out before Marathon says so)
_GONE_MEMORY = 4096


# ---------------------------------------------------------------- the wire (only what the hub reads)
class _S(msgspec.Struct, kw_only=True, gc=False):
    """Base: keyword-only fields; unknown fields skipped."""


class Value(_S):
    value: str


class Label(_S):
    key: str
    value: str = ""


class Labels(_S):
    labels: list[Label] = []


class IPAddress(_S):
    ip_address: str | None = None


class NetworkInfo(_S):
    name: str | None = None
    ip_addresses: list[IPAddress] = []
    labels: Labels | None = None


class ContainerID(_S):
    value: str
    parent: ContainerID | None = None


class ContainerStatus(_S):
    container_id: ContainerID | None = None
    network_infos: list[NetworkInfo] = []


class TaskStatus(_S):
    task_id: Value
    state: str = ""
    agent_id: Value | None = None
    container_status: ContainerStatus | None = None
    data: str | None = None


class DiscoveryPort(_S):
    number: int
    name: str | None = None
    protocol: str | None = None


class DiscoveryPorts(_S):
    ports: list[DiscoveryPort] = []


class DiscoveryInfo(_S):
    ports: DiscoveryPorts | None = None


class ContainerInfo(_S):
    network_infos: list[NetworkInfo] = []


class Task(_S):
    task_id: Value
    name: str = ""
    framework_id: Value | None = None
    agent_id: Value | None = None
    state: str = ""
    statuses: list[TaskStatus] = []
    labels: Labels | None = None
    discovery: DiscoveryInfo | None = None
    container: ContainerInfo | None = None


class FrameworkInfo(_S):
    id: Value | None = None
    name: str = ""
    role: str | None = None
    roles: list[str] = []


class Framework(_S):
    framework_info: FrameworkInfo


class AgentInfo(_S):
    id: Value | None = None
    hostname: str = ""


class Agent(_S):
    agent_info: AgentInfo


class GetTasks(_S):
    """Task lists as raw JSON: each is decoded alone, so one bad task is one Invalid."""

    tasks: list[msgspec.Raw] = []
    pending_tasks: list[msgspec.Raw] = []
    unreachable_tasks: list[msgspec.Raw] = []
    orphan_tasks: list[msgspec.Raw] = []
    completed_tasks: list[msgspec.Raw] = []


class GetFrameworks(_S):
    frameworks: list[msgspec.Raw] = []
    completed_frameworks: list[msgspec.Raw] = []


class GetAgents(_S):
    agents: list[msgspec.Raw] = []
    recovered_agents: list[msgspec.Raw] = []


class GetState(_S):
    get_tasks: GetTasks | None = None
    get_frameworks: GetFrameworks | None = None
    get_agents: GetAgents | None = None


class Subscribed(_S):
    get_state: GetState | None = None
    heartbeat_interval_seconds: float | None = None


class TaskAdded(_S):
    task: msgspec.Raw


class TaskUpdated(_S):
    framework_id: Value
    status: TaskStatus
    state: str = ""


class AgentAdded(_S):
    agent: msgspec.Raw


class AgentRemoved(_S):
    agent_id: Value


class FrameworkEvent(_S):
    framework: msgspec.Raw


class FrameworkRemoved(_S):
    framework_info: FrameworkInfo


class Event(_S):
    type: str
    subscribed: Subscribed | None = None
    task_added: TaskAdded | None = None
    task_updated: TaskUpdated | None = None
    agent_added: AgentAdded | None = None
    agent_removed: AgentRemoved | None = None
    framework_added: FrameworkEvent | None = None
    framework_updated: FrameworkEvent | None = None
    framework_removed: FrameworkRemoved | None = None
    get_state: GetState | None = None  # a GET_STATE response (offline input)
    get_tasks: GetTasks | None = None  # a GET_TASKS response


class _Ids(_S):
    """The ids of a task whose full decode failed (to drop what it had)."""

    task_id: Value | None = None
    framework_id: Value | None = None


_event_decoder = msgspec.json.Decoder(Event)
_task_decoder = msgspec.json.Decoder(Task)
_framework_decoder = msgspec.json.Decoder(Framework)
_agent_decoder = msgspec.json.Decoder(Agent)
_state_decoder = msgspec.json.Decoder(GetState)
_ids_decoder = msgspec.json.Decoder(_Ids)


def _decode(decoder: msgspec.json.Decoder[Any], data: bytes | msgspec.Raw, what: str) -> Any:
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise Invalid("bad-field", f"{what}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise Invalid("bad-json", f"{what} is not JSON: {exc}") from None
    except RecursionError:
        raise Invalid("bad-json", f"{what} is nested too deeply") from None


def decode_event(record: bytes) -> Event:
    """One operator API event (a RecordIO record, or a call's JSON response); raises :class:`Invalid`."""
    ev: Event = _decode(_event_decoder, record, "event")
    if ev.type not in EVENT_TYPES and ev.type not in ("GET_STATE", "GET_TASKS"):
        raise Invalid("unknown-event", f"event type {ev.type[:60]!r} is not an operator API event")
    field = ev.type.lower()
    if ev.type not in ("HEARTBEAT", "UNKNOWN") and getattr(ev, field, None) is None:
        raise Invalid("missing-field", f"{ev.type} event has no {field}")
    return ev


def decode_state(data: bytes) -> GetState:
    """A bare ``get_state`` object; raises :class:`Invalid`."""
    st: GetState = _decode(_state_decoder, data, "get_state")
    return st


# ---------------------------------------------------------------- canonical pieces
def namespace_of(framework: FrameworkInfo | None, fid: str, by: str = "framework") -> str:
    """The namespace of a framework's tasks: its name (``by="role"``: its role; ``*`` is ``default``)."""
    if framework is None:
        return fid
    if by == "role":
        role = framework.roles[0] if framework.roles else (framework.role or "*")
        return "default" if role == "*" else role
    return framework.name or fid


def _labels(labels: Labels | None) -> dict[str, str]:
    return {lab.key: lab.value for lab in labels.labels} if labels is not None and labels.labels else {}


def _ports(discovery: DiscoveryInfo | None) -> tuple[PortSpec, ...]:
    if discovery is None or discovery.ports is None:
        return ()
    out: dict[tuple[int, str], PortSpec] = {}
    for p in discovery.ports.ports:
        proto = (p.protocol or "tcp").lower()
        if proto not in _PROTOCOLS:
            raise Invalid("bad-port", f"discovery port {p.number} protocol {proto[:20]!r} is not tcp, udp or sctp")
        name = (p.name or "").lower()
        out.setdefault((p.number, proto), PortSpec(port=p.number, protocol=proto, name=name if _PORT_NAME.match(name) else ""))
    return tuple(out.values())


def _root(cid: ContainerID) -> str:
    while cid.parent is not None:
        cid = cid.parent
    return cid.value


class _DockerNet(_S):
    MacAddress: str | None = None


class _DockerSettings(_S):
    MacAddress: str | None = None
    Networks: dict[str, _DockerNet] | None = None


class _DockerInspect(_S):
    """The part of ``docker inspect`` that holds MACs (the rest is skipped by the decoder)."""

    NetworkSettings: _DockerSettings | None = None


_inspect_decoder = msgspec.json.Decoder(list[_DockerInspect] | _DockerInspect)


def _mac_of(data: str, networks: Iterable[str]) -> dict[str, str]:
    """MACs by network from the Docker executor's base64 ``docker inspect`` (``{}``: none or not an inspect)."""
    if len(data) > _MAX_DATA:
        return {}
    try:
        inspect = _inspect_decoder.decode(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError, msgspec.DecodeError, RecursionError):  # ValidationError is a ValueError
        return {}
    if isinstance(inspect, list):
        if not inspect:
            return {}
        inspect = inspect[0]
    settings = inspect.NetworkSettings
    if settings is None:
        return {}
    out: dict[str, str] = {}
    nets = settings.Networks or {}
    for name in networks:
        att = nets.get(name)
        if att is not None and att.MacAddress:
            try:
                out[name] = validate_mac(att.MacAddress)
            except Invalid:
                continue
    if not out and settings.MacAddress:
        try:
            out[""] = validate_mac(settings.MacAddress)
        except Invalid:
            pass
    return out


Attachment = tuple[str, tuple[str, ...], dict[str, str]]  # (network, ips, NetworkInfo labels)


class TaskRec:
    """What the stream has said about one live task."""

    __slots__ = ("agent", "atts", "cid", "framework", "indexed", "key", "labels", "macs", "name", "nis", "ports",
                 "requested", "state", "tid")  # fmt: skip

    def __init__(self, key: str, tid: str, framework: str) -> None:
        self.key = key
        self.tid = tid
        self.framework = framework
        self.agent = ""
        self.name = ""
        self.state = "TASK_STAGING"
        self.labels: dict[str, str] = {}
        self.ports: tuple[PortSpec, ...] = ()
        self.requested: tuple[tuple[str, dict[str, str]], ...] = ()  # TaskInfo.container.network_infos
        self.cid = ""
        self.atts: tuple[Attachment, ...] = ()  # from the latest container status
        self.nis: list[NetworkInfo] = []  # ... made of these
        self.macs: dict[str, str] = {}
        #: (agent, container) as the state's indexes hold them
        self.indexed: tuple[str, str] | None = None

    def set_status(self, status: TaskStatus) -> None:
        if status.agent_id is not None and status.agent_id.value:
            self.agent = status.agent_id.value
        cs = status.container_status
        if cs is not None:
            if cs.container_id is not None:
                self.cid = _root(cs.container_id)
            if cs.network_infos and cs.network_infos != self.nis:
                self.nis = cs.network_infos
                atts = []
                for i, ni in enumerate(cs.network_infos):
                    name = ni.name or (self.requested[i][0] if i < len(self.requested) else "")
                    ips = tuple(ip.ip_address for ip in ni.ip_addresses if ip.ip_address)
                    atts.append((name, ips, _labels(ni.labels)))
                self.atts = tuple(atts)
        if status.data and not self.macs:
            self.macs = _mac_of(status.data, [a[0] for a in self.atts if a[0]])

    def attachments(self) -> list[Attachment]:
        """Named networks, from the latest status (else the ones the TaskInfo asked for: no IP yet)."""
        if self.atts:
            return [a for a in self.atts if a[0]]
        return [(name, (), labels) for name, labels in self.requested if name]


class Removed(msgspec.Struct, frozen=True, gc=False):
    """An endpoint (by key) that no longer exists."""

    key: str


#: What a state change causes: an endpoint to upsert, one removed, or a rejection.
Change = Endpoint | Removed | Invalid


class MesosState:
    """Frameworks, agents and tasks as the operator stream describes them, and their Endpoints."""

    def __init__(self, source: Source, *, namespace_by: Literal["framework", "role"] = "framework",
                 report_unknown: bool = False) -> None:  # fmt: skip
        self.source = source
        self.namespace_by = namespace_by
        #: offline: a terminal update of a task never seen still says which endpoints are gone
        self.report_unknown = report_unknown
        self.frameworks: dict[str, FrameworkInfo] = {}
        self.agents: dict[str, str] = {}  # agent id → hostname
        self.tasks: dict[str, TaskRec] = {}  # "<framework id>/<task id>" → task
        self.by_tid: dict[str, str] = {}  # task id → key (Marathon knows tasks by id only)
        self._containers: dict[str, set[str]] = {}  # container id → task keys
        self._by_agent: dict[str, set[str]] = {}
        self._by_framework: dict[str, set[str]] = {}
        #: the endpoints of each container, as last computed
        self.emitted: dict[str, dict[str, Endpoint]] = {}
        #: Marathon: task id → (namespace, name) of its app
        self.overrides: dict[str, tuple[str, str]] = {}
        #: task ids that reached a terminal state lately
        self.gone: collections.OrderedDict[str, None] = collections.OrderedDict()

    # ------------------------------------------------------------ reads
    def endpoints(self) -> list[Endpoint]:
        return [ep for eps in self.emitted.values() for ep in eps.values()]

    def task_ips(self, tid: str) -> tuple[str, ...]:
        key = self.by_tid.get(tid)
        t = self.tasks.get(key) if key else None
        return tuple(ip for a in t.attachments() for ip in a[1]) if t is not None else ()

    def is_gone(self, tid: str) -> bool:
        return tid in self.gone

    # ------------------------------------------------------------ events
    def apply(self, ev: Event) -> list[Change]:
        """One decoded event (SUBSCRIBED replaces everything: see :meth:`subscribed`)."""
        t = ev.type
        if t == "TASK_UPDATED" and ev.task_updated is not None:
            return self.task_updated(ev.task_updated)
        if t == "TASK_ADDED" and ev.task_added is not None:
            return self.task_added(ev.task_added.task)
        if t == "SUBSCRIBED" and ev.subscribed is not None:
            return [*self.subscribed(ev.subscribed.get_state or GetState())]
        if t in ("GET_STATE", "GET_TASKS"):
            return [*self.subscribed(ev.get_state or GetState(get_tasks=ev.get_tasks))]
        if t == "AGENT_ADDED" and ev.agent_added is not None:
            return self.agent_added(ev.agent_added.agent)
        if t == "AGENT_REMOVED" and ev.agent_removed is not None:
            return self.agent_removed(ev.agent_removed.agent_id.value)
        if t in ("FRAMEWORK_ADDED", "FRAMEWORK_UPDATED"):
            fe = ev.framework_added or ev.framework_updated
            return self.framework_added(fe.framework) if fe is not None else []
        if t == "FRAMEWORK_REMOVED" and ev.framework_removed is not None:
            return self.framework_removed(ev.framework_removed.framework_info)
        return []  # HEARTBEAT, UNKNOWN

    def subscribed(self, state: GetState | Mapping[str, Any]) -> list[Invalid]:
        """Replace everything with a ``get_state``; the endpoints are then :meth:`endpoints`.
        Returns only the Invalids (a bad task, agent or framework is left out)."""
        if not isinstance(state, GetState):
            state = decode_state(msgspec.json.encode(state))
        with gc_paused():  # tens of thousands of acyclic objects: the cyclic GC would run for nothing
            return self._subscribed(state)

    def _subscribed(self, state: GetState) -> list[Invalid]:
        bad: list[Invalid] = []
        self.frameworks.clear()
        self.agents.clear()
        self.tasks.clear()
        self.by_tid.clear()
        self._containers.clear()
        self._by_agent.clear()
        self._by_framework.clear()
        self.emitted.clear()
        fw = state.get_frameworks or GetFrameworks()
        for raw in (*fw.completed_frameworks, *fw.frameworks):
            try:
                info = _decode(_framework_decoder, raw, "framework").framework_info
                if info.id is not None:
                    self.frameworks[info.id.value] = info
            except Invalid as exc:
                bad.append(exc)
        ag = state.get_agents or GetAgents()
        for raw in (*ag.recovered_agents, *ag.agents):
            try:
                info = _decode(_agent_decoder, raw, "agent").agent_info
                if info.id is not None:
                    self.agents[info.id.value] = info.hostname
            except Invalid as exc:
                bad.append(exc)
        tk = state.get_tasks or GetTasks()
        for raw in (*tk.pending_tasks, *tk.orphan_tasks, *tk.unreachable_tasks, *tk.tasks):
            for ch in self.task_added(raw, flush=False):
                if isinstance(ch, Invalid):
                    bad.append(ch)
        for cid in list(self._containers):
            for ch in self._flush_container(cid):
                if isinstance(ch, Invalid):
                    bad.append(ch)
        return bad

    def task_added(self, raw: msgspec.Raw | bytes | Task, *, flush: bool = True) -> list[Change]:
        if isinstance(raw, Task):
            task = raw
        else:
            try:
                task = _decode(_task_decoder, raw, "task")
            except Invalid as exc:
                return [*self._drop_bad(raw), exc]
        fid = task.framework_id.value if task.framework_id is not None else ""
        key = f"{fid}/{task.task_id.value}"
        try:
            _check_state(task.state or "TASK_STAGING", f"task {task.task_id.value}")
            if task.state in TERMINAL:
                return self._remove(key, task.task_id.value)
            t = self.tasks.get(key) or TaskRec(key, task.task_id.value, fid)
            t.name = task.name or t.name
            t.state = task.state or t.state
            if task.agent_id is not None and task.agent_id.value:
                t.agent = task.agent_id.value
            t.labels = _labels(task.labels)
            t.ports = _ports(task.discovery)
            if task.container is not None:
                t.requested = tuple((ni.name or "", _labels(ni.labels)) for ni in task.container.network_infos)
            for st in task.statuses:  # chronological: the latest container status wins
                t.set_status(st)
        except Invalid as exc:
            return [*self._remove(key, task.task_id.value, gone=False), Invalid(exc.reason, f"task {task.task_id.value}: {exc}")]
        return self._store(t, flush)

    def task_updated(self, upd: TaskUpdated) -> list[Change]:
        st = upd.status
        tid = st.task_id.value
        key = f"{upd.framework_id.value}/{tid}"
        state = upd.state or st.state
        try:
            _check_state(state, f"task {tid}")
        except Invalid as exc:
            return [*self._remove(key, tid, gone=False), exc]
        if state in TERMINAL:
            if key not in self.tasks and self.report_unknown and st.container_status is not None:
                seen = TaskRec(key, tid, upd.framework_id.value)
                seen.set_status(st)
                return [Removed(f"{name}/{seen.cid}") for name, _ips, _l in seen.attachments() if seen.cid]
            return self._remove(key, tid)
        t = self.tasks.get(key)
        if t is None:
            t = TaskRec(key, tid, upd.framework_id.value)
        before = (t.state, t.cid, t.atts, t.agent, len(t.macs))
        t.state = state
        t.set_status(st)
        if key in self.tasks:
            after = (t.state, t.cid, t.atts, t.agent, len(t.macs))
            if before == after:
                return []  # a status that changes nothing the endpoint holds (a health check, a message)
            if before[1:] == after[1:] and t.cid and self._containers.get(t.cid) == {key}:
                return self._restate(t)  # STARTING → RUNNING → KILLING: only the state moves
        return self._store(t, True)

    def _restate(self, t: TaskRec) -> list[Change]:
        """The endpoints of a task alone in its container, with its new state (a known one:
        the rest of each endpoint was validated when it was made)."""
        state = t.state.removeprefix("TASK_").lower()
        eps = self.emitted.get(t.cid)
        if not eps:
            return self._flush_container(t.cid)
        new = {k: msgspec.structs.replace(ep, state=state) for k, ep in eps.items()}
        self.emitted[t.cid] = new
        return list(new.values())

    def agent_added(self, raw: msgspec.Raw | bytes) -> list[Change]:
        try:
            info = _decode(_agent_decoder, raw, "agent").agent_info
        except Invalid as exc:
            return [exc]
        if info.id is None:
            return [Invalid("missing-field", "agent_info.id is missing")]
        aid = info.id.value
        if self.agents.get(aid) == info.hostname:
            return []
        self.agents[aid] = info.hostname
        return self._flush_tasks(self._by_agent.get(aid, ()))

    def agent_removed(self, aid: str) -> list[Change]:
        if self.agents.pop(aid, None) is None:
            return []
        return self._flush_tasks(self._by_agent.get(aid, ()))

    def framework_added(self, raw: msgspec.Raw | bytes) -> list[Change]:
        try:
            info = _decode(_framework_decoder, raw, "framework").framework_info
        except Invalid as exc:
            return [exc]
        if info.id is None:
            return [Invalid("missing-field", "framework_info.id is missing")]
        fid = info.id.value
        old = self.frameworks.get(fid)
        self.frameworks[fid] = info
        if old is not None and namespace_of(old, fid, self.namespace_by) == namespace_of(info, fid, self.namespace_by):
            return []
        return self._flush_tasks(self._by_framework.get(fid, ()))

    def framework_removed(self, info: FrameworkInfo) -> list[Change]:
        if info.id is None or self.frameworks.pop(info.id.value, None) is None:
            return []
        return self._flush_tasks(self._by_framework.get(info.id.value, ()))

    def set_overrides(self, overrides: dict[str, tuple[str, str]]) -> list[Change]:
        """Marathon's (namespace, name) by task id; the tasks whose override changed are recomputed."""
        old, self.overrides = self.overrides, overrides
        changed = {tid for tid in old.keys() | overrides.keys() if old.get(tid) != overrides.get(tid)}
        return self._flush_tasks(self.by_tid[tid] for tid in changed if tid in self.by_tid)

    # ------------------------------------------------------------ bookkeeping
    def _store(self, t: TaskRec, flush: bool) -> list[Change]:
        key = t.key
        was = t.indexed
        if was is None:
            self.tasks[key] = t
            self.by_tid[t.tid] = key
            _add(self._by_framework, t.framework, key)
            was = ("", "")
        old_agent, old_cid = was
        if old_agent != t.agent:
            if old_agent:
                _discard(self._by_agent, old_agent, key)
            if t.agent:
                _add(self._by_agent, t.agent, key)
        if old_cid != t.cid:
            if old_cid:
                _discard(self._containers, old_cid, key)
            if t.cid:
                _add(self._containers, t.cid, key)
        t.indexed = (t.agent, t.cid)
        if not flush:
            return []
        out: list[Change] = []
        if old_cid and old_cid != t.cid:
            out += self._flush_container(old_cid)
        if t.cid:
            out += self._flush_container(t.cid)
        return out

    def _remove(self, key: str, tid: str, gone: bool = True) -> list[Change]:
        if gone:
            self.gone[tid] = None
            if len(self.gone) > _GONE_MEMORY:
                self.gone.popitem(last=False)
        t = self.tasks.pop(key, None)
        if t is None:
            return []
        if self.by_tid.get(tid) == key:
            del self.by_tid[tid]
        _discard(self._by_framework, t.framework, key)
        agent, cid = t.indexed or ("", "")
        t.indexed = None
        if agent:
            _discard(self._by_agent, agent, key)
        if not cid:
            return []
        _discard(self._containers, cid, key)
        return self._flush_container(cid)

    def _drop_bad(self, raw: msgspec.Raw | bytes) -> list[Change]:
        """A task that cannot be decoded is treated as absent (if its ids can be read)."""
        try:
            ids = _ids_decoder.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            return []
        if ids.task_id is None:
            return []
        fid = ids.framework_id.value if ids.framework_id is not None else ""
        return self._remove(f"{fid}/{ids.task_id.value}", ids.task_id.value, gone=False)

    def _flush_tasks(self, keys: Iterable[str]) -> list[Change]:
        cids = {self.tasks[k].cid for k in list(keys) if k in self.tasks and self.tasks[k].cid}
        out: list[Change] = []
        for cid in sorted(cids):
            out += self._flush_container(cid)
        return out

    def _flush_container(self, cid: str) -> list[Change]:
        """Recompute the endpoints of one container; the changes against the last ones."""
        old = self.emitted.get(cid, {})
        keys = self._containers.get(cid)
        new: dict[str, Endpoint] = {}
        out: list[Change] = []
        if keys:
            try:
                new = self._container_endpoints(cid, sorted(keys) if len(keys) > 1 else list(keys), old)
            except Invalid as exc:
                out.append(exc)
        for k in old.keys() - new.keys():
            out.append(Removed(k))
        for k, ep in new.items():
            if old.get(k) != ep:
                out.append(ep)
        if new:
            self.emitted[cid] = new
        else:
            self.emitted.pop(cid, None)
        return out

    def _container_endpoints(self, cid: str, keys: list[str], old: dict[str, Endpoint]) -> dict[str, Endpoint]:
        """The container's endpoints; validated, unless only the state changed since ``old``
        (a known Mesos state: the rest was validated then)."""
        tasks = [self.tasks[k] for k in keys]
        primary = tasks[0]
        override = self.overrides.get(primary.tid)
        if override is not None:
            namespace, name = override
        else:
            namespace = namespace_of(self.frameworks.get(primary.framework), primary.framework, self.namespace_by)
            name = primary.name or primary.tid
        nets: dict[str, tuple[list[str], dict[str, str]]] = {}
        labels: dict[str, str] = {}
        ports: dict[tuple[int, str], PortSpec] = {}
        macs: dict[str, str] = {}
        for t in reversed(tasks):  # the primary's labels and ports last: they win
            labels.update(t.labels)
            for p in t.ports:
                ports[(p.port, p.protocol)] = p
            macs.update(t.macs)
            for net, addrs, netlabels in t.attachments():
                have, nl = nets.setdefault(net, ([], {}))
                have.extend(ip for ip in addrs if ip not in have)
                nl.update(netlabels)
        out: dict[str, Endpoint] = {}
        single = macs.get("") if len(nets) == 1 else None
        for net, (ips, netlabels) in sorted(nets.items()):
            ep = Endpoint(
                source=self.source, uid=cid, namespace=namespace, name=name, kind=KIND, network=net,
                node=self.agents.get(primary.agent, ""), ips=tuple(ips), mac=macs.get(net, single),
                labels={**labels, **netlabels, LABEL_WORKLOAD: f"mesos:{cid}"}, ports=tuple(ports.values()),
                state=primary.state.removeprefix("TASK_").lower(),
            )  # fmt: skip
            prev = old.get(ep.key)
            if prev is None or (prev != ep and msgspec.structs.replace(prev, state=ep.state) != ep):
                try:
                    validate(ep)
                except Invalid as exc:
                    raise Invalid(exc.reason, f"task {primary.tid} (container {cid}): {exc}") from None
            out[ep.key] = ep
        return out


def _check_state(state: str, what: str) -> None:
    if state not in TERMINAL and state not in NON_TERMINAL:
        raise Invalid("bad-state", f"{what}: state {state[:40]!r} is not a Mesos task state")


def _add(index: dict[str, set[str]], k: str, v: str) -> None:
    index.setdefault(k, set()).add(v)


def _discard(index: dict[str, set[str]], k: str, v: str) -> None:
    vals = index.get(k)
    if vals is not None:
        vals.discard(v)
        if not vals:
            del index[k]
