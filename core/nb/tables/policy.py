"""Kubernetes NetworkPolicy semantics → Port_Groups, Address_Sets and ACLs (pure).

:func:`policy_rows` is a pure function of one source's desired state (its
endpoints, namespaces and policies), O(policies x endpoints).  The programmer
keeps the same rows incrementally with :class:`PolicyIndex` (a policy's rows
are derived again only when its selected endpoints or its rules' peers
changed, found through indexes by namespace and by label); :func:`policy_rows`
is its oracle, and a property test checks after random change sequences that
both agree.  Both build rows with the same functions (:func:`one_policy`,
:func:`deny_rows`).

The scheme (ovn-kubernetes' shape, per source = per cluster):

* **Default deny, per direction.**  Two shared Port_Groups per source,
  ``hub_<h(source)>_denyin`` / ``_denyeg``, hold every port selected by *any*
  policy that has that direction in effect (``ingress``/``egress`` not None).
  Each carries one ACL, priority :data:`DENY_PRIORITY` (1000), action ``drop``,
  match ``outport == @pg && ip`` (to-lport) or ``inport == @pg && ip``
  (from-lport).  Matching ``ip`` leaves ARP alone, and OVN itself passes
  ND/RS/RA at priority 65532 before any ACL, so address resolution survives
  isolation.
* **Hairpin.**  A pod that reaches its own Service through a load balancer
  arrives from ``options:hairpin_snat_ip`` (the fabric's ``hairpin_snat_ip``,
  :data:`~core.model.fabric.DEFAULT_HAIRPIN_IP`), which no policy names: the
  ingress deny group carries an ``allow-related`` ACL at :data:`ALLOW_PRIORITY`,
  ``outport == @denyin && ip4.src == <hairpin ip>``, so isolation never cuts a
  pod off from itself (Kubernetes: a pod cannot block access to itself).  Only
  the load balancer SNATs to that address, and only for a client that is its
  own backend, and a port's port security (its addresses) keeps it from
  sending from that address itself.
* **Allows, per policy.**  A Port_Group ``hub_<h(source, uid)>`` holds the
  policy's selected ports; each rule becomes ACLs on it, priority
  :data:`ALLOW_PRIORITY` (1001 > deny), action ``allow-related`` so replies and
  related ICMP pass through conntrack.  The union of rules (and of policies) is
  simply the union of the ACLs.
* **Peers.**  The pod/namespace-selector peers of one rule become one pair of
  Address_Sets ``hub_<h>_<in|eg><rule>_v4`` / ``_v6`` holding the matching
  endpoints' IPs; ipBlocks are inlined as ``(ip4.src == CIDR && ip4.src !=
  {EXCEPT, ...})``.  Peers OR together inside the match.
* **Implicit labels.**  Selectors see every endpoint with ``ovn-hub.io/orchestrator``,
  ``ovn-hub.io/cluster`` and ``ovn-hub.io/namespace`` added (its source and
  namespace), and every namespace with the same three; they win over an
  orchestrator label of the same key (:func:`core.model.fabric.selector_labels`).
  Within one source they change nothing a Kubernetes policy could say; the
  hub-level tier (``admin_policy.py``) uses them to name sources.
* **Ports.**  Numeric ports become ``tcp.dst == P`` or ``tcp.dst >= A &&
  tcp.dst <= B`` (endPort), a port-less entry just ``tcp``.  A *named* port
  depends on the destination pod, so it gets its own ACL per resolved number:
  for ingress the destination is restricted to the selected ports that define
  that name (``outport == {"p1", "p2"}``); for egress to the IPs of the peer
  pods (those matching the selectors, or inside an ipBlock, or every endpoint of
  the source when the rule has no peers) that define it.
* **Egress after load balancing.**  Egress ACLs carry
  ``options:apply-after-lb=true`` (OVN >= 22.09), so a pod talking to a Service
  VIP is judged against the backend it is DNATed to, which is what a
  NetworkPolicy naming the backend pods means.  Ingress ACLs are to-lport and
  run in the egress pipeline, after the load balancer, by construction.

ACL identity: ACLs have no name index, so each carries ``ovn-hub:acl`` = a
digest of everything that makes it behave (port group, direction, priority,
match, action, options).  A changed rule is therefore a *new* ACL plus the
removal of the old one, which the programmer writes in one transaction (new
first): there is no moment where a flow allowed before and after the change is
dropped.  Names are derived from hashes of source + uid, so they are valid OVN
identifiers and stable across restarts.
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from core.model import Endpoint, Namespace, Peer, Policy, PolicyPort, Programmed, Rule, Selector, Source
from core.model.fabric import DEFAULT_HAIRPIN_IP, namespace_selector_labels, selector_labels
from core.names import ACL_KEY, KIND, PARENT, RULE, SOURCE, UID, lsp_name, owner_ids
from core.nb.kinds import DesiredRow, Members, PlanOp, Ref, RowKind, SourceView, Unit, View, by_external_id, register
from core.nb.tables import port
from core.ovsdb.values import Col

PG = "Port_Group"
AS = "Address_Set"
ACL = "ACL"
PG_COLUMNS = {"name": Col.SCALAR, "ports": Col.UUIDS, "acls": Col.UUIDS, "external_ids": Col.MAP}
AS_COLUMNS = {"name": Col.SCALAR, "addresses": Col.SET, "external_ids": Col.MAP}
ACL_COLUMNS = {"priority": Col.SCALAR, "direction": Col.SCALAR, "match": Col.SCALAR, "action": Col.SCALAR,
               "options": Col.MAP, "external_ids": Col.MAP, "log": Col.SCALAR, "name": Col.OPTIONAL,
               "severity": Col.OPTIONAL}  # fmt: skip
#: ACL ``severity`` of a rule that asks for logging (``Rule.log``); ``name`` is its policy's name
LOG_SEVERITY = "info"
#: OVN's limit on an ACL's ``name``
ACL_NAME_MAX = 63

DENY_PRIORITY = 1000
ALLOW_PRIORITY = 1001
AFTER_LB = {"apply-after-lb": "true"}


def _h(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def pg_name(source: Source | str, uid: str) -> str:
    """The policy's own Port_Group (an OVN identifier: letters, digits, ``_``)."""
    return f"hub_{_h(str(source), uid)}"


