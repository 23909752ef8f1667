"""Validation of canonical objects: one strict validator for every adapter and remote ingest.

:func:`validate` raises :class:`~core.model.objects.Invalid` with a short
``reason`` (a metric label) and a one-line message quoting at most ~200
characters of the bad value.  Addresses are parsed by :mod:`ipaddress` (no
scope ids, whitespace, control characters or duplicates; loopback, multicast,
unspecified and broadcast refused for endpoints), identifiers carry no
control, bidi or zero-width characters, and every string and collection has a
limit (:data:`LIMITS`).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

from core.model.objects import (
    DNS_LABEL,
    LABEL_WORKLOAD,
    Endpoint,
    Invalid,
    Namespace,
    Network,
    Object,
    Peer,
    Policy,
    PolicyPort,
    Selector,
    Service,
    Source,
)

#: A canonical network name (also an adapter option, e.g. the k8s adapter's ``network``).
NETWORK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_CTRL = re.compile(r"[\x00-\x1f\x7f]")
_PROTOCOLS = frozenset({"tcp", "udp", "sctp"})
# Kubernetes label key: optional DNS-subdomain prefix + "/" + name (63, alnum at the ends).
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
# IANA_SVC_NAME, what Kubernetes allows for a named container port.
_PORT_NAME = re.compile(r"^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?!-))*(?<!-)$")
_OPERATORS = frozenset({"In", "NotIn", "Exists", "DoesNotExist"})
MAX_AFFINITY_TIMEOUT = 86400  # Kubernetes' limit for sessionAffinityConfig.clientIP.timeoutSeconds


#: Every string field and collection of the model has a limit; past it the
#: object is rejected (``too-long`` / ``too-many``) with a reason.  README's
#: configuration reference lists these.  They are far above what orchestrators
#: produce and well below what would make one NB row or one log line huge.
LIMITS: dict[str, int] = {
    "text": 253,  # uid, name, namespace, node (a DNS subdomain's length)
    "kind": 63,  # Endpoint.kind, Endpoint.state
    "label_key": 317,  # a 253-character prefix, "/" and a 63-character name
    "label_value": 4096,
    "labels": 256,  # labels of one object; match_labels of one selector
    "ips": 16,  # addresses of one endpoint
    "ports": 1024,  # ports of one endpoint
    "subnets": 16,  # subnets of one network
    "rules": 10000,  # vip:port rules of one service
    "backends": 10000,  # backends of one rule
    "policy_rules": 1000,  # ingress or egress rules of one policy
    "peers": 1000,  # peers of one rule
    "policy_ports": 1000,  # ports of one rule
    "except_cidrs": 256,
    "expressions": 256,  # match_expressions of one selector
    "values": 1024,  # values of one expression
    "object_bytes": 16 << 20,  # one JSON object
    "event_bytes": 256 << 20,  # one JSON event (a remote snapshot)
}
_QUOTE = 200  # at most this many characters of a bad value go into a message
# Categories no identifier may contain: controls, format characters (bidi
# overrides, zero-width joiners and spaces, BOM), surrogates, line separators.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

# Values a check below has accepted, by check (bounded: a set is emptied when it
# reaches _KNOWN_MAX and refills as values come again).  Membership means "this
# value passes that check", whatever object it came with.  Small on purpose: what
# they save is the second check of a value within one event (an adapter checks an
# address, then the Endpoint carrying it is validated) and of the few values that
# come again and again (networks, port names, an endpoint's re-sent IP); a set the
# size of the cluster would cost hubd megabytes (a set slot is 16 bytes, and it
# keeps the strings alive) for little more.
_KNOWN_MAX = 1 << 12
_SOURCES_OK: set[Source] = set()  # validate_source passes
_NETWORKS_OK: set[str] = set()  # NETWORK_NAME matches
_IPS_OK: set[str] = set()  # validate_ip(ip) == ip (validate_ip itself looks here first)
_MACS_OK: set[str] = set()  # validate_mac(mac) == mac (validate_mac itself looks here first)
_PORT_NAMES_OK: set[str] = set()  # _PORT_NAME matches
_ORCHS_OK: set[str] = set()  # DNS_LABEL matches (the orchestrator part of a workload label)
_LAST_SOURCE: object = None  # the Source last found in _SOURCES_OK (that object itself)


def _remember(known: set[str], value: str) -> None:
    if len(known) >= _KNOWN_MAX:
        known.clear()
    known.add(value)


def quote(value: object, limit: int = _QUOTE) -> str:
    """``repr(value)``, cut to about ``limit`` characters (a 1 MB bad value
    must not become a 1 MB log line, metric or status entry)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[:limit]}...{size}"


