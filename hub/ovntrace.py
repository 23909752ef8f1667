"""ovn-trace's detailed output, read back into the hub's terms (pure: no I/O).

:func:`parse` turns ``ovn-trace --detailed`` text into :class:`Step` s (one per
logical flow the packet matched, with the pipeline it was in and the actions
it ran), :class:`Output` s (``/* output to "PORT", type "TYPE" */``) and notes
(``***`` lines, and anything it does not recognize: shown, never dropped).

The shape of the text (ovn-trace(8), "Detailed Output"): a section per
pipeline, headed ``ingress(dp="…", inport="…")`` or ``egress(dp="…", inport="…",
outport="…")`` over a line of dashes, and one line per matched flow::

    13. lr_in_ip_routing (northd.c:10388): ip4.dst == 10.244.0.0/16, priority 50, uuid 063da67e
        ip.ttl--;
        outport = "ovn-hub/rtos/k8s/prod/pods";

``uuid`` is the first 8 hex digits of the SB Logical_Flow.  Sections for
stateful actions (``ct_lb_mark``, ``ct_next(…)``) and for packets an action
*makes* (``arp``, ``nd_ns``, ``icmp4``, ``tcp_reset`` …) are headed the same way.
Nesting is by indentation, except that a tail call is not indented: a section
belongs to every section above it at the same or a smaller indentation until a
line less indented than it ends it.  A packet an action made is not the traced
packet: its outputs are not deliveries.

:func:`explain` maps steps to what decided the packet's fate, through a
:class:`Names` (the hub's own rows and endpoints; the daemon's reads its
programmer, a test's may know nothing): the ACL and the Policy it comes from,
the load balancer and its Service, the route, the NAT, and every drop with
why.  A flow it cannot tie to a row of the hub is reported raw.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.model import Endpoint, Policy
from core.names import KIND, NAME, NAMESPACE, RULE, SOURCE, UID
from core.nb import NbRow

_FLOW = re.compile(r"^(\s*)(\d+)\. (\S+) \(([^)]*)\): (.*), priority (\d+), uuid ([0-9a-f]+)$")
_NO_MATCH = re.compile(r"^(\s*)(\d+)\. (\S+): no match \(implicit drop\)$")
_PIPELINE = re.compile(r"^(ingress|egress)\((.*)\)$")
_KV = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_OUTPUT = re.compile(r'^/\* output to "((?:[^"\\]|\\.)*)", type "([^"]*)" \*/$')
_ASSIGN = re.compile(r'^(\w+(?:\[[^\]]*\])?) = "?([^";]*)"?;$')
_LB = re.compile(r"\bct_lb(?:_mark)?\(backends=([^;)]*)")
_NAT = re.compile(r"\bct_(snat|dnat)(?:_in_czone)?\(([^)]*)\)")
_DST = re.compile(r"\bip[46]\.dst == ([0-9A-Fa-f:.]+(?:/\d+)?)")
_L4DST = re.compile(r"\b(tcp|udp|sctp)\.dst == (\d+)")
ACL_STAGE = re.compile(r"^ls_(in|out)_acl(_after_lb)?(_eval)?$")
ROUTE_STAGE = "lr_in_ip_routing"
#: sections of a packet an action made (not the traced packet)
MADE = frozenset({"arp", "nd_ns", "nd_na", "nd_na_router", "icmp4", "icmp4_error", "icmp6", "icmp6_error",
                  "tcp_reset", "sctp_abort", "reject", "igmp", "put_nd", "put_arp"})  # fmt: skip
#: output port types that are hops between datapaths, not a destination
HOPS = frozenset({"patch", "l3gateway", "chassisredirect"})


@dataclass(frozen=True)
class Section:
    """Where a step ran: the pipeline section's header, and whether the packet
    there is one an action made (an ARP request, an ICMP error)."""

    title: str
    pipeline: str = ""  # ingress | egress ("" before the first pipeline)
    datapath: str = ""  # the dp="..." of the header (a NB switch/router uuid)
    inport: str = ""
    outport: str = ""
    made: str = ""  # "arp", "icmp4", ...: the action that made this packet


@dataclass
class Step:
    """One logical flow the packet matched."""

    section: Section
    table: int
    stage: str
    source: str  # northd.c:LINE
    match: str
    priority: int
    uuid: str  # the first 8 hex digits of the SB Logical_Flow
    actions: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    no_match: bool = False

    @property
    def drops(self) -> bool:
        return self.no_match or "drop;" in self.actions or "/* drop */" in self.comments

    def assigned(self, register: str) -> str:
        """The value an action assigned to ``register`` ("" if none)."""
        for a in self.actions:
            m = _ASSIGN.match(a)
            if m and m.group(1) == register:
                return m.group(2)
        return ""

    def raw(self) -> str:
        if self.no_match:
            return f"{self.table}. {self.stage}: no match (implicit drop)"
        acts = " ".join(self.actions)
        return f"{self.table}. {self.stage} ({self.source}): {self.match}, priority {self.priority}, uuid {self.uuid}: {acts}"


@dataclass(frozen=True)
class Output:
    port: str
    type: str
    section: Section

    @property
    def delivers(self) -> bool:
        """The traced packet leaves the logical network here (not a hop, not a made packet)."""
        return self.type not in HOPS and not self.section.made


@dataclass
class Parsed:
    flow: str = ""  # the first line: the microflow in OpenFlow syntax
    steps: list[Step] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: lines of a section before its first flow: the actions that made its packet (``arp``'s)
    section_lines: list[tuple[str, str]] = field(default_factory=list)

    @property
    def datapaths(self) -> list[str]:
        """Every datapath uuid the trace went through, in order, once."""
        return list(dict.fromkeys(s.section.datapath for s in self.steps if s.section.datapath))


def _unquote(text: str) -> str:
    return text.replace('\\"', '"').replace("\\\\", "\\")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _section(title: str, parent: Section | None) -> Section:
    m = _PIPELINE.match(title)
    made = parent.made if parent is not None else ""
    if m:
        kv = {k: _unquote(v) for k, v in _KV.findall(m.group(2))}
        return Section(title, m.group(1), kv.get("dp", ""), kv.get("inport", ""), kv.get("outport", ""), made)
    word = re.split(r"[\s({]", title, maxsplit=1)[0]
    base = parent if parent is not None else Section("")
    return dataclasses.replace(base, title=title, made=word if word in MADE else made)


def parse(text: str) -> Parsed:
    """ovn-trace ``--detailed`` output → steps, outputs and notes (see the module docstring)."""
    out = Parsed()
    lines = text.splitlines()
    stack: list[tuple[int, Section]] = []
    step: Step | None = None
    step_indent = 0
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        i += 1
        body = line.strip()
        if not body:
            continue
        ind = _indent(line)
        if body.startswith("# ") and not out.flow and not out.steps:
            out.flow = body[2:]
            continue
        nxt = lines[i].strip() if i < len(lines) else ""
        if nxt and set(nxt) == {"-"} and len(nxt) == len(body):  # a section header
            i += 1
            while stack and stack[-1][0] > ind:
                stack.pop()
            stack.append((ind, _section(body, stack[-1][1] if stack else None)))
            step = None
            continue
        m = _FLOW.match(line) or _NO_MATCH.match(line)
        if m:
            ind = len(m.group(1)) - (1 if len(m.group(2)) == 1 else 0)  # "%2d. " pads one digit
            while stack and stack[-1][0] > ind:
                stack.pop()
            sec = stack[-1][1] if stack else Section("")
            if m.re is _FLOW:
                step = Step(sec, int(m.group(2)), m.group(3), m.group(4), m.group(5), int(m.group(6)), m.group(7))
            else:
                step = Step(sec, int(m.group(2)), m.group(3), "", "", 0, "", no_match=True)
            step_indent = ind
            out.steps.append(step)
            continue
        if body.startswith("***"):
            out.notes.append(body)
            continue
        if step is None and stack and ind > stack[-1][0]:
            out.section_lines.append((stack[-1][1].title, body))
            continue
        if step is not None and ind > step_indent:
            if body.startswith("/*"):
                step.comments.append(body)
                o = _OUTPUT.match(body)
                if o:
                    out.outputs.append(Output(_unquote(o.group(1)), o.group(2), step.section))
            else:
                step.actions.append(body)
            continue
        out.notes.append(body)  # not a shape this parser knows: shown as it is
    return out


# ---------------------------------------------------------------- explanation
class Names(Protocol):
    """What :func:`explain` asks of the hub."""

    def datapath(self, uuid: str) -> str:
        """A datapath's name (a switch or router), or "" when unknown."""
        ...

    def row(self, step: Step, tables: tuple[str, ...]) -> NbRow | None:
        """The hub's NB row (of one of ``tables``) that ``step``'s flow was made from."""
        ...

    def hint(self, step: Step) -> str:
        """The flow's ``stage-hint`` (the first 8 hex digits of an NB uuid), "" if none."""
        ...

    def endpoint(self, port: str) -> Endpoint | None:
        """The endpoint whose port this is."""
        ...

    def endpoints_with_ip(self, ip: str) -> list[Endpoint]: ...

    def isolating(self, port: str, direction: str) -> list[Policy]:
        """The policies isolating the port's endpoint in ``direction`` (ingress/egress)."""
        ...