def deny_pg_name(source: Source | str, direction: str) -> str:
    return f"hub_{_h(str(source))}_deny{direction}"


# ---------------------------------------------------------------- selectors
def selector_matches(sel: Selector, labels: Mapping[str, str]) -> bool:
    """Kubernetes label selector semantics (matchLabels AND matchExpressions)."""
    for k, v in sel.match_labels.items():
        if labels.get(k) != v:
            return False
    for e in sel.match_expressions:
        present = e.key in labels
        if e.operator == "In":
            ok = present and labels[e.key] in e.values
        elif e.operator == "NotIn":
            ok = not present or labels[e.key] not in e.values
        elif e.operator == "Exists":
            ok = present
        elif e.operator == "DoesNotExist":
            ok = not present
        else:  # validate() rejects other operators; match nothing rather than everything
            return False
        if not ok:
            return False
    return True


@dataclass(frozen=True, slots=True)
class Candidate:
    """An endpoint as selectors see it: its labels and its namespace's, the
    implicit ones (``ovn-hub.io/orchestrator``, ``/cluster``, ``/namespace``,
    :func:`core.model.fabric.selector_labels`) merged in."""

    ep: Endpoint
    labels: Mapping[str, str]
    ns_labels: Mapping[str, str]


class Candidates(list[Candidate]):
    """Candidates, and (built on first use) the same by namespace: a selector of
    one namespace (a Kubernetes policy's subject and its podSelector-only peers)
    scans that namespace, not the whole source."""

    _by_ns: dict[str, list[Candidate]] | None = None

    def in_namespace(self, namespace: str) -> list[Candidate]:
        if self._by_ns is None:
            by_ns: dict[str, list[Candidate]] = {}
            for c in self:
                by_ns.setdefault(c.ep.namespace, []).append(c)
            self._by_ns = by_ns
        return self._by_ns.get(namespace, [])


def candidates(endpoints: Iterable[Endpoint], namespaces: Mapping[str, Namespace]) -> Candidates:
    """``endpoints`` (of one source, whose Namespace objects are ``namespaces``) with their selector labels."""
    ns: dict[str, Mapping[str, str]] = {}
    out = Candidates()
    for ep in endpoints:
        nl = ns.get(ep.namespace)
        if nl is None:
            obj = namespaces.get(ep.namespace)
            nl = ns[ep.namespace] = namespace_selector_labels(ep.source, ep.namespace, obj.labels if obj else None)
        out.append(Candidate(ep, selector_labels(ep), nl))
    return out


def _of_namespace(cands: Iterable[Candidate], namespace: str) -> Iterable[Candidate]:
    if isinstance(cands, Candidates):
        return cands.in_namespace(namespace)
    return (c for c in cands if c.ep.namespace == namespace)


def selected(pol: Policy, cands: Iterable[Candidate]) -> list[Endpoint]:
    """The endpoints a policy applies to: its namespace, its pod selector."""
    return [c.ep for c in _of_namespace(cands, pol.namespace) if selector_matches(pol.pod_selector, c.labels)]


def peer_endpoints(peer: Peer, pol: Policy | None, cands: Iterable[Candidate]) -> list[Endpoint]:
    """Endpoints a selector peer matches (an ipBlock peer matches none here).

    podSelector alone = the policy's namespace (``pol`` None, a hub-level peer:
    every namespace of every source); namespaceSelector alone = all pods of the
    matching namespaces; both = AND."""
    if peer.cidr is not None or (peer.pod_selector is None and peer.namespace_selector is None):
        return []
    ns_sel = peer.namespace_selector
    pod_sel = peer.pod_selector
    if ns_sel is None and pol is not None:
        cands = _of_namespace(cands, pol.namespace)
    out = []
    for c in cands:
        if ns_sel is None:
            if pol is not None and c.ep.namespace != pol.namespace:
                continue
        elif not selector_matches(ns_sel, c.ns_labels):
            continue
        if pod_sel is not None and not selector_matches(pod_sel, c.labels):
            continue
        out.append(c.ep)
    return out


def _in_block(ip: str, peer: Peer) -> bool:
    assert peer.cidr is not None
    addr = ipaddress.ip_address(ip)
    net = ipaddress.ip_network(peer.cidr, strict=False)
    if addr.version != net.version or addr not in net:
        return False
    return not any(addr in ipaddress.ip_network(ex, strict=False) for ex in peer.except_cidrs)


# ---------------------------------------------------------------- match text
def _family(ip: str) -> str:
    return "ip6" if ":" in ip else "ip4"