def bad_characters(value: str) -> bool:
    """True if ``value`` has a control, bidi/zero-width (format), surrogate or
    line-separator character.  Printable text (``str.isprintable``: no
    character of the categories Other or Separator but the ASCII space, a
    superset of the refused ones) is answered by that one C call; ASCII takes
    one regex; other text is checked per character."""
    if value.isprintable():
        return False
    if value.isascii():
        return _CTRL.search(value) is not None
    return any(unicodedata.category(c) in _BAD_CATEGORIES for c in value)


def _text(field: str, value: str, maxlen: int = LIMITS["text"]) -> None:
    if not value:
        raise Invalid("empty-field", f"{field} is empty")
    if len(value) > maxlen:
        raise Invalid("too-long", f"{field} is longer than {maxlen} characters")
    if bad_characters(value):
        raise Invalid("bad-characters", f"{field} {quote(value)} contains control, bidi or zero-width characters")


def _count(field: str, values: object, limit: str) -> None:
    n = len(values)  # type: ignore[arg-type]
    if n > LIMITS[limit]:
        raise Invalid("too-many", f"{field} has {n} items, more than {LIMITS[limit]}")


def validate_source(src: Source) -> None:
    for field, value in (("orchestrator", src.orchestrator), ("cluster", src.cluster)):
        if not DNS_LABEL.fullmatch(value):
            raise Invalid("bad-source", f"source {field} {quote(value)} is not a DNS label ([a-z0-9-], 1-63)")
    if src.orchestrator == "ovn-hub":
        raise Invalid("bad-source", "orchestrator 'ovn-hub' is reserved (the hub's own rows: routers and their groups)")


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4 = re.compile(rf"{_OCTET}(\.{_OCTET}){{3}}")  # used with fullmatch: no "$" that matches before a newline
# The canonical dotted quads validate_ip accepts: not 0/8, 127/8, 224-239/8 (multicast), 255.255.255.255.
_V4_HOST = re.compile(rf"(?!0\.|127\.|22[4-9]\.|23[0-9]\.|255\.255\.255\.255\Z){_OCTET}(?:\.{_OCTET}){{3}}")
# The MACs validate_mac returns as they are: lower case, the multicast bit (of the first octet) clear.
_MAC_UNICAST = re.compile(r"[0-9a-f][02468ace](?::[0-9a-f]{2}){5}")
_SPACE = re.compile(r"\s")
#: ``fullmatch`` of the text :func:`validate_ip` returns as it is (its fast path, without its memo): a
#: canonical dotted quad of a unicast host.  For callers that see mostly first-seen addresses (a
#: container's new IP), where the memo's lookup, insert and churn cost more than this one regex.
match_v4_host = _V4_HOST.fullmatch
#: ``fullmatch`` of the text :func:`validate_mac` returns as it is (its fast path, without its memo).
match_unicast_mac = _MAC_UNICAST.fullmatch


def validate_ip(text: str, field: str = "ip") -> str:
    """Return the canonical form of a unicast host IP (v4 or v6), or raise.

    Parsed by :mod:`ipaddress`; refused: surrounding whitespace or any control
    character, IPv6 scope ids (``fe80::1%eth0``: OVN's address columns cannot
    carry them, and ``%`` let text after it reach NB), loopback, multicast,
    unspecified (and 0.0.0.0/8) and the IPv4 broadcast address."""
    if not isinstance(text, str):
        raise Invalid("bad-ip", f"{field} {quote(text)} is not a string")
    if text in _IPS_OK:  # canonical addresses this function returned before
        return text
    if _V4_HOST.fullmatch(text):  # fast path: a canonical dotted quad (no leading zeros) of a unicast host
        if len(_IPS_OK) >= _KNOWN_MAX:  # (_remember, inline)
            _IPS_OK.clear()
        _IPS_OK.add(text)
        return text
    if _V4.fullmatch(text):  # a canonical dotted quad that _V4_HOST refused
        raise Invalid("bad-ip", f"{field} {text!r} is not a unicast host address")
    if "%" in text:
        raise Invalid("bad-ip", f"{field} {quote(text)} has an IPv6 scope id (not allowed)")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise Invalid("bad-ip", f"{field} {quote(text)} is not an IPv4 or IPv6 address") from None
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback:
        raise Invalid("bad-ip", f"{field} {quote(text)} is not a unicast host address")
    if isinstance(ip, ipaddress.IPv4Address) and (ip.packed[0] == 0 or ip == _BROADCAST):
        raise Invalid("bad-ip", f"{field} {quote(text)} is not a unicast host address")
    canon = str(ip)
    if canon == text:
        _remember(_IPS_OK, text)
    return canon


