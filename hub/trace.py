"""``hubctl trace SRC DST``: ovn-trace, asked and answered in canonical terms.

hubd resolves SRC and DST against its desired state (endpoints by
``<orchestrator>/<cluster>/<namespace>/<name>`` or by address; a Service, as DST
only, by its first VIP), builds the microflow a new connection from SRC would
be::

    inport == "<SRC's port>" && eth.src == <SRC's MAC> && eth.dst == <first hop>
    && ip4.src == <SRC's IP> && ip4.dst == <DST's IP> && ip.ttl == 64
    && tcp.dst == <port> && tcp.src == 40000        (udp likewise; icmp4.type == 8)

(the first hop is DST's MAC when DST is on SRC's switch, else the MAC of the
router port of SRC's network; IPv6 when the addresses are), runs ``ovn-trace
--detailed`` against the Southbound DB (an asyncio subprocess, no shell,
bounded by :data:`TIMEOUT`), and explains the answer (``hub/ovntrace.py``):
where the packet was delivered or dropped, and which ACL (and Policy), load
balancer (and Service), route and NAT decided it.  A logical flow is tied to
the NB row it came from by SB ``Logical_Flow.external_ids:stage-hint`` (the
first 8 hex digits of the row's uuid), read in one transaction on the SB.

A bad request (an unknown SRC, a Service as SRC, an option that does not fit)
is a :class:`TraceError` (HTTP 4xx, ``hubctl`` exit 2); a trace that could not
run (no ``ovn-trace``, the SB unreachable, a timeout) a :class:`TraceFailed`
(HTTP 502, exit 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import shutil
from dataclasses import dataclass, field
from typing import Any

from core.model import Endpoint, Invalid, Policy, Service, Source
from core.names import lsp_name
from core.nb import NbRow, Programmer
from core.ovsdb import OvsdbClient, OvsdbError, Tls, py_map
from hub.ovntrace import ACL_STAGE, ROUTE_STAGE, Parsed, Step, canonical, explain, parse

PROTOCOLS = ("tcp", "udp", "icmp")
SOURCE_PORT = 40000
#: seconds ovn-trace may run (it reads the whole SB first)
TIMEOUT = 20.0
SB_TIMEOUT = 5.0
#: every conntrack lookup answers "new": a packet meets conntrack several times on
#: its way (each switch's pre-stateful and load balancer, a router's NAT), and
#: ovn-trace answers "established" beyond the --ct options given, which would let
#: a new connection skip the ACLs
CT_NEW = 8


class TraceError(Exception):
    """The request cannot be traced as asked (names what was not found or does not fit)."""

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.status = status


class TraceFailed(Exception):
    """ovn-trace or the Southbound DB did not answer."""


@dataclass(frozen=True)
class Request:
    src: str
    dst: str
    port: int | None = None
    proto: str = ""
    network: str = ""


@dataclass
class Party:
    """One end of the trace."""

    kind: str  # endpoint | service | address
    name: str  # canonical name, or the address
    ip: str = ""
    mac: str = ""
    port: str = ""  # the endpoint's Logical_Switch_Port
    switch: str = ""
    endpoint: Endpoint | None = None
    service: Service | None = None
    ips: tuple[str, ...] = ()

    def json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "name": self.name, "ip": self.ip}
        if self.kind == "endpoint":
            d.update(port=self.port, network=self.switch, mac=self.mac)
        if self.service is not None:
            d["service"] = f"{self.service.source}/{self.service.namespace}/{self.service.name}"
        return d


@dataclass
class Plan:
    src: Party
    dst: Party
    proto: str
    port: int | None
    eth_dst: str
    microflow: str
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- resolution
def _ip(text: str) -> str:
    """``text`` as a normalized IP address, or "" when it is not one."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return ""