def _block_match(peer: Peer, side: str) -> str:
    assert peer.cidr is not None
    net = ipaddress.ip_network(peer.cidr, strict=False)
    fam = "ip4" if net.version == 4 else "ip6"
    text = f"{fam}.{side} == {net}"
    if peer.except_cidrs:
        excepts = ", ".join(str(ipaddress.ip_network(e, strict=False)) for e in peer.except_cidrs)
        text = f"({text} && {fam}.{side} != {{{excepts}}})"
    return text


def _port_match(pp: PolicyPort) -> str:
    proto = pp.protocol
    if pp.port is None:
        return proto
    if pp.end_port is not None and pp.end_port != pp.port:
        return f"({proto}.dst >= {pp.port} && {proto}.dst <= {pp.end_port})"
    return f"{proto}.dst == {pp.port}"


def _ip_set_match(ips: Iterable[str], side: str) -> str:
    by_fam: dict[str, list[str]] = {}
    for ip in sorted(set(ips)):
        by_fam.setdefault(_family(ip), []).append(ip)
    return " || ".join(f"{fam}.{side} == {{{', '.join(v)}}}" for fam, v in sorted(by_fam.items()))


def _named_groups(port: PolicyPort, endpoints: Iterable[Endpoint]) -> dict[int, list[Endpoint]]:
    """Endpoints defining the named ``port`` (with its protocol), by number."""
    groups: dict[int, list[Endpoint]] = {}
    for ep in endpoints:
        for spec in ep.ports:
            if spec.name == port.port and spec.protocol == port.protocol:
                groups.setdefault(spec.port, []).append(ep)
                break
    return groups


def _named_destinations(
    port: PolicyPort, has_peers: bool, peer_eps: Iterable[Endpoint], blocks: list[Peer], pool: Iterable[Endpoint]
) -> dict[int, list[str]]:
    """Egress to the named ``port``: the destination addresses, by the number they
    resolve it to.  A destination is an endpoint that defines the name and is a
    peer: every address of one the selectors match (of every endpoint of ``pool``
    when the rule has no peers), and of the others the addresses inside an ipBlock
    (a pod whose IPv6 address is in the block is not reached at its IPv4 one)."""
    dests: dict[str, tuple[Endpoint, list[str]]] = {}
    for ep in pool if not has_peers else peer_eps:
        dests[lsp_name(ep)] = (ep, list(ep.ips))
    if has_peers and blocks:
        for ep in pool:
            inside = [ip for ip in ep.ips if any(_in_block(ip, p) for p in blocks)]
            if inside and lsp_name(ep) not in dests:
                dests[lsp_name(ep)] = (ep, inside)
    groups: dict[int, list[str]] = {}
    for number, group in _named_groups(port, (ep for ep, _ in dests.values())).items():
        groups[number] = [ip for ep in group for ip in dests[lsp_name(ep)][1]]
    return groups


# ---------------------------------------------------------------- rows
class RowBuilder:
    """Port_Group, Address_Set and ACL rows of one source (or the fabric), by table and key."""

    def __init__(self, source: Source, hub_id: str) -> None:
        self.source = source
        self.src = str(source)
        self.hub_id = hub_id
        self.rows: dict[tuple[str, str], DesiredRow] = {}

    def ids(self, pol: Policy | None, rule: str = "") -> dict[str, str]:
        if pol is None:
            ids = owner_ids(self.source, "policy", "", "", "default-deny", self.hub_id)
        else:
            ids = owner_ids(self.source, "policy", pol.uid, pol.namespace, pol.name, self.hub_id)
        if rule:
            ids[RULE] = rule
        return ids

    def port_group(self, name: str, members: Iterable[str], ids: dict[str, str], presorted: bool = False) -> None:
        """``presorted``: ``members`` are sorted and unique already (a :class:`Members` is kept as it is)."""
        cols = {"name": name, "external_ids": ids}
        ms = members if isinstance(members, Members) else tuple(members if presorted else sorted(set(members)))
        self.rows[(PG, name)] = DesiredRow(PG, name, self.src, cols, members=ms)

    def address_set(self, name: str, addresses: Iterable[str], ids: dict[str, str], presorted: bool = False) -> None:
        cols = {"name": name, "addresses": tuple(addresses if presorted else sorted(set(addresses))), "external_ids": ids}
        self.rows[(AS, name)] = DesiredRow(AS, name, self.src, cols)

    def acl(
        self, pg: str, direction: str, priority: int, match: str, action: str, ids: dict[str, str], log: str = ""
    ) -> None:
        """``log``: the ACL logs what it matches, under that name (``log=true``,
        ``name``, ``severity`` :data:`LOG_SEVERITY`); "" = no logging, and then
        the row has exactly the columns (and the identity) it had before logging existed."""
        options = dict(AFTER_LB) if direction == "from-lport" else {}
        parts = [pg, direction, str(priority), match, action, repr(sorted(options.items()))]
        if log:
            parts.append(f"log={log}")
        digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
        key = f"acl_{digest}"
        ids = dict(ids, **{ACL_KEY: key, PARENT: pg})
        cols = {
            "priority": priority,
            "direction": direction,
            "match": match,
            "action": action,
            "options": options,
            "external_ids": ids,
        }
        if log:
            cols.update(log=True, name=log[:ACL_NAME_MAX], severity=LOG_SEVERITY)
        self.rows[(ACL, key)] = DesiredRow(ACL, key, self.src, cols, parent=pg)


