"""A fake Mesos master and a fake Marathon (aiohttp), speaking the real framing.

:class:`FakeMesosMaster` serves the operator API v1 on ``POST /api/v1``:

* ``SUBSCRIBE`` → ``200``, ``Content-Type: application/json``, a chunked **RecordIO**
  body: ``SUBSCRIBED`` (``get_state`` with every framework, agent, live and
  completed task, ``heartbeat_interval_seconds``), then ``TASK_ADDED``,
  ``TASK_UPDATED`` (the real shape ``{framework_id, status, state}``),
  ``AGENT_ADDED/REMOVED``, ``FRAMEWORK_ADDED/UPDATED/REMOVED`` as the state changes,
  and ``HEARTBEAT`` every interval.  The bytes are **re-chunked** at random
  (seeded): several records in one HTTP chunk, a record over many, length
  prefixes cut from their records and in two;
* ``GET_STATE`` / ``GET_TASKS`` → their JSON answer.

Faults: :meth:`~FakeMesosMaster.drop_streams` (abort every subscription),
``silent`` (a hung master: subscribers get no more bytes, heartbeats included,
while the state goes on changing), ``redirect_to`` (``307`` to the leader,
``Location: //host:port/api/v1`` as the master writes it), ``unavailable``
(that many ``503``, -1: every request), ``auth`` (HTTP Basic: ``401`` without
it), TLS (``ssl_context``), :meth:`~FakeMesosMaster.inject` (a raw record, e.g.
a malformed one), :meth:`~FakeMesosMaster.inject_bytes` (unframed bytes) and
:meth:`~FakeMesosMaster.duplicate_and_reorder` (until ``stop_duplicating``: every
event twice, events of two different tasks swapped; one task's updates keep
their order, as the master's status update manager guarantees).

:class:`FakeMarathon` serves ``GET /v2/apps?embed=apps.tasks``, ``/v2/tasks`` and
``GET /v2/events`` (``text/event-stream``, ``event:``/``data:`` frames,
re-chunked too); its apps' tasks are launched on a :class:`FakeMesosMaster`
(framework ``marathon``), so both views agree.  Faults: ``redirect_to`` (the
non-leader's ``302`` to the leader), a subscriber more than
``max_outstanding`` events behind is cut off (``stall_streams`` stops writing),
:meth:`~FakeMarathon.drop_streams`; :meth:`~FakeMarathon.inject` sends raw
event-stream bytes (the fixture capture).

The module's functions build the payloads (:func:`task_record`,
:func:`task_status`, …) for tests and benchmarks.  Loopback only.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import contextlib
import json
import random
import ssl
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = [
    "FakeMarathon",
    "FakeMesosMaster",
    "agent_info",
    "docker_inspect_data",
    "framework_info",
    "recordio",
    "task_record",
    "task_status",
]

MARATHON_FRAMEWORK = "marathon-0000"


def recordio(obj: Any) -> bytes:
    data = json.dumps(obj, separators=(",", ":")).encode() if not isinstance(obj, bytes) else obj
    return b"%d\n%s" % (len(data), data)


# ---------------------------------------------------------------- payloads
def framework_info(fid: str, name: str, role: str = "*") -> dict[str, Any]:
    return {"framework_info": {"id": {"value": fid}, "name": name, "role": role, "user": "root",
                               "capabilities": [{"type": "MULTI_ROLE"}]}, "active": True, "connected": True,
            "registered_time": {"nanoseconds": 1470820172039300864}}  # fmt: skip


def agent_info(aid: str, hostname: str) -> dict[str, Any]:
    return {"agent_info": {"id": {"value": aid}, "hostname": hostname, "port": 5051, "resources": []},
            "active": True, "pid": f"slave(1)@{hostname}:5051", "version": "1.11.0"}  # fmt: skip


def docker_inspect_data(network: str, mac: str, ip: str = "") -> str:
    """``status.data`` as the Docker executor sends it: base64 of ``docker inspect``."""
    inspect = [{"Id": uuid.uuid4().hex * 2, "Name": "/mesos-x", "NetworkSettings": {
        "MacAddress": "", "Networks": {network: {"IPAddress": ip, "MacAddress": mac}}}}]  # fmt: skip
    return base64.b64encode(json.dumps(inspect).encode()).decode()


def task_status(tid: str, aid: str, state: str, network: str | None, ip: str | None, container_id: str | None,
                *, data: str | None = None, netlabels: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    st: dict[str, Any] = {"task_id": {"value": tid}, "agent_id": {"value": aid}, "state": state,
                          "source": "SOURCE_EXECUTOR", "timestamp": 1578667568.0,
                          "uuid": base64.b64encode(uuid.uuid4().bytes).decode()}  # fmt: skip
    if container_id is not None:
        ni: dict[str, Any] = {"ip_addresses": [{"protocol": "IPv4", "ip_address": ip}] if ip else []}
        if network:
            ni["name"] = network
        if netlabels:
            ni["labels"] = {"labels": [{"key": k, "value": v} for k, v in netlabels.items()]}
        st["container_status"] = {"container_id": {"value": container_id}, "network_infos": [ni],
                                  "executor_pid": 4242}  # fmt: skip
    if data is not None:
        st["data"] = data
    return st


def task_record(tid: str, fid: str, aid: str, *, name: str, network: str | None, ip: str | None,
                container_id: str | None, state: str = "TASK_RUNNING", labels: dict[str, str] | None = None,
                ports: Iterable[tuple[int, str, str]] = (), data: str | None = None,
                statuses: bool = True) -> dict[str, Any]:  # fmt: skip
    """A Task as ``get_tasks`` (and TASK_ADDED) carry it; with its status history when ``statuses``."""
    task: dict[str, Any] = {
        "name": name, "task_id": {"value": tid}, "framework_id": {"value": fid}, "agent_id": {"value": aid},
        "executor_id": {"value": ""}, "state": state,
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}, "role": "*"}],
    }  # fmt: skip
    if labels:
        task["labels"] = {"labels": [{"key": k, "value": v} for k, v in labels.items()]}
    if ports:
        task["discovery"] = {"visibility": "FRAMEWORK", "name": name,
                             "ports": {"ports": [{"number": n, "name": pn, "protocol": pr} for n, pn, pr in ports]}}  # fmt: skip
    if network:
        task["container"] = {"type": "MESOS", "network_infos": [{"name": network}]}
    if statuses and state != "TASK_STAGING":
        task["statuses"] = [task_status(tid, aid, state, network, ip, container_id, data=data)]
        task["status_update_state"] = state
    return task


# ---------------------------------------------------------------- the streams
class _Chunker:
    """Splits outgoing bytes at random places (seeded), coalescing what is pending."""

    def __init__(self, seed: int, enabled: bool) -> None:
        self.rng = random.Random(seed)
        self.enabled = enabled

    def pieces(self, data: bytes) -> list[bytes]:
        if not self.enabled or len(data) < 2:
            return [data]
        n = self.rng.choice((1, 1, 2, 3, 5, 8))
        if self.rng.random() < 0.2:  # sometimes a few tiny ones at the front (a prefix cut in two)
            cuts = {1, 2, 3}
        else:
            cuts = set()
        cuts |= {self.rng.randrange(1, len(data)) for _ in range(n - 1)}
        out, last = [], 0
        for c in sorted(c for c in cuts if 0 < c < len(data)):
            out.append(data[last:c])
            last = c
        out.append(data[last:])
        return out


@dataclass(eq=False)
class _Stream:
    request: web.Request
    queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)


class _Server(abc.ABC):
    """aiohttp plumbing shared by both fakes."""

    def __init__(self, ssl_context: ssl.SSLContext | None) -> None:
        self.ssl_context = ssl_context
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.streams: list[_Stream] = []
        #: (method, path, status) of every request
        self.requests: list[tuple[str, str, int]] = []

    @abc.abstractmethod
    def routes(self, app: web.Application) -> None:
        """The fake's endpoints (each fake declares its own)."""

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, ssl_context=self.ssl_context)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        self.drop_streams()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def drop_streams(self) -> None:
        """Abort every open stream (no clean end of the chunked body)."""
        for s in list(self.streams):
            transport = s.request.transport
            if transport is not None:
                transport.abort()
            s.queue.put_nowait(None)
        self.streams.clear()

    def broadcast(self, data: bytes) -> None:
        for s in list(self.streams):
            s.queue.put_nowait(data)

    async def pump(self, resp: web.StreamResponse, stream: _Stream, chunker: _Chunker,
                   paused: Any = lambda: False) -> None:  # fmt: skip
        """Write what the stream's queue gets (re-chunked) until it ends (None) or the client
        goes; nothing is taken from the queue while ``paused()``."""
        try:
            while True:
                if paused():
                    await asyncio.sleep(0.02)
                    continue
                item = await stream.queue.get()
                if item is None:
                    return
                parts = [item]
                while not stream.queue.empty():  # coalesce what is pending (several records per chunk)
                    nxt = stream.queue.get_nowait()
                    if nxt is None:
                        stream.queue.put_nowait(None)
                        break
                    parts.append(nxt)
                for piece in chunker.pieces(b"".join(parts)):
                    await resp.write(piece)
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            if stream in self.streams:
                self.streams.remove(stream)


