"""Kubernetes adapter: list + watch of nodes, namespaces, pods, services,
EndpointSlices and NetworkPolicies → canonical events.

Session (one per connection to the API server, through kubernetes_asyncio)::

    GET /api/v1/nodes, /api/v1/namespaces, /apis/discovery.k8s.io/v1/endpointslices,
        /api/v1/services, /apis/networking.k8s.io/v1/networkpolicies, /api/v1/pods
                                       paged (limit/continue)
                                       → ONE Snapshot (pod Endpoints, Namespaces,
                                         Services, Policies)
    GET …?watch=1&resourceVersion=<list RV>&allowWatchBookmarks=true   one per resource
        ADDED/MODIFIED/DELETED         → Upsert/Delete (no-ops filtered by ObjectCache)
        BOOKMARK                       → remember the RV
        ERROR 410 (or HTTP 410)        → relist that resource, emit the diff
                                         (synthetic deletes) and a Snapshot, watch
                                         again from the new RV
        stream closed cleanly          → watch again from the last RV

Lists and watches use the raw responses (``_preload_content=False``): objects
stay plain dicts (no model deserialization that could choke on a malformed
object) and the watch body is read in chunks, so an event split across reads
or preceded by blank lines is handled.  kubernetes_asyncio's ``Watch`` is not
used: on a 410 it retries once with the same (expired) RV before raising.

On a connection error (or any API error that is not a 410) the adapter
reconnects with exponential backoff + jitter and relists everything; deltas
against the cache (Deletes of pods that vanished meanwhile) are emitted, then a
Snapshot.

Nodes feed a node-name → chassis map (label/annotation
``k8s.ovn.org/node-chassis-id``, else the node name); a pod's Endpoint has
``node`` = its node's chassis, and pods are re-emitted when a chassis changes.
Nodes also feed their InternalIPs: NodePort/LoadBalancer Services get a rule per
node IP, and are re-emitted when the node IPs change.

The pod network (every pod Endpoint's ``network``) is one
:class:`~core.model.Network` in every Snapshot, with subnets, so the routing
fabric can route pods (rules and reasons in :mod:`.podnet`):

* option ``pod_cidr`` set (the cluster CIDR(s)): those subnets, collapsed and
  sorted, and the gateway ``pod_gateway`` or else the first host address of
  the lowest IPv4 subnet (of the lowest IPv6 one in an IPv6-only cluster).
  Nodes' podCIDRs are then not read;
* else the nodes' ``spec.podCIDRs`` (``spec.podCIDR``): the collapsed, sorted
  set of every node's slices - never one covering supernet, which would claim
  the gaps between slices - and the gateway the first host address of the
  lowest IPv4 one.  That lowest subnet is the one the Logical_Switch writes to
  ``other_config:subnet`` (with the gateway in ``exclude_ips``), so the
  gateway is always inside the subnet OVN knows.  A node that gets, changes or
  loses a slice (added, modified, deleted, or gone in a relist) changes the
  Network: one Upsert; anything else about a node emits no Network.  A node
  whose podCIDRs are malformed (not a CIDR, two of one family, multicast,
  too small…) is rejected (reason ``bad-subnet`` or ``bad-field``) and adds no
  slice, but its chassis and IPs still count.  No node with a slice: a
  Network without subnets (the switch has no IPAM subnet, as before).

A pod whose IP is in none of the subnets is programmed like any other.

Namespaces become :class:`~core.model.Namespace` objects (and
:attr:`K8sAdapter.namespaces`).  Services are joined with their EndpointSlices
(label ``kubernetes.io/service-name``) into resolved
:class:`~core.model.Service` objects, re-emitted when a slice changes;
headless and ExternalName services emit nothing.  NetworkPolicies become
:class:`~core.model.Policy` objects.

A malformed object becomes a :class:`~core.model.Rejected` (and is treated as
absent: an endpoint it had is deleted); it never stops :meth:`K8sAdapter.run`.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import aiohttp
import msgspec
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException

from core.adapter import AdapterSpec, EventSink, ObjectCache, OptionsError, describe_exception, parse_options
from core.backoff import Backoff
from core.model import (
    NETWORK_NAME,
    Endpoint,
    InputEvent,
    Invalid,
    Namespace,
    Object,
    Policy,
    Rejected,
    Service,
    Snapshot,
)

from .normalize import (
    EndpointSliceInfo,
    PodEvent,
    decode_pod_event,
    namespace_labels,
    node_chassis,
    node_internal_ips,
    node_pod_cidrs,
    normalize_namespace,
    normalize_pod,
    normalize_policy,
    normalize_service,
    object_ref,
    object_uid,
    parse_endpoint_slice,
    parse_watch_event,
    pod_uid,
    resource_version,
    watch_error,
)
from .podnet import cap, collapse, parse_pod_cidr, parse_pod_gateway, pod_network

__all__ = ["K8sAdapter", "K8sOptions"]

#: Connecting to the API server (seconds): list and watch requests.
_CONNECT_TIMEOUT = 15.0
_MAX_LINE = 16 << 20
#: First delay before re-watching after a watch that ended without an event (seconds).
_QUIET_RETRY = 0.1
#: Consecutive expired continue tokens before a list is given up (reconnect).
_LIST_ATTEMPTS = 3
_REJECT_MEMORY = 4096


class K8sOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[adapters.<name>.options]`` of a k8s adapter."""

    #: kubeconfig file; empty: in-cluster config (service account).
    kubeconfig: str = ""
    #: kubeconfig context; empty: the file's current-context.
    context: str = ""
    #: Canonical network of the pods' primary attachment.
    network: str = "default"
    #: ``limit`` of each list page.
    page_size: Annotated[int, msgspec.Meta(ge=1)] = 500
    #: Cap of the reconnect backoff (seconds).
    backoff_max: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    #: The ``timeoutSeconds`` of each watch: the server ends it cleanly after that long
    #: and the adapter watches on from its resourceVersion (no relist).
    watch_timeout: Annotated[int, msgspec.Meta(ge=1)] = 300
    #: Seconds without a byte (headers included) after which a watch is given up
    #: as dead (a server or proxy that stopped answering): reconnect and relist.
    #: 0: ``watch_timeout`` + 60.  Give it more than ``watch_timeout``.
    read_timeout: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    #: Seconds one list page may take, from connecting to its last byte.
    request_timeout: Annotated[float, msgspec.Meta(gt=0)] = 120.0
    #: The pod network's subnets (the cluster CIDR(s)): one CIDR, a comma-separated
    #: list or a list, IPv4 and/or IPv6.  Empty: the nodes' podCIDRs, united.
    pod_cidr: str | list[str] = ""
    #: The pod network's gateway (a host address of the lowest IPv4 pod_cidr
    #: subnet); empty: that subnet's first host address.  Needs ``pod_cidr``.
    pod_gateway: str = ""