def policy_rows(
    source: Source,
    endpoints: Iterable[Endpoint],
    namespaces: Mapping[str, Namespace],
    policies: Iterable[Policy],
    hub_id: str,
    hairpin_ip: str = DEFAULT_HAIRPIN_IP,
) -> list[DesiredRow]:
    """Every Port_Group, Address_Set and ACL the policies of ``source`` need
    (see the module docstring for the scheme).  Deterministic: the same input
    gives equal rows, whatever the iteration order of the inputs.
    ``hairpin_ip``: the load balancers' hairpin SNAT address ("" : no hairpin allow).

    The whole-source derivation: :class:`PolicyIndex` keeps the same rows
    incrementally, and this is its oracle."""
    pols = sorted(policies, key=lambda p: p.uid)
    if not pols:
        return []
    eps = sorted(endpoints, key=_ep_order)
    cands = candidates(eps, namespaces)
    b = RowBuilder(source, hub_id)
    deny: dict[str, set[str]] = {}
    for pol in pols:
        chosen = selected(pol, cands)

        def peers(direction: str, index: int, rule: Rule, pol: Policy = pol) -> dict[str, Endpoint]:
            found: dict[str, Endpoint] = {}
            for peer in rule.peers:
                if peer.cidr is None:
                    for ep in peer_endpoints(peer, pol, cands):
                        found[ep.key] = ep
            return found

        one_policy(b, pol, chosen, peers, eps)
        ports = [lsp_name(ep) for ep in chosen]
        for direction in _directions(pol):
            deny.setdefault(direction, set()).update(ports)
    for direction, members in sorted(deny.items()):
        deny_rows(b, direction, sorted(members), hairpin_ip)
    return list(b.rows.values())


def _ep_order(ep: Endpoint) -> tuple[str, str]:
    return (ep.network, ep.uid)


def _directions(pol: Policy) -> list[str]:
    """The directions ``pol`` isolates its pods in ("in", "eg")."""
    return [d for d, rules in (("in", pol.ingress), ("eg", pol.egress)) if rules is not None]


def one_policy(
    b: RowBuilder,
    pol: Policy,
    chosen: list[Endpoint],
    peers: Callable[[str, int, Rule], Mapping[str, Endpoint]],
    pool: Iterable[Endpoint],
) -> None:
    """The rows of one policy: its Port_Group holding ``chosen`` (the selected
    endpoints, in (network, uid) order), its rules' Address_Sets and ACLs.
    ``peers``: the endpoints (by key) of the selector peers of rule (direction, index, rule); ``pool``: every
    endpoint of the source (read only by egress rules to a named port without
    selector-only peers: :func:`reads_every_endpoint`)."""
    pg = pg_name(b.source, pol.uid)
    b.port_group(pg, (lsp_name(ep) for ep in chosen), b.ids(pol))
    for direction, rules in (("in", pol.ingress), ("eg", pol.egress)):
        for i, rule in enumerate(rules or ()):
            _rule_acls(b, pol, pg, direction, i, rule, chosen, peers(direction, i, rule) if _selector_peers(rule) else {}, pool)


def reads_every_endpoint(pol: Policy) -> bool:
    """Whether the rows of ``pol`` read endpoints beyond its selected ones and its
    rules' selector peers: an egress rule to a named port whose destinations may
    be any endpoint (no peers) or any endpoint inside an ipBlock."""
    return any(
        isinstance(pp.port, str) and (not rule.peers or any(p.cidr is not None for p in rule.peers))
        for rule in pol.egress or ()
        for pp in rule.ports
    )


def _named_ports(pol: Policy) -> bool:
    return any(isinstance(pp.port, str) for rules in (pol.ingress, pol.egress) for rule in rules or () for pp in rule.ports)


def _selector_peers(rule: Rule) -> bool:
    return any(p.cidr is None for p in rule.peers)


def deny_rows(b: RowBuilder, direction: str, members: Sequence[str], hairpin_ip: str) -> None:
    """The default-deny Port_Group of ``direction`` and its ACLs; ``members``:
    the port names, sorted and unique (a :class:`Members` is kept as it is)."""
    name = deny_pg_name(b.source, direction)
    ids = b.ids(None, f"default-deny-{direction}")
    ms = members if isinstance(members, Members) else tuple(members)
    b.rows[(PG, name)] = DesiredRow(PG, name, b.src, {"name": name, "external_ids": ids}, members=ms)
    if direction == "in":
        b.acl(name, "to-lport", DENY_PRIORITY, f"outport == @{name} && ip", "drop", ids)
        if hairpin_ip:
            hairpin = f"outport == @{name} && {_family(hairpin_ip)}.src == {hairpin_ip}"
            b.acl(name, "to-lport", ALLOW_PRIORITY, hairpin, "allow-related", b.ids(None, "hairpin"))
    else:
        b.acl(name, "from-lport", DENY_PRIORITY, f"inport == @{name} && ip", "drop", ids)