def canonical(ep: Endpoint) -> str:
    """An endpoint's canonical name: ``<orchestrator>/<cluster>/<namespace>/<name>``."""
    return f"{ep.source}/{ep.namespace}/{ep.name}"


def policy_name(pol: Policy) -> str:
    return f"policy {pol.source} {pol.namespace}/{pol.name}"


def _rule(text: str) -> str:
    """``ingress/0`` → ``ingress[0]`` (the ACL's ``ovn-hub:rule``)."""
    kind, sep, n = text.partition("/")
    return f"{kind}[{n}]" if sep and n.isdigit() else text


def _flow(step: Step, names: Names) -> dict[str, Any]:
    return {
        "datapath": names.datapath(step.section.datapath) or step.section.datapath,
        "pipeline": step.section.pipeline,
        "table": step.table,
        "stage": step.stage,
        "priority": step.priority,
        "match": step.match,
        "actions": list(step.actions),
        "uuid": step.uuid,
        "stage_hint": names.hint(step),
        "raw": step.raw(),
    }


def _where(step: Step, names: Names) -> str:
    dp = names.datapath(step.section.datapath) or step.section.datapath or "?"
    return f"{dp} ({step.section.pipeline or '?'}, {step.stage})"


def _at(step: Step, names: Names) -> str:
    """The suffix every decision's text ends with: ``[datapath pipeline stage]``."""
    dp = names.datapath(step.section.datapath) or step.section.datapath or "?"
    return f"[{dp} {step.section.pipeline or '?'} {step.stage}]"


