"""Docker Engine payloads → canonical model.  Pure functions: no I/O.

Everything here either returns canonical objects that pass
:func:`core.model.validate` or raises :class:`core.model.Invalid` with a short
reason tag and a one-line message; malformed input never escapes as
``KeyError``/``TypeError``.

Field mapping (see ``shared/reference/protocols.md`` §2):

* one :class:`~core.model.Endpoint` per entry of ``NetworkSettings.Networks``
  (uid = container ``Id``, network = docker network name);
* ips from ``IPAddress`` / ``GlobalIPv6Address`` of that entry, mac from its
  ``MacAddress``; the legacy top-level ``NetworkSettings.IPAddress`` is used only
  when ``Networks`` is absent (very old APIs);
* only running (or paused: still attached) containers have endpoints; host and
  ``none`` networking have none, except:
* **wrapper mode** - a container started with ``--network none`` and the label
  ``ovn-hub.network=<name>`` naming one of the adapter's OVN Hub networks (the
  ``networks`` option: they exist only in OVN) gets one Endpoint on that
  network.  Its address comes from the labels ``ovn-hub.ip`` (comma-separated,
  a ``/prefix`` is ignored) and ``ovn-hub.mac``, or, without ``ovn-hub.ip``,
  from OVN's dynamic IPAM on the network's subnet.  The node component
  (:mod:`adapters.docker.node`) plugs the container in with what NB holds.

A container the Mesos Docker containerizer started (named ``mesos-<ContainerID>``,
``mesos-<AgentID>.<ContainerID>`` before Mesos 1.4) is a Mesos task: its endpoints
carry ``ovn-hub.io/workload=mesos:<ContainerID>`` (unless the container sets that
label itself), so they yield to the Mesos adapter's endpoints of the task (one port
per workload, core/nb/desired.py).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Collection, Iterator, Mapping
from typing import Any

import msgspec
from msgspec.structs import force_setattr

from core.model import (
    LABEL_WORKLOAD,
    LIMITS,
    Endpoint,
    Invalid,
    Network,
    PortSpec,
    Source,
    match_unicast_mac,
    match_v4_host,
    validate,
    validate_ip,
    validate_mac,
)

__all__ = [
    "LABEL_IP",
    "LABEL_MAC",
    "LABEL_NETWORK",
    "MESOS_CONTAINER_NAME",
    "NAMESPACE_LABELS",
    "ContainerEvent",
    "Inspect",
    "container_event",
    "decode_inspect",
    "event_action",
    "event_container_id",
    "event_key",
    "event_time_nano",
    "is_host_network",
    "normalize_container",
    "normalize_inspect",
    "normalize_network",
    "parse_event_line",
    "parse_stream",
]

#: Labels giving the namespace, in order of preference.
NAMESPACE_LABELS = ("com.docker.compose.project", "com.docker.stack.namespace")

#: Wrapper mode labels (``--network none`` containers plugged in by the node component).
LABEL_NETWORK = "ovn-hub.network"
LABEL_IP = "ovn-hub.ip"
LABEL_MAC = "ovn-hub.mac"

#: The name the Mesos Docker containerizer gives a task's container (``mesos-<AgentID>.`` before 1.4).
MESOS_CONTAINER_NAME = re.compile(
    r"mesos-(?:[0-9a-zA-Z-]+-S[0-9]+\.)?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)

#: Networks that are not L2 domains we can program.
_SPECIAL_NETWORKS = frozenset({"host", "none"})
_SPECIAL_DRIVERS = frozenset({"host", "null"})
_PROTOCOLS = frozenset({"tcp", "udp", "sctp"})
_MAX_EVENT_LINE = 1 << 20
_DECODE = msgspec.json.Decoder().decode
_FAST_BRACKETS = 512  # json.loads and msgspec both decode this deep at any sane call depth
# Where parse_stream resumes after a bad chunk: a line starting at column 0
# with something other than a closing bracket (the start of the next object).
_RESYNC = re.compile(r"\n(?=[^\s}\]])")


# ---------------------------------------------------------------- helpers
def _short(cid: str) -> str:
    return cid[:12]


def _tname(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _obj(value: object, where: str) -> dict[str, Any]:
    """``value`` as a dict; None → {}; anything else is a type error."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid("bad-type", f"{where} is {_tname(value)}, expected an object")
    return value


def _opt_str(d: Mapping[str, Any], key: str, where: str) -> str:
    """Optional string field; None/missing → ''."""
    value = d.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Invalid("bad-type", f"{where}.{key} is {_tname(value)}, expected a string")
    return value


