"""A tiny evaluator of OVN ACL matches over synthetic packets, for tests that
check what a set of compiled ACLs *decides* without a server.

It knows the subset of OVN's match language the hub writes: ``&&``, ``||``
(mixing them unparenthesized is an error, as in OVN), ``!``, parentheses,
``== != < <= > >=`` against a literal, a ``{set}``, a port group ``@name`` or
an address set ``$name``; string, integer, IPv4/IPv6 address and CIDR
literals; the fields ``inport outport ip ip4 ip6 tcp udp sctp``,
``ip4/ip6.src/dst`` and ``tcp/udp/sctp.src/dst``.  A comparison carries its
field's prerequisites, as OVN adds them (``ip4.src != X`` is false for an IPv6
packet, and ``!(ip4.src == X)`` true), and ``x != {a, b}`` means x is neither.

:func:`decide` picks the highest-priority matching ACL of one direction, as
OVN's ACL stage does, and refuses to guess between two of equal priority with
different actions (OVN's order among them is undefined).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_TOKEN = re.compile(r'\s*(?:(&&|\|\||==|!=|<=|>=|[<>!(){},])|("(?:[^"\\]|\\.)*")|([@$][A-Za-z0-9_.]+)|([A-Za-z0-9_.:/]+))')


@dataclass(frozen=True)
class Packet:
    """One packet as an ACL sees it: ``inport`` for from-lport, ``outport`` for to-lport."""

    inport: str | None = None
    outport: str | None = None
    version: int | None = 4  # None: not IP (ARP)
    src: str = ""
    dst: str = ""
    proto: str | None = "tcp"  # tcp | udp | sctp | None (other IP)
    sport: int = 40000
    dport: int = 0


class MatchError(ValueError):
    """A match the evaluator (or OVN) would not parse."""


Env = tuple[Mapping[str, frozenset[str]], Mapping[str, frozenset[str]]]  # port groups, address sets
Node = Callable[[Packet, Env], bool]


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise MatchError(f"cannot tokenize at {text[pos:pos + 20]!r}")
        out.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    return out


_BOOL: dict[str, Callable[[Packet], bool]] = {
    "ip": lambda p: p.version is not None,
    "ip4": lambda p: p.version == 4,
    "ip6": lambda p: p.version == 6,
    "tcp": lambda p: p.version is not None and p.proto == "tcp",
    "udp": lambda p: p.version is not None and p.proto == "udp",
    "sctp": lambda p: p.version is not None and p.proto == "sctp",
}


def _field(name: str) -> tuple[Callable[[Packet], bool], Callable[[Packet], Any]]:
    """(prerequisite, value) of a field."""
    if name in ("inport", "outport"):
        return (lambda p: getattr(p, name) is not None), (lambda p: getattr(p, name))
    fam, _, part = name.partition(".")
    if fam in ("ip4", "ip6") and part in ("src", "dst"):
        return _BOOL[fam], (lambda p: ipaddress.ip_address(getattr(p, part)))
    if fam in ("tcp", "udp", "sctp") and part in ("src", "dst"):
        attr = "sport" if part == "src" else "dport"
        return _BOOL[fam], (lambda p: getattr(p, attr))
    raise MatchError(f"unknown field {name!r}")


def _literal(tok: str) -> Any:
    if tok.startswith('"'):
        return json.loads(tok)
    if tok.isdigit():
        return int(tok)
    try:
        return ipaddress.ip_network(tok, strict=False) if "/" in tok else ipaddress.ip_address(tok)
    except ValueError:
        raise MatchError(f"bad literal {tok!r}") from None


def _equal(value: Any, lit: Any) -> bool:
    if isinstance(lit, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return bool(value.version == lit.version and value in lit)
    if isinstance(lit, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return bool(value == lit)
    return bool(value == lit)


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, want: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (want is not None and tok != want):
            raise MatchError(f"expected {want or 'a token'}, got {tok!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.expr()
        if self.peek() is not None:
            raise MatchError(f"trailing {self.peek()!r}")
        return node

    def expr(self) -> Node:
        first = self.unary()
        op = self.peek()
        if op not in ("&&", "||"):
            return first
        nodes = [first]
        while self.peek() in ("&&", "||"):
            if self.take() != op:
                raise MatchError("&& and || must be parenthesized when used together")
            nodes.append(self.unary())
        if op == "&&":
            return lambda p, env: all(n(p, env) for n in nodes)
        return lambda p, env: any(n(p, env) for n in nodes)

    def unary(self) -> Node:
        tok = self.peek()
        if tok == "!":
            self.take()
            inner = self.unary()
            return lambda p, env: not inner(p, env)
        if tok == "(":
            self.take()
            inner = self.expr()
            self.take(")")
            return inner
        return self.comparison()

    def comparison(self) -> Node:
        name = self.take()
        op = self.peek()
        if op not in ("==", "!=", "<", "<=", ">", ">="):
            if name not in _BOOL:
                raise MatchError(f"{name!r} is not a boolean field")
            test = _BOOL[name]
            return lambda p, env: test(p)
        self.take()
        prereq, value = _field(name)
        values = self.values()
        if op in ("==", "!="):
            want = op == "=="

            def cmp(p: Packet, env: Env) -> bool:
                if not prereq(p):
                    return False
                v = value(p)
                hit = any(_equal(v, lit) for lit in values(env))
                return hit if want else not hit

            return cmp
        order = {"<": int.__lt__, "<=": int.__le__, ">": int.__gt__, ">=": int.__ge__}[op]

        def rel(p: Packet, env: Env) -> bool:
            lits = list(values(env))
            if len(lits) != 1 or not isinstance(lits[0], int):
                raise MatchError(f"{op} takes one integer")
            return prereq(p) and bool(order(value(p), lits[0]))

        return rel

    def values(self) -> Callable[[Env], Iterable[Any]]:
        tok = self.take()
        if tok == "{":
            items: list[Callable[[Env], Iterable[Any]]] = []
            while True:
                items.append(self.single(self.take()))
                if self.take() == "}":
                    break
            return lambda env: [v for it in items for v in it(env)]
        return self.single(tok)

    def single(self, tok: str) -> Callable[[Env], Iterable[Any]]:
        if tok.startswith("@"):
            name = tok[1:]
            return lambda env: env[0][name]
        if tok.startswith("$"):
            name = tok[1:]
            return lambda env: [_literal(a) for a in env[1][name]]
        lit = _literal(tok)
        return lambda env: [lit]


@lru_cache(maxsize=4096)
def compile_match(text: str) -> Node:
    """A predicate ``(packet, (port groups, address sets)) -> bool`` for one match (or MatchError)."""
    return _Parser(text).parse()


@dataclass(frozen=True)
class Acl:
    priority: int
    direction: str
    match: str
    action: str


def acls_of(rows: Iterable[Any]) -> tuple[list[Acl], Env]:
    """ACLs, port groups (name -> member port names) and address sets of desired rows
    (``core.nb.kinds.DesiredRow``: tables ACL, Port_Group, Address_Set)."""
    acls: list[Acl] = []
    pgs: dict[str, frozenset[str]] = {}
    sets: dict[str, frozenset[str]] = {}
    for r in rows:
        if r.table == "ACL":
            c = r.columns
            acls.append(Acl(c["priority"], c["direction"], c["match"], c["action"]))
            compile_match(c["match"])  # every match must parse, used or not
        elif r.table == "Port_Group":
            pgs[r.key] = frozenset(r.members)
        elif r.table == "Address_Set":
            sets[r.key] = frozenset(r.columns["addresses"])
    return sorted_acls(acls), (pgs, sets)


def decide(acls: Iterable[Acl], env: Env, pkt: Packet, direction: str) -> tuple[int, str] | None:
    """(priority, action) of the highest-priority ACL of ``direction`` matching ``pkt``, or None."""
    ordered = acls if isinstance(acls, _Sorted) else _Sorted(acls)
    best: tuple[int, str] | None = None
    for a in ordered.by_direction.get(direction, ()):
        if best is not None and a.priority < best[0]:
            break
        if not compile_match(a.match)(pkt, env):
            continue
        if best is not None and a.action != best[1]:
            raise AssertionError(f"two ACLs of priority {a.priority} match with different actions: {best[1]}, {a.action}")
        best = (a.priority, a.action)
    return best


class _Sorted(list[Acl]):
    """ACLs by direction, highest priority first (what :func:`sorted_acls` returns)."""

    def __init__(self, acls: Iterable[Acl]) -> None:
        super().__init__(acls)
        self.by_direction: dict[str, list[Acl]] = {}
        for a in sorted(self, key=lambda a: -a.priority):
            self.by_direction.setdefault(a.direction, []).append(a)


def sorted_acls(acls: Iterable[Acl]) -> list[Acl]:
    """``acls`` prepared for many :func:`decide` calls (sorted once)."""
    return _Sorted(acls)
