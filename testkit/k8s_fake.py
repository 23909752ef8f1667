"""A fake Kubernetes API server (aiohttp) speaking the real list/watch wire protocol.

Serves ``/api/v1/{pods,services}`` (and ``/api/v1/namespaces/{ns}/...``),
``/api/v1/namespaces``, ``/api/v1/nodes``, ``/apis/discovery.k8s.io/v1/endpointslices``
and ``/apis/networking.k8s.io/v1/networkpolicies`` (+ their namespaced forms)
on 127.0.0.1 (random port), for the REAL
kubernetes_asyncio client (``write_kubeconfig`` writes a kubeconfig it loads
unmodified: plain http, no auth).

* list: ``limit``/``continue`` paging, consistent at the RV of the first page
  (older states are rebuilt from the history), ``metadata.resourceVersion``;
  a continue token older than the history (or after ``expire_continue_tokens``)
  → HTTP 410 Status ``Expired``.  List items carry no ``kind``/``apiVersion``,
  like the real server.
* watch (``watch=1|true``): a chunked body of newline-delimited JSON events
  from ``resourceVersion`` (exclusive; absent/"0" → synthetic ADDEDs first),
  ``allowWatchBookmarks``, ``timeoutSeconds`` (clean close).  An RV older than
  the bounded history → one ``ERROR`` 410 ``Expired`` event, then close.
* one global, monotonically increasing resourceVersion (decimal strings).

Test controls: :meth:`add`, :meth:`update`, :meth:`delete`, :meth:`get`,
:meth:`bookmark`, :meth:`compact` (forget history: the next watch from an old
RV gets 410), :meth:`expire_watches` (compact + ERROR 410 on every open watch),
:meth:`drop_connections` (abort every open watch), :meth:`expire_continue_tokens`
/ ``expire_next_continues`` (HTTP 410 on continue), :meth:`inject` (raw bytes
into the watch streams), ``after_list`` (a hook run after each list page, to
change the state between a list and its watch), and stream quirks
``split_events`` (each event written in two chunks) / ``blank_lines`` (a blank
line before each event).  ``requests`` records every request line.
:meth:`duplicate_and_reorder` (until :meth:`stop_duplicating`): every event is
sent twice, and every new watch replays ``replay`` events from before the
resourceVersion it asked for, events of different objects swapped (seeded) -
what a client sees from an API server whose watch cache restarted behind it;
``duplicated`` counts the repeated events.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import copy
import datetime as dt
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class KindInfo:
    plural: str
    namespaced: bool
    group_version: str  # apiVersion of the objects

    @property
    def prefix(self) -> str:
        return "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"


KINDS: dict[str, KindInfo] = {
    "Pod": KindInfo("pods", True, "v1"),
    "Namespace": KindInfo("namespaces", False, "v1"),
    "Node": KindInfo("nodes", False, "v1"),
    "Service": KindInfo("services", True, "v1"),
    "EndpointSlice": KindInfo("endpointslices", True, "discovery.k8s.io/v1"),
    "NetworkPolicy": KindInfo("networkpolicies", True, "networking.k8s.io/v1"),
}
_BY_PLURAL = {k.plural: kind for kind, k in KINDS.items()}
FIXTURES = ("pod.apimachinery-managedfields.yaml", "node.apimachinery-managedfields.yaml", "namespace.doc-fixture.json")


@dataclass
class Change:
    rv: int
    kind: str
    type: str  # ADDED | MODIFIED | DELETED
    key: str
    obj: dict[str, Any]  # state after the change (DELETED: the last state)
    old: dict[str, Any] | None  # state before (None for ADDED)


@dataclass(eq=False)
class _Watcher:
    kind: str
    namespace: str | None
    bookmarks: bool
    request: web.Request
    #: ("event", dict) | ("raw", bytes) | ("end", None): clean close | ("drop", None): aborted
    queue: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true")


def write_kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig that kubernetes_asyncio loads unmodified: ``server``, no auth."""
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "fake", "user": {}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        "current-context": "fake",
    }
    path.write_text(json.dumps(cfg, indent=2))  # JSON is YAML
    return path