class FakeMesosMaster(_Server):
    def __init__(self, *, heartbeat: float = 1.0, seed: int = 0, rechunk: bool = True,
                 auth: tuple[str, str] | None = None, ssl_context: ssl.SSLContext | None = None) -> None:  # fmt: skip
        super().__init__(ssl_context)
        self.heartbeat = heartbeat
        self.seed = seed
        self.rechunk = rechunk
        self.auth = auth
        self.frameworks: dict[str, dict[str, Any]] = {}
        self.agents: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}  # task id → task (live)
        self.completed: list[dict[str, Any]] = []
        #: a hung master: no bytes to current subscribers (state still changes)
        self.silent = False
        #: ``307`` to this ``host:port`` (a non-leading master)
        self.redirect_to: str | None = None
        #: answer that many requests with ``503`` (-1: all)
        self.unavailable = 0
        self.subscriptions = 0
        self._n = 0
        #: duplicate_and_reorder(): on; the event held back for a swap; events sent twice.
        self.duplicating = False
        self._held: tuple[str, bytes] | None = None
        self.duplicated = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v1", self._api)

    @staticmethod
    def _subject(ev: dict[str, Any]) -> str:
        """The task an event is about (the event type for others)."""
        for path in (("task_updated", "status", "task_id"), ("task_added", "task", "task_id")):
            node: Any = ev
            for part in path:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict) and isinstance(node.get("value"), str):
                return f"task {node['value']}"
        return str(ev.get("type"))

    def duplicate_and_reorder(self) -> None:
        """Every event goes out twice; each one is held back until the next, and
        sent after it when the two are about different tasks."""
        self.duplicating = True

    def stop_duplicating(self) -> None:
        self.duplicating = False
        held, self._held = self._held, None
        if held is not None:
            self.broadcast(held[1] + held[1])

    # ------------------------------------------------------------ state
    def event(self, ev: dict[str, Any]) -> None:
        if self.silent:
            return
        if not self.duplicating:
            self.broadcast(recordio(ev))
            return
        subject, record = self._subject(ev), recordio(ev)
        self.duplicated += 1
        held, self._held = self._held, None
        if held is None:
            self._held = (subject, record)
        elif held[0] != subject:
            self.broadcast(record + record + held[1] + held[1])  # swapped, each twice
        else:
            self.broadcast(held[1] + held[1] + record + record)

    def add_framework(self, fid: str, name: str, role: str = "*") -> None:
        fw = framework_info(fid, name, role)
        known = fid in self.frameworks
        self.frameworks[fid] = fw
        typ = "FRAMEWORK_UPDATED" if known else "FRAMEWORK_ADDED"
        self.event({"type": typ, typ.lower(): {"framework": fw}})

    def remove_framework(self, fid: str) -> None:
        fw = self.frameworks.pop(fid)
        self.event({"type": "FRAMEWORK_REMOVED", "framework_removed": {"framework_info": fw["framework_info"]}})

    def add_agent(self, aid: str, hostname: str) -> None:
        self.agents[aid] = agent_info(aid, hostname)
        self.event({"type": "AGENT_ADDED", "agent_added": {"agent": self.agents[aid]}})

    def remove_agent(self, aid: str) -> None:
        del self.agents[aid]
        self.event({"type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": aid}}})

    def launch(self, fid: str, name: str, *, network: str | None, ip: str | None, agent: str = "",
               container_id: str | None = None, tid: str | None = None, labels: dict[str, str] | None = None,
               ports: Iterable[tuple[int, str, str]] = (), data: str | None = None,
               state: str = "TASK_RUNNING") -> str:  # fmt: skip
        """A task: TASK_ADDED (staging, no status) then TASK_UPDATED to ``state`` with its container status."""
        self._n += 1
        tid = tid or f"{name}.{uuid.UUID(int=self._n)}"
        aid = agent or next(iter(self.agents), "agent-0")
        cid = container_id or str(uuid.uuid4())
        staging = task_record(tid, fid, aid, name=name, network=network, ip=None, container_id=None, state="TASK_STAGING",
                              labels=labels, ports=ports)  # fmt: skip
        self.tasks[tid] = staging
        self.event({"type": "TASK_ADDED", "task_added": {"task": staging}})
        if state != "TASK_STAGING":
            self.update(tid, state, network=network, ip=ip, container_id=cid, data=data)
        return tid

    def update(self, tid: str, state: str, *, network: str | None = None, ip: str | None = None,
               container_id: str | None = None, data: str | None = None) -> None:  # fmt: skip
        task = self.tasks[tid]
        last = task.get("statuses", [{}])[-1]
        cs = last.get("container_status", {})
        ni = (cs.get("network_infos") or [{}])[0]
        network = network if network is not None else ni.get("name") or (task.get("container", {}).get("network_infos") or [{}])[0].get("name")
        if ip is None and ni.get("ip_addresses"):
            ip = ni["ip_addresses"][0]["ip_address"]
        cid = container_id or cs.get("container_id", {}).get("value")
        status = task_status(tid, task["agent_id"]["value"], state, network, ip, cid, data=data)
        task["state"] = state
        task.setdefault("statuses", []).append(status)
        task["status_update_state"] = state
        if state in ("TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED",
                     "TASK_GONE", "TASK_GONE_BY_OPERATOR"):  # fmt: skip
            self.completed.append(self.tasks.pop(tid))
        self.event({"type": "TASK_UPDATED",
                    "task_updated": {"framework_id": task["framework_id"], "status": status, "state": state}})  # fmt: skip

    def kill(self, tid: str) -> None:
        self.update(tid, "TASK_KILLING")
        self.update(tid, "TASK_KILLED")

    def finish(self, tid: str) -> None:
        self.update(tid, "TASK_FINISHED")

    def put_task(self, task: dict[str, Any]) -> None:
        """Put a task in the state (for the next SUBSCRIBED) without an event."""
        self.tasks[task["task_id"]["value"]] = task

    def inject(self, record: bytes) -> None:
        """A raw record (framed here) to every subscriber: a malformed event."""
        self.broadcast(recordio(record))

    def inject_bytes(self, data: bytes) -> None:
        """Bytes as they are: broken framing."""
        self.broadcast(data)

    def state(self) -> dict[str, Any]:
        return {
            "get_tasks": {"tasks": list(self.tasks.values()), "completed_tasks": self.completed[-100:]},
            "get_executors": {"executors": []},
            "get_frameworks": {"frameworks": list(self.frameworks.values())},
            "get_agents": {"agents": list(self.agents.values())},
        }

    def load_fixtures(self, directory: Path) -> None:
        """The GET_STATE fixture's frameworks, agents and completed task; the fixtures' events' framework and agent."""
        st = json.loads((directory / "operator-get-state-response.doc.json").read_text())["get_state"]
        for fw in st["get_frameworks"]["frameworks"]:
            self.frameworks[fw["framework_info"]["id"]["value"]] = fw
        for ag in st["get_agents"]["agents"]:
            self.agents[ag["agent_info"]["id"]["value"]] = ag
        self.completed += st["get_tasks"].get("completed_tasks", [])
        added = json.loads((directory / "operator-event-framework-added.doc.json").read_text())
        fw = added["framework_added"]["framework"]
        self.frameworks[fw["framework_info"]["id"]["value"]] = fw

    # ------------------------------------------------------------ HTTP
    def _authorized(self, request: web.Request) -> bool:
        if self.auth is None:
            return True
        want = "Basic " + base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
        return request.headers.get("Authorization") == want

    async def _api(self, request: web.Request) -> web.StreamResponse:
        resp = await self._answer(request)
        self.requests.append((request.method, request.path, resp.status))
        return resp

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="mesos"'})
        if self.redirect_to:
            return web.Response(status=307, headers={"Location": f"//{self.redirect_to}/api/v1"})
        if self.unavailable:
            self.unavailable -= 1 if self.unavailable > 0 else 0
            return web.Response(status=503, text="No leader elected")
        try:
            call = await request.json()
        except ValueError:
            return web.Response(status=400, text="Failed to parse body into Call: not JSON")
        typ = call.get("type") if isinstance(call, dict) else None
        if typ == "GET_STATE":
            return web.json_response({"type": "GET_STATE", "get_state": self.state()})
        if typ == "GET_TASKS":
            return web.json_response({"type": "GET_TASKS", "get_tasks": self.state()["get_tasks"]})
        if typ != "SUBSCRIBE":
            return web.Response(status=400, text=f"unsupported call {typ!r}")
        return await self._subscribe(request)

    async def _subscribe(self, request: web.Request) -> web.StreamResponse:
        self.subscriptions += 1
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        stream = _Stream(request)
        self.streams.append(stream)
        first = {"type": "SUBSCRIBED", "subscribed": {"get_state": self.state(), "heartbeat_interval_seconds": self.heartbeat}}
        stream.queue.put_nowait(recordio(first))
        chunker = _Chunker(self.seed + self.subscriptions, self.rechunk)
        heartbeat = recordio({"type": "HEARTBEAT"})

        async def beat() -> None:  # heartbeats, unless the master went silent
            while stream in self.streams:
                await asyncio.sleep(self.heartbeat)
                if not self.silent and stream in self.streams:
                    stream.queue.put_nowait(heartbeat)

        beater = asyncio.create_task(beat())
        try:
            await self.pump(resp, stream, chunker)
        finally:
            beater.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beater
        return resp


