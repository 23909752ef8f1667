"""hubd: supervisor of adapters, the bus and the OVN programmer.

Startup order (trio's ``nursery.start`` idea: nothing goes on until the child
says it started): config → optional OVN sandbox → NB connection and replica →
admin API → adapters.  ``READY=1`` goes to systemd only after NB is synced and
every adapter's first snapshot has been applied to NB.

One :class:`asyncio.TaskGroup` owns every long-lived task, each named.  An
adapter that raises is restarted with exponential backoff and jitter; it never
takes the daemon or another adapter down.  SIGHUP reloads the config and adds,
removes or restarts only the adapters whose table changed.  SIGTERM stops the
adapters, drains queued events and pending NB writes, and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import gc
import logging
import signal
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from core.adapter import AdapterSpec, OptionsError
from core.model import Delete, Endpoint, Programmed, Ready, Rejected, Snapshot, Source, Upsert
from core.model.fabric import AdminPolicy
from core.nb import PortStatus, Programmer
from hub.bus import AdapterSink, Bus, Subscription
from hub.config import Config, ConfigError, load, ovn_tls
from hub.ipam import SharedIpam
from hub.notify import Notifier
from hub.plugins import PluginError, adapter_factory
from hub.policies import PoliciesFile
from hub.sandbox import OvnSandbox
from hub.supervise import AdapterRunner, watchdog
from hub.trace import Request as TraceRequest
from hub.trace import TraceError, trace

if TYPE_CHECKING:
    from hub.mqtt import MqttMirror
    from hub.remote import ApiIngest, RemoteIngest

log = logging.getLogger("ovn_hub.hubd")


def _trim_heap() -> None:
    """Give memory freed after the initial NB read back to the OS (glibc only)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclasses.dataclass
class _Tasks:
    """The hub's long-lived tasks by name (``None``: not started)."""

    consumer: asyncio.Task[None]
    watchdog: asyncio.Task[None]
    mqtt: asyncio.Task[None] | None = None
    ingest: asyncio.Task[None] | None = None
    writer: asyncio.Task[None] | None = None
    readiness: asyncio.Task[None] | None = None
    policies: asyncio.Task[None] | None = None

    def before_mqtt(self) -> list[asyncio.Task[None]]:
        return [t for t in (self.consumer, self.watchdog, self.writer, self.readiness, self.policies) if t is not None]