class FakeKubeApi:
    def __init__(self, *, history: int = 1000, max_watch_seconds: float | None = None) -> None:
        self.history_size = history
        #: Cap of ``timeoutSeconds`` (None: honour the client's value).
        self.max_watch_seconds = max_watch_seconds
        self.split_events = False
        self.blank_lines = False
        self.rv = 0
        self.store: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in KINDS}
        self.history: collections.deque[Change] = collections.deque()
        #: Every event with rv <= compacted_rv is forgotten: watches from an RV below it get 410.
        self.compacted_rv = 0
        self.watchers: set[_Watcher] = set()
        self.requests: list[str] = []  # "GET path?query" of every request (for assertions)
        self._token_epoch = 0
        self._raw_keys = 0
        #: Called (with the kind) after each list page is built: tests change the state between list and watch.
        self.after_list: Callable[[str], None] | None = None
        #: The next N continue requests get HTTP 410.
        self.expire_next_continues = 0
        self._runner: web.AppRunner | None = None
        self.port = 0
        #: duplicate_and_reorder(): events older than asked for, replayed per new watch (None: off).
        self.replay: int | None = None
        self.duplicated = 0
        #: Events replayed to watches from before their resourceVersion; the newest RV a replaying watch asked for.
        self.replayed = 0
        self.replay_since = 0
        self._rng = random.Random(0)
        #: Watches ended with an ERROR 410 (expire_watches, or a watch from a compacted RV).
        self.expired_sent = 0

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        app = web.Application()
        for info in KINDS.values():
            app.router.add_get(f"{info.prefix}/{info.plural}", self._handle)
            if info.namespaced:
                app.router.add_get(f"{info.prefix}/namespaces/{{ns}}/{info.plural}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        self.drop_connections()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeKubeApi:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path: Path) -> Path:
        return write_kubeconfig(path, self.url)

    # ------------------------------------------------------------ test controls
    @staticmethod
    def key_of(kind: str, obj: dict[str, Any]) -> str:
        meta = _meta(obj)
        name = str(meta.get("name", ""))
        return f"{meta.get('namespace', 'default')}/{name}" if KINDS[kind].namespaced else name

    def _record(self, kind: str, typ: str, key: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        change = Change(self.rv, kind, typ, key, copy.deepcopy(obj), copy.deepcopy(old))
        self.history.append(change)
        while len(self.history) > self.history_size:
            self.compacted_rv = self.history.popleft().rv
        event = {"type": typ, "object": self._wire(kind, change.obj)}
        for w in list(self.watchers):
            if w.kind == kind and (w.namespace is None or self._ns(obj) == w.namespace):
                w.queue.put_nowait(("event", event))
                if self.replay is not None:
                    w.queue.put_nowait(("event", event))
                    self.duplicated += 1

    def duplicate_and_reorder(self, replay: int = 8, seed: int = 0) -> None:
        """From now on every event goes out twice, and a new watch first replays
        up to ``replay`` events it did not ask for (older resourceVersions),
        adjacent events of different objects swapped at random (``seed``)."""
        self.replay = replay
        self._rng = random.Random(seed)

    def stop_duplicating(self) -> None:
        self.replay = None

    def end_watches(self) -> None:
        """End every open watch cleanly (as ``timeoutSeconds`` does): clients watch again from their RV."""
        for w in list(self.watchers):
            w.queue.put_nowait(("end", None))

    def _replayed(self, changes: list[Change]) -> list[Change]:
        """Swap adjacent changes of different objects (the order of one object's changes holds)."""
        out = list(changes)
        for i in range(len(out) - 1):
            if out[i].key != out[i + 1].key and self._rng.random() < 0.5:
                out[i], out[i + 1] = out[i + 1], out[i]
        return out

    def add(self, kind: str, obj: dict[str, Any], *, raw: bool = False) -> dict[str, Any]:
        """Create an object; like the API server, fill uid, namespace,
        creationTimestamp and resourceVersion (``raw``: only resourceVersion)."""
        obj = copy.deepcopy(obj)
        self.rv += 1
        meta = obj.get("metadata")
        if raw:
            if isinstance(meta, dict):
                meta["resourceVersion"] = str(self.rv)
                key = self.key_of(kind, obj) if isinstance(meta.get("name"), str) else ""
            else:
                key = ""
            if not key:
                self._raw_keys += 1
                key = f"~raw-{self._raw_keys}"
        else:
            if not isinstance(meta, dict):
                meta = obj["metadata"] = {}
            meta.setdefault("uid", str(uuid.uuid4()))
            if KINDS[kind].namespaced:
                meta.setdefault("namespace", "default")
            meta.setdefault("creationTimestamp", _now())
            meta["resourceVersion"] = str(self.rv)
            obj["kind"], obj["apiVersion"] = kind, KINDS[kind].group_version
            key = self.key_of(kind, obj)
            if key in self.store[kind]:
                self.rv -= 1
                raise ValueError(f"{kind} {key} already exists")
        self.store[kind][key] = obj
        self._record(kind, "ADDED", key, obj, None)
        return copy.deepcopy(obj)

    def update(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Replace an object (by namespace/name), bumping its resourceVersion."""
        obj = copy.deepcopy(obj)
        key = self.key_of(kind, obj)
        old = self.store[kind][key]
        self.rv += 1
        meta = obj.setdefault("metadata", {})
        old_meta = _meta(old)
        for k in ("uid", "creationTimestamp"):
            if k in old_meta:
                meta.setdefault(k, old_meta[k])
        meta["resourceVersion"] = str(self.rv)
        self.store[kind][key] = obj
        self._record(kind, "MODIFIED", key, obj, old)
        return copy.deepcopy(obj)

    def delete(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any]:
        key = f"{namespace}/{name}" if KINDS[kind].namespaced else name
        old = self.store[kind].pop(key)
        self.rv += 1
        last = copy.deepcopy(old)
        if isinstance(last.get("metadata"), dict):
            last["metadata"]["resourceVersion"] = str(self.rv)
            last["metadata"].setdefault("deletionTimestamp", _now())
        self._record(kind, "DELETED", key, last, old)
        return last

    def get(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any]:
        key = f"{namespace}/{name}" if KINDS[kind].namespaced else name
        return copy.deepcopy(self.store[kind][key])

    def objects(self, kind: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for _, o in sorted(self.store[kind].items())]

    def watch_count(self, kind: str | None = None) -> int:
        """Open watches (of ``kind``)."""
        return sum(1 for w in self.watchers if kind is None or w.kind == kind)

    async def wait_watching(self, count: int = len(KINDS), timeout: float = 20.0) -> None:
        """Wait until ``count`` watches are open."""
        async with asyncio.timeout(timeout):
            while self.watch_count() < count:
                await asyncio.sleep(0.01)

    def bookmark(self) -> None:
        """Send a BOOKMARK (current RV) to every watch that allowed them."""
        for w in list(self.watchers):
            if w.bookmarks:
                version = KINDS[w.kind].group_version
                bm = {"kind": w.kind, "apiVersion": version, "metadata": {"resourceVersion": str(self.rv)}}
                w.queue.put_nowait(("event", {"type": "BOOKMARK", "object": bm}))

    def compact(self) -> None:
        """Forget the whole history: a watch (or continue) from an older RV gets 410."""
        self.history.clear()
        self.compacted_rv = self.rv

    def expire_watches(self) -> None:
        """Compact, then end every open watch with an ERROR 410 event (as an API
        server does when its watch cache cannot serve the watcher any more).
        Changes made after this call are not sent to those watches."""
        self.compact()
        msg = f"too old resource version: {self.rv} ({self.rv + 1})"
        for w in list(self.watchers):
            self.expired_sent += 1
            w.queue.put_nowait(("event", {"type": "ERROR", "object": _status(410, "Expired", msg)}))
            w.queue.put_nowait(("end", None))
        self.watchers.clear()

    def expire_continue_tokens(self) -> None:
        """Every continue token handed out so far gets HTTP 410."""
        self._token_epoch += 1

    def inject(self, kind: str, data: bytes) -> None:
        """Write raw bytes into every open watch of ``kind`` (garbage, partial lines)."""
        for w in list(self.watchers):
            if w.kind == kind:
                w.queue.put_nowait(("raw", data))

    def drop_connections(self) -> None:
        """Abort every open watch connection (no clean end of the chunked body)."""
        for w in list(self.watchers):
            transport = w.request.transport
            if transport is not None:
                transport.abort()
            w.queue.put_nowait(("drop", None))
        self.watchers.clear()

    def load_fixtures(self, directory: Path) -> list[tuple[str, dict[str, Any]]]:
        """Serve the pod/node/namespace fixtures (uid etc. filled like a real server)."""
        import yaml

        added = []
        for name in FIXTURES:
            text = (directory / name).read_text()
            obj = json.loads(json.dumps(yaml.safe_load(text), default=str))
            added.append((obj["kind"], self.add(obj["kind"], obj)))
        return added

    # ------------------------------------------------------------ wire helpers
    @staticmethod
    def _ns(obj: dict[str, Any]) -> str | None:
        meta = obj.get("metadata")
        ns = meta.get("namespace") if isinstance(meta, dict) else None
        return ns if isinstance(ns, str) else None

    @staticmethod
    def _wire(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        out.setdefault("kind", kind)
        out.setdefault("apiVersion", KINDS[kind].group_version)
        return out

    def _state_at(self, kind: str, rv: int) -> dict[str, dict[str, Any]]:
        state = {k: v for k, v in self.store[kind].items()}
        for change in reversed(self.history):
            if change.rv <= rv:
                break
            if change.kind != kind:
                continue
            if change.old is None:
                state.pop(change.key, None)
            else:
                state[change.key] = change.old
        return state

    @staticmethod
    def _kind_of(request: web.Request) -> str:
        last = request.path.rstrip("/").rsplit("/", 1)[-1]
        return _BY_PLURAL[last]

    # ------------------------------------------------------------ handlers
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(f"GET {request.path_qs}")
        kind = self._kind_of(request)
        namespace = request.match_info.get("ns")
        if _truthy(request.query.get("watch")):
            return await self._watch(request, kind, namespace)
        return self._list(request, kind, namespace)

    def _list(self, request: web.Request, kind: str, namespace: str | None) -> web.Response:
        try:
            limit = int(request.query.get("limit", "0") or 0)
        except ValueError:
            return web.json_response(_status(400, "BadRequest", "limit must be an integer"), status=400)
        token = request.query.get("continue", "")
        after = ""
        list_rv = self.rv
        if token:
            try:
                data = json.loads(base64.urlsafe_b64decode(token.encode()))
                list_rv, after, epoch = int(data["rv"]), str(data["after"]), int(data["epoch"])
            except (ValueError, KeyError, TypeError, binascii.Error):
                return web.json_response(_status(400, "BadRequest", "invalid continue token"), status=400)
            if self.expire_next_continues > 0:
                self.expire_next_continues -= 1
                epoch = -1
            if epoch != self._token_epoch or list_rv < self.compacted_rv:
                msg = "The provided continue parameter is too old to display a consistent list result."
                return web.json_response(_status(410, "Expired", msg), status=410)
        state = self._state_at(kind, list_rv) if list_rv != self.rv else self.store[kind]
        keys = sorted(k for k, o in state.items() if (namespace is None or self._ns(o) == namespace) and k > after)
        page = keys[:limit] if limit > 0 else keys
        items = []
        for k in page:
            item = copy.deepcopy(state[k])
            item.pop("kind", None)
            item.pop("apiVersion", None)
            items.append(item)
        meta: dict[str, Any] = {"resourceVersion": str(list_rv)}
        if limit > 0 and len(keys) > limit:
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps({"rv": list_rv, "after": page[-1], "epoch": self._token_epoch}).encode()
            ).decode()
            meta["remainingItemCount"] = len(keys) - limit
        body = {"kind": f"{kind}List", "apiVersion": KINDS[kind].group_version, "metadata": meta, "items": items}
        if self.after_list is not None:
            self.after_list(kind)
        return web.json_response(body)

    async def _watch(self, request: web.Request, kind: str, namespace: str | None) -> web.StreamResponse:
        rv_text = request.query.get("resourceVersion", "")
        try:
            since = int(rv_text) if rv_text not in ("", "0") else None
            timeout = float(request.query["timeoutSeconds"]) if "timeoutSeconds" in request.query else None
        except ValueError:
            return web.json_response(_status(400, "BadRequest", f"invalid resourceVersion {rv_text!r}"), status=400)
        if self.max_watch_seconds is not None:
            timeout = min(timeout or self.max_watch_seconds, self.max_watch_seconds)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        # From here to the registration there is no await: no change can fall in between.
        if since is not None and since < self.compacted_rv:
            msg = f"too old resource version: {since} ({self.compacted_rv + 1})"
            self.expired_sent += 1
            await self._write(resp, {"type": "ERROR", "object": _status(410, "Expired", msg)})
            await resp.write_eof()
            return resp
        if since is None:
            backlog = [
                {"type": "ADDED", "object": self._wire(kind, o)}
                for _, o in sorted(self.store[kind].items())
                if namespace is None or self._ns(o) == namespace
            ]
        else:
            changes = [
                c for c in self.history
                if c.rv > since and c.kind == kind and (namespace is None or self._ns(c.obj) == namespace)
            ]  # fmt: skip
            if self.replay is not None:
                older = [
                    c for c in self.history
                    if self.compacted_rv < c.rv <= since and c.kind == kind
                    and (namespace is None or self._ns(c.obj) == namespace)
                ][-self.replay :]  # fmt: skip
                self.duplicated += len(older)
                self.replayed += len(older)
                self.replay_since = max(self.replay_since, since)
                changes = self._replayed(older) + changes
            backlog = [{"type": c.type, "object": self._wire(kind, c.obj)} for c in changes]
        watcher = _Watcher(kind, namespace, _truthy(request.query.get("allowWatchBookmarks")), request)
        self.watchers.add(watcher)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        try:
            for ev in backlog:
                await self._write(resp, ev)
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        what, data = await watcher.queue.get()
                except TimeoutError:
                    break  # timeoutSeconds: a clean end of the stream
                if what == "drop":
                    return resp  # the transport is already aborted
                if what == "end":
                    break
                if what == "raw":
                    await resp.write(data)
                else:
                    await self._write(resp, data)
            await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client went away (or we aborted the transport)
        finally:
            self.watchers.discard(watcher)
        return resp

    async def _write(self, resp: web.StreamResponse, event: dict[str, Any]) -> None:
        data = json.dumps(event).encode() + b"\n"
        if self.blank_lines:
            await resp.write(b"\n")
        if self.split_events and len(data) > 2:
            half = len(data) // 2
            await resp.write(data[:half])
            await asyncio.sleep(0.002)
            await resp.write(data[half:])
        else:
            await resp.write(data)