@dataclass(frozen=True)
class _Resource:
    kind: str
    method: str  # list method (cluster-wide) of the API class
    api: str = "core"  # core (CoreV1Api) | discovery (DiscoveryV1Api) | networking (NetworkingV1Api)


PODS = _Resource("Pod", "list_pod_for_all_namespaces")
NAMESPACES = _Resource("Namespace", "list_namespace")
NODES = _Resource("Node", "list_node")
SERVICES = _Resource("Service", "list_service_for_all_namespaces")
SLICES = _Resource("EndpointSlice", "list_endpoint_slice_for_all_namespaces", "discovery")
POLICIES = _Resource("NetworkPolicy", "list_network_policy_for_all_namespaces", "networking")
RESOURCES = (NODES, NAMESPACES, SLICES, SERVICES, POLICIES, PODS)
#: Resources whose change can change a Service.
_SERVICE_INPUTS = (NODES, SLICES, SERVICES)


class _Expired(Exception):
    """410 Gone: the watch RV (or the list continue token) is too old."""


class _ApiError(Exception):
    """An API error that is not a 410, or a stream that makes no sense: reconnect."""


#: Failures of the connection or the server: reconnect + relist, never a Rejected.
_RECOVERABLE: tuple[type[BaseException], ...] = (
    aiohttp.ClientError,
    OSError,
    asyncio.TimeoutError,
    ApiException,
    _ApiError,
    _Expired,
)


def _older(rv: str, applied: str) -> bool:
    """``rv`` is at or below ``applied`` (both etcd revisions: decimal; anything else compares as newer)."""
    return rv.isdecimal() and applied.isdecimal() and int(rv) <= int(applied)


#: msgspec decodes a pod watch line about twice as fast as json.loads (bench k8s).
_decode = msgspec.json.Decoder().decode


def _status_message(body: bytes) -> str:
    try:
        status = json.loads(body)
    except (ValueError, RecursionError):
        return body[:200].decode(errors="replace")
    if isinstance(status, dict):
        return f"{status.get('reason')}: {status.get('message')}"
    return str(status)[:200]