_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def validate_mac(text: str) -> str:
    if type(text) is str:
        if text in _MACS_OK:  # lower-case MACs this function returned before
            return text
        if _MAC_UNICAST.fullmatch(text):  # what the checks below return as it is
            if len(_MACS_OK) >= _KNOWN_MAX:  # (_remember, inline)
                _MACS_OK.clear()
            _MACS_OK.add(text)
            return text
    mac = text.lower()
    if not _MAC.fullmatch(mac):
        raise Invalid("bad-mac", f"mac {quote(text)} is not six colon-separated hex octets")
    if int(mac[:2], 16) & 1:
        raise Invalid("bad-mac", f"mac {text!r} is a multicast address")
    if mac == text:
        _remember(_MACS_OK, mac)
    return mac


def _labels(labels: dict[str, str]) -> None:
    _count("labels", labels, "labels")
    for k, v in labels.items():
        _text("label key", k, LIMITS["label_key"])
        if len(v) > LIMITS["label_value"]:
            raise Invalid("too-long", f"label {quote(k)} has a value longer than {LIMITS['label_value']} characters")
        if bad_characters(v):
            raise Invalid("bad-label", f"label {quote(k)} has a value with control, bidi or zero-width characters")


def _uid(uid: str) -> None:
    _text("uid", uid)
    if _SPACE.search(uid):
        raise Invalid("bad-uid", f"uid {quote(uid)} contains whitespace")


def _network_name(name: str) -> None:
    if not NETWORK_NAME.fullmatch(name):
        raise Invalid("bad-network", f"network name {quote(name)} must match {NETWORK_NAME.pattern}")


def validate_subnet(text: str, what: str = "subnet") -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A CIDR as OVN's ``other_config:subnet`` takes it: no scope id, no whitespace."""
    if not isinstance(text, str) or "%" in text or bad_characters(text) or text != text.strip():
        raise Invalid("bad-subnet", f"{what} {quote(text)} is not a CIDR")
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise Invalid("bad-subnet", f"{what} {quote(text)} is not a CIDR") from None


