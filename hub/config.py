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
from core.model.fabric import (
    DEFAULT_HAIRPIN_IP,
    LABEL_FLOATING_IP,
    DnsSpec,
    ExternalSpec,
    Fabric,
    RouterSpec,
    validate_fabric,
)
from core.model.objects import DNS_LABEL
from core.model.validate import NETWORK_NAME
from core.ovsdb import Tls, needs_tls

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
    #: one remote or a clustered NB's members, comma-separated (unix:PATH, tcp:HOST:PORT, ssl:HOST:PORT)
    nb: str = "unix:/var/run/ovn/ovnnb_db.sock"
    sb: str = "unix:/var/run/ovn/ovnsb_db.sock"  # read by hubctl trace only (ovn-trace)
    #: PEM files of ssl: remotes (ovn.nb and ovn.sb; a node's node.ovs too)
    private_key: str = ""
    certificate: str = ""
    ca_cert: str = ""
    sandbox: bool = False
    batch_size: int = 50000
    retry_interval: float = 30.0


class ApiSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    listen: str = DEFAULT_API
    #: ``POST /v1/ingest/cni/<node>``: node agents publish their CNI endpoints (hub/api.py).
    ingest: bool = True
    #: the bearer token ingest requires (first line); "" = ``<state_dir>/ingest.token``,
    #: generated (mode 0600) when missing
    ingest_token_file: str = ""