class Hub:
    def __init__(self, config: Config, config_path: Path | None = None, *, sandbox: bool = False) -> None:
        self.config = config
        self.config_path = config_path
        self.use_sandbox = sandbox or config.ovn.sandbox
        self.sandbox: OvnSandbox | None = None
        self.notifier = Notifier()
        self.bus = Bus(config.bus.queue_size)
        self.programmer: Programmer | None = None
        self.runners: dict[str, AdapterRunner] = {}
        self.ready = asyncio.Event()
        self.stopping = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._input: Subscription | None = None
        self.mqtt: MqttMirror | None = None  # when [mqtt] enabled (imported lazily: aiomqtt)
        self.remote: RemoteIngest | None = None  # when [remote.*] sources are configured
        self.api_ingest: ApiIngest | None = None  # [api] ingest: node agents' cni/<node> sources
        self.shared_ipam: SharedIpam | None = None  # /v1/ipam: addresses of shared networks (made on first use)
        self._applied: set[str] = set()  # sources whose snapshot the programmer applied
        #: what the hub builds between the sources; its ``policies`` are the [policies] file's
        self.fabric = config.fabric_spec()
        self.policy_file = PoliciesFile(config.policies, reject=self.bus.publish)
        self.started_at = time.time()
        self.reloads = 0
        self._traces = asyncio.Semaphore(2)  # ovn-trace reads the whole SB: at most two at once
        self._sb = config.ovn.sb  # like every [ovn] key: a reload changes it at the next restart

    # ---------------------------------------------------------------- lifecycle
    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; 0 after a clean stop.

        Resources are entered in order and left in reverse (an
        :class:`~contextlib.AsyncExitStack`: each one is left even when an
        earlier one fails to): the notifier, the OVN sandbox, the NB
        connection, the admin API.  The tasks in between stop in the order
        :meth:`_stop` says."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(self.notifier.close)
            nb = self.config.ovn.nb
            if self.use_sandbox:
                nb = await self._start_sandbox(stack)
            self.programmer = Programmer(
                nb,
                self.config.hub.id,
                publish=self.bus.publish,
                publish_many=self.bus.publish_many,
                batch_size=self.config.ovn.batch_size,
                retry_interval=self.config.ovn.retry_interval,
                cache_path=Path(self.config.hub.state_dir) / f"nb-ports-{self.config.hub.id}.cache",
                tls=None if self.use_sandbox else ovn_tls(self.config),
            )
            stack.push_async_callback(self.programmer.close)
            self.programmer.on_role = self._on_role
            if not self.policy_file.checks:  # (hubd's main read it already, refusing a bad file)
                self.policy_file.read()
            self._set_fabric(self.config)
            self._input = self.bus.subscribe(
                "programmer", accept=lambda e: isinstance(e, Snapshot | Upsert | Delete)
            )
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                await self._supervise(tg, stack, nb)
        log.info("stopped cleanly")
        return 0

    async def _start_sandbox(self, stack: contextlib.AsyncExitStack) -> str:
        """``--sandbox``: a private NB/SB and northd under the state dir; its NB remote."""
        state = Path(self.config.hub.state_dir) / "ovn"
        sandbox = self.sandbox = OvnSandbox(state)
        stack.push_async_callback(asyncio.to_thread, sandbox.stop)  # also after a failed start
        self._status(f"starting OVN sandbox in {state}")
        await asyncio.to_thread(sandbox.start)
        log.info("OVN sandbox running: NB %s, SB %s", sandbox.nb_remote, sandbox.sb_remote)
        return sandbox.nb_remote

    async def _supervise(self, tg: asyncio.TaskGroup, stack: contextlib.AsyncExitStack, nb: str) -> None:
        """Start everything in order, wait for SIGTERM, stop everything in order."""
        from hub.api import ApiServer  # local: keeps aiohttp out of module import time

        assert self.programmer is not None
        # Adapters list while NB loads: desired state needs no connection.
        tasks = _Tasks(consumer=tg.create_task(self._consume(), name="consumer"),
                       watchdog=tg.create_task(watchdog(self.notifier), name="watchdog"))
        tasks.policies = tg.create_task(self.policy_file.run(self._apply_policies), name="policies")
        if self.config.mqtt.enabled:  # subscribes before any adapter emits
            from hub.mqtt import MqttMirror

            self.mqtt = MqttMirror(self.config.hub.id, self.config.mqtt, self.bus, self.ready, self.programmer)
            tasks.mqtt = tg.create_task(self.mqtt.run(), name="mqtt")
        if self.config.remote:  # remote adapters: their events come through the broker
            from hub.remote import RemoteIngest

            self.remote = RemoteIngest(self.config.hub.id, self.config.mqtt, self.bus, self.config.remote_sources())
            tasks.ingest = tg.create_task(self.remote.run(), name="remote-ingest")
        for spec in self.config.adapter_specs().values():
            self._start_adapter(spec)
        self._status(f"connecting to OVN NB {nb}")
        started = tg.create_task(self.programmer.start(timeout=None if not self.use_sandbox else 60), name="nb-start")
        stop = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({started, stop}, return_when=asyncio.FIRST_COMPLETED)
        if started.done() and not self.stopping.is_set():
            started.result()
            _trim_heap()
            gc.freeze()  # the replica is long-lived: keep it out of every collection
            token = ""
            if self.config.api.ingest:
                from hub.remote import ApiIngest

                token = ingest_token(self.config)
                self.api_ingest = ApiIngest(self.bus)
            api = ApiServer(self, token)
            stack.push_async_callback(api.stop)  # left first, before the NB connection
            await api.start(self.config.api.listen)
            tasks.writer = tg.create_task(self.programmer.run(), name="nb-writer")
            tasks.readiness = tg.create_task(self._readiness(), name="readiness")
            await stop
        started.cancel()
        stop.cancel()
        await self._stop(tasks)

    async def _stop(self, tasks: _Tasks) -> None:
        """Adapters (local and remote) first; then, if the writer runs, drain
        queued events and NB writes for up to 30 s and save the port cache only
        after a complete drain; the MQTT mirror last, so it mirrors the drain
        and says "offline"."""
        assert self.programmer is not None
        self.notifier.notify("STOPPING=1", "STATUS=stopping: draining NB writes")
        log.info("stopping: adapters first, then draining NB writes")
        for runner in list(self.runners.values()):
            if runner.task is not None:
                runner.task.cancel()
        if tasks.ingest is not None:
            tasks.ingest.cancel()
        if tasks.writer is not None:
            if tasks.readiness is not None:
                tasks.readiness.cancel()
            if await self._drain():
                await self.programmer.save_port_cache()  # the next start reads only what changed
        for t in tasks.before_mqtt():
            t.cancel()
        if tasks.mqtt is not None:
            tasks.mqtt.cancel()

    async def _drain(self, timeout: float = 30.0) -> bool:
        assert self.programmer is not None and self._input is not None
        try:
            async with asyncio.timeout(timeout):
                while not self._input.queue.empty():
                    await asyncio.sleep(0.01)
                await self.programmer.flush()
            return True
        except TimeoutError:
            log.warning("NB writes not drained after %.0fs; exiting anyway (a restart resyncs)", timeout)
            return False

    def _status(self, text: str) -> None:
        self.notifier.status(text)

    # ---------------------------------------------------------------- tasks
    async def _consume(self) -> None:
        """Bus → programmer.  Only marks rows dirty; the writer does the rest."""
        assert self._input is not None and self.programmer is not None
        while True:
            ev = await self._input.get()
            if isinstance(ev, Snapshot | Upsert | Delete):
                self.programmer.apply(ev)
                if isinstance(ev, Snapshot):
                    self._applied.add(str(ev.source))

    def _wanted(self) -> set[str]:
        """Sources whose first snapshot READY waits for: local adapters and remote sources."""
        wanted = {str(r.source) for r in self.runners.values()}
        if self.remote is not None:
            wanted |= {str(s) for s in self.remote.sinks}
        return wanted

    async def _readiness(self) -> None:
        assert self.programmer is not None
        while True:
            missing = sorted(self._wanted() - self._applied)
            if not missing:
                await self.programmer.flush()
                if self._wanted() <= self._applied:
                    break
            self._status(f"waiting for first snapshot of {', '.join(missing)}" if missing else "programming NB")
            await asyncio.sleep(0.05)
        self.ready.set()
        _trim_heap()  # what the first snapshot and the first diff freed (glibc keeps it otherwise)
        n = self.programmer.status().endpoints
        self.notifier.notify("READY=1", f"STATUS={self._ready_text()}")
        log.info("ready (%s): NB synced, %d adapters snapshotted, %d endpoints %s", self.programmer.role,
                 len(self.runners), n, "programmed" if self.programmer.active else "in the desired state")  # fmt: skip
        while True:
            await asyncio.sleep(5)
            self._status(self._ready_text())

    # ---------------------------------------------------------------- adapters
    def _start_adapter(self, spec: AdapterSpec) -> None:
        assert self._tg is not None
        runner = AdapterRunner(spec, AdapterSink(self.bus, spec.name))
        self.runners[spec.name] = runner
        runner.task = self._tg.create_task(runner.run(), name=f"adapter:{spec.name}")

    async def _stop_adapter(self, name: str) -> AdapterRunner | None:
        runner = self.runners.pop(name, None)
        if runner is not None and runner.task is not None:
            runner.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner.task
        return runner

    def check_policies(self) -> int:
        """Read the [policies] file at start; a bad one is a config error (there is no
        last good file yet, and refusing to start leaves the policies NB holds alone)."""
        self.policy_file.read()
        if self.policy_file.error:
            raise ConfigError(f"policies.path: {self.policy_file.error}")
        return len(self.policy_file.policies)

    def _apply_policies(self, policies: tuple[AdminPolicy, ...]) -> None:
        """Hub-level policies in force: the programmer gets them as part of the fabric."""
        self.fabric = msgspec.structs.replace(self.fabric, policies=policies)
        if self.programmer is not None:
            self.programmer.set_fabric(self.fabric)

    def validate_adapters(self, cfg: Config) -> None:
        """Check adapter types and options without starting anything."""
        for spec in cfg.adapter_specs().values():
            try:
                adapter_factory(spec.type)(spec)
            except (PluginError, OptionsError) as exc:
                raise ConfigError(str(exc)) from None

    async def reload(self) -> bool:
        """SIGHUP: re-read the config; touch only adapters whose table changed."""
        if self.config_path is None:
            log.warning("SIGHUP ignored: hubd runs without a config file")
            return False
        try:
            cfg = load(self.config_path)
            self.validate_adapters(cfg)
        except ConfigError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            self._status(f"reload refused: {exc}")
            return False
        old = {n: r.spec for n, r in self.runners.items()}
        new = cfg.adapter_specs()
        self._reload_remote(cfg)
        for section in ("hub", "ovn", "api", "bus", "mqtt"):
            if getattr(cfg, section) != getattr(self.config, section):
                log.warning("reload: changes to [%s] take effect at the next restart", section)
        self.config = cfg
        self._set_fabric(cfg)
        self.policy_file.configure(cfg.policies)  # SIGHUP looks at the policies file now
        for name in sorted(set(old) - set(new)):
            runner = await self._stop_adapter(name)
            log.info("reload: adapter %s removed; its rows are collected", name)
            if runner is not None and self.programmer is not None:
                self.programmer.remove_source(runner.source)
                self._applied.discard(str(runner.source))
        for name in sorted(set(new) & set(old)):
            if new[name] != old[name]:
                log.info("reload: adapter %s changed; restarting it", name)
                await self._stop_adapter(name)
                self._start_adapter(new[name])
        for name in sorted(set(new) - set(old)):
            log.info("reload: adapter %s added", name)
            self._start_adapter(new[name])
        self.reloads += 1
        self._status(f"reloaded: {len(self.runners)} adapters")
        return True

    def _set_fabric(self, cfg: Config) -> None:
        """The fabric spec (with the hub-level policies in force), and the sources it
        waits for before collecting its rows."""
        self.fabric = msgspec.structs.replace(cfg.fabric_spec(), policies=self.policy_file.policies)
        if self.programmer is None:
            return
        self.programmer.set_fabric(self.fabric)
        expected = [Source(s.type, s.cluster) for s in cfg.adapter_specs().values()]
        self.programmer.expect([*expected, *cfg.remote_sources().values()])

    def _reload_remote(self, cfg: Config) -> None:
        old = self.config.remote_sources()
        new = cfg.remote_sources()
        if old == new:
            return
        if self.remote is None:
            log.warning("reload: [remote] sources take effect at the next restart (no ingest running)")
            return
        self.remote.set_sources(new)
        for name, src in sorted(old.items()):
            if src not in new.values():
                log.info("reload: remote %s removed; its rows are collected", name)
                if self.programmer is not None:
                    self.programmer.remove_source(src)
                self._applied.discard(str(src))
        for name in sorted(set(new) - set(old)):
            log.info("reload: remote %s (%s) added", name, new[name])

    # ---------------------------------------------------------------- views (hub.api.HubView)
    def nb_connected(self) -> bool:
        return self.programmer is not None and self.programmer.status().connected

    def is_ready(self) -> bool:
        return self.ready.is_set()

    def role(self) -> str:
        return self.programmer.role if self.programmer is not None else "standby"

    async def set_paused(self, paused: bool) -> str:
        if self.programmer is None:
            return "standby"
        await (self.programmer.pause() if paused else self.programmer.resume())
        return self.programmer.role

    def _on_role(self, role: str) -> None:
        log.warning("NB writer role: %s", role)
        if self.ready.is_set():
            self._status(self._ready_text())
        if self.mqtt is not None:
            self.mqtt.status_changed()

    def _ready_text(self) -> str:
        assert self.programmer is not None
        role = "" if self.programmer.role == "active" else f" ({self.programmer.role}: another hubd writes)"
        return f"ready{role}: {self.programmer.status().endpoints} endpoints, {len(self.runners)} adapters"

    def endpoints(self) -> Iterator[Endpoint]:
        if self.programmer is not None:
            for ep, _row in self.programmer.endpoints():
                yield ep

    def port_status(self, port: str) -> PortStatus:
        if self.programmer is None:
            return PortStatus(programmed=False, up=None, error=None)
        return self.programmer.port_status(port)

    def port_addresses(self, port: str) -> tuple[str, tuple[str, ...]] | None:
        return self.programmer.port_addresses(port) if self.programmer is not None else None

    def plan(self) -> Sequence[Any]:
        return self.programmer.plan() if self.programmer is not None else []

    @property
    def sb_remote(self) -> str:
        """The Southbound DB ovn-trace reads: the sandbox's, or ``ovn.sb``."""
        return self.sandbox.sb_remote if self.sandbox is not None else self._sb

    async def trace(self, request: TraceRequest) -> dict[str, Any]:
        """``/v1/trace``: ovn-trace of one new connection, in canonical terms (hub/trace.py)."""
        if self.programmer is None:
            raise TraceError("hubd is starting: no desired state yet", 503)
        async with self._traces:
            return await trace(self.programmer, self.sb_remote, request,
                               tls=None if self.use_sandbox else ovn_tls(self.config))

    def _addresses(self) -> Iterator[str]:
        """Every address the desired state's endpoints hold (OVN's allocations included)."""
        if self.programmer is not None:
            for ep, row in self.programmer.endpoints():
                yield from ep.ips
                if not ep.ips and row is not None and row.dyn:
                    yield from row.dyn.split()[1:]

    async def ipam(self, op: str, payload: bytes) -> tuple[int, dict[str, Any]]:
        """``POST /v1/ipam/<op>``: addresses of shared networks for the nodes' Docker driver (hub/ipam.py)."""
        if self.shared_ipam is None:
            self.shared_ipam = SharedIpam(self._addresses)
        return self.shared_ipam.handle(op, payload)

    async def ingest(self, orchestrator: str, cluster: str, payload: bytes) -> tuple[int, dict[str, Any]]:
        """``POST /v1/ingest``: a node agent's event (hub/remote.py ``ApiIngest``)."""
        if self.api_ingest is None:
            return 404, {"error": "ingest is off ([api] ingest = false)"}
        return await self.api_ingest.ingest(orchestrator, cluster, payload)

    def status(self) -> dict[str, Any]:
        nb = self.programmer.status() if self.programmer is not None else None
        return {
            "hub": self.config.hub.id,
            "ready": self.ready.is_set(),
            "nb": msgspec.structs.asdict(nb) if nb else {"remote": None, "connected": False, "failed": {}},
            "sandbox": str(self.sandbox.dir) if self.sandbox else None,
            "adapters": [r.status() for r in self.runners.values()],
            "endpoints": nb.endpoints if nb else 0,
            "uptime": round(time.time() - self.started_at, 1),
            "reloads": self.reloads,
            "mqtt": self.mqtt.status() if self.mqtt is not None else None,
            "remote": self.remote.status() if self.remote is not None else [],
            "ingest": self.api_ingest.status() if self.api_ingest is not None else [],
            # every rejection (adapters, remote ingest, NB), counted once per distinct object
            "rejections": self.bus.rejections.status(),
            "fabric": msgspec.to_builtins(self.programmer.fabric_status()) if self.programmer is not None else None,
            "policies": self.policy_file.status(),
            "ipam": self.shared_ipam.status() if self.shared_ipam is not None else None,
        }


def ingest_token(cfg: Config) -> str:
    """The ``[api]`` ingest token: the first line of ``ingest_token_file``
    (default ``<state_dir>/ingest.token``), generated (32 random bytes, hex, mode
    0600) when the file does not exist.  ConfigError when it cannot be read or made."""
    import os
    import secrets

    path = Path(cfg.api.ingest_token_file or Path(cfg.hub.state_dir) / "ingest.token")
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
            log.info("generated the ingest token in %s (mode 0600)", path)
        lines = path.read_text().strip().splitlines()
        token = lines[0].strip() if lines else ""
    except OSError as exc:
        raise ConfigError(f"api.ingest_token_file: {path}: {exc.strerror or exc}") from None
    if len(token) < 16:
        raise ConfigError(f"api.ingest_token_file: {path}: the token must be at least 16 characters")
    return token


__all__ = ["AdapterRunner", "Hub", "Programmed", "Ready", "Rejected", "ingest_token"]