def _ip_of(addr: str) -> str:
    """``10.0.0.1:80`` / ``[fd00::1]:80`` / ``10.0.0.1`` → the address."""
    if addr.startswith("["):
        return addr[1:].partition("]")[0]
    if addr.count(":") == 1:
        return addr.partition(":")[0]
    return addr


def _endpoint_at(addr: str, names: Names) -> str:
    try:
        eps = names.endpoints_with_ip(_ip_of(addr))
    except ValueError:
        return ""
    return canonical(eps[0]) if eps else ""


def _acl(step: Step, names: Names) -> dict[str, Any] | None:
    row = names.row(step, ("ACL",))
    if row is None:  # a default flow of ovn-northd (no hint), or a foreign ACL: raw
        return _unknown(step, names) if names.hint(step) and not step.drops else None
    ids: dict[str, str] = row.columns.get("external_ids", {})
    cols = row.columns
    direction = "ingress" if cols.get("direction") == "to-lport" else "egress"
    d: dict[str, Any] = {
        "kind": "acl",
        "action": cols.get("action", ""),
        "direction": cols.get("direction", ""),
        "priority": cols.get("priority"),
        "match": cols.get("match", ""),
        "acl": row.uuid,
        "policy": {"source": ids.get(SOURCE, ""), "namespace": ids.get(NAMESPACE, ""), "name": ids.get(NAME, ""),
                   "uid": ids.get(UID, ""), "rule": _rule(ids.get(RULE, ""))},
        "flow": _flow(step, names),
    }
    rule = ids.get(RULE, "")
    if ids.get(KIND) == "policy" and rule.startswith("default-deny"):
        port = step.section.outport if direction == "ingress" else step.section.inport
        ep = names.endpoint(port)
        pols = names.isolating(port, direction)
        d["isolated_by"] = [{"source": str(p.source), "namespace": p.namespace, "name": p.name, "uid": p.uid} for p in pols]
        who = canonical(ep) if ep is not None else port
        by = ", ".join(policy_name(p) for p in pols) or "a policy"
        d["why"] = (f"the default deny ({direction}) of {ids.get(SOURCE, '?')}: {who} is isolated by {by}, "
                    f"and no rule of {'it' if len(pols) < 2 else 'them'} allows this")  # fmt: skip
    elif ids.get(KIND) == "admin-policy":  # the hub tier (core/nb/tables/admin_policy.py)
        name = ids.get(NAME, "")
        if name == "hairpin" and not ids.get(UID):
            d["why"] = "the hub tier's hairpin allow (an endpoint reaching itself through its own Service)"
        else:
            d["why"] = f"hub policy {name} rule {_rule(rule) or '?'}"
    else:
        pol = f"policy {ids.get(SOURCE, '?')} {ids.get(NAMESPACE, '')}/{ids.get(NAME, '')}"
        d["why"] = f"{pol} rule {_rule(rule) or '?'}"
    d["text"] = f"acl {d['action']}: {d['why']} ({d['direction']}, priority {d['priority']}) {_at(step, names)}"
    return d