def _split(what: str, text: str) -> tuple[str, str, str]:
    """``<orchestrator>/<cluster>/<namespace>/<name>`` → (source, namespace, name)."""
    parts = text.split("/")
    if len(parts) != 4 or not all(parts):
        raise TraceError(f"{what} {text!r}: expected <orchestrator>/<cluster>/<namespace>/<name> or an IP address", 400)
    try:
        src = Source.parse(f"{parts[0]}/{parts[1]}")
    except Invalid as exc:
        raise TraceError(f"{what} {text!r}: {exc}", 400) from None
    return str(src), parts[2], parts[3]


def _on(prog: Programmer, ep: Endpoint, network: str) -> bool:
    return network in (ep.network, f"{ep.source}/{ep.network}", prog.switch_of(ep.source, ep.network))


def _no_such(what: str, text: str, source: str, ns: str, name: str, prog: Programmer, kinds: str) -> TraceError:
    if source not in prog.sources():
        known = ", ".join(prog.sources()) or "none"
        return TraceError(f"{what} {text}: no source {source} (the hub knows: {known})")
    return TraceError(f"{what} {text}: no {kinds} named {ns}/{name} in {source}")


def _party(prog: Programmer, ep: Endpoint, what: str, ip: str = "") -> Party:
    port = lsp_name(ep)
    got = prog.port_addresses(port)
    if got is None:
        state = "has no address yet (OVN has not allocated one)" if port in prog.lsp else "is not in NB yet"
        raise TraceError(f"{what} {canonical(ep)}: its port {port} {state}", 409)
    mac, ips = got
    return Party("endpoint", canonical(ep), ip=ip, mac=mac, port=port, switch=prog.switch_of(ep.source, ep.network),
                 endpoint=ep, ips=tuple(_ip(a) or a for a in ips))  # fmt: skip


def resolve_src(prog: Programmer, text: str, network: str = "") -> Party:
    ip = _ip(text)
    if ip:
        eps = prog.endpoints_with_ip(ip)
        if not eps:
            raise TraceError(f"SRC {text}: no endpoint has this address")
    else:
        source, ns, name = _split("SRC", text)
        eps = prog.find_endpoints(source, ns, name)
        if not eps:
            if prog.find_services(source, ns, name):
                raise TraceError(f"SRC {text} is a Service: a trace starts at an endpoint (a Service may be DST)", 400)
            raise _no_such("SRC", text, source, ns, name, prog, "endpoint")
    if network:
        on = [ep for ep in eps if _on(prog, ep, network)]
        if not on:
            nets = ", ".join(prog.switch_of(ep.source, ep.network) for ep in eps)
            raise TraceError(f"SRC {text} is not on network {network} (it is on {nets})")
        eps = on
    if ip and len(eps) > 1:
        names = ", ".join(f"{canonical(ep)} on {ep.source}/{ep.network}" for ep in eps)
        raise TraceError(f"SRC {text} is the address of {len(eps)} endpoints ({names}): pick one with --network", 400)
    return _party(prog, eps[0], "SRC", ip)


def _nearest(prog: Programmer, eps: list[Endpoint], src: Party) -> Endpoint:
    """DST's attachment on SRC's switch, else on SRC's router, else its first."""
    for ep in eps:
        if prog.switch_of(ep.source, ep.network) == src.switch:
            return ep
    mine = prog.router_port(src.switch)
    for ep in eps:
        rp = prog.router_port(prog.switch_of(ep.source, ep.network))
        if mine is not None and rp is not None and rp.router == mine.router:
            return ep
    return eps[0]


def resolve_dst(prog: Programmer, text: str, src: Party) -> Party:
    ip = _ip(text)
    if ip:
        eps = prog.endpoints_with_ip(ip)
        if eps:
            return _party(prog, _nearest(prog, eps, src), "DST", ip)
        svcs = prog.services_with_vip(ip)
        if svcs:
            svc = svcs[0]
            return Party("service", f"{svc.source}/{svc.namespace}/{svc.name}", ip=ip, service=svc)
        return Party("address", ip, ip=ip)
    source, ns, name = _split("DST", text)
    eps = prog.find_endpoints(source, ns, name)
    if eps:
        return _party(prog, _nearest(prog, eps, src), "DST")
    svcs = prog.find_services(source, ns, name)
    if not svcs:
        raise _no_such("DST", text, source, ns, name, prog, "endpoint or Service")
    svc = svcs[0]
    if not svc.rules:
        raise TraceError(f"DST {text}: the Service has no VIP", 409)
    return Party("service", text, ip=_ip(svc.rules[0].vip), service=svc)