class K8sAdapter:
    """Watches one Kubernetes cluster; implements :class:`core.adapter.Adapter`."""

    #: First reconnect delay (seconds); doubled per failure up to ``backoff_max``, jittered into [d/2, d].
    backoff_initial = 0.5

    def __init__(self, spec: AdapterSpec, options: K8sOptions | None = None) -> None:
        self.spec = spec
        self.options = options if options is not None else parse_options(spec, K8sOptions)
        if not NETWORK_NAME.fullmatch(self.options.network):
            raise OptionsError(f"adapters.{spec.name}.network: {self.options.network!r} is not a network name")
        if self.options.context and not self.options.kubeconfig:
            raise OptionsError(f"adapters.{spec.name}.context: needs a kubeconfig (in-cluster config has no contexts)")
        #: The ``pod_cidr`` subnets (collapsed, sorted); None: derived from the nodes' podCIDRs.
        self.pod_cidr: tuple[str, ...] | None = None
        gateway: str | None = None
        if self.options.pod_cidr:
            try:
                self.pod_cidr = parse_pod_cidr(self.options.pod_cidr)
            except Invalid as exc:
                raise OptionsError(f"adapters.{spec.name}.pod_cidr: {exc}") from None
        if self.options.pod_gateway:
            if self.pod_cidr is None:
                raise OptionsError(
                    f"adapters.{spec.name}.pod_gateway: needs pod_cidr (derived from the nodes' podCIDRs, the "
                    "gateway is the first address of the lowest one)"
                )
            try:
                gateway = parse_pod_gateway(self.options.pod_gateway, self.pod_cidr)
            except Invalid as exc:
                raise OptionsError(f"adapters.{spec.name}.pod_gateway: {exc}") from None
        o = self.options
        connect = min(_CONNECT_TIMEOUT, o.request_timeout)
        self._list_timeout = aiohttp.ClientTimeout(total=o.request_timeout, sock_connect=connect)
        self._watch_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect, sock_read=o.read_timeout or o.watch_timeout + 60.0
        )
        self.source = spec.source
        self.network = self.options.network
        #: The pod network as last emitted (see :mod:`.podnet`).
        self.pod_network = pod_network(self.source, self.network, self.pod_cidr or (), gateway)
        #: Node name → its pod CIDRs (only without ``pod_cidr``).
        self.node_cidrs: dict[str, tuple[str, ...]] = {}
        self._cidrs_dropped: tuple[str, ...] = ()
        self.log = spec.logger()
        self.cache = ObjectCache(self.source)
        #: Rejected inputs by reason (the hub also counts Rejected events).
        self.rejected: collections.Counter[str] = collections.Counter()
        #: Number of Snapshots emitted (initial lists and relists).
        self.relists = 0
        self.connected = False
        #: Namespace name → labels.
        self.namespaces: dict[str, dict[str, str]] = {}
        #: Node name → chassis name.
        self.chassis: dict[str, str] = {}
        #: Node name → InternalIPs.
        self.node_ips: dict[str, tuple[str, ...]] = {}
        #: Last resourceVersion seen per kind (list RV, then watch events/bookmarks).
        self.resource_versions: dict[str, str] = {}
        #: Watch events skipped as repeats (a resourceVersion at or below the one already applied).
        self.stale_events = 0
        self._pods: dict[str, Endpoint] = {}  # pod uid → endpoint with node = spec.nodeName
        self._namespaces: dict[str, Namespace] = {}  # name → Namespace
        self._svc_raw: dict[tuple[str, str], dict[str, Any]] = {}  # (ns, name) → valid Service payload
        self._services: dict[tuple[str, str], Service] = {}  # (ns, name) → emitted Service
        self._slices: dict[tuple[str, str], EndpointSliceInfo] = {}  # (ns, slice name) → slice
        self._slices_of: dict[tuple[str, str], set[tuple[str, str]]] = {}  # (ns, service) → slice keys
        self._policies: dict[str, Policy] = {}  # uid → Policy
        self._lock = asyncio.Lock()
        self._logged_rejects: set[tuple[str, str]] = set()

    # ------------------------------------------------------------ run loop
    async def run(self, sink: EventSink) -> None:
        """Reconnect and relist until cancelled.  Reset rule: a session that got
        connected (every list done, watches started) starts the backoff over."""
        backoff = Backoff(min(self.backoff_initial, self.options.backoff_max), self.options.backoff_max)
        while True:
            try:
                api = await self._api_client()
                async with api:
                    await self._session(api, sink)
                reason = "session ended"
            except _RECOVERABLE as exc:
                reason = describe_exception(exc)
            if self.connected:
                self.connected = False
                backoff.reset()
                self.log.warning("disconnected from the kubernetes API (%s); reconnecting", reason)
            else:
                self.log.debug("kubernetes API unavailable: %s", reason)
            await asyncio.sleep(backoff.next())

    async def _api_client(self) -> k8s_client.ApiClient:
        cfg = k8s_client.Configuration()
        if self.options.kubeconfig:
            await k8s_config.load_kube_config(
                config_file=self.options.kubeconfig,
                context=self.options.context or None,
                client_configuration=cfg,
                persist_config=False,
            )
        else:
            k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        return k8s_client.ApiClient(configuration=cfg)

    async def _session(self, api: k8s_client.ApiClient, sink: EventSink) -> None:
        apis: dict[str, Any] = {
            "core": k8s_client.CoreV1Api(api),
            "discovery": k8s_client.DiscoveryV1Api(api),
            "networking": k8s_client.NetworkingV1Api(api),
        }
        lists = {res.kind: await self._list(apis, res) for res in RESOURCES}
        async with self._lock:
            events: list[InputEvent | None] = []
            for res in RESOURCES:
                items, rv = lists[res.kind]
                events += self._replace(res, items, resync=False)
                self.resource_versions[res.kind] = rv
            events += self._resync_services()
            await self._emit_relist(sink, events)
        if not self.connected:
            self.connected = True
            self.log.info(
                "connected to the kubernetes API at %s: %d pod endpoints, %d namespaces, %d nodes, "
                "%d services, %d endpoint slices, %d network policies; network %s: subnets %s (%s), gateway %s",
                api.configuration.host,
                len(self._pods),
                len(self.namespaces),
                len(self.chassis),
                len(self._services),
                len(self._slices),
                len(self._policies),
                self.network,
                ", ".join(self.pod_network.subnets) or "none",
                "pod_cidr" if self.pod_cidr is not None else "the nodes' podCIDRs",
                self.pod_network.gateway,
            )
        tasks = [asyncio.create_task(self._watch(apis, res, sink), name=f"k8s-watch-{res.kind}") for res in RESOURCES]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------ list
    async def _list(self, apis: dict[str, Any], res: _Resource) -> tuple[list[Any], str]:
        """All objects of a resource (paged) and the list's resourceVersion."""
        call: Callable[..., Awaitable[Any]] = getattr(apis[res.api], res.method)
        for _ in range(_LIST_ATTEMPTS):
            items: list[Any] = []
            token = ""
            rv = ""
            while True:
                kwargs: dict[str, Any] = {
                    "limit": self.options.page_size,
                    "_preload_content": False,
                    "_request_timeout": self._list_timeout,
                }
                if token:
                    kwargs["_continue"] = token
                resp: aiohttp.ClientResponse = await call(**kwargs)
                try:
                    body = await resp.read()
                finally:
                    resp.release()
                if resp.status == 410 and token:
                    self.log.info("list of %ss: continue token expired; listing again", res.kind)
                    break
                if resp.status != 200:
                    raise _ApiError(f"list {res.kind}s: HTTP {resp.status}: {_status_message(body)}")
                try:
                    page = _decode(body)
                except (msgspec.DecodeError, ValueError, RecursionError):
                    raise _ApiError(f"list {res.kind}s: response is not JSON") from None
                page_items = page.get("items") if isinstance(page, dict) else None
                meta = page.get("metadata") if isinstance(page, dict) else None
                if not isinstance(page_items, list) or not isinstance(meta, dict):
                    raise _ApiError(f"list {res.kind}s: response is not a {res.kind}List")
                items += page_items
                rv = rv or resource_version(page)
                token = meta.get("continue") or ""
                if not isinstance(token, str):
                    raise _ApiError(f"list {res.kind}s: metadata.continue is not a string")
                if not token:
                    if not rv:
                        raise _ApiError(f"list {res.kind}s: no metadata.resourceVersion")
                    return items, rv
        raise _ApiError(f"list {res.kind}s: continue token expired {_LIST_ATTEMPTS} times in a row")

    async def _relist(self, apis: dict[str, Any], res: _Resource, sink: EventSink) -> None:
        items, rv = await self._list(apis, res)
        async with self._lock:
            events = self._replace(res, items)
            self.resource_versions[res.kind] = rv
            await self._emit_relist(sink, events)
        self.log.info("relisted %d %ss after an expired watch", len(items), res.kind)

    async def _emit_relist(self, sink: EventSink, events: list[InputEvent | None]) -> None:
        """Emit a relist's deltas (not on the very first list), then the Snapshot."""
        if self.relists:
            for ev in events:
                if ev is not None:
                    await sink.emit(ev)
        else:
            for ev in events:
                if isinstance(ev, Rejected):
                    await sink.emit(ev)
        objects: list[Object] = [self.pod_network]
        objects += [self._effective(ep) for ep in self._pods.values()]
        objects += self._namespaces.values()
        objects += self._services.values()
        objects += self._policies.values()
        snap = self.cache.snapshot(objects)
        self.relists += 1
        await sink.emit(snap)

    # ------------------------------------------------------------ watch
    async def _watch(self, apis: dict[str, Any], res: _Resource, sink: EventSink) -> None:
        """Watch one resource until the session ends, relisting after a 410.  A
        watch the server closed without an event is retried after a delay from
        0.1 s up to ``backoff_max``; reset rule: a watch that delivered events."""
        quiet = Backoff(min(_QUIET_RETRY, self.options.backoff_max), self.options.backoff_max)
        while True:
            try:
                got = await self._watch_once(apis, res, sink)
            except _Expired as exc:
                self.log.info("watch of %ss expired (%s): relisting", res.kind, describe_exception(exc))
                await self._relist(apis, res, sink)
                continue
            # closed cleanly by the server (timeout): resume from the last RV
            if got:
                quiet.reset()
            else:
                await asyncio.sleep(quiet.next())

    async def _watch_once(self, apis: dict[str, Any], res: _Resource, sink: EventSink) -> int:
        """One watch request; returns the number of events when the server ends it."""
        call: Callable[..., Awaitable[Any]] = getattr(apis[res.api], res.method)
        resp: aiohttp.ClientResponse = await call(
            watch=True,
            resource_version=self.resource_versions[res.kind],
            allow_watch_bookmarks=True,
            timeout_seconds=self.options.watch_timeout,
            _preload_content=False,
            _request_timeout=self._watch_timeout,
        )
        try:
            if resp.status == 410:
                raise _Expired(f"HTTP 410: {_status_message(await resp.read())}")
            if resp.status != 200:
                raise _ApiError(f"watch {res.kind}s: HTTP {resp.status}: {_status_message(await resp.read())}")
            count = 0
            buf = bytearray()
            while True:
                chunk = await resp.content.readany()
                if not chunk:
                    if buf.strip():
                        await self._handle_line(res, bytes(buf), sink)
                        count += 1
                    return count
                buf += chunk
                while (nl := buf.find(b"\n")) >= 0:
                    line = bytes(buf[:nl])
                    del buf[: nl + 1]
                    if line.strip():
                        await self._handle_line(res, line, sink)
                        count += 1
                if len(buf) > _MAX_LINE:
                    raise _ApiError(f"watch {res.kind}s: event longer than {_MAX_LINE} bytes")
        finally:
            resp.close()

    async def _handle_line(self, res: _Resource, line: bytes, sink: EventSink) -> None:
        if res is PODS:
            fast = decode_pod_event(line, self.source, network=self.network)
            if fast is not None:  # a well-formed pod event, normalized; anything else takes the dict path below
                if fast.type != "BOOKMARK" and _older(fast.resource_version, self.resource_versions.get(res.kind, "")):
                    self.stale_events += 1  # a repeat (see below)
                    return
                async with self._lock:
                    try:
                        events = self._apply_pod_event(fast)
                    except Exception as exc:  # a bug: one event must not kill run()
                        self.log.exception("failed to process %s %s event", res.kind, fast.type)
                        events = [self._reject(Invalid("internal-error", f"{res.kind} {fast.type}: {describe_exception(exc)}"), fast.uid)]
                    await self._emit_all(sink, events)
                if fast.resource_version:
                    self.resource_versions[res.kind] = fast.resource_version
                return
        try:
            try:
                value = _decode(line)
            except (msgspec.DecodeError, ValueError, RecursionError):
                raise Invalid("bad-json", f"{res.kind} watch line is not JSON: {line[:80]!r}") from None
            ev = parse_watch_event(value)
        except Invalid as exc:
            await self._emit_all(sink, [self._reject(exc, "")])
            return
        typ: str = ev["type"]
        obj: dict[str, Any] = ev["object"]
        if typ == "ERROR":
            err = watch_error(ev)
            if err.reason == "expired":
                raise _Expired(str(err))
            raise _ApiError(f"watch {res.kind}s: {err}")
        rv = resource_version(obj)
        if typ != "BOOKMARK":
            if _older(rv, self.resource_versions.get(res.kind, "")):
                # A watch sends what came after the RV it asked for, in order: an event at or below the RV
                # already applied is a repeat (a server replaying its history): applying it would undo newer
                # state until the newer event came again.
                self.stale_events += 1
                return
            async with self._lock:
                try:
                    events = self._apply(res, typ, obj)
                except Exception as exc:  # a bug or an unforeseen payload: one event must not kill run()
                    self.log.exception("failed to process %s %s event", res.kind, typ)
                    events = [
                        self._reject(Invalid("internal-error", f"{res.kind} {typ}: {describe_exception(exc)}"), object_ref(obj))
                    ]
                await self._emit_all(sink, events)
        if rv:
            self.resource_versions[res.kind] = rv

    # ------------------------------------------------------------ state
    def _network_event(self) -> InputEvent | None:
        """Recompute the pod network from the nodes' podCIDRs; its Upsert, or
        None if it did not change."""
        subnets, dropped = cap(collapse(c for cidrs in self.node_cidrs.values() for c in cidrs))
        if dropped != self._cidrs_dropped:
            if dropped:
                self.log.warning(
                    "network %s: the nodes' podCIDRs collapse to %d subnets, more than a network may have (%d); "
                    "left out: %s (set the adapter's pod_cidr to the cluster CIDR)",
                    self.network,
                    len(subnets) + len(dropped),
                    len(subnets),
                    ", ".join(dropped),
                )
            else:
                self.log.info("network %s: every node's podCIDR fits again", self.network)
            self._cidrs_dropped = dropped
        net = pod_network(self.source, self.network, subnets)
        if net != self.pod_network:
            self.log.info("network %s: subnets %s, gateway %s", self.network, ", ".join(subnets) or "none", net.gateway)
            self.pod_network = net
        return self.cache.upsert(net)

    def _effective(self, ep: Endpoint) -> Endpoint:
        chassis = self.chassis.get(ep.node, ep.node)
        return ep if chassis == ep.node else msgspec.structs.replace(ep, node=chassis)

    def _drop_pod(self, uid: str) -> InputEvent | None:
        if self._pods.pop(uid, None) is None:
            return None
        return self.cache.delete("endpoint", f"{self.network}/{uid}")

    def _apply(self, res: _Resource, typ: str, obj: dict[str, Any]) -> list[InputEvent | None]:
        """One watch event → the canonical events to emit (state updated)."""
        if res is PODS:
            return self._apply_pod(typ, obj)
        if res is NODES:
            return self._apply_node(typ, obj)
        if res is SERVICES:
            return self._apply_service(typ, obj)
        if res is SLICES:
            return self._apply_slice(typ, obj)
        if res is POLICIES:
            return self._apply_policy(typ, obj)
        return self._apply_namespace(typ, obj)

    def _safe_uid(self, obj: Any) -> str:
        try:
            return pod_uid(obj)
        except Invalid:
            return ""

    def _apply_pod(self, typ: str, obj: dict[str, Any]) -> list[InputEvent | None]:
        if typ == "DELETED":
            try:
                return [self._drop_pod(pod_uid(obj))]
            except Invalid as exc:
                return [self._reject(exc, object_ref(obj))]
        try:
            ep = normalize_pod(obj, self.source, network=self.network)
        except Invalid as exc:
            return [self._reject(exc, object_ref(obj)), self._drop_pod(self._safe_uid(obj))]
        if ep is None:
            return [self._drop_pod(self._safe_uid(obj))]
        self._pods[ep.uid] = ep
        return [self.cache.upsert(self._effective(ep))]

    def _apply_pod_event(self, ev: PodEvent) -> list[InputEvent | None]:
        """:meth:`_apply_pod` of an event :func:`decode_pod_event` normalized."""
        ep = ev.endpoint
        if ep is None:  # DELETED, or a pod without an endpoint
            return [self._drop_pod(ev.uid)]
        self._pods[ep.uid] = ep
        return [self.cache.upsert(self._effective(ep))]

    def _apply_node(self, typ: str, obj: dict[str, Any]) -> list[InputEvent | None]:
        try:
            name, chassis = node_chassis(obj)
            ips = node_internal_ips(obj)
        except Invalid as exc:
            # a node we cannot read adds no slice to the pod network (its chassis and IPs stay as they were)
            if self.pod_cidr is None and self.node_cidrs.pop(self._safe_name(obj), None) is not None:
                return [self._reject(exc, object_ref(obj)), self._network_event()]
            return [self._reject(exc, object_ref(obj))]
        events: list[InputEvent | None] = []
        if self.pod_cidr is None:
            cidrs: tuple[str, ...] = ()
            if typ != "DELETED":
                try:
                    cidrs = node_pod_cidrs(obj)
                except Invalid as exc:  # only the slice is lost: the chassis and the IPs still count
                    events.append(self._reject(exc, object_ref(obj)))
            if cidrs:
                self.node_cidrs[name] = cidrs
            else:
                self.node_cidrs.pop(name, None)
            events.append(self._network_event())
        before = self.chassis.get(name, name)
        ips_before = self.node_ips.get(name, ())
        if typ == "DELETED":
            self.chassis.pop(name, None)
            self.node_ips.pop(name, None)
        else:
            self.chassis[name] = chassis
            self.node_ips[name] = ips
        if self.chassis.get(name, name) != before:
            self.log.info("node %s: chassis %s", name, self.chassis.get(name, name))
            events += [self.cache.upsert(self._effective(ep)) for ep in self._pods.values() if ep.node == name]
        if self.node_ips.get(name, ()) != ips_before:
            events += self._resync_services()
        return events

    def _apply_namespace(self, typ: str, obj: dict[str, Any]) -> list[InputEvent | None]:
        if typ == "DELETED":
            try:
                name, _ = namespace_labels(obj)
            except Invalid as exc:
                return [self._reject(exc, object_ref(obj))]
            return [self._drop_namespace(name)]
        try:
            ns = normalize_namespace(obj, self.source)
        except Invalid as exc:
            return [self._reject(exc, object_ref(obj)), self._drop_namespace(self._safe_name(obj))]
        self.namespaces[ns.name] = dict(ns.labels)
        self._namespaces[ns.name] = ns
        return [self.cache.upsert(ns)]

    def _drop_namespace(self, name: str) -> InputEvent | None:
        self.namespaces.pop(name, None)
        if self._namespaces.pop(name, None) is None:
            return None
        return self.cache.delete("namespace", name)

    @staticmethod
    def _safe_name(obj: Any) -> str:
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        return name if isinstance(name, str) else ""

    @staticmethod
    def _safe_key(obj: Any) -> tuple[str, str]:
        """(namespace, name) of a namespaced object, or ("", "") ; never raises."""
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if not isinstance(meta, dict):
            return ("", "")
        name, ns = meta.get("name"), meta.get("namespace", "default")
        if not isinstance(name, str) or not isinstance(ns, str):
            return ("", "")
        return (ns, name)

    # services -------------------------------------------------------------
    def _service_node_ips(self) -> list[str]:
        return [ip for ips in self.node_ips.values() for ip in ips]

    def _compute_service(self, key: tuple[str, str]) -> list[InputEvent | None]:
        """Recompute the Service of ``key`` from its payload, slices and node IPs."""
        raw = self._svc_raw.get(key)
        svc: Service | None = None
        events: list[InputEvent | None] = []
        if raw is not None:
            slices = [self._slices[k] for k in sorted(self._slices_of.get(key, ()))]
            try:
                svc = normalize_service(raw, slices, self._service_node_ips(), self.source, self.network)
            except Invalid as exc:
                events.append(self._reject(exc, object_ref(raw)))
        old = self._services.get(key)
        if old is not None and (svc is None or old.uid != svc.uid):
            del self._services[key]
            events.append(self.cache.delete("service", old.uid))
        if svc is not None:
            self._services[key] = svc
            events.append(self.cache.upsert(svc))
        return events

    def _resync_services(self) -> list[InputEvent | None]:
        """Recompute every Service (after a node IP change or a relist)."""
        events: list[InputEvent | None] = []
        for key in sorted(self._svc_raw.keys() | self._services.keys()):
            events += self._compute_service(key)
        return events

    def _apply_service(self, typ: str, obj: dict[str, Any]) -> list[InputEvent | None]:
        key = self._safe_key(obj)
        if typ == "DELETED":
            self._svc_raw.pop(key, None)
            return self._compute_service(key)
        try:
            normalize_service(obj, [], [], self.source, self.network)  # validate the payload alone
        except Invalid as exc:
            self._svc_raw.pop(key, None)
            return [self._reject(exc, object_ref(obj)), *self._compute_service(key)]
        self._svc_raw[key] = obj
        return self._compute_service(key)

    def _set_slice(self, key: tuple[str, str], info: EndpointSliceInfo | None) -> set[tuple[str, str]]:
        """Store (or remove) a slice; returns the services whose slices changed."""
        touched: set[tuple[str, str]] = set()
        old = self._slices.pop(key, None)
        if old is not None and old.service:
            skey = (old.namespace, old.service)
            members = self._slices_of.get(skey)
            if members is not None:
                members.discard(key)
                if not members:
                    del self._slices_of[skey]
            touched.add(skey)
        if info is not None:
            self._slices[key] = info
            if info.service:
                skey = (info.namespace, info.service)
                self._slices_of.setdefault(skey, set()).add(key)
                touched.add(skey)
        return touched

    def _apply_slice(self, typ: str, obj: dict[str, Any]) -> list[InputEvent | None]:
        key = self._safe_key(obj)
        events: list[InputEvent | None] = []
        info: EndpointSliceInfo | None = None
        if typ != "DELETED":
            try:
                info = parse_endpoint_slice(obj)
            except Invalid as exc:
                events.append(self._reject(exc, object_ref(obj)))
        for skey in sorted(self._set_slice(key, info)):
            events += self._compute_service(skey)
        return events

    # policies -------------------------------------------------------------
    def _drop_policy(self, uid: str) -> InputEvent | None:
        if self._policies.pop(uid, None) is None:
            return None
        return self.cache.delete("policy", uid)

    def _apply_policy(self, typ: str, obj: dict[str, Any]) -> list[InputEvent | None]:
        if typ == "DELETED":
            try:
                return [self._drop_policy(object_uid(obj, "NetworkPolicy"))]
            except Invalid as exc:
                return [self._reject(exc, object_ref(obj))]
        try:
            pol = normalize_policy(obj, self.source)
        except Invalid as exc:
            try:
                uid = object_uid(obj, "NetworkPolicy")
            except Invalid:
                uid = ""
            return [self._reject(exc, object_ref(obj)), self._drop_policy(uid)]
        self._policies[pol.uid] = pol
        return [self.cache.upsert(pol)]

    # relists --------------------------------------------------------------
    def _replace(self, res: _Resource, items: Iterable[Any], *, resync: bool = True) -> list[InputEvent | None]:
        """A full list of a resource → new state; returns the deltas against the cache.
        ``resync``: recompute the Services if the resource feeds them."""
        events: list[InputEvent | None] = []
        if res is PODS:
            pods: dict[str, Endpoint] = {}
            for obj in items:
                try:
                    ep = normalize_pod(obj, self.source, network=self.network)
                except Invalid as exc:
                    events.append(self._reject(exc, object_ref(obj)))
                    continue
                if ep is not None:
                    pods[ep.uid] = ep
            events += [self._drop_pod(uid) for uid in list(self._pods.keys() - pods.keys())]
            self._pods = pods
        elif res is NODES:
            chassis: dict[str, str] = {}
            node_ips: dict[str, tuple[str, ...]] = {}
            node_cidrs: dict[str, tuple[str, ...]] = {}
            for obj in items:
                try:
                    name, ch = node_chassis(obj)
                    ips = node_internal_ips(obj)
                except Invalid as exc:
                    events.append(self._reject(exc, object_ref(obj)))
                    continue
                chassis[name] = ch
                node_ips[name] = ips
                if self.pod_cidr is None:
                    try:
                        if cidrs := node_pod_cidrs(obj):
                            node_cidrs[name] = cidrs
                    except Invalid as exc:
                        events.append(self._reject(exc, object_ref(obj)))
            self.chassis = chassis
            self.node_ips = node_ips
            if self.pod_cidr is None:
                self.node_cidrs = node_cidrs
                events.append(self._network_event())
        elif res is NAMESPACES:
            namespaces: dict[str, Namespace] = {}
            for obj in items:
                try:
                    ns = normalize_namespace(obj, self.source)
                except Invalid as exc:
                    events.append(self._reject(exc, object_ref(obj)))
                    continue
                namespaces[ns.name] = ns
            events += [self._drop_namespace(name) for name in list(self._namespaces.keys() - namespaces.keys())]
            self._namespaces = namespaces
            self.namespaces = {name: dict(ns.labels) for name, ns in namespaces.items()}
            events += [self.cache.upsert(ns) for ns in namespaces.values()]
        elif res is SERVICES:
            raw: dict[tuple[str, str], dict[str, Any]] = {}
            for obj in items:
                try:
                    normalize_service(obj, [], [], self.source, self.network)
                except Invalid as exc:
                    events.append(self._reject(exc, object_ref(obj)))
                    continue
                raw[self._safe_key(obj)] = obj
            self._svc_raw = raw
        elif res is SLICES:
            slices: dict[tuple[str, str], EndpointSliceInfo] = {}
            for obj in items:
                try:
                    info = parse_endpoint_slice(obj)
                except Invalid as exc:
                    events.append(self._reject(exc, object_ref(obj)))
                    continue
                slices[info.key] = info
            self._slices = slices
            self._slices_of = {}
            for key, info in slices.items():
                if info.service:
                    self._slices_of.setdefault((info.namespace, info.service), set()).add(key)
        else:
            policies: dict[str, Policy] = {}
            for obj in items:
                try:
                    pol = normalize_policy(obj, self.source)
                except Invalid as exc:
                    events.append(self._reject(exc, object_ref(obj)))
                    continue
                policies[pol.uid] = pol
            events += [self._drop_policy(uid) for uid in list(self._policies.keys() - policies.keys())]
            self._policies = policies
            events += [self.cache.upsert(pol) for pol in policies.values()]
        if res in (PODS, NODES):
            events += [self.cache.upsert(self._effective(ep)) for ep in self._pods.values()]
        if resync and res in _SERVICE_INPUTS:
            events += self._resync_services()
        return events

    # ------------------------------------------------------------ helpers
    def _reject(self, exc: Invalid, ref: str) -> Rejected:
        self.rejected[exc.reason] += 1
        key = (ref, exc.reason)
        if key not in self._logged_rejects:  # log once per object and reason
            if len(self._logged_rejects) >= _REJECT_MEMORY:
                self._logged_rejects.clear()
            self._logged_rejects.add(key)
            self.log.warning("rejected %s (%s): %s", ref or "event", exc.reason, exc)
        return Rejected(source=self.source, reason=exc.reason, message=str(exc), ref=ref)

    async def _emit_all(self, sink: EventSink, events: list[InputEvent | None]) -> None:
        for ev in events:
            if ev is not None:
                await sink.emit(ev)

    def endpoints(self) -> list[Endpoint]:
        return self.cache.endpoints()

    def snapshot(self) -> Snapshot:
        """The current content (what the last Snapshot plus deltas amount to)."""
        return Snapshot(source=self.source, objects=tuple(self.cache.objects.values()))