def _lb(step: Step, names: Names, backends_text: str) -> dict[str, Any]:
    backends = [b.strip() for b in backends_text.split(",") if b.strip()]
    row = names.row(step, ("Load_Balancer",))
    vip = _DST.search(step.match)
    l4 = _L4DST.search(step.match)
    vip_text = ""
    if vip:
        ip = vip.group(1)
        vip_text = (f"[{ip}]" if ":" in ip else ip) + (f":{l4.group(2)}" if l4 else "")
    d: dict[str, Any] = {
        "kind": "lb",
        "vip": vip_text,
        "protocol": l4.group(1) if l4 else "",
        "backends": [{"address": b, "endpoint": _endpoint_at(b, names)} for b in backends],
        "chosen": "",
        "service": None,
        "load_balancer": "",
        "flow": _flow(step, names),
    }
    listed = ", ".join(f"{b['address']} ({b['endpoint']})" if b["endpoint"] else b["address"] for b in d["backends"])
    if row is not None:
        ids: dict[str, str] = row.columns.get("external_ids", {})
        d["load_balancer"] = row.key
        if ids.get(KIND) == "service":
            d["service"] = {"source": ids.get(SOURCE, ""), "namespace": ids.get(NAMESPACE, ""), "name": ids.get(NAME, ""),
                            "uid": ids.get(UID, "")}  # fmt: skip
            what = f"service {ids.get(SOURCE, '')} {ids.get(NAMESPACE, '')}/{ids.get(NAME, '')}"
        else:
            what = f"load balancer {row.key}"
    else:
        what = f"load balancer (not the hub's: stage-hint {names.hint(step) or '-'})"
    d["text"] = f"lb {what}: {vip_text or step.match} -> {listed or '(no backend)'} {_at(step, names)}"
    return d


def _route(step: Step, names: Names, dst_ip: str) -> dict[str, Any]:
    router = names.datapath(step.section.datapath) or step.section.datapath
    d: dict[str, Any] = {"kind": "route", "router": router, "flow": _flow(step, names)}
    if step.drops:
        d.update(prefix="", nexthop="", outport="")
        d["text"] = f"route on {router}: no route to {dst_ip or 'the destination'} {_at(step, names)}"
        return d
    m = _DST.search(step.match)
    prefix = m.group(1) if m else step.match
    hop = step.assigned("reg0") or step.assigned("xxreg0")
    outport = step.assigned("outport")
    connected = hop in ("ip4.dst", "ip6.dst")
    d.update(prefix=prefix, nexthop="" if connected else hop, outport=outport)
    row = names.row(step, ("Logical_Router_Static_Route", "Logical_Router_Port"))
    d["row"] = row.key if row is not None else ""
    static = row is not None and row.table == "Logical_Router_Static_Route"
    via = "connected" if connected else f"via {hop}" + (" (static route)" if static else "")
    d["text"] = f"route on {router}: {prefix} {via}, out {outport or '?'} {_at(step, names)}"
    return d


def _nat(step: Step, names: Names, kind: str, to: str) -> dict[str, Any]:
    router = names.datapath(step.section.datapath) or step.section.datapath
    row = names.row(step, ("NAT",))
    d: dict[str, Any] = {"kind": "nat", "type": kind, "to": to, "router": router, "flow": _flow(step, names)}
    if row is not None:
        c = row.columns
        d.update(nat=row.key, nat_type=c.get("type", ""), logical_ip=c.get("logical_ip", ""), external_ip=c.get("external_ip", ""))
        d["text"] = (f"nat on {router}: {c.get('type', '')} {c.get('logical_ip', '')} -> {c.get('external_ip', '')}"
                     f" (NAT {row.key}) {_at(step, names)}")  # fmt: skip
    else:
        d["text"] = f"nat on {router}: {kind} to {to} (not a NAT of the hub: {step.raw()}) {_at(step, names)}"
    return d