def _addresses(src: Party, dst: Party) -> tuple[str, str]:
    """(SRC's IP, DST's IP) of one family: DST's given address decides it, else SRC's first that DST has."""
    if dst.ip:
        fam = ipaddress.ip_address(dst.ip).version
        sip = next((a for a in src.ips if ipaddress.ip_address(a).version == fam), "")
        if not sip:
            raise TraceError(f"SRC {src.name} has no IPv{fam} address for DST {dst.ip} (its addresses: "
                             f"{', '.join(src.ips) or 'none'})", 409)  # fmt: skip
        if src.ip and ipaddress.ip_address(src.ip).version == fam:
            sip = src.ip
        return sip, dst.ip
    for sip in ([src.ip] if src.ip else []) + list(src.ips):
        fam = ipaddress.ip_address(sip).version
        dip = next((a for a in dst.ips if ipaddress.ip_address(a).version == fam), "")
        if dip:
            return sip, dip
    raise TraceError(f"SRC {src.name} ({', '.join(src.ips)}) and DST {dst.name} ({', '.join(dst.ips) or 'no address'})"
                     " have no address family in common", 409)  # fmt: skip


def _first_hop(prog: Programmer, src: Party, dst: Party, notes: list[str]) -> str:
    if dst.kind == "endpoint" and dst.switch == src.switch:
        return dst.mac
    rp = prog.router_port(src.switch)
    if rp is not None:
        return rp.mac
    svc = dst.service
    if svc is not None and prog.switch_of(svc.source, svc.network) == src.switch:
        # no router: the switch's own load balancer answers for the VIP, whatever the MAC
        for rule in svc.rules:
            for b in rule.backends:
                for ep in prog.endpoints_with_ip(b.rpartition(":")[0].strip("[]")):
                    got = prog.port_addresses(lsp_name(ep))
                    if got is not None and prog.switch_of(ep.source, ep.network) == src.switch:
                        notes.append(f"network {src.switch} is on no router: eth.dst is backend {canonical(ep)}'s MAC")
                        return got[0]
    raise TraceError(f"SRC's network {src.switch} is on no router: it reaches its own switch only, and DST {dst.name}"
                     " is not on it", 409)  # fmt: skip


def _proto_port(req: Request, dst: Party) -> tuple[str, int | None]:
    rule = dst.service.rules[0] if dst.service is not None and dst.service.rules else None
    proto = req.proto or (rule.protocol if rule is not None else ("tcp" if req.port else "icmp"))
    if proto not in PROTOCOLS:
        raise TraceError(f"--proto {proto!r}: one of {', '.join(PROTOCOLS)}", 400)
    if proto == "icmp":
        if req.port is not None:
            raise TraceError("--port does not go with icmp", 400)
        return proto, None
    port = req.port if req.port is not None else (rule.port if rule is not None and rule.protocol == proto else None)
    if port is None:
        raise TraceError(f"--port is needed for {proto} (DST is not a Service with a {proto} rule)", 400)
    if not 0 < port < 65536:
        raise TraceError(f"--port {port}: out of range 1-65535", 400)
    return proto, port


def microflow(src_port: str, src_mac: str, dst_mac: str, sip: str, dip: str, proto: str, port: int | None) -> str:
    fam = "ip6" if ":" in sip else "ip4"
    parts = [f"inport == {json.dumps(src_port)}", f"eth.src == {src_mac}", f"eth.dst == {dst_mac}",
             f"{fam}.src == {sip}", f"{fam}.dst == {dip}", "ip.ttl == 64"]  # fmt: skip
    if proto == "icmp":
        parts.append("icmp4.type == 8" if fam == "ip4" else "icmp6.type == 128")
    else:
        parts += [f"{proto}.dst == {port}", f"{proto}.src == {SOURCE_PORT}"]
    return " && ".join(parts)


