"""Marathon payloads → canonical: pure, no I/O.

Marathon is the optional second source of the Mesos adapter: its events are only
invalidations (``shared/reference/protocols.md`` §3: unordered, no resume), what
counts is the relist of ``GET /v2/apps?embed=apps.tasks``.  From it:

* **namespaces**: an app's group path, most specific first, joined by dots (the
  way Marathon names its tasks, ``runSpec.id.toHostname``): the app
  ``/shop/web/api`` is ``api`` in namespace ``web.shop``; an app of the root
  group (``/api``) is in namespace ``marathon``.  The Mesos endpoints of its tasks
  take that namespace and the app's name (:func:`task_overrides`), so the fabric's
  DNS name of a task is ``api.web.shop.mesos.<cluster>.<zone>`` (all the app's
  instances answer it);
* **Services**: every ``VIP_<n>`` label (any key starting with ``VIP``, as
  DC/OS's l4lb reads them) on a port of an app on a container network
  (``networks[].mode = container``, the legacy ``ipAddress``, or Docker ``USER``
  networking): ``container.portMappings`` / ``container.docker.portMappings``
  (the backend port is ``containerPort``) or ``ipAddress.discovery.ports``
  (``number``).  The value is ``<ip>:<port>`` (an IP VIP) or
  ``/<name>:<port>`` (a named VIP: its address comes from
  :class:`VipAllocator`, and its Service is ``<last path segment>`` in the
  namespace of the rest of the path, so ``/web:80`` is
  ``web.marathon.mesos.<cluster>.<zone>`` through the fabric's DNS).  Apps
  sharing a VIP share its Service.  Backends: ``<task IP>:<port>`` of the app's
  tasks that are ``TASK_RUNNING``, healthy when the app has health checks (every
  ``healthCheckResults`` alive), and not ended in Mesos meanwhile.  A VIP on a
  host or bridge networked app is skipped (``host-network``: its backends would be
  agent addresses, not OVN endpoints).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from core.model import Invalid, LBRule, Service, Source, validate

__all__ = [
    "App",
    "VipAllocator",
    "app_name",
    "decode_app",
    "decode_apps",
    "decode_event",
    "decode_tasks",
    "group_namespace",
    "services",
    "task_overrides",
    "vip_task_ids",
]

ROOT_NAMESPACE = "marathon"


class _S(msgspec.Struct, kw_only=True, gc=False):
    """Base: keyword-only fields (Marathon's camelCase names); unknown fields skipped."""


class PortMapping(_S):
    containerPort: int | None = None
    hostPort: int | None = None
    labels: dict[str, str] = {}
    protocol: str = "tcp"


class DiscoveryPort(_S):
    number: int
    protocol: str = "tcp"
    labels: dict[str, str] = {}


class Discovery(_S):
    ports: list[DiscoveryPort] = []


class IpAddress(_S):
    networkName: str | None = None
    discovery: Discovery | None = None


class NetworkSpec(_S):
    mode: str = "container"
    name: str | None = None


class Docker(_S):
    network: str | None = None
    portMappings: list[PortMapping] | None = None


class Container(_S):
    portMappings: list[PortMapping] | None = None
    docker: Docker | None = None


class PortDefinition(_S):
    port: int | None = None
    labels: dict[str, str] = {}
    protocol: str = "tcp"


class TaskIp(_S):
    ipAddress: str


class HealthResult(_S):
    alive: bool = False


class MarathonTask(_S):
    id: str
    appId: str = ""
    state: str = ""
    ipAddresses: list[TaskIp] | None = None
    healthCheckResults: list[HealthResult] | None = None


class AppSpec(_S):
    id: str
    networks: list[NetworkSpec] = []
    container: Container | None = None
    portDefinitions: list[PortDefinition] | None = None
    ipAddress: IpAddress | None = None
    healthChecks: list[msgspec.Raw] | None = None
    tasks: list[msgspec.Raw] = []


class _Apps(_S):
    apps: list[msgspec.Raw]


class _OneApp(_S):
    app: msgspec.Raw


class _Tasks(_S):
    tasks: list[msgspec.Raw]


class MarathonEvent(_S):
    eventType: str
    appId: str | None = None
    taskId: str | None = None
    taskStatus: str | None = None


@dataclass
class App:
    """One app with its tasks (the bad ones left out, as Invalids)."""

    spec: AppSpec
    tasks: list[MarathonTask] = field(default_factory=list)


def _decode(typ: Any, data: bytes | msgspec.Raw, what: str) -> Any:
    try:
        return msgspec.json.decode(data, type=typ)
    except msgspec.ValidationError as exc:
        raise Invalid("bad-field", f"{what}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise Invalid("bad-json", f"{what} is not JSON: {exc}") from None
    except RecursionError:
        raise Invalid("bad-json", f"{what} is nested too deeply") from None


def decode_app(raw: bytes | msgspec.Raw) -> tuple[App, list[Invalid]]:
    spec: AppSpec = _decode(AppSpec, raw, "app")
    _check_id(spec.id, "app")
    app = App(spec)
    bad: list[Invalid] = []
    for t in spec.tasks:
        try:
            task: MarathonTask = _decode(MarathonTask, t, f"app {spec.id} task")
        except Invalid as exc:
            bad.append(exc)
            continue
        app.tasks.append(task)
    return app, bad


def decode_apps(body: bytes) -> tuple[list[App], list[Invalid]]:
    """``GET /v2/apps?embed=apps.tasks`` (or ``/v2/apps/<id>``'s ``{"app": …}``) → apps; a bad
    app is an Invalid (and absent), the response itself not being one raises."""
    try:
        raws = _decode(_Apps, body, "/v2/apps response").apps
    except Invalid:
        raws = [_decode(_OneApp, body, "/v2/apps response").app]
    apps: list[App] = []
    bad: list[Invalid] = []
    for raw in raws:
        try:
            app, worse = decode_app(raw)
        except Invalid as exc:
            bad.append(exc)
            continue
        apps.append(app)
        bad += worse
    return apps, bad


def decode_tasks(body: bytes) -> tuple[list[MarathonTask], list[Invalid]]:
    """``GET /v2/tasks`` → tasks (bad ones as Invalids)."""
    raws = _decode(_Tasks, body, "/v2/tasks response").tasks
    tasks: list[MarathonTask] = []
    bad: list[Invalid] = []
    for raw in raws:
        try:
            tasks.append(_decode(MarathonTask, raw, "task"))
        except Invalid as exc:
            bad.append(exc)
    return tasks, bad


def decode_event(data: bytes | str) -> MarathonEvent:
    """One ``/v2/events`` event (its JSON ``data``)."""
    ev: MarathonEvent = _decode(MarathonEvent, data.encode() if isinstance(data, str) else data, "Marathon event")
    return ev


def _check_id(app_id: str, what: str) -> None:
    parts = app_id.strip("/").split("/")
    if not app_id.startswith("/") or not all(parts) or any(p in (".", "..") for p in parts):
        raise Invalid("bad-id", f"{what} id {app_id[:80]!r} is not an absolute Marathon path")


def group_namespace(path: str) -> str:
    """The namespace of ``path``'s group: ``/shop/web/api`` → ``web.shop``, ``/api`` → ``marathon``."""
    parts = path.strip("/").split("/")[:-1]
    return ".".join(reversed(parts)) if parts else ROOT_NAMESPACE


def app_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def task_overrides(apps: Iterable[App]) -> dict[str, tuple[str, str]]:
    """Mesos task id → (namespace, name) of its Marathon app."""
    out: dict[str, tuple[str, str]] = {}
    for app in apps:
        ns, name = group_namespace(app.spec.id), app_name(app.spec.id)
        for t in app.tasks:
            out[t.id] = (ns, name)
    return out


# ---------------------------------------------------------------- VIPs
class VipAllocator:
    """Addresses of named VIPs from ``cidr``: a name's hash picks it, the next free
    one on a collision; kept while the name is in use (DC/OS allocates from 11.0.0.0/8)."""

    def __init__(self, cidr: str) -> None:
        self.net = ipaddress.ip_network(cidr, strict=False)
        self._first = 1 if self.net.version == 4 and self.net.prefixlen < 31 else 0
        self.size = self.net.num_addresses - 2 * self._first
        if self.size < 1:
            raise ValueError(f"{cidr} has no host address")
        self.by_name: dict[str, str] = {}
        self._taken: set[str] = set()

    def get(self, name: str) -> str:
        ip = self.by_name.get(name)
        if ip is not None:
            return ip
        if len(self._taken) >= self.size:
            raise Invalid("vip-exhausted", f"named VIP {name!r}: every address of {self.net} is allocated")
        i = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big") % self.size
        while True:
            ip = str(self.net.network_address + self._first + i)
            if ip not in self._taken:
                break
            i = (i + 1) % self.size
        self.by_name[name] = ip
        self._taken.add(ip)
        return ip

    def keep_only(self, names: Iterable[str]) -> None:
        """Release the addresses of names no longer in use."""
        keep = set(names)
        for name in [n for n in self.by_name if n not in keep]:
            self._taken.discard(self.by_name.pop(name))


def parse_vip(value: str) -> tuple[str, str, int]:
    """``"<ip>:<port>"`` → ("", ip, port); ``"/<name>:<port>"`` (or without the slash) → (name, "", port)."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise Invalid("bad-vip", f"VIP {value[:80]!r} is not <ip>:<port> or /<name>:<port>")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return "", str(ipaddress.ip_address(bare)), int(port)
    except ValueError:
        pass
    name = host.strip("/")
    parts = name.split("/")
    if not name or not all(parts) or any(not p.replace("-", "").replace("_", "").replace(".", "").isalnum() for p in parts):
        raise Invalid("bad-vip", f"VIP {value[:80]!r}: {host[:60]!r} is neither an IP address nor a /name")
    return name.lower(), "", int(port)


def _protocols(text: str) -> list[str]:
    out = [p.strip().lower() for p in (text or "tcp").split(",") if p.strip()]
    bad = [p for p in out if p not in ("tcp", "udp", "sctp")]
    if bad or not out:
        raise Invalid("bad-protocol", f"port protocol {text[:30]!r} is not tcp, udp or sctp")
    return out


#: (VIP label value, backend port, protocols)
VipPort = tuple[str, int, list[str]]


def app_network(spec: AppSpec) -> tuple[bool, str]:
    """(on a container network, its name) of an app."""
    for n in spec.networks:
        if n.mode == "container":
            return True, n.name or ""
    if spec.ipAddress is not None:
        return True, spec.ipAddress.networkName or ""
    docker = spec.container.docker if spec.container is not None else None
    if docker is not None and (docker.network or "").upper() == "USER":
        return True, ""
    return False, ""


def vip_ports(spec: AppSpec) -> tuple[list[VipPort], list[str]]:
    """The app's VIP-labelled ports on its container network, and the VIP labels it has
    on host/bridge ports (which cannot be backed by OVN endpoints)."""
    container_net, _ = app_network(spec)
    found: list[VipPort] = []
    host: list[str] = []
    mappings = []
    if spec.container is not None:
        mappings = spec.container.portMappings or (spec.container.docker.portMappings if spec.container.docker else None) or []
    for pm in mappings:
        for key, value in sorted(pm.labels.items()):
            if key.upper().startswith("VIP"):
                if container_net and pm.containerPort:
                    found.append((value, pm.containerPort, _protocols(pm.protocol)))
                else:
                    host.append(value)
    if spec.ipAddress is not None and spec.ipAddress.discovery is not None:
        for dp in spec.ipAddress.discovery.ports:
            for key, value in sorted(dp.labels.items()):
                if key.upper().startswith("VIP"):
                    found.append((value, dp.number, _protocols(dp.protocol)))
    for pd in spec.portDefinitions or []:
        host += [v for k, v in sorted(pd.labels.items()) if k.upper().startswith("VIP")]
    return found, host


def vip_task_ids(apps: Iterable[App]) -> set[str]:
    """The task ids of the apps with VIPs (whose Services a Mesos task update may change)."""
    out: set[str] = set()
    for app in apps:
        try:
            if vip_ports(app.spec)[0]:
                out.update(t.id for t in app.tasks)
        except Invalid:
            continue
    return out


def healthy(app: App, task: MarathonTask) -> bool:
    if task.state != "TASK_RUNNING":
        return False
    if not app.spec.healthChecks:
        return True
    results = task.healthCheckResults or []
    return bool(results) and all(r.alive for r in results)


@dataclass
class _Vip:
    name: str
    ip: str
    namespace: str
    network: str
    rules: dict[tuple[str, int], set[str]] = field(default_factory=dict)


def services(
    apps: Iterable[App],
    source: Source,
    alloc: VipAllocator,
    *,
    gone: Callable[[str], bool] = lambda tid: False,
    mesos_ips: Callable[[str], tuple[str, ...]] = lambda tid: (),
    default_network: str = "",
    on_skip: Callable[[str, str], None] | None = None,
) -> tuple[list[Service], list[Invalid]]:
    """The Services of every VIP of ``apps`` (module docstring).  ``gone(task id)``: Mesos
    reported the task ended; ``mesos_ips(task id)``: its addresses when Marathon lists none."""
    vips: dict[tuple[str, str], _Vip] = {}
    bad: list[Invalid] = []
    for app in sorted(apps, key=lambda a: a.spec.id):
        spec = app.spec
        try:
            ports, host = vip_ports(spec)
            for value in host:
                if on_skip is not None:
                    on_skip("host-network", f"app {spec.id}: VIP {value} is on a host or bridge networked port: its "
                                            "backends would be agent addresses, not OVN endpoints")  # fmt: skip
            if not ports:
                continue
            _, network = app_network(spec)
            network = network or default_network
            if not network:
                raise Invalid("no-network", f"app {spec.id}: its container network has no name (and the adapter's "
                                            "marathon.network is not set)")  # fmt: skip
            parsed = [(parse_vip(value), port, protos) for value, port, protos in ports]
        except Invalid as exc:
            bad.append(Invalid(exc.reason, f"app {spec.id}: {exc}" if not str(exc).startswith("app ") else str(exc)))
            continue
        live = [t for t in app.tasks if healthy(app, t) and not gone(t.id)]
        for (name, ip, vport), port, protos in parsed:
            key = ("name", name) if name else ("ip", ip)
            vip = vips.get(key)
            if vip is None:
                if name:
                    vip_ip = alloc.get(name)
                    vip = _Vip(app_name("/" + name), vip_ip, group_namespace("/" + name), network)
                else:
                    vip = _Vip(f"vip-{ip.replace('.', '-').replace(':', '-')}", ip, group_namespace(spec.id), network)
                vips[key] = vip
            family = ipaddress.ip_address(vip.ip).version
            for proto in protos:
                backends = vip.rules.setdefault((proto, vport), set())
                for t in live:
                    ips = [a.ipAddress for a in t.ipAddresses or []] or list(mesos_ips(t.id))
                    for a in ips:
                        try:
                            addr = ipaddress.ip_address(a)
                        except ValueError:
                            continue
                        if addr.version == family:
                            backends.add(f"[{addr}]:{port}" if family == 6 else f"{addr}:{port}")
    alloc.keep_only(k[1] for k in vips if k[0] == "name")
    out: list[Service] = []
    for (kind, what), vip in sorted(vips.items()):
        svc = Service(
            source=source, uid=f"marathon-vip:{what}", namespace=vip.namespace, name=vip.name, network=vip.network,
            rules=tuple(LBRule(protocol=p, vip=vip.ip, port=port, backends=tuple(sorted(b)))
                        for (p, port), b in sorted(vip.rules.items())),
        )  # fmt: skip
        try:
            validate(svc)
        except Invalid as exc:
            bad.append(Invalid(exc.reason, f"VIP {'/' + what if kind == 'name' else what}: {exc}"))
            continue
        out.append(svc)
    return out, bad