def _rule_acls(
    b: RowBuilder,
    pol: Policy,
    pg: str,
    direction: str,
    index: int,
    rule: Rule,
    chosen: list[Endpoint],
    peer_eps: Mapping[str, Endpoint],
    eps: Iterable[Endpoint],
) -> None:
    ingress = direction == "in"
    side = "src" if ingress else "dst"
    acl_dir = "to-lport" if ingress else "from-lport"
    here = "outport" if ingress else "inport"
    tag = f"{'ingress' if ingress else 'egress'}/{index}"
    ids = b.ids(pol, tag)
    log = pol.name if rule.log else ""
    selector_peers = [p for p in rule.peers if p.cidr is None]
    blocks = [p for p in rule.peers if p.cidr is not None]
    peer_terms: list[str] = []
    if selector_peers:
        ips = [ip for ep in peer_eps.values() for ip in ep.ips]
        base = f"{pg}_{direction}{index}"
        b.address_set(f"{base}_v4", (ip for ip in ips if ":" not in ip), ids)
        b.address_set(f"{base}_v6", (ip for ip in ips if ":" in ip), ids)
        peer_terms += [f"ip4.{side} == ${base}_v4", f"ip6.{side} == ${base}_v6"]
    peer_terms += [_block_match(p, side) for p in blocks]
    peer_clause = f" && ({' || '.join(peer_terms)})" if peer_terms else ""

    numeric = [pp for pp in rule.ports if not isinstance(pp.port, str)]
    named = [pp for pp in rule.ports if isinstance(pp.port, str)]
    if not rule.ports or numeric:
        ports_clause = f" && ({' || '.join(_port_match(pp) for pp in numeric)})" if numeric else ""
        b.acl(pg, acl_dir, ALLOW_PRIORITY, f"{here} == @{pg} && ip{peer_clause}{ports_clause}", "allow-related", ids, log)
    for pp in named:
        if ingress:
            # the destination is one of the selected pods: only those defining the name
            for number, group in sorted(_named_groups(pp, chosen).items()):
                outs = ", ".join(json.dumps(lsp_name(ep)) for ep in group)  # a quoted, escaped OVN string
                match = f"outport == {{{outs}}} && ip{peer_clause} && {pp.protocol}.dst == {number}"
                b.acl(pg, acl_dir, ALLOW_PRIORITY, match, "allow-related", ids, log)
        else:
            # the destination is a peer: pods matching the selectors, inside an
            # ipBlock, or (no peers) any endpoint of the source
            for number, ips in sorted(_named_destinations(pp, bool(rule.peers), peer_eps.values(), blocks, eps).items()):
                if not ips:
                    continue
                match = f"inport == @{pg} && ip && ({_ip_set_match(ips, 'dst')}) && {pp.protocol}.dst == {number}"
                b.acl(pg, acl_dir, ALLOW_PRIORITY, match, "allow-related", ids, log)


def names_in_match(match: str) -> set[str]:
    """Port_Group (``@name``) and Address_Set (``$name``) names a match uses:
    what must outlive the ACL (deleted only after it)."""
    out: set[str] = set()
    for sigil in "@$":
        for part in match.split(sigil)[1:]:
            name = ""
            for c in part:
                if c.isalnum() or c in "_.":
                    name += c
                else:
                    break
            if name:
                out.add(name)
    return out



# ---------------------------------------------------------------- incremental
#: where a selector group is filed in :class:`PolicyIndex`: (namespace or "" for any, label key, label value);
#: (ns, "", "") holds the groups every endpoint of ``ns`` must be checked against (no matchLabels to file by)
_Slot = tuple[str, str, str]
_GroupId = tuple[str, str, int]  # (policy uid, "" for its subject or "in"/"eg", rule index)


@dataclass(slots=True)
class _Term:
    """One way into a group: namespace ("": any), namespace selector, pod selector."""

    namespace: str
    ns_selector: Selector | None
    pod_selector: Selector | None

    def matches(self, c: Candidate) -> bool:
        if self.namespace and c.ep.namespace != self.namespace:
            return False
        if self.ns_selector is not None and not selector_matches(self.ns_selector, c.ns_labels):
            return False
        return self.pod_selector is None or selector_matches(self.pod_selector, c.labels)

    def slot(self) -> _Slot:
        ml = self.pod_selector.match_labels if self.pod_selector is not None else {}
        if ml:
            k = min(ml)
            return (self.namespace, k, ml[k])
        return (self.namespace, "", "")


@dataclass(slots=True)
class _Group:
    """A policy's selected endpoints (its subject), or one rule's selector peers;
    and, kept in order as members come and go, what its rows hold of them: the
    subject's port names, the peers' IPv4 and IPv6 addresses (``counts``: how
    many members hold each).  A subject also notes the port names that joined and
    left since its port group's members were last given (:meth:`emit`)."""

    terms: list[_Term]
    subject: bool
    members: dict[str, Endpoint] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    v4: list[str] = field(default_factory=list)  # the subject's port names, or the peers' IPv4 addresses
    v6: list[str] = field(default_factory=list)
    emitted: tuple[str, ...] | None = None  # the subject's members as last given
    delta: _Delta | None = None

    def emit(self) -> tuple[str, ...]:
        """The subject's port names as its port group's members: a :class:`Members`
        (what changed since the last time) once they were given before."""
        d, prev = self.delta, self.emitted
        if d is not None and prev is not None and not d.joined and not d.left:
            return prev  # the same tuple: readers keep what they hold of it
        out = Members.of(self.v4, prev, d.joined, d.left) if d is not None and prev is not None else tuple(self.v4)
        self.emitted, self.delta = out, _Delta()
        return out

    def matches(self, c: Candidate) -> bool:
        return any(t.matches(c) for t in self.terms)

    def _items(self, ep: Endpoint) -> Iterable[str]:
        return (lsp_name(ep),) if self.subject else ep.ips

    def fill(self) -> None:
        """``counts`` and the lists from ``members`` (after a bulk load)."""
        counts = self.counts
        for ep in self.members.values():
            for x in self._items(ep):
                counts[x] = counts.get(x, 0) + 1
        self.v4 = sorted(x for x in counts if self.subject or ":" not in x)
        self.v6 = [] if self.subject else sorted(x for x in counts if ":" in x)

    def track(self, ep: Endpoint, sign: int) -> None:
        """``ep`` joined (sign 1) or left (-1)."""
        counts = self.counts
        for x in self._items(ep):
            n = counts.get(x, 0) + sign
            order = self.v6 if not self.subject and ":" in x else self.v4
            if n == 0:
                del counts[x]
                del order[bisect.bisect_left(order, x)]
                if self.delta is not None:
                    self.delta.drop(x)
            else:
                counts[x] = n
                if n == 1 and sign == 1:
                    bisect.insort(order, x)
                    if self.delta is not None:
                        self.delta.add(x)