def plan(prog: Programmer, req: Request) -> Plan:
    """Resolve SRC and DST and build the microflow (raises :class:`TraceError`)."""
    src = resolve_src(prog, req.src, req.network)
    dst = resolve_dst(prog, req.dst, src)
    proto, port = _proto_port(req, dst)
    sip, dip = _addresses(src, dst)
    src.ip, dst.ip = sip, dip
    notes: list[str] = []
    if dst.kind == "endpoint" and dst.endpoint is not None and len(prog.find_services(
            str(dst.endpoint.source), dst.endpoint.namespace, dst.endpoint.name)):  # fmt: skip
        notes.append(f"{dst.name} is also a Service: give its VIP as DST to trace that")
    eth_dst = _first_hop(prog, src, dst, notes)
    return Plan(src, dst, proto, port, eth_dst, microflow(src.port, src.mac, eth_dst, sip, dip, proto, port), notes)


# ---------------------------------------------------------------- running
def command(sb_remote: str, flow: str, tls: Tls | None = None) -> list[str]:
    exe = shutil.which("ovn-trace") or shutil.which("ovn-trace", path="/usr/bin:/usr/sbin:/bin:/sbin")
    if exe is None:
        raise TraceFailed("ovn-trace not found: install the Debian package ovn-central (or ovn-host)")
    ssl = [f"--private-key={tls.private_key}", f"--certificate={tls.certificate}", f"--ca-cert={tls.ca_cert}"] if tls else []
    return [exe, f"--db={sb_remote}", *ssl, "--no-friendly-names", *["--ct=new"] * CT_NEW, "--detailed", flow]