def _opt_bool(d: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise Invalid("bad-type", f"{where}.{key} is {_tname(value)}, expected a boolean")
    return value


def _str_map(value: object, where: str) -> dict[str, str]:
    d = _obj(value, where)
    try:
        "".join(d.values())  # in C: raises TypeError unless every value is a str
    except TypeError:
        pass
    else:
        return dict(d)
    for k, v in d.items():
        if not isinstance(v, str):
            raise Invalid("bad-label", f"{where}[{k!r}] is {_tname(v)}, expected a string")
    return dict(d)


def _ports(exposed: object, where: str) -> tuple[PortSpec, ...]:
    """``{"6379/tcp": {}, "53": {}}`` → sorted PortSpecs (remembered per key set: PortSpecs are immutable)."""
    if exposed is None:
        return ()
    if isinstance(exposed, dict):
        keys_seen = tuple(exposed)
        known = _PORTS_SEEN.get(keys_seen)
        if known is None:
            known = _ports_of(exposed, where)
            if len(_PORTS_SEEN) >= 4096:
                _PORTS_SEEN.clear()
            _PORTS_SEEN[keys_seen] = known
        return known
    return _ports_of(exposed, where)


#: ExposedPorts keys (in order) → their PortSpecs
_PORTS_SEEN: dict[tuple[str, ...], tuple[PortSpec, ...]] = {}


def _ports_of(exposed: object, where: str) -> tuple[PortSpec, ...]:
    if exposed is None:
        return ()
    if isinstance(exposed, list):  # not seen from dockerd, but cheap to accept
        keys: list[object] = list(exposed)
    elif isinstance(exposed, dict):
        keys = list(exposed)
    else:
        raise Invalid("bad-type", f"{where} is {_tname(exposed)}, expected an object")
    out: set[PortSpec] = set()
    for key in keys:
        if not isinstance(key, str):
            raise Invalid("bad-port", f"{where} key {key!r} is not a string")
        num, _, proto = key.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in _PROTOCOLS:
            raise Invalid("bad-port", f"{where} key {key!r}: protocol {proto!r} is not tcp, udp or sctp")
        if not num.isdigit() or not 0 < int(num) < 65536:
            raise Invalid("bad-port", f"{where} key {key!r}: port is not a number 1-65535")
        out.add(PortSpec(port=int(num), protocol=proto))
    return tuple(sorted(out, key=lambda p: (p.port, p.protocol)))


def _network_mode(inspect: Mapping[str, Any]) -> str:
    return _opt_str(_obj(inspect.get("HostConfig"), "HostConfig"), "NetworkMode", "HostConfig")


def is_host_network(inspect: object) -> bool:
    """True if the container shares the host's network namespace (never raises)."""
    if not isinstance(inspect, dict):
        return False
    hc = inspect.get("HostConfig")
    if isinstance(hc, dict) and hc.get("NetworkMode") == "host":
        return True
    ns = inspect.get("NetworkSettings")
    nets = ns.get("Networks") if isinstance(ns, dict) else None
    return isinstance(nets, dict) and list(nets) == ["host"]


def _is_running(state: Mapping[str, Any]) -> tuple[bool, str]:
    """(has network attachments worth mapping, canonical state string)."""
    status = _opt_str(state, "Status", "State")
    running = _opt_bool(state, "Running", "State")
    paused = _opt_bool(state, "Paused", "State")
    if running is None:
        running = status in ("running", "paused")
    if not status:  # API < 1.21 has no Status
        status = "paused" if paused else ("running" if running else "exited")
    return running, status


# ---------------------------------------------------------------- containers
def normalize_container(
    inspect: object,
    source: Source,
    *,
    node: str = "",
    default_namespace: str = "default",
    hub_networks: Mapping[str, Network] | None = None,
    skip_networks: Collection[str] = (),
) -> list[Endpoint]:
    """``GET /containers/{id}/json`` → one Endpoint per attached network.

    Returns ``[]`` for containers that are not running, use host or ``none``
    networking (unless in wrapper mode: labeled with one of ``hub_networks``,
    see the module docstring), or have no attachment with an IP yet.
    Attachments to ``skip_networks`` (the adapter's: networks Docker's own
    drivers serve, which OVN never carries) are left out.  Raises
    :class:`Invalid` for malformed input.
    """
    if not isinstance(inspect, dict):
        raise Invalid("not-object", f"container inspect is {_tname(inspect)}, expected an object")
    cid = inspect.get("Id", inspect.get("ID"))
    if cid is None or cid == "":
        raise Invalid("missing-field", "container inspect has no Id")
    if not isinstance(cid, str):
        raise Invalid("bad-type", f"container Id is {_tname(cid)}, expected a string")
    try:
        return _normalize_container(inspect, cid, source, node, default_namespace, hub_networks or {}, skip_networks)
    except Invalid as exc:
        raise Invalid(exc.reason, f"container {_short(cid)}: {exc}") from None


def _normalize_container(
    inspect: dict[str, Any],
    cid: str,
    source: Source,
    node: str,
    default_namespace: str,
    hub_networks: Mapping[str, Network],
    skip_networks: Collection[str] = (),
) -> list[Endpoint]:
    running, status = _is_running(_obj(inspect.get("State"), "State"))
    if not running:
        return []
    mode = _network_mode(inspect)
    if mode == "host":
        return []
    config = _obj(inspect.get("Config"), "Config")
    labels = _str_map(config.get("Labels"), "Config.Labels")
    if mode == "none" and not labels.get(LABEL_NETWORK):
        return []

    name = _opt_str(inspect, "Name", "container").removeprefix("/") or _short(cid)
    if LABEL_WORKLOAD not in labels and (m := MESOS_CONTAINER_NAME.fullmatch(name)):
        labels = {**labels, LABEL_WORKLOAD: f"mesos:{m.group(1)}"}  # a Mesos task: it yields to the Mesos adapter
    namespace = next((labels[k] for k in NAMESPACE_LABELS if labels.get(k)), default_namespace)
    ports = _ports(config.get("ExposedPorts"), "Config.ExposedPorts")
    if mode == "none":
        return [_wrapped(cid, source, node, name, namespace, labels, ports, status, hub_networks)]

    settings = _obj(inspect.get("NetworkSettings"), "NetworkSettings")
    networks_raw = settings.get("Networks")
    if networks_raw is None:
        # Old APIs (< 1.21): one implicit attachment described at the top level.
        networks: dict[str, Any] = {
            (mode if mode and mode != "default" else "bridge"): {
                "IPAddress": settings.get("IPAddress"),
                "GlobalIPv6Address": settings.get("GlobalIPv6Address"),
                "MacAddress": settings.get("MacAddress"),
            }
        }
    else:
        networks = _obj(networks_raw, "NetworkSettings.Networks")

    out: list[Endpoint] = []
    for net, att_raw in networks.items():
        if net in _SPECIAL_NETWORKS or net in hub_networks or net in skip_networks:
            continue  # a Docker network named like an OVN Hub network is shadowed by it: not mapped
        where = f"NetworkSettings.Networks[{net!r}]"
        att = _obj(att_raw, where)
        ips: list[str] = []
        for field in ("IPAddress", "GlobalIPv6Address"):
            raw = _opt_str(att, field, where)
            if raw:
                ip = validate_ip(raw, f"{net}.{field}")
                if ip not in ips:
                    ips.append(ip)
        if not ips:
            continue  # attached but not configured yet (or being torn down)
        mac_raw = _opt_str(att, "MacAddress", where)
        mac = validate_mac(mac_raw) if mac_raw else None
        ep = Endpoint(
            source=source,
            uid=cid,
            namespace=namespace,
            name=name,
            kind="container",
            network=net,
            node=node,
            ips=tuple(ips),
            mac=mac,
            labels=labels,
            ports=ports,
            state=status,
        )
        validate(ep)
        out.append(ep)
    return out


def _wrapped(
    cid: str,
    source: Source,
    node: str,
    name: str,
    namespace: str,
    labels: dict[str, str],
    ports: tuple[PortSpec, ...],
    status: str,
    hub_networks: Mapping[str, Network],
) -> Endpoint:
    """The Endpoint of a ``--network none`` container in wrapper mode."""
    net = labels[LABEL_NETWORK]
    network = hub_networks.get(net)
    if network is None:
        known = ", ".join(sorted(hub_networks)) or "none configured"
        raise Invalid(
            "unknown-network", f"label {LABEL_NETWORK}={net!r} names no OVN Hub network of this adapter ({known})"
        )
    ips: list[str] = []
    for raw in labels.get(LABEL_IP, "").split(","):
        if raw.strip():
            ip = validate_ip(raw.strip().split("/", 1)[0], f"label {LABEL_IP}")
            addr = ipaddress.ip_address(ip)
            nets = [ipaddress.ip_network(s) for s in network.subnets]
            if nets and not any(addr in n for n in nets if n.version == addr.version):
                raise Invalid(
                    "bad-ip", f"label {LABEL_IP}={ip} is outside network {net!r} ({', '.join(network.subnets)})"
                )
            small = [n for n in nets if n.version == 4 and n.prefixlen < 31]
            reserved = {str(n.network_address) for n in small} | {str(n.broadcast_address) for n in small}
            if ip == network.gateway or ip in reserved:
                raise Invalid(
                    "bad-ip", f"label {LABEL_IP}={ip} is the gateway, network or broadcast address of {net!r}"
                )
            if ip not in ips:
                ips.append(ip)
    mac_raw = labels.get(LABEL_MAC, "").strip().lower()
    ep = Endpoint(
        source=source,
        uid=cid,
        namespace=namespace,
        name=name,
        kind="container",
        network=net,
        node=node,
        ips=tuple(ips),
        mac=validate_mac(mac_raw) if mac_raw else None,
        labels=labels,
        ports=ports,
        state=status,
    )
    validate(ep)
    return ep


# ---------------------------------------------------------------- containers: the typed fast path
# The fields normalize_container reads, typed as it accepts them; everything else in an
# inspect (Mounts, GraphDriver, the rest of HostConfig...) is skipped by the decoder
# instead of becoming dicts.  A value of another type (a label that is not a string,
# an attachment that is null, ExposedPorts as a list...) fails the decode, and the
# inspect takes the dict path (json.loads + normalize_container), which decides.
class _TState(msgspec.Struct, gc=False):
    Status: str | None = None
    Running: bool | None = None
    Paused: bool | None = None


class _THostConfig(msgspec.Struct, gc=False):
    NetworkMode: str | None = None


class _TConfig(msgspec.Struct, gc=False):
    Labels: msgspec.Raw = msgspec.Raw(b"null")  # decoded by normalize_inspect, unless known (_LABELS_OK)
    ExposedPorts: dict[str, msgspec.Raw] | None = None  # only the keys count


class _TAttachment(msgspec.Struct, gc=False):
    IPAddress: str | None = None
    GlobalIPv6Address: str | None = None
    MacAddress: str | None = None
    NetworkID: str | None = None


class _TSettings(msgspec.Struct, gc=False):
    Networks: dict[str, _TAttachment] | None = None


class Inspect(msgspec.Struct, gc=False):
    """The fields of a container inspect that its endpoints and the adapter need (:func:`decode_inspect`)."""

    Id: str | None = None
    Name: str | None = None
    State: _TState | None = None
    HostConfig: _THostConfig | None = None
    Config: _TConfig | None = None
    NetworkSettings: _TSettings | None = None

    def network_ids(self) -> list[tuple[str, object]]:
        """(network name, NetworkID) of its attachments."""
        nets = self.NetworkSettings.Networks if self.NetworkSettings is not None else None
        return [(name, att.NetworkID) for name, att in nets.items()] if nets else []

    def host_network(self) -> bool:
        """:func:`is_host_network` of the inspect it was decoded from."""
        if self.HostConfig is not None and self.HostConfig.NetworkMode == "host":
            return True
        nets = self.NetworkSettings.Networks if self.NetworkSettings is not None else None
        return nets is not None and list(nets) == ["host"]


_INSPECT = msgspec.json.Decoder(Inspect)
_LABELS = msgspec.json.Decoder(dict[str, str] | None)
#: Config.Labels as JSON text → those labels, which passed the Endpoint's label checks (in an endpoint
#: that carried them).  Every event of a container (and each container of a compose service that is
#: scaled) has the same labels; they are decoded and checked once while here.  Bounded: emptied when full.
_LABELS_OK: dict[bytes, tuple[dict[str, str], str]] = {}  # (the labels, the namespace they give or '')
_LABELS_OK_MAX = 512
_NO_NETWORKS: dict[str, Network] = {}


def decode_inspect(body: bytes) -> Inspect | None:
    """A ``GET /containers/{id}/json`` body decoded into :class:`Inspect` (the rest skipped),
    or None when msgspec refuses it (not that shape, a field of another type, not JSON
    msgspec takes, or not ASCII: msgspec does not check the UTF-8 of the strings it skips,
    the dict path's decode does): then ``json.loads`` and :func:`normalize_container` decide."""
    try:
        inspect = _INSPECT.decode(body)
    except (msgspec.DecodeError, ValueError, RecursionError):
        return None
    # checked after the decode: the bytes are in the cache then (the decode reads them all in any case)
    return inspect if body.isascii() else None


def normalize_inspect(
    inspect: Inspect,
    source: Source,
    *,
    node: str = "",
    default_namespace: str = "default",
    hub_networks: Mapping[str, Network] | None = None,
    skip_networks: Collection[str] = (),
) -> list[Endpoint] | None:
    """:func:`normalize_container` of a decoded :class:`Inspect`, check for check: the same
    endpoints, or None when it is not sure (the Id missing, no Networks, wrapper mode,
    any check refusing a value): the caller then takes the dict path, which gives
    today's result or rejection and reason.  So this never rejects, and never accepts
    what the dict path would not."""
    cid = inspect.Id
    state = inspect.State
    if not cid or state is None:
        return None
    status = state.Status
    running = state.Running
    if running is True and status == "running":  # the usual container
        status = "running"  # (this one str: the context memo below compares by identity)
    else:
        status = status or ""
        if running is None:
            running = status in ("running", "paused")
        if not status:
            status = "paused" if state.Paused else ("running" if running else "exited")
        if not running:
            return []
    hc, config, settings = inspect.HostConfig, inspect.Config, inspect.NetworkSettings
    mode = hc.NetworkMode if hc is not None else None
    if mode == "host":
        return []
    if mode == "none" or config is None or settings is None or (networks := settings.Networks) is None:
        return None  # wrapper mode, or an old API's attachment: the dict path
    raw_labels = bytes(config.Labels)
    known = _LABELS_OK.get(raw_labels)
    if known is not None:
        labels = dict(known[0])  # the endpoints' own (as the dict path's copy)
        namespace = known[1] or default_namespace
    else:
        try:
            decoded = _LABELS.decode(raw_labels)
        except (msgspec.DecodeError, ValueError, RecursionError):
            return None  # not a map of strings: the dict path says why
        labels = decoded if decoded is not None else {}
        namespace = _label_namespace(labels) or default_namespace
    name = (inspect.Name or "").removeprefix("/") or _short(cid)
    if name.startswith("mesos-") and LABEL_WORKLOAD not in labels:
        return None  # maybe a Mesos task: the dict path
    if hub_networks is None:
        hub_networks = _NO_NETWORKS
    out: list[Endpoint] = []
    try:
        exposed = config.ExposedPorts  # (_ports' memo, inline)
        ports = _PORTS_SEEN.get(tuple(exposed)) if exposed else ()
        if ports is None:
            ports = _ports(exposed, "Config.ExposedPorts")
        for net, att in networks.items():
            if net in _SPECIAL_NETWORKS or net in hub_networks or net in skip_networks:
                continue
            v4, v6 = att.IPAddress, att.GlobalIPv6Address
            # a container's addresses are mostly new ones: the canonical v4 and MAC that validate_ip and
            # validate_mac return as they are, matched here without the look at their memos and the insert
            if v4:
                ip4 = v4 if match_v4_host(v4) else validate_ip(v4)
                ips: tuple[str, ...] = (ip4,) if not v6 or (ip6 := validate_ip(v6)) == ip4 else (ip4, ip6)
            elif v6:
                ips = (validate_ip(v6),)
            else:
                continue  # attached but not configured yet (or being torn down)
            if mac := att.MacAddress:
                mac = mac if match_unicast_mac(mac) else validate_mac(mac)
            ctx = _CONTEXT_OK
            if (
                known is not None and ctx[0] is source and ctx[1] is namespace and ctx[2] is node
                and ctx[3] is status and ctx[4] is ports and net in _NETWORKS_OK
                and len(cid) <= (text := LIMITS["text"]) and len(name) <= text and len(ips) <= LIMITS["ips"]
                and (cid + name).isprintable() and " " not in cid
            ):  # fmt: skip
                # as an endpoint validate() passed, but for uid, name and network (checked above as validate()
                # checks them), ips and mac (validate_ip and validate_mac gave them: canonical, checked)
                out.append(Endpoint(source=source, uid=cid, namespace=namespace, name=name, kind="container",
                                    network=net, node=node, ips=ips, mac=mac or None, labels=labels, ports=ports,
                                    state=status))  # fmt: skip
                continue
            # labels known to pass are left out of the check (it checks each field on its own)
            ep = Endpoint(source=source, uid=cid, namespace=namespace, name=name, kind="container", network=net,
                          node=node, ips=ips, mac=mac or None,
                          labels=_NO_LABELS if known is not None else labels, ports=ports, state=status)  # fmt: skip
            validate(ep)
            _remember_context(source, namespace, node, status, ports, net)
            if known is not None:
                force_setattr(ep, "labels", labels)  # (before anyone else holds it)
            elif labels:
                if len(_LABELS_OK) >= _LABELS_OK_MAX:
                    _LABELS_OK.clear()
                _LABELS_OK[raw_labels] = known = (dict(labels), _label_namespace(labels))
            out.append(ep)
    except Invalid:
        return None
    return out


#: (source, namespace, node, state, ports) of the last endpoint validate() passed here: an endpoint with
#: these very objects (immutable) passes the checks of these fields (validate() checks each on its own)
_CONTEXT_OK: tuple[object, ...] = (None,) * 5
#: networks of endpoints validate() passed here (their names passed its check); bounded: emptied when full
_NETWORKS_OK: set[str] = set()


def _remember_context(source: Source, namespace: str, node: str, state: str, ports: tuple[PortSpec, ...], net: str) -> None:
    global _CONTEXT_OK
    _CONTEXT_OK = (source, namespace, node, state, ports)
    if net not in _NETWORKS_OK:
        if len(_NETWORKS_OK) >= 4096:
            _NETWORKS_OK.clear()
        _NETWORKS_OK.add(net)


def _label_namespace(labels: Mapping[str, str]) -> str:
    """The namespace the labels give (:data:`NAMESPACE_LABELS`), or ''."""
    for key in NAMESPACE_LABELS:
        value = labels.get(key)
        if value:
            return value
    return ""


_NO_LABELS: dict[str, str] = {}


# ---------------------------------------------------------------- networks
def normalize_network(inspect: object, source: Source) -> Network | None:
    """``GET /networks`` item or ``GET /networks/{id}`` → Network; None for
    ``host``/``none`` (not L2 domains we program)."""
    if not isinstance(inspect, dict):
        raise Invalid("not-object", f"network inspect is {_tname(inspect)}, expected an object")
    name = inspect.get("Name")
    if name is None or name == "":
        raise Invalid("missing-field", "network inspect has no Name")
    if not isinstance(name, str):
        raise Invalid("bad-type", f"network Name is {_tname(name)}, expected a string")
    try:
        driver = _opt_str(inspect, "Driver", "network")
        if name in _SPECIAL_NETWORKS or driver in _SPECIAL_DRIVERS:
            return None
        ipam = _obj(inspect.get("IPAM"), "IPAM")
        configs = ipam.get("Config")
        if configs is None:
            configs = []
        if not isinstance(configs, list):
            raise Invalid("bad-type", f"IPAM.Config is {_tname(configs)}, expected an array")
        subnets: list[str] = []
        gateway: str | None = None
        for i, cfg_raw in enumerate(configs):
            cfg = _obj(cfg_raw, f"IPAM.Config[{i}]")
            subnet = _opt_str(cfg, "Subnet", f"IPAM.Config[{i}]")
            if subnet:
                try:
                    canon = str(ipaddress.ip_network(subnet, strict=False))
                except ValueError:
                    raise Invalid("bad-subnet", f"IPAM.Config[{i}].Subnet {subnet!r} is not a CIDR") from None
                if canon not in subnets:
                    subnets.append(canon)
            gw = _opt_str(cfg, "Gateway", f"IPAM.Config[{i}]")
            if gw and gateway is None:
                gateway = validate_ip(gw.split("/", 1)[0], "gateway")
        labels = _str_map(inspect.get("Labels"), "Labels")
        net = Network(source=source, name=name, subnets=tuple(subnets), gateway=gateway, labels=labels)
        validate(net)
        return net
    except Invalid as exc:
        raise Invalid(exc.reason, f"network {name!r}: {exc}") from None


# ---------------------------------------------------------------- events
def _check_event(ev: object) -> dict[str, Any]:
    if not isinstance(ev, dict):
        raise Invalid("not-object", f"event is {_tname(ev)}, expected an object")
    for key in ("Type", "Action"):
        value = ev.get(key)
        if value is None or value == "":
            raise Invalid("missing-field", f"event has no {key}")
        if not isinstance(value, str):
            raise Invalid("bad-type", f"event {key} is {_tname(value)}, expected a string")
    actor = ev.get("Actor")
    if actor is not None:
        if not isinstance(actor, dict):
            raise Invalid("bad-type", f"event Actor is {_tname(actor)}, expected an object")
        aid = actor.get("ID")
        if aid is not None and not isinstance(aid, str):
            raise Invalid("bad-type", f"event Actor.ID is {_tname(aid)}, expected a string")
        attrs = actor.get("Attributes")
        if attrs is not None and not isinstance(attrs, dict):
            raise Invalid("bad-type", f"event Actor.Attributes is {_tname(attrs)}, expected an object")
    legacy_id = ev.get("id")
    if legacy_id is not None and not isinstance(legacy_id, str):
        raise Invalid("bad-type", f"event id is {_tname(legacy_id)}, expected a string")
    tn = ev.get("timeNano")
    if tn is not None and (isinstance(tn, bool) or not isinstance(tn, int) or tn < 0):
        raise Invalid("bad-type", f"event timeNano is {tn!r}, expected a non-negative integer")
    t = ev.get("time")
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or t < 0):
        raise Invalid("bad-type", f"event time is {t!r}, expected a non-negative number")
    # "health_status: healthy", "exec_start: sh -c ..." → base action; keep the detail.
    action: str = ev["Action"]
    base, sep, detail = action.partition(":")
    if sep:
        ev["Action"] = base.strip()
        ev["ActionDetail"] = detail.strip()
        if not ev["Action"]:
            raise Invalid("missing-field", f"event Action {action!r} has no base action")
    return ev