@dataclass(slots=True)
class _Delta:
    """Names that joined and left a sorted list since it was last given (net: a name
    that left and came back is neither)."""

    joined: set[str] = field(default_factory=set)
    left: set[str] = field(default_factory=set)

    def add(self, x: str) -> None:
        if x in self.left:
            self.left.discard(x)
        else:
            self.joined.add(x)

    def drop(self, x: str) -> None:
        if x in self.joined:
            self.joined.discard(x)
        else:
            self.left.add(x)


class PolicyIndex:
    """:func:`policy_rows`, incrementally (its oracle): the same rows, kept per unit,
    a unit per policy (its Port_Group, Address_Sets and ACLs) and one per default-deny
    direction.

    Every policy's subject and every rule's selector peers are a *group* whose members
    are kept.  Groups are filed by namespace (a subject and a podSelector-only peer see
    one namespace, a namespaceSelector peer any) and by one of their pod selector's
    matchLabels: an endpoint's change is checked only against the groups filed under
    its namespace (or any) and one of its labels, or under no label (old and new
    endpoint both).  Only a policy whose group's members changed (joined, left, or a
    member's addresses or ports changed) is derived again, from its groups' members;
    a namespace's relabelling re-checks its endpoints against the namespaceSelector
    groups only.  The default-deny groups count, per port, the policies selecting it.
    A policy whose rows read every endpoint (:func:`reads_every_endpoint`) is derived
    again on every endpoint change."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.source: Source | None = None
        self.hub_id = ""
        self.hairpin = DEFAULT_HAIRPIN_IP
        self.ns_objs: dict[str, Namespace] = {}
        self.ns_labels: dict[str, Mapping[str, str]] = {}
        self.cands: dict[str, Candidate] = {}
        self.by_ns: dict[str, dict[str, Candidate]] = {}
        self.policies: dict[str, Policy] = {}
        self.groups: dict[_GroupId, _Group] = {}
        self.slots: dict[_Slot, set[_GroupId]] = {}
        self.ns_groups: set[_GroupId] = set()  # groups with a namespace selector
        self.every: set[str] = set()  # policies reading every endpoint
        self.acls: dict[str, list[DesiredRow]] = {}  # the ACLs of policies whose ACLs read no member
        #: default deny: direction -> port -> policies (with that direction) selecting it; the
        #: ports in order; the policies with the direction in effect
        self.deny: dict[str, dict[str, int]] = {"in": {}, "eg": {}}
        self.deny_sorted: dict[str, list[str]] = {"in": [], "eg": []}
        self.deny_pols: dict[str, set[str]] = {"in": set(), "eg": set()}
        #: the default-deny members as last given, and what joined and left since (``Members``)
        self.deny_emitted: dict[str, tuple[str, ...] | None] = {"in": None, "eg": None}
        self.deny_delta: dict[str, _Delta] = {"in": _Delta(), "eg": _Delta()}
        self.dirty: set[str] = set()
        self.deny_dirty: set[str] = set()

    # ------------------------------------------------------------ inputs
    def load(self, view: SourceView) -> None:
        self._reset()
        self.source = view.source
        self.hub_id = view.hub_id
        fab = view.fabric
        self.hairpin = fab.spec.hairpin_snat_ip if fab is not None else DEFAULT_HAIRPIN_IP
        st = view.state
        self.ns_objs = dict(st.namespaces)
        for ep in view.endpoints:
            self._add_cand(ep)
        for pol in st.policies.values():
            self._add_policy(pol)

    def _labels_of(self, ns: str) -> Mapping[str, str]:
        nl = self.ns_labels.get(ns)
        if nl is None:
            obj = self.ns_objs.get(ns)
            assert self.source is not None
            nl = self.ns_labels[ns] = namespace_selector_labels(self.source, ns, obj.labels if obj else None)
        return nl

    def _add_cand(self, ep: Endpoint) -> Candidate:
        c = Candidate(ep, selector_labels(ep), self._labels_of(ep.namespace))
        self.cands[ep.key] = c
        self.by_ns.setdefault(ep.namespace, {})[ep.key] = c
        return c

    def _drop_cand(self, ep: Endpoint) -> Candidate | None:
        c = self.cands.pop(ep.key, None)
        if c is not None:
            objs = self.by_ns.get(c.ep.namespace)
            if objs is not None:
                objs.pop(ep.key, None)
                if not objs:
                    del self.by_ns[c.ep.namespace]
        return c

    def _candidate_groups(self, c: Candidate, into: set[_GroupId]) -> None:
        slots = self.slots
        for ns in (c.ep.namespace, ""):
            g = slots.get((ns, "", ""))
            if g:
                into |= g
            for k, v in c.labels.items():
                g = slots.get((ns, k, v))
                if g:
                    into |= g

    def endpoint(self, old: Endpoint | None, new: Endpoint | None) -> None:
        oc = self._drop_cand(old) if old is not None else None
        nc = self._add_cand(new) if new is not None else None
        if not self.policies:
            return
        gids: set[_GroupId] = set()
        if oc is not None:
            self._candidate_groups(oc, gids)
        if nc is not None:
            self._candidate_groups(nc, gids)
        for gid in gids:
            self._recheck(gid, self.groups[gid], (new or old).key, nc)  # type: ignore[union-attr]
        if self.every:
            self.dirty |= self.every

    def _recheck(self, gid: _GroupId, g: _Group, key: str, c: Candidate | None) -> None:
        """Endpoint ``key`` is now ``c`` (None: gone): is it in group ``gid``?"""
        cur = g.members.get(key)
        if c is not None and g.matches(c):
            ep = c.ep
            if cur is None or cur.ips != ep.ips or cur.ports != ep.ports:
                self.dirty.add(gid[0])
                if cur is None:
                    g.track(ep, 1)
                elif not g.subject and cur.ips != ep.ips:
                    g.track(cur, -1)
                    g.track(ep, 1)
            g.members[key] = ep
            if cur is None and g.subject:
                self._deny_add(gid[0], lsp_name(ep))
        elif cur is not None:
            del g.members[key]
            g.track(cur, -1)
            self.dirty.add(gid[0])
            if g.subject:
                self._deny_drop(gid[0], lsp_name(cur))

    def _deny_add(self, uid: str, port: str) -> None:
        for d in _directions(self.policies[uid]):
            counts = self.deny[d]
            n = counts.get(port, 0)
            counts[port] = n + 1
            if n == 0:
                bisect.insort(self.deny_sorted[d], port)
                self.deny_delta[d].add(port)
                self.deny_dirty.add(d)

    def _deny_drop(self, uid: str, port: str) -> None:
        for d in _directions(self.policies[uid]):
            counts = self.deny[d]
            n = counts[port] - 1
            if n:
                counts[port] = n
                continue
            del counts[port]
            ports = self.deny_sorted[d]
            del ports[bisect.bisect_left(ports, port)]
            self.deny_delta[d].drop(port)
            self.deny_dirty.add(d)

    def policy(self, old: Policy | None, new: Policy | None) -> None:
        if old is not None and old.uid in self.policies:
            self._drop_policy(self.policies[old.uid])
        if new is not None:
            self._add_policy(new)

    def _group_ids(self, pol: Policy) -> list[_GroupId]:
        gids: list[_GroupId] = [(pol.uid, "", 0)]
        for d, rules in (("in", pol.ingress), ("eg", pol.egress)):
            gids += [(pol.uid, d, i) for i, rule in enumerate(rules or ()) if _selector_peers(rule)]
        return gids

    def _add_policy(self, pol: Policy) -> None:
        self.policies[pol.uid] = pol
        self.dirty.add(pol.uid)
        for d in _directions(pol):
            if not self.deny_pols[d]:
                self.deny_dirty.add(d)
            self.deny_pols[d].add(pol.uid)
        if reads_every_endpoint(pol):
            self.every.add(pol.uid)
        for gid in self._group_ids(pol):
            if not gid[1]:
                terms = [_Term(pol.namespace, None, pol.pod_selector)]
            else:
                rules = (pol.ingress if gid[1] == "in" else pol.egress) or ()
                terms = [_Term(pol.namespace if p.namespace_selector is None else "", p.namespace_selector, p.pod_selector)
                         for p in rules[gid[2]].peers
                         if p.cidr is None and (p.pod_selector is not None or p.namespace_selector is not None)]  # fmt: skip
            g = self.groups[gid] = _Group(terms, subject=not gid[1])
            for t in terms:
                self.slots.setdefault(t.slot(), set()).add(gid)
                if t.ns_selector is not None:
                    self.ns_groups.add(gid)
            scopes = {t.namespace for t in terms}
            pool: Iterable[Candidate] = (
                self.cands.values() if "" in scopes else (c for ns in scopes for c in self.by_ns.get(ns, {}).values())
            )
            for c in pool:
                if g.matches(c):
                    g.members[c.ep.key] = c.ep
                    if not gid[1]:
                        self._deny_add(pol.uid, lsp_name(c.ep))
            g.fill()
        if not reads_every_endpoint(pol) and not _named_ports(pol):
            # its ACLs read no member (no named port): derived once; its group and sets from the kept orders
            b = RowBuilder(self.source, self.hub_id)  # type: ignore[arg-type]
            one_policy(b, pol, [], lambda d, i, r: {}, ())
            self.acls[pol.uid] = [r for r in b.rows.values() if r.table == ACL]

    def _drop_policy(self, pol: Policy) -> None:
        for gid in self._group_ids(pol):
            g = self.groups.pop(gid)
            for t in g.terms:
                slot = self.slots.get(t.slot())
                if slot is not None:
                    slot.discard(gid)
                    if not slot:
                        del self.slots[t.slot()]
            self.ns_groups.discard(gid)
            if not gid[1]:
                for ep in g.members.values():
                    self._deny_drop(pol.uid, lsp_name(ep))
        for d in _directions(pol):
            self.deny_pols[d].discard(pol.uid)
            if not self.deny_pols[d]:
                self.deny_dirty.add(d)
        self.every.discard(pol.uid)
        self.acls.pop(pol.uid, None)
        del self.policies[pol.uid]
        self.dirty.add(pol.uid)

    def namespace(self, name: str, old: Namespace | None, new: Namespace | None) -> None:
        if new is None:
            self.ns_objs.pop(name, None)
        else:
            self.ns_objs[name] = new
        self.ns_labels.pop(name, None)
        members = self.by_ns.get(name)
        if not members:
            return
        for key, c in list(members.items()):  # candidates of the namespace see its new labels
            members[key] = self.cands[key] = Candidate(c.ep, c.labels, self._labels_of(name))
        for gid in self.ns_groups:
            g = self.groups[gid]
            for key, c in members.items():
                self._recheck(gid, g, key, c)

    def service(self, old: object, new: object) -> None:
        return None

    # ------------------------------------------------------------ rows
    def rows(self, view: SourceView) -> dict[Unit, list[DesiredRow]]:
        out: dict[Unit, list[DesiredRow]] = {}
        if not self.dirty and not self.deny_dirty:
            return out
        assert self.source is not None
        pool: list[Endpoint] | None = None
        for uid in self.dirty:
            pol = self.policies.get(uid)
            if pol is None:
                out[uid] = []
                continue
            b = RowBuilder(self.source, self.hub_id)
            acls = self.acls.get(uid)
            if acls is not None:
                out[uid] = self._kept_rows(b, pol, acls)
                continue
            chosen = sorted(self.groups[(uid, "", 0)].members.values(), key=_ep_order)

            def peers(direction: str, index: int, rule: Rule, uid: str = uid) -> Mapping[str, Endpoint]:
                return self.groups[(uid, direction, index)].members

            if uid in self.every and pool is None:
                pool = [c.ep for c in self.cands.values()]
            one_policy(b, pol, chosen, peers, pool or ())
            out[uid] = list(b.rows.values())
        for d in self.deny_dirty:
            b = RowBuilder(self.source, self.hub_id)
            if self.deny_pols[d]:
                deny_rows(b, d, self._deny_members(d), self.hairpin)
            else:
                self.deny_emitted[d] = None
            out[("deny", d)] = list(b.rows.values())
        self.dirty.clear()
        self.deny_dirty.clear()
        return out

    def _deny_members(self, d: str) -> tuple[str, ...]:
        prev, delta = self.deny_emitted[d], self.deny_delta[d]
        if prev is not None and not delta.joined and not delta.left:
            return prev
        out = Members.of(self.deny_sorted[d], prev, delta.joined, delta.left) if prev is not None else tuple(self.deny_sorted[d])
        self.deny_emitted[d], self.deny_delta[d] = out, _Delta()
        return out

    def _kept_rows(self, b: RowBuilder, pol: Policy, acls: list[DesiredRow]) -> list[DesiredRow]:
        """The rows of a policy without named ports: what :func:`one_policy` gives, from
        the orders its groups keep (no sort, no pass over the members)."""
        pg = pg_name(b.source, pol.uid)
        b.port_group(pg, self.groups[(pol.uid, "", 0)].emit(), b.ids(pol), presorted=True)
        for direction, rules in (("in", pol.ingress), ("eg", pol.egress)):
            for i, rule in enumerate(rules or ()):
                if _selector_peers(rule):
                    g = self.groups[(pol.uid, direction, i)]
                    ids = b.ids(pol, f"{'ingress' if direction == 'in' else 'egress'}/{i}")
                    b.address_set(f"{pg}_{direction}{i}_v4", g.v4, ids, presorted=True)
                    b.address_set(f"{pg}_{direction}{i}_v6", g.v6, ids, presorted=True)
        return [*b.rows.values(), *acls]


# ---------------------------------------------------------------- kinds
def derive(view: SourceView) -> list[DesiredRow]:
    st = view.state
    if not st.policies:
        return []
    hairpin = view.fabric.spec.hairpin_snat_ip if view.fabric is not None else DEFAULT_HAIRPIN_IP
    return policy_rows(view.source, view.endpoints, st.namespaces, st.policies.values(), view.hub_id, hairpin)


def object_programmed(view: View, u: PlanOp) -> Programmed | None:
    """The service or policy a derived row belongs to (``deleted`` when the
    object is gone from the desired state); the commit sends one per object."""
    ids = u.columns.get("external_ids") or view.ids(u.table, u.name)
    kind, uid, src = ids.get(KIND, ""), ids.get(UID, ""), ids.get(SOURCE, "")
    if kind not in ("service", "policy") or not uid:
        return None
    try:
        source = Source.parse(src)
    except ValueError:
        return None
    st = view.desired.sources.get(src)
    alive = st is not None and uid in (st.services if kind == "service" else st.policies)
    return Programmed(source=source, kind="service" if kind == "service" else "policy", key=uid, row=u.name, deleted=not alive)


def _names_used(cols: Mapping[str, object]) -> set[str]:
    match = cols.get("match", "")
    return names_in_match(match) if isinstance(match, str) else set()


register(RowKind(table=AS, columns=AS_COLUMNS, rank=2, named=True, whole_batch=True, programmed=object_programmed))
PG_KIND = register(
    RowKind(table=PG, columns=PG_COLUMNS, rank=3, members=Ref(port.TABLE, "ports", strong=False), named=True,
            whole_batch=True, programmed=object_programmed),
    derive,
    incremental=PolicyIndex,
)  # fmt: skip
register(
    RowKind(table=ACL, columns=ACL_COLUMNS, rank=5, key=by_external_id(ACL_KEY), parent=Ref(PG, "acls"),
            names_used=_names_used, whole_batch=True, programmed=object_programmed)
)  # fmt: skip