def _unknown(step: Step, names: Names) -> dict[str, Any]:
    hint = names.hint(step)
    why = f"stage-hint {hint}: no row of this hub" if hint else "no stage-hint"
    return {"kind": "flow", "flow": _flow(step, names), "text": f"flow ({why}): {step.raw()} {_at(step, names)}"}


def _drop_why(step: Step, names: Names, acl: dict[str, Any] | None, dst_ip: str) -> str:
    stage = step.stage
    if acl is not None:
        return str(acl["why"])
    if stage.startswith("ls_in_") and "port_sec" in stage:
        return "port security: the packet's source MAC or IP is not its port's"
    if stage.startswith("ls_out_") and "port_sec" in stage:
        return "port security of the port it was going out of (the destination address is not that port's)"
    if stage == ROUTE_STAGE:
        return f"no route to {dst_ip or 'the destination'}"
    if stage.endswith("l2_lkup"):
        return "no port of this switch has the destination MAC"
    if ACL_STAGE.match(stage):
        hint = names.hint(step)
        who = f"stage-hint {hint}: no ACL of this hub" if hint else "no stage-hint: one of ovn-northd's own"
        return f"an ACL flow ({who}): {step.match}"
    return f"dropped by this flow: {step.raw()}"


def explain(parsed: Parsed, names: Names, dst_ip: str = "") -> dict[str, Any]:
    """The verdict and what decided it (see the module docstring)."""
    decisions: list[dict[str, Any]] = []
    drops: list[dict[str, Any]] = []
    for step in parsed.steps:
        if step.section.made:
            continue  # a packet an action made: not the traced one
        acl = _acl(step, names) if ACL_STAGE.match(step.stage) else None
        if acl is not None:
            decisions.append(acl)
        elif (lb := next((m for a in step.actions if (m := _LB.search(a))), None)) is not None:
            decisions.append(_lb(step, names, lb.group(1)))
        elif step.stage == ROUTE_STAGE:
            decisions.append(_route(step, names, dst_ip))
        elif (nat := next((m for a in step.actions if (m := _NAT.search(a))), None)) is not None:
            decisions.append(_nat(step, names, nat.group(1), nat.group(2)))
        elif names.hint(step) and step.drops:
            decisions.append(_unknown(step, names))
        if step.drops:
            drops.append({"where": _where(step, names), "why": _drop_why(step, names, acl, dst_ip), "flow": _flow(step, names)})
    delivered = []
    for o in parsed.outputs:
        if not o.delivers:
            continue
        ep = names.endpoint(o.port)
        delivered.append({"port": o.port, "type": o.type, "endpoint": canonical(ep) if ep is not None else "",
                          "datapath": names.datapath(o.section.datapath) or o.section.datapath})  # fmt: skip
    made = [o for o in parsed.outputs if o.section.made]
    for d in decisions:
        if d["kind"] == "lb":
            got = {ip: b["address"] for b in d["backends"] for ip in _norm([_ip_of(b["address"])])}
            for dv in delivered:
                ep = names.endpoint(dv["port"])
                hit = next((got[ip] for ip in _norm(ep.ips if ep is not None else ()) if ip in got), "")
                if hit:
                    d["chosen"] = hit
                    if len(got) > 1:  # ovn-trace picks one backend of several
                        d["text"] += f" (this trace: {hit})"
                    break
    if delivered:
        verdict = "delivered"
    elif made and any(o.section.made in ("arp", "nd_ns") for o in made):
        verdict = "arp"
    else:
        verdict = "dropped"
    path: list[str] = []
    for s in parsed.steps:
        dp = names.datapath(s.section.datapath) or s.section.datapath
        if dp and not s.section.made and (not path or path[-1] != dp):
            path.append(dp)
    return {
        "verdict": verdict,
        "delivered": delivered,
        "drops": drops,
        "made": [{"packet": o.section.made, "port": o.port, "type": o.type,
                  "datapath": names.datapath(o.section.datapath) or o.section.datapath} for o in made],
        "decisions": decisions,
        "path": path,
        "notes": list(parsed.notes),
    }


def _norm(ips: Iterable[str]) -> list[str]:
    out = []
    for ip in ips:
        try:
            out.append(str(ipaddress.ip_address(ip)))
        except ValueError:
            out.append(ip)
    return out