def _checked_event(ev: object) -> dict[str, Any]:
    """:func:`_check_event`, answered directly for the usual event (every field of the
    expected type, an Actor, ``timeNano``, an Action without a detail): the same
    checks, fewer calls; anything else goes through :func:`_check_event` itself."""
    if type(ev) is dict:
        typ, action, actor, tn = ev.get("Type"), ev.get("Action"), ev.get("Actor"), ev.get("timeNano")
        if type(typ) is str and typ and type(action) is str and action and type(actor) is dict and type(tn) is int:
            aid, attrs, legacy, t = actor.get("ID"), actor.get("Attributes"), ev.get("id"), ev.get("time")
            if (
                (aid is None or type(aid) is str)
                and (attrs is None or type(attrs) is dict)
                and (legacy is None or type(legacy) is str)
                and tn >= 0
                and (t is None or ((type(t) is int or type(t) is float) and t >= 0))
                and ":" not in action
            ):
                return ev
    return _check_event(ev)


def parse_event_line(line: bytes | str) -> dict[str, Any]:
    """Decode one line of ``GET /events``; raise :class:`Invalid` on bad input.

    Accepts an RFC 7464 record-separator prefix (``application/json-seq``).
    ``Action`` is reduced to its base (``"health_status: healthy"`` →
    ``"health_status"``); the suffix is kept as ``ActionDetail``.
    """
    # An ASCII line that msgspec decodes as it is: JSON's whitespace (which strip removes, and
    # nothing else is around the value) and one value; what the steps below would give it.
    if type(line) is bytes and line.isascii() and len(line) <= _MAX_EVENT_LINE:
        if len(line) <= 2 * _FAST_BRACKETS or line.count(b"{") + line.count(b"[") <= _FAST_BRACKETS:
            try:
                fast = _DECODE(line)
            except (msgspec.DecodeError, ValueError, RecursionError):
                pass
            else:
                return _checked_event(fast)
    if isinstance(line, (bytes, bytearray, memoryview)):
        if len(line) > _MAX_EVENT_LINE:
            raise Invalid("too-long", f"event line is longer than {_MAX_EVENT_LINE} bytes")
        try:
            text = bytes(line).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Invalid("bad-encoding", f"event line is not UTF-8: {exc.reason} at byte {exc.start}") from None
    elif isinstance(line, str):
        text = line
    else:
        raise Invalid("bad-type", f"event line is {_tname(line)}, expected bytes or str")
    text = text.strip().lstrip("\x1e").strip()
    if not text:
        raise Invalid("empty", "event line is empty")
    # msgspec decodes what json.loads decodes, to the same objects, or fails where json.loads may not (NaN,
    # lone surrogates, 1e400): then json.loads decides.  Nesting is where it could accept more (its depth
    # limit is a few levels higher), so only a line too short to nest a few hundred deep (or with few
    # brackets: counting is slower than decoding) takes it.
    if len(text) <= 2 * _FAST_BRACKETS or text.count("{") + text.count("[") <= _FAST_BRACKETS:
        try:
            fast = _DECODE(text)
        except (msgspec.DecodeError, ValueError, RecursionError):
            pass
        else:
            return _checked_event(fast)
    try:
        ev = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Invalid("bad-json", f"event line is not JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise Invalid("bad-json", "event line is nested too deeply") from None
    return _check_event(ev)


# ---------------------------------------------------------------- container events: the typed fast path
# What the adapter takes from a container event (its de-duplication key, the container, the
# action, the time), typed; the rest of the line (Actor.Attributes: the container's labels, most
# of its bytes) is skipped, not built.
class _TSkipped(msgspec.Struct, gc=False):
    """An object whose members are skipped, not built (anything but an object fails the decode)."""


class _TActor(msgspec.Struct, gc=False):
    ID: str | None = None
    Attributes: _TSkipped | None = None  # skipped: an object, or null, is all that is checked


class _TEvent(msgspec.Struct, gc=False):
    Type: str | None = None
    Action: str | None = None
    Actor: _TActor | None = None
    id: str | None = None
    timeNano: int | None = None
    time: int | float | None = None


_EVENT = msgspec.json.Decoder(_TEvent)


class ContainerEvent(msgspec.Struct, frozen=True, gc=False):
    """A container event as the adapter uses it: the key :func:`event_key` gives it, the
    container (:func:`event_container_id`), its action and ``timeNano``."""

    key: tuple[int, str, str, str]
    container: str
    action: str
    time_nano: int


def container_event(line: bytes | str) -> ContainerEvent | None:
    """One ``/events`` line that is a container event of the usual shape (ASCII; ``Type``
    ``container``; an ``Action`` without a detail or surrounding spaces; ``Actor.ID``;
    ``timeNano``; every field of the type :func:`parse_event_line` asks), decoded typed
    (the Actor's attributes skipped): the key, container, action and time that
    :func:`parse_event_line`, :func:`event_key`, :func:`event_container_id` and
    :func:`event_time_nano` give.  None for anything else: the caller then takes that
    path, which decides (the event, or its rejection and reason)."""
    if type(line) is not bytes or not line.isascii() or len(line) > _MAX_EVENT_LINE:
        return None
    if len(line) > 2 * _FAST_BRACKETS and line.count(b"{") + line.count(b"[") > _FAST_BRACKETS:
        return None  # the nesting parse_event_line leaves to json.loads
    try:
        ev = _EVENT.decode(line)
    except (msgspec.DecodeError, ValueError, RecursionError):
        return None
    actor, action, tn, t = ev.Actor, ev.Action, ev.timeNano, ev.time
    if ev.Type != "container" or actor is None or tn is None or tn < 0 or (t is not None and t < 0):
        return None
    aid = actor.ID
    if not aid or not action or ":" in action or action != action.strip():
        return None
    return ContainerEvent((tn, "container", action, aid), aid, action, tn)


def parse_stream(text: bytes | str) -> Iterator[dict[str, Any] | Invalid]:
    """Decode a captured ``/events`` body: one compact object per line, or
    pretty-printed objects concatenated.  Yields an :class:`Invalid` for each
    bad chunk and resynchronises at the next line that starts (column 0) with
    anything but whitespace or a closing bracket."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    decoder = json.JSONDecoder()
    pos, end = 0, len(text)
    while True:
        while pos < end and (text[pos].isspace() or text[pos] == "\x1e"):
            pos += 1
        if pos >= end:
            return
        try:
            obj, nxt = decoder.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError) as exc:
            where = f"line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            yield Invalid("bad-json", f"event stream chunk is not JSON: {msg} {where}".rstrip())
            m = _RESYNC.search(text, pos)
            if m is None:
                return
            pos = m.end()
            continue
        pos = nxt
        try:
            yield _check_event(obj)
        except Invalid as exc:
            yield exc


def event_action(ev: Mapping[str, Any]) -> str:
    """The base action (``"health_status: healthy"`` → ``"health_status"``)."""
    action = ev.get("Action")
    if not isinstance(action, str):
        return ""
    return action.partition(":")[0].strip()


def event_time_nano(ev: Mapping[str, Any]) -> int:
    """``timeNano``, else ``time`` in ns, else 0."""
    tn = ev.get("timeNano")
    if isinstance(tn, int) and not isinstance(tn, bool):
        return tn
    t = ev.get("time")
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        return int(t * 1_000_000_000)
    return 0


def _actor(ev: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    actor = ev.get("Actor")
    if not isinstance(actor, dict):
        return "", {}
    aid = actor.get("ID")
    attrs = actor.get("Attributes")
    return (aid if isinstance(aid, str) else ""), (attrs if isinstance(attrs, dict) else {})


def event_key(ev: Mapping[str, Any]) -> tuple[int, str, str, str]:
    """De-duplication key: (timeNano or time, Type, Action, Actor.ID)."""
    actor, tn, typ, action = ev.get("Actor"), ev.get("timeNano"), ev.get("Type"), ev.get("Action")
    if type(actor) is dict and type(tn) is int and type(typ) is str and type(action) is str:  # the usual event
        aid = actor.get("ID")
        if type(aid) is str and aid:
            return (tn, typ, action.partition(":")[0].strip(), aid)
    aid, _ = _actor(ev)
    if not aid:
        legacy = ev.get("id")
        aid = legacy if isinstance(legacy, str) else ""
    typ = ev.get("Type")
    return (event_time_nano(ev), typ if isinstance(typ, str) else "", event_action(ev), aid)


def event_container_id(ev: Mapping[str, Any]) -> str | None:
    """The container an event concerns, or None.

    Container events: ``Actor.ID`` (legacy ``id``).  Network ``connect`` /
    ``disconnect``: ``Actor.Attributes.container``.
    """
    typ = ev.get("Type")
    if typ == "container":  # the usual event first
        actor = ev.get("Actor")
        aid = actor.get("ID") if type(actor) is dict else None
        if type(aid) is str and aid:
            return aid
    aid, attrs = _actor(ev)
    if typ == "container":
        if aid:
            return aid
        legacy = ev.get("id")
        return legacy if isinstance(legacy, str) and legacy else None
    if typ == "network" and event_action(ev) in ("connect", "disconnect"):
        cid = attrs.get("container")
        return cid if isinstance(cid, str) and cid else None
    return None