class CniNetwork(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``[cni.networks.<name>]``: a network this node's CNI source (``cni/<node>``) has."""

    subnet: str = ""
    gateway: str = ""


class CniSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``[cni]`` of ``hubd --role node``: the agent ``ovn-hub-cni`` talks to (hub/cni.py)."""

    enabled: bool = False
    #: the unix socket the plugin connects to (the conflist's ``socket``)
    socket: str = "/run/ovn-hub/cni.sock"
    #: the source's cluster: ``cni/<cluster>``; "" = the chassis name made a DNS label
    cluster: str = ""
    #: the hub's admin API for the node's own endpoints: ``unix:/path`` or ``http://host:port``;
    #: "" = only Kubernetes pods (whose ports the k8s adapter writes) can be added
    hub_api: str = ""
    hub_token_file: str = ""  # the hub's ingest token (its [api] ingest_token_file)
    #: the source's state (attachments, endpoints); "" = ``<state_dir>/cni-<hub id>.json``
    state_file: str = ""
    #: the DNS zone of the search domain in results ([dns] zone of the hub); "" = no search domain
    dns_zone: str = "hub"
    #: seconds between snapshots to the hub when nothing changed (a restarted hub gets one soon)
    resync_interval: float = 10.0
    networks: dict[str, CniNetwork] = {}


class BusSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    queue_size: int = 10000


class MqttSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The MQTT mirror of the bus (hub/mqtt.py).  There is deliberately no
    ``password`` key: a TOML file is often world-readable and copied around, so
    the password lives in ``password_file`` (first line, mode 0600)."""

    enabled: bool = False
    url: str = "mqtt://127.0.0.1:1883"
    username: str = ""
    password_file: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    client_id: str = ""  # default ovn-hub-<hub.id>
    queue_size: int = 10000  # lifecycle events buffered while the broker is slow or away
    max_inflight: int = 100  # concurrent unacknowledged publishes
    event_expiry: int = 3600  # MQTT v5 message expiry of lifecycle events, seconds
    keepalive: int = 30


class RemoteSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One ``[remote.<name>]`` table: a source whose events a remote adapter
    (``hubd --role adapter``) publishes to ``ovn-hub/v1/<hub>/ingest/<orchestrator>/<cluster>``.
    ``username`` documents the broker user whose ACL alone may publish there:
    the broker, not the hub, authenticates publishers (docs/bus.md)."""

    orchestrator: str
    cluster: str
    username: str = ""

    @property
    def source(self) -> Source:
        return Source(self.orchestrator, self.cluster)


class PoliciesSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``[policies]``: the hub-level policies file (hub/policies.py), a JSON array of
    AdminPolicy objects (core/model/fabric.py), re-read when it changes.  A bad file
    at start is a config error; later, it is rejected and the last good policies stay."""

    path: str = ""
    poll_interval: float = 1.0  # seconds between looks at the file's mtime, size and inode


def parse_mqtt_url(url: str) -> tuple[bool, str, int]:
    """``mqtt://HOST[:PORT]`` or ``mqtts://HOST[:PORT]`` → (tls, host, port)."""
    m = re.fullmatch(r"(mqtts?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(\d{1,5}))?/?", url)
    if not m:
        raise ValueError(f"{url!r} must be mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
    tls = m.group(1) == "mqtts"
    port = int(m.group(3)) if m.group(3) else (8883 if tls else 1883)
    if not 0 < port < 65536:
        raise ValueError(f"{url!r}: port out of range")
    return tls, m.group(2).strip("[]"), port


class RouterSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``[routers.<name>]``: a hub-owned router joining the networks that match
    ``networks`` (``<orchestrator>/<cluster>/<network>`` patterns, ``*`` allowed)
    and have a subnet."""

    networks: list[str] = msgspec.field(default_factory=lambda: ["*"])


class ExternalSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``[external.<name>]``: the provider network ``router`` leaves through
    (core/model/fabric.py ``ExternalSpec``)."""

    router: str
    cidr: str
    ip: str
    gateway: str = ""
    physnet: str = "physnet"
    chassis: list[str] = []
    snat: bool = True
    floating_ip_label: str = LABEL_FLOATING_IP


class DnsSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    enabled: bool = True
    zone: str = "hub"


class FabricSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    hairpin_snat_ip: str = DEFAULT_HAIRPIN_IP


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    hub: HubSection = msgspec.field(default_factory=HubSection)
    ovn: OvnSection = msgspec.field(default_factory=OvnSection)
    api: ApiSection = msgspec.field(default_factory=ApiSection)
    bus: BusSection = msgspec.field(default_factory=BusSection)
    mqtt: MqttSection = msgspec.field(default_factory=MqttSection)
    adapters: dict[str, dict[str, Any]] = {}
    remote: dict[str, RemoteSection] = {}
    policies: PoliciesSection = msgspec.field(default_factory=PoliciesSection)
    #: ``hubd --role node`` (adapters/docker/node.py ``NodeOptions``); checked by hub.node.
    node: dict[str, Any] = {}
    cni: CniSection = msgspec.field(default_factory=CniSection)
    routers: dict[str, RouterSection] = {}
    external: dict[str, ExternalSection] = {}
    dns: DnsSection = msgspec.field(default_factory=DnsSection)
    fabric: FabricSection = msgspec.field(default_factory=FabricSection)

    def fabric_spec(self) -> Fabric:
        """The fabric the programmer builds: routers in name order (the first
        whose patterns match a network takes it)."""
        return Fabric(
            routers=tuple(RouterSpec(name=n, networks=tuple(r.networks)) for n, r in sorted(self.routers.items())),
            externals=tuple(
                ExternalSpec(name=n, router=e.router, cidr=e.cidr, ip=e.ip, gateway=e.gateway, physnet=e.physnet,
                             chassis=tuple(e.chassis), snat=e.snat, floating_ip_label=e.floating_ip_label)
                for n, e in sorted(self.external.items())
            ),
            dns=DnsSpec(enabled=self.dns.enabled, zone=self.dns.zone),
            hairpin_snat_ip=self.fabric.hairpin_snat_ip,
        )

    def remote_sources(self) -> dict[str, Source]:
        """``[remote.<name>]`` → its source; unique, and no local adapter's."""
        out: dict[str, Source] = {}
        seen: dict[Source, str] = {spec.source: f"adapter {n!r}" for n, spec in self.adapter_specs().items()}
        for name, table in self.remote.items():
            src = table.source
            try:
                validate_source(src)
            except Invalid as exc:
                raise ConfigError(f"remote.{name}: {exc}") from None
            other = seen.setdefault(src, f"remote {name!r}")
            if other != f"remote {name!r}":
                raise ConfigError(f"remote.{name}.cluster: {src} is already {other}")
            out[name] = src
        return out

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


def check_tls(cfg: Config, what: str) -> Tls:
    """The TLS files an ssl: remote of ``what`` needs, each named when missing."""
    for key in ("private_key", "certificate", "ca_cert"):
        path = getattr(cfg.ovn, key)
        if not path:
            raise ConfigError(f"ovn.{key}: {what} is an ssl: remote; it needs ovn.private_key, ovn.certificate"
                              " and ovn.ca_cert")  # fmt: skip
        if not Path(path).is_absolute():
            raise ConfigError(f"ovn.{key}: {path!r} must be an absolute path")
    return Tls(cfg.ovn.private_key, cfg.ovn.certificate, cfg.ovn.ca_cert)


def ovn_tls(cfg: Config) -> Tls | None:
    """The TLS files of ``[ovn]`` (None when none is set)."""
    if not (cfg.ovn.private_key or cfg.ovn.certificate or cfg.ovn.ca_cert):
        return None
    return Tls(cfg.ovn.private_key, cfg.ovn.certificate, cfg.ovn.ca_cert)


def _check(cfg: Config) -> None:
    if not DNS_LABEL.fullmatch(cfg.hub.id):
        raise ConfigError(f"hub.id: {cfg.hub.id!r} is not a DNS label ([a-z0-9-], 1-63)")
    if cfg.hub.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError("hub.log_level: must be debug, info, warning or error")
    for key in ("nb", "sb"):
        try:
            uses_tls = needs_tls(getattr(cfg.ovn, key))
        except ValueError as exc:
            raise ConfigError(f"ovn.{key}: {exc} (several: comma-separated)") from None
        if uses_tls:
            check_tls(cfg, f"ovn.{key}")
    if cfg.ovn.batch_size < 1:
        raise ConfigError("ovn.batch_size: must be at least 1")
    if cfg.bus.queue_size < 1:
        raise ConfigError("bus.queue_size: must be at least 1")
    try:
        tls, _, _ = parse_mqtt_url(cfg.mqtt.url)
    except ValueError as exc:
        raise ConfigError(f"mqtt.url: {exc}") from None
    if not tls and (cfg.mqtt.ca_file or cfg.mqtt.cert_file):
        raise ConfigError("mqtt.url: ca_file/cert_file need an mqtts:// url")
    if bool(cfg.mqtt.cert_file) != bool(cfg.mqtt.key_file):
        raise ConfigError("mqtt.key_file: cert_file and key_file go together")
    if cfg.mqtt.password_file and not cfg.mqtt.username:
        raise ConfigError("mqtt.username: password_file needs a username")
    for key in ("queue_size", "max_inflight", "event_expiry", "keepalive"):
        if getattr(cfg.mqtt, key) < 1:
            raise ConfigError(f"mqtt.{key}: must be at least 1")
    try:
        parse_listen(cfg.api.listen)
    except ValueError as exc:
        raise ConfigError(f"api.listen: {exc}") from None
    if not 0 < cfg.policies.poll_interval <= 3600:
        raise ConfigError("policies.poll_interval: must be more than 0 and at most 3600 seconds")
    if cfg.policies.path and not Path(cfg.policies.path).is_absolute():
        raise ConfigError(f"policies.path: {cfg.policies.path!r} must be an absolute path")
    cfg.adapter_specs()
    cfg.remote_sources()
    _check_cni(cfg.cni)
    for name in [*cfg.routers, *cfg.external]:
        if not DNS_LABEL.fullmatch(name):
            raise ConfigError(f"routers/external: name {name!r} is not a DNS label ([a-z0-9-], 1-63)")
    try:
        validate_fabric(cfg.fabric_spec())
    except Invalid as exc:
        raise ConfigError(str(exc)) from None


def _check_cni(cni: CniSection) -> None:
    import ipaddress

    if not cni.socket.startswith("/") or len(cni.socket) > 107:
        raise ConfigError(f"cni.socket: {cni.socket!r} must be an absolute path of at most 107 characters")
    if cni.cluster and not DNS_LABEL.fullmatch(cni.cluster):
        raise ConfigError(f"cni.cluster: {cni.cluster!r} is not a DNS label ([a-z0-9-], 1-63)")
    if cni.hub_api and not cni.hub_api.startswith(("unix:/", "http://", "https://")):
        raise ConfigError(f"cni.hub_api: {cni.hub_api!r} must be unix:/PATH or http(s)://HOST:PORT")
    if cni.hub_api and not cni.hub_token_file:
        raise ConfigError("cni.hub_token_file: the hub's ingest token is needed with hub_api")
    if not 0 < cni.resync_interval <= 3600:
        raise ConfigError("cni.resync_interval: must be more than 0 and at most 3600 seconds")
    for name, net in cni.networks.items():
        if not NETWORK_NAME.fullmatch(name):
            raise ConfigError(f"cni.networks.{name}: not a network name ({NETWORK_NAME.pattern})")
        try:
            subnet = ipaddress.ip_network(net.subnet) if net.subnet else None
            gw = ipaddress.ip_address(net.gateway) if net.gateway else None
        except ValueError as exc:
            raise ConfigError(f"cni.networks.{name}: {exc}") from None
        if gw is not None and (subnet is None or gw not in subnet):
            raise ConfigError(f"cni.networks.{name}.gateway: {net.gateway} is not in the subnet {net.subnet!r}")


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


def _validation_message(exc: msgspec.ValidationError, prefix: str = "") -> str:
    msg = str(exc)
    m = re.search(r"unknown field `([^`]+)`", msg)
    path = ""
    if " - at `$." in msg:
        msg, _, path = msg.rpartition(" - at `$.")
        path = path.rstrip("`")
    path = ".".join(p for p in (prefix, path) if p)
    if m:
        key = f"{path}.{m.group(1)}" if path else m.group(1)
        return f"{key}: unknown key"
    return f"{path or 'config'}: {msg}"


def loads(text: str, origin: str = "<config>") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from None
    except RecursionError:  # arrays or inline tables nested ~1,000 deep
        raise ConfigError(f"{origin}: not valid TOML: nested too deeply") from None
    remote = raw.get("remote")
    for name, table in remote.items() if isinstance(remote, dict) else ():
        try:  # first on its own: errors then name the table (remote.<name>.key, not remote[...])
            msgspec.convert(table, RemoteSection, strict=True)
        except msgspec.ValidationError as exc:
            raise ConfigError(_validation_message(exc, f"remote.{name}")) from None
        except RecursionError:
            raise ConfigError(f"{origin}: remote.{name}: a value is nested too deeply") from None
        except UnicodeError:  # a lone surrogate in a str handed to loads (a file read as UTF-8 has none)
            raise ConfigError(f"{origin}: remote.{name}: a value is not valid Unicode") from None
    try:
        cfg = msgspec.convert(raw, Config, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(_validation_message(exc)) from None
    except RecursionError:
        raise ConfigError(f"{origin}: a value is nested too deeply") from None
    except UnicodeError:
        raise ConfigError(f"{origin}: a value is not valid Unicode") from None
    _check(cfg)
    return cfg


def load(path: str | Path) -> Config:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read config {p}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    return loads(text, str(p))