class FakeMarathon(_Server):
    """Marathon's REST API and event stream; tasks launched on ``master``."""

    def __init__(self, master: FakeMesosMaster, *, seed: int = 0, max_outstanding: int = 1024,
                 ssl_context: ssl.SSLContext | None = None) -> None:  # fmt: skip
        super().__init__(ssl_context)
        self.master = master
        self.seed = seed
        self.max_outstanding = max_outstanding
        self.apps: dict[str, dict[str, Any]] = {}
        self.app_tasks: dict[str, dict[str, dict[str, Any]]] = {}  # app id → task id → Marathon task
        #: ``302`` to this base URL (a non-leader)
        self.redirect_to: str | None = None
        #: streams stop writing (their queues grow until the cut-off)
        self.stall_streams = False
        self.cutoffs = 0
        self._n = 0
        master.frameworks.setdefault(MARATHON_FRAMEWORK, framework_info(MARATHON_FRAMEWORK, "marathon"))

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v2/apps", self._apps)
        app.router.add_get("/v2/tasks", self._tasks)
        app.router.add_get("/v2/events", self._events)

    # ------------------------------------------------------------ state
    def event(self, typ: str, **body: Any) -> None:
        data = json.dumps({**body, "eventType": typ, "timestamp": "2024-01-01T00:00:00.000Z"}, separators=(",", ":"))
        frame = f"event: {typ}\ndata: {data}\n\n".encode()
        for s in list(self.streams):
            if s.queue.qsize() >= self.max_outstanding:  # Marathon: a slow consumer is cut off
                self.cutoffs += 1
                while not s.queue.empty():  # what it had not read yet is lost
                    s.queue.get_nowait()
                s.queue.put_nowait(None)  # the stream ends (cleanly, as Marathon closes it)
                self.streams.remove(s)
                continue
            s.queue.put_nowait(frame)

    def add_app(self, app_id: str, *, network: str = "tasks", container_port: int = 8080,
                vips: dict[str, str] | None = None, health_checks: bool = False,
                labels: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
        pm: dict[str, Any] = {"containerPort": container_port, "hostPort": 0, "protocol": "tcp", "name": "http",
                              "labels": dict(vips or {})}  # fmt: skip
        app = {
            "id": app_id, "instances": 0, "cpus": 0.1, "mem": 32.0, "labels": labels or {},
            "networks": [{"mode": "container", "name": network}],
            "container": {"type": "MESOS", "portMappings": [pm]},
            "healthChecks": [{"protocol": "MESOS_HTTP", "path": "/", "portIndex": 0}] if health_checks else [],
            "version": "2024-01-01T00:00:00.000Z",
        }  # fmt: skip
        self.apps[app_id] = app
        self.app_tasks.setdefault(app_id, {})
        self.event("api_post_event", uri=f"/v2/apps{app_id}", appDefinition=app)
        return app

    def start_task(self, app_id: str, ip: str, *, container_id: str | None = None, healthy: bool | None = None,
                   agent: str = "") -> str:  # fmt: skip
        """One instance: launched in Mesos (TASK_ADDED, TASK_RUNNING), then running in Marathon."""
        app = self.apps[app_id]
        self._n += 1
        name = ".".join(reversed(app_id.strip("/").split("/")))  # Marathon's runSpec.id.toHostname
        tid = f"{app_id.strip('/').replace('/', '_')}.{uuid.UUID(int=(1 << 64) + self._n)}"
        net = app["networks"][0]["name"]
        self.master.launch(MARATHON_FRAMEWORK, name, network=net, ip=ip, agent=agent, container_id=container_id, tid=tid,
                           labels=app["labels"])  # fmt: skip
        aid = self.master.tasks[tid]["agent_id"]["value"]
        host = self.master.agents.get(aid, {}).get("agent_info", {}).get("hostname", "agent")
        task: dict[str, Any] = {"id": tid, "appId": app_id, "host": host, "slaveId": aid, "state": "TASK_RUNNING",
                                "ipAddresses": [{"ipAddress": ip, "protocol": "IPv4"}], "ports": [],
                                "stagedAt": "2024-01-01T00:00:00.000Z", "startedAt": "2024-01-01T00:00:01.000Z",
                                "version": app["version"]}  # fmt: skip
        if healthy is not None:
            task["healthCheckResults"] = [{"alive": healthy, "consecutiveFailures": 0 if healthy else 3}]
        self.app_tasks[app_id][tid] = task
        app["instances"] = len(self.app_tasks[app_id])
        self.event("status_update_event", slaveId=aid, taskId=tid, taskStatus="TASK_RUNNING", appId=app_id, host=host,
                   ipAddresses=task["ipAddresses"], ports=[], version=app["version"])  # fmt: skip
        return tid

    def kill_task(self, tid: str) -> None:
        """Killed in Mesos (TASK_KILLING, TASK_KILLED), then gone from Marathon."""
        app_id = next(a for a, ts in self.app_tasks.items() if tid in ts)
        self.master.kill(tid)
        task = self.app_tasks[app_id].pop(tid)
        self.apps[app_id]["instances"] = len(self.app_tasks[app_id])
        self.event("status_update_event", slaveId=task["slaveId"], taskId=tid, taskStatus="TASK_KILLED", appId=app_id,
                   host=task["host"], ipAddresses=task["ipAddresses"], ports=[], version=task["version"])  # fmt: skip

    def set_health(self, tid: str, alive: bool) -> None:
        for ts in self.app_tasks.values():
            if tid in ts:
                ts[tid]["healthCheckResults"] = [{"alive": alive, "consecutiveFailures": 0 if alive else 3}]
                self.event("health_status_changed_event", appId=ts[tid]["appId"], taskId=tid, alive=alive)
                return
        raise KeyError(tid)

    def inject(self, data: bytes) -> None:
        """Raw event-stream bytes to every subscriber (e.g. the fixture capture)."""
        self.broadcast(data)

    def remove_app(self, app_id: str) -> None:
        for tid in list(self.app_tasks.get(app_id, {})):
            self.kill_task(tid)
        del self.apps[app_id]
        self.app_tasks.pop(app_id, None)
        self.event("app_terminated_event", appId=app_id)

    # ------------------------------------------------------------ HTTP
    def _redirect(self, request: web.Request) -> web.Response | None:
        if self.redirect_to is None:
            return None
        return web.Response(status=302, headers={"Location": f"{self.redirect_to}{request.path_qs}"})

    def _log(self, request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs, resp.status))
        return resp

    async def _apps(self, request: web.Request) -> web.StreamResponse:
        if (r := self._redirect(request)) is not None:
            return self._log(request, r)
        embed = "apps.tasks" in request.query.getall("embed", [])
        apps = []
        for app_id, app in sorted(self.apps.items()):
            a = dict(app)
            if embed:
                a["tasks"] = list(self.app_tasks.get(app_id, {}).values())
            apps.append(a)
        return self._log(request, web.json_response({"apps": apps}, headers={"X-Marathon-Leader": self.url}))

    async def _tasks(self, request: web.Request) -> web.StreamResponse:
        if (r := self._redirect(request)) is not None:
            return self._log(request, r)
        tasks = [t for ts in self.app_tasks.values() for t in ts.values()]
        return self._log(request, web.json_response({"tasks": tasks}))

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if (r := self._redirect(request)) is not None:
            return self._log(request, r)
        if "text/event-stream" not in request.headers.get("Accept", ""):
            return self._log(request, web.Response(status=406, text="Accept: text/event-stream"))
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream",
                                                       "X-Marathon-Leader": self.url})  # fmt: skip
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        self._log(request, resp)
        stream = _Stream(request)
        self.streams.append(stream)
        attached = json.dumps({"remoteAddress": "127.0.0.1", "eventType": "event_stream_attached",
                               "timestamp": "2024-01-01T00:00:00.000Z"})  # fmt: skip
        stream.queue.put_nowait(f"event: event_stream_attached\ndata: {attached}\n\n".encode())
        chunker = _Chunker(self.seed + len(self.requests), True)
        await self.pump(resp, stream, chunker, paused=lambda: self.stall_streams)
        return resp