async def run_ovn_trace(argv: list[str], timeout: float = TIMEOUT) -> str:
    """Run ovn-trace (no shell), at most ``timeout`` seconds; its stdout."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except BaseException as exc:  # a timeout, or the request was cancelled: the child goes too
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        if isinstance(exc, TimeoutError):
            raise TraceFailed(f"ovn-trace did not answer within {timeout:.0f}s") from None
        raise
    if proc.returncode != 0:
        msg = err.decode(errors="replace").strip().splitlines()
        raise TraceFailed(f"ovn-trace failed (exit {proc.returncode}): {' / '.join(msg[-3:]) or 'no message'}")
    return out.decode(errors="replace")


#: the stages whose flows :func:`hub.ovntrace.explain` ties to NB rows
def _wants_hint(step: Step) -> bool:
    return bool(step.uuid) and (
        bool(ACL_STAGE.match(step.stage)) or step.stage == ROUTE_STAGE or step.drops
        or any(w in a for a in step.actions for w in ("ct_lb(backends", "ct_lb_mark(backends", "ct_snat(", "ct_dnat(",
                                                      "ct_snat_in_czone(", "ct_dnat_in_czone("))
    )


async def sb_lookups(client: OvsdbClient, parsed: Parsed, known_dps: set[str]) -> tuple[dict[str, str], dict[str, str]]:
    """One SB transaction: each interesting flow's ``stage-hint`` (by its uuid's
    first 8 hex digits) and the names of datapaths the hub does not own."""
    flows = {s.uuid: s for s in parsed.steps if _wants_hint(s)}
    ops: list[dict[str, Any]] = []
    for s in flows.values():
        ops.append({"op": "select", "table": "Logical_Flow", "columns": ["_uuid", "external_ids"],
                    "where": [["priority", "==", s.priority], ["table_id", "==", s.table],
                              ["pipeline", "==", s.section.pipeline], ["match", "==", s.match]]})  # fmt: skip
    dps = [dp for dp in parsed.datapaths if dp not in known_dps]
    for dp in dps:
        for key in ("logical-switch", "logical-router"):
            ops.append({"op": "select", "table": "Datapath_Binding", "columns": ["external_ids"],
                        "where": [["external_ids", "includes", ["map", [[key, dp]]]]]})  # fmt: skip
    if not ops:
        return {}, {}
    result = await client.transact(ops, timeout=SB_TIMEOUT)
    hints: dict[str, str] = {}
    for uuid8, res in zip(flows, result, strict=False):
        for row in res.get("rows", []):
            if str(row["_uuid"][1]).startswith(uuid8):
                hints[uuid8] = py_map(row["external_ids"]).get("stage-hint", "")
    names: dict[str, str] = {}
    for i, dp in enumerate(dps):
        for res in result[len(flows) + 2 * i : len(flows) + 2 * i + 2]:
            for row in res.get("rows", []):
                names.setdefault(dp, py_map(row["external_ids"]).get("name", ""))
    return hints, names


class _Names:
    """:class:`hub.ovntrace.Names` over the programmer and what the SB said."""

    def __init__(self, prog: Programmer, hints: dict[str, str], sb_names: dict[str, str]) -> None:
        self.prog = prog
        self.hints = hints
        self.sb_names = sb_names
        self._dps: dict[str, str] = {}

    def datapath(self, uuid: str) -> str:
        if uuid not in self._dps:
            rows = self.prog.nb_rows("Logical_Switch", uuid) or self.prog.nb_rows("Logical_Router", uuid)
            self._dps[uuid] = rows[0].key if rows else self.sb_names.get(uuid, "")
        return self._dps[uuid]

    def hint(self, step: Step) -> str:
        return self.hints.get(step.uuid, "")

    def row(self, step: Step, tables: tuple[str, ...]) -> NbRow | None:
        hint = self.hint(step)
        if len(hint) < 8:
            return None
        for table in tables:
            rows = self.prog.nb_rows(table, hint)
            if len(rows) == 1:
                return rows[0]
        return None

    def endpoint(self, port: str) -> Endpoint | None:
        return self.prog.endpoint_of_port(port)

    def endpoints_with_ip(self, ip: str) -> list[Endpoint]:
        return self.prog.endpoints_with_ip(ip)

    def isolating(self, port: str, direction: str) -> list[Policy]:
        return self.prog.isolating_policies(port, direction)


def known_datapaths(prog: Programmer, parsed: Parsed) -> set[str]:
    return {dp for dp in parsed.datapaths if prog.nb_rows("Logical_Switch", dp) or prog.nb_rows("Logical_Router", dp)}


async def trace(
    prog: Programmer, sb_remote: str, req: Request, timeout: float = TIMEOUT, tls: Tls | None = None
) -> dict[str, Any]:
    """Resolve, run ovn-trace against ``sb_remote``, explain: the ``/v1/trace`` answer."""
    p = plan(prog, req)
    argv = command(sb_remote, p.microflow, tls)
    client = OvsdbClient(sb_remote, "OVN_Southbound", tls=tls)
    try:
        await client.connect(timeout=SB_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        await client.close()
        raise TraceFailed(f"cannot reach the Southbound DB at {sb_remote}: {exc}") from None
    try:
        text = await run_ovn_trace(argv, timeout)
        parsed = parse(text)
        notes = list(p.notes)
        try:
            hints, sb_names = await sb_lookups(client, parsed, known_datapaths(prog, parsed))
        except (OvsdbError, TimeoutError) as exc:
            hints, sb_names = {}, {}
            notes.append(f"the SB did not answer for the flows' stage hints ({exc}): flows are shown raw")
    finally:
        await client.close()
    answer = explain(parsed, _Names(prog, hints, sb_names), p.dst.ip)
    answer["notes"] = notes + answer["notes"]
    return {
        "src": p.src.json(),
        "dst": p.dst.json(),
        "proto": p.proto,
        "port": p.port,
        "microflow": p.microflow,
        **answer,
        "command": argv,
        "trace": text,
    }
