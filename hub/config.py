"""hubd configuration: TOML, validated at start and on every reload.

Errors name the offending key (``ovn.nb: Expected `str`, got `int```); unknown
keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import re
import socket
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from core.adapter import AdapterSpec
from core.model import Invalid, Source, validate_source

DEFAULT_PATH = Path("/etc/ovn-hub/hubd.toml")
DEFAULT_API = "unix:/run/ovn-hub/hubd.sock"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


def _default_id() -> str:
    name = re.sub(r"[^a-z0-9-]", "-", socket.gethostname().lower()).strip("-")
    return name[:63] or "hub"


class HubSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: str = msgspec.field(default_factory=_default_id)
    log_level: str = "info"
    state_dir: str = "/var/lib/ovn-hub"


class OvnSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    nb: str = "unix:/var/run/ovn/ovnnb_db.sock"
    sandbox: bool = False
    batch_size: int = 50000
    retry_interval: float = 30.0


class ApiSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    listen: str = DEFAULT_API


class BusSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    queue_size: int = 10000


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    hub: HubSection = msgspec.field(default_factory=HubSection)
    ovn: OvnSection = msgspec.field(default_factory=OvnSection)
    api: ApiSection = msgspec.field(default_factory=ApiSection)
    bus: BusSection = msgspec.field(default_factory=BusSection)
    adapters: dict[str, dict[str, Any]] = {}

    def adapter_specs(self) -> dict[str, AdapterSpec]:
        out: dict[str, AdapterSpec] = {}
        for name, table in self.adapters.items():
            opts = dict(table)
            kind = opts.pop("type", None)
            cluster = opts.pop("cluster", "local")
            enabled = opts.pop("enabled", True)
            if not isinstance(kind, str) or not kind:
                raise ConfigError(f"adapters.{name}.type: missing (the adapter's entry point name, e.g. 'docker')")
            if not isinstance(cluster, str):
                raise ConfigError(f"adapters.{name}.cluster: must be a string")
            if not isinstance(enabled, bool):
                raise ConfigError(f"adapters.{name}.enabled: must be true or false")
            if not enabled:
                continue
            try:
                validate_source(Source(kind, cluster))
            except Invalid as exc:
                raise ConfigError(f"adapters.{name}: {exc}") from None
            out[name] = AdapterSpec(name=name, type=kind, cluster=cluster, options=opts)
        seen: dict[tuple[str, str], str] = {}
        for name, spec in out.items():
            other = seen.setdefault((spec.type, spec.cluster), name)
            if other != name:
                raise ConfigError(
                    f"adapters.{name}.cluster: {spec.type}/{spec.cluster} is already adapter {other!r};"
                    " give each instance its own cluster name"
                )
        return out


def _check(cfg: Config) -> None:
    try:
        validate_source(Source(cfg.hub.id, "x"))
    except Invalid:
        raise ConfigError(f"hub.id: {cfg.hub.id!r} is not a DNS label ([a-z0-9-], 1-63)") from None
    if cfg.hub.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError("hub.log_level: must be debug, info, warning or error")
    if not cfg.ovn.nb.startswith(("unix:", "tcp:")):
        raise ConfigError(f"ovn.nb: {cfg.ovn.nb!r} must be unix:PATH or tcp:HOST:PORT")
    if cfg.ovn.batch_size < 1:
        raise ConfigError("ovn.batch_size: must be at least 1")
    if cfg.bus.queue_size < 1:
        raise ConfigError("bus.queue_size: must be at least 1")
    try:
        parse_listen(cfg.api.listen)
    except ValueError as exc:
        raise ConfigError(f"api.listen: {exc}") from None
    cfg.adapter_specs()


def parse_listen(listen: str) -> tuple[str, str | tuple[str, int]]:
    """``unix:/path`` or ``HOST:PORT`` on loopback only."""
    if listen.startswith("unix:"):
        return "unix", listen[5:]
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit():
        raise ValueError(f"{listen!r} must be unix:PATH or HOST:PORT")
    if host not in ("127.0.0.1", "::1", "localhost") and not host.startswith("127."):
        raise ValueError(f"{listen!r}: the admin API listens on loopback or a unix socket only")
    return "tcp", (host, int(port))


def loads(text: str, origin: str = "<config>") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from None
    try:
        cfg = msgspec.convert(raw, Config, strict=True)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        m = re.search(r"unknown field `([^`]+)`", msg)
        path = ""
        if " - at `$." in msg:
            msg, _, path = msg.rpartition(" - at `$.")
            path = path.rstrip("`")
        if m:
            key = f"{path}.{m.group(1)}" if path else m.group(1)
            raise ConfigError(f"{key}: unknown key") from None
        raise ConfigError(f"{path or 'config'}: {msg}") from None
    _check(cfg)
    return cfg


def load(path: str | Path) -> Config:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from None
    return loads(text, str(p))