def parse_hostport(text: str, field: str = "backend") -> tuple[str, int]:
    """``"ip:port"`` / ``"[v6]:port"`` → (canonical ip, port), or raise."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep or ":" not in host:
            raise Invalid("bad-backend", f"{field} {quote(text)} is not [IPv6]:port")
    else:
        host, sep, port = text.rpartition(":")
        if not sep or ":" in host:
            raise Invalid("bad-backend", f"{field} {quote(text)} is not ip:port (IPv6 as [ip]:port)")
    if "%" in host:
        raise Invalid("bad-backend", f"{field} {quote(text)} has an IPv6 scope id (not allowed)")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise Invalid("bad-backend", f"{field} {quote(text)} has no valid IP address") from None
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise Invalid("bad-backend", f"{field} {quote(text)} has no port in 1-65535")
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback:
        raise Invalid("bad-backend", f"{field} {quote(text)} is not a unicast address")
    if str(ip) != host:
        raise Invalid("bad-backend", f"{field} {quote(text)} is not in canonical form ({ip})")
    return host, int(port)


def _port(port: int, what: str) -> None:
    if not 0 < port < 65536:
        raise Invalid("bad-port", f"{what} {port} is out of range 1-65535")


def _protocol(protocol: str, what: str) -> None:
    if protocol not in _PROTOCOLS:
        raise Invalid("bad-protocol", f"{what} protocol {quote(protocol)} is not tcp, udp or sctp")


def validate_label_key(key: str) -> None:
    prefix, slash, name = key.rpartition("/")
    if not _LABEL_NAME.fullmatch(name) or (slash and (len(prefix) > 253 or not _LABEL_PREFIX.fullmatch(prefix))):
        raise Invalid("bad-selector", f"label key {quote(key)} is not a valid Kubernetes label key")


def validate_selector(sel: Selector, what: str = "selector") -> None:
    _count(f"{what} match_labels", sel.match_labels, "labels")
    _count(f"{what} match_expressions", sel.match_expressions, "expressions")
    for k, v in sel.match_labels.items():
        validate_label_key(k)
        _selector_value(what, k, v)
    for e in sel.match_expressions:
        validate_label_key(e.key)
        _count(f"{what} values of {e.key!r}", e.values, "values")
        for v in e.values:
            _selector_value(what, e.key, v)
        if e.operator not in _OPERATORS:
            raise Invalid("bad-selector", f"{what} operator {quote(e.operator)} is not In, NotIn, Exists or DoesNotExist")
        if e.operator in ("In", "NotIn") and not e.values:
            raise Invalid("bad-selector", f"{what} operator {e.operator} on {e.key!r} needs values")
        if e.operator in ("Exists", "DoesNotExist") and e.values:
            raise Invalid("bad-selector", f"{what} operator {e.operator} on {e.key!r} takes no values")


def _selector_value(what: str, key: str, value: str) -> None:
    if len(value) > LIMITS["label_value"] or bad_characters(value):
        raise Invalid("bad-selector", f"{what} value {quote(value)} of {quote(key)} is too long or has bad characters")


def _cidr(text: str, what: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return validate_subnet(text, what)
    except Invalid:
        raise Invalid("bad-cidr", f"{what} {quote(text)} is not a CIDR") from None


def _validate_peer(peer: Peer, where: str) -> None:
    selectors = peer.pod_selector is not None or peer.namespace_selector is not None
    if peer.cidr is None:
        if not selectors:
            raise Invalid("bad-peer", f"{where}: a peer needs a pod selector, a namespace selector or a cidr")
        if peer.except_cidrs:
            raise Invalid("bad-peer", f"{where}: except_cidrs without a cidr")
    else:
        if selectors:
            raise Invalid("bad-peer", f"{where}: an ipBlock peer cannot also have selectors")
        net = _cidr(peer.cidr, f"{where} cidr")
        _count(f"{where} except_cidrs", peer.except_cidrs, "except_cidrs")
        for ex in peer.except_cidrs:
            sub = _cidr(ex, f"{where} except")
            if sub.version != net.version or not sub.subnet_of(net):  # type: ignore[arg-type]
                raise Invalid("bad-cidr", f"{where}: except {quote(ex)} is not inside {quote(peer.cidr)}")
    if peer.pod_selector is not None:
        validate_selector(peer.pod_selector, f"{where} pod selector")
    if peer.namespace_selector is not None:
        validate_selector(peer.namespace_selector, f"{where} namespace selector")


def _validate_policy_port(pp: PolicyPort, where: str) -> None:
    _protocol(pp.protocol, where)
    if isinstance(pp.port, str):
        if not _PORT_NAME.fullmatch(pp.port):
            raise Invalid("bad-port", f"{where}: named port {quote(pp.port)} is not an IANA service name")
        if pp.end_port is not None:
            raise Invalid("bad-port", f"{where}: end_port needs a numeric port")
    elif isinstance(pp.port, int):
        _port(pp.port, f"{where} port")
        if pp.end_port is not None:
            _port(pp.end_port, f"{where} end_port")
            if pp.end_port < pp.port:
                raise Invalid("bad-port", f"{where}: end_port {pp.end_port} is below port {pp.port}")
    elif pp.end_port is not None:
        raise Invalid("bad-port", f"{where}: end_port without port")


def _validate_service(svc: Service) -> None:
    _uid(svc.uid)
    _text("namespace", svc.namespace)
    _text("name", svc.name)
    _network_name(svc.network)
    if not 0 <= svc.affinity_timeout <= MAX_AFFINITY_TIMEOUT:
        raise Invalid("bad-affinity", f"affinity_timeout {svc.affinity_timeout} is out of range 0-{MAX_AFFINITY_TIMEOUT}")
    _count("rules", svc.rules, "rules")
    seen: set[tuple[str, str, int]] = set()
    for rule in svc.rules:
        _protocol(rule.protocol, "rule")
        vip = validate_ip(rule.vip, "vip")
        if vip != rule.vip:
            raise Invalid("bad-ip", f"vip {quote(rule.vip)} is not in canonical form ({vip!r})")
        _port(rule.port, "vip port")
        if (rule.protocol, vip, rule.port) in seen:
            raise Invalid("bad-rule", f"{rule.protocol} {vip} port {rule.port} appears twice")
        seen.add((rule.protocol, vip, rule.port))
        family = ipaddress.ip_address(vip).version
        _count(f"{rule.protocol} {vip}:{rule.port} backends", rule.backends, "backends")
        for b in rule.backends:
            host, _ = parse_hostport(b)
            if ipaddress.ip_address(host).version != family:
                raise Invalid("bad-backend", f"backend {quote(b)} is not of the family of vip {vip}")
        if len(set(rule.backends)) != len(rule.backends):
            raise Invalid("bad-backend", f"{rule.protocol} {vip}:{rule.port} has duplicate backends")


def _validate_policy(pol: Policy) -> None:
    _uid(pol.uid)
    _text("namespace", pol.namespace)
    _text("name", pol.name)
    validate_selector(pol.pod_selector, "pod selector")
    for direction, rules in (("ingress", pol.ingress), ("egress", pol.egress)):
        _count(direction, rules or (), "policy_rules")
        for i, rule in enumerate(rules or ()):
            _count(f"{direction}[{i}] peers", rule.peers, "peers")
            _count(f"{direction}[{i}] ports", rule.ports, "policy_ports")
            for j, peer in enumerate(rule.peers):
                _validate_peer(peer, f"{direction}[{i}] peer[{j}]")
            for j, pp in enumerate(rule.ports):
                _validate_policy_port(pp, f"{direction}[{i}] port[{j}]")


# ---------------------------------------------------------------- the Endpoint's fast path
def _endpoint_passes(ep: Endpoint) -> bool:
    """True only if the full check of ``ep`` (:func:`_validate_endpoint`) certainly
    passes; False: run it.

    The same checks, made with fewer calls: every text field and every label
    by one ``str.isprintable`` of their concatenation (it refuses a superset of
    what :func:`bad_characters` refuses, and every whitespace but the space,
    which the uid and the workload id are searched for apart); sources,
    networks, addresses, MACs, port names and orchestrator names first looked
    up among the values their check accepted before, else checked and
    remembered.  Anything unusual (a non-printable or non-str value, a limit
    reached, a value its check refuses) answers False and never raises: the
    full check then decides, with its reasons and messages, so no rejection
    depends on this path."""
    global _LAST_SOURCE
    try:
        src = ep.source
        if src is not _LAST_SOURCE:  # an adapter passes the same Source object every time
            if src not in _SOURCES_OK:
                validate_source(src)
                if len(_SOURCES_OK) >= 1024:
                    _SOURCES_OK.clear()
                _SOURCES_OK.add(src)
            _LAST_SOURCE = src
        lim = LIMITS
        text, short = lim["text"], lim["kind"]
        uid, ns, name, node, kind, state = ep.uid, ep.namespace, ep.name, ep.node, ep.kind, ep.state
        if not (uid and ns and name and kind and state):
            return False
        head, tail = uid + ns + name + node, kind + state  # when a sum is within a limit, so is each part
        if len(head) > text and (len(uid) > text or len(ns) > text or len(name) > text or len(node) > text):
            return False
        if len(tail) > short and (len(kind) > short or len(state) > short):
            return False
        if not (head.isprintable() and tail.isprintable()) or " " in uid:
            return False
        network = ep.network
        if network not in _NETWORKS_OK:
            if not NETWORK_NAME.fullmatch(network):
                return False
            _remember(_NETWORKS_OK, network)
        ips = ep.ips
        if len(ips) > lim["ips"]:
            return False
        for ip in ips:
            if ip not in _IPS_OK and validate_ip(ip) != ip:  # validate_ip remembers canonical ones
                return False
        if len(ips) > 1 and len(set(ips)) != len(ips):
            return False
        mac = ep.mac
        if mac is not None and mac not in _MACS_OK and validate_mac(mac) != mac:  # validate_mac remembers
            return False
        if len(ep.ports) > lim["ports"]:
            return False
        for p in ep.ports:
            if not 0 < p.port < 65536 or p.protocol not in _PROTOCOLS:
                return False
            pname = p.name
            if pname and pname not in _PORT_NAMES_OK:
                if not _PORT_NAME.fullmatch(pname):
                    return False
                _remember(_PORT_NAMES_OK, pname)
        labels = ep.labels
        if labels:
            keys, values = "".join(labels), "".join(labels.values())
            if len(labels) > lim["labels"] or "" in labels:
                return False
            if len(keys) > lim["label_key"] and max(map(len, labels)) > lim["label_key"]:
                return False
            if len(values) > lim["label_value"] and max(map(len, labels.values())) > lim["label_value"]:
                return False
            if not (keys.isprintable() and values.isprintable()):
                return False
            workload = labels.get(LABEL_WORKLOAD)
            if workload is not None:
                orch, sep, wid = workload.partition(":")
                if not sep or not wid or len(wid) > text or " " in wid:
                    return False
                if orch not in _ORCHS_OK:
                    if not DNS_LABEL.fullmatch(orch):
                        return False
                    _remember(_ORCHS_OK, orch)
        return True
    except Exception:  # noqa: BLE001 - a value its check refuses, or of a wrong type: the full check says why
        return False


def validate(obj: Object) -> None:
    """Raise :class:`Invalid` with a reason if ``obj`` cannot be programmed."""
    if type(obj) is Endpoint:
        if not _endpoint_passes(obj):
            _validate_endpoint(obj)
        return
    validate_source(obj.source)
    if isinstance(obj, Namespace):
        _text("namespace", obj.name)
        _labels(obj.labels)
        return
    if isinstance(obj, Service):
        _validate_service(obj)
        return
    if isinstance(obj, Policy):
        _validate_policy(obj)
        return
    if isinstance(obj, Network):
        _network_name(obj.name)
        _count("subnets", obj.subnets, "subnets")
        for s in obj.subnets:
            validate_subnet(s, f"subnet of network {obj.name!r}")
        if obj.gateway is not None:
            validate_ip(obj.gateway, "gateway")
        if obj.mirror and not obj.shared:
            raise Invalid("bad-network", f"network {obj.name!r} is a mirror but not shared")
        _labels(obj.labels)
        return
    _validate_endpoint(obj)


def _validate_endpoint(obj: Endpoint) -> None:
    """The full check of an Endpoint."""
    validate_source(obj.source)
    _uid(obj.uid)
    _text("namespace", obj.namespace)
    _text("name", obj.name)
    _text("kind", obj.kind, LIMITS["kind"])
    _text("state", obj.state, LIMITS["kind"])
    _network_name(obj.network)
    if obj.node:
        _text("node", obj.node)
    _count("ips", obj.ips, "ips")
    for ip in obj.ips:
        canon = validate_ip(ip)
        if canon != ip:
            raise Invalid("bad-ip", f"ip {quote(ip)} is not in canonical form ({canon!r})")
    if len(set(obj.ips)) != len(obj.ips):
        raise Invalid("bad-ip", "ips has duplicates")
    if obj.mac is not None and validate_mac(obj.mac) != obj.mac:
        raise Invalid("bad-mac", f"mac {quote(obj.mac)} is not lower case")
    _count("ports", obj.ports, "ports")
    for p in obj.ports:
        if not 0 < p.port < 65536:
            raise Invalid("bad-port", f"port {p.port} is out of range 1-65535")
        if p.protocol not in _PROTOCOLS:
            raise Invalid("bad-port", f"port protocol {quote(p.protocol)} is not tcp, udp or sctp")
        if p.name and not _PORT_NAME.fullmatch(p.name):
            raise Invalid("bad-port", f"port name {quote(p.name)} is not an IANA service name")
    _labels(obj.labels)
    workload = obj.labels.get(LABEL_WORKLOAD) if obj.labels else None
    if workload is not None:
        orch, sep, wid = workload.partition(":")
        if not sep or not DNS_LABEL.fullmatch(orch) or not wid or len(wid) > LIMITS["text"] or _SPACE.search(wid):
            raise Invalid("bad-label", f"label {LABEL_WORKLOAD}={quote(workload)} is not <orchestrator>:<id>")


# ---------------------------------------------------------------- for other validators (core/model/fabric.py)
def validate_count(field: str, values: object, limit: str) -> None:
    """At most ``LIMITS[limit]`` items."""
    _count(field, values, limit)


def validate_peer(peer: Peer, where: str) -> None:
    """A peer (selectors or an ipBlock) as a Policy's are checked; ``where`` starts the message."""
    _validate_peer(peer, where)


def validate_policy_port(pp: PolicyPort, where: str) -> None:
    """A rule's port as a Policy's are checked; ``where`` starts the message."""
    _validate_policy_port(pp, where)
