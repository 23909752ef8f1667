"""Hub-level policies (``Fabric.policies``, the AdminNetworkPolicy model) → Port_Groups,
Address_Sets and ACLs that span sources (pure).

:func:`admin_rows` is a pure function of the fabric's policies and every
source's endpoints and namespaces; the programmer calls it (a fabric deriver,
once every expected source has listed) whenever one of them changes, and writes
the difference.  Its rows carry the fabric's pseudo-source
``ovn-hub/fabric`` and ``hubf_`` names, which the per-source ``hub_<hex>`` names
of ``policy.py`` can never take.

**Selection.**  The subject and the peers are :class:`~core.model.Peer` items
evaluated against the endpoints of *every* source: ``pod_selector`` alone
selects in every namespace of every source, ``namespace_selector`` matches the
labels of the endpoint's namespace in its own source, both = AND.  Selectors
see the implicit labels (``ovn-hub.io/orchestrator``, ``/cluster``,
``/namespace``; :func:`core.model.fabric.selector_labels`), so
``{"ovn-hub.io/orchestrator": "docker", "app": "web"}`` names Docker's web
containers.  An ipBlock peer (``cidr``, ``except_cidrs``) is a plain IP match,
so it matches routed addresses of any orchestrator (and anything else).  Empty
``peers`` = every peer, empty ``ports`` = every port.

**Rows.**  Each policy has a Port_Group ``hubf_<h(name)>`` of its subject's
ports; each rule's selector peers one pair of Address_Sets
``hubf_<h>_<in|eg><i>_v4 / _v6``; ports and named ports as in ``policy.py``
(a named port is an ACL per resolved number).  Ingress rules are ``to-lport``
ACLs on ``outport == @subject``, egress rules ``from-lport`` on ``inport ==
@subject`` with ``apply-after-lb`` (judged against the backend a Service VIP
is DNATed to, like the orchestrator tier).

**Priorities** (OVN: one ACL stage per direction, the highest matching
priority decides).  The hub tier sits above the orchestrator tier (1000 deny,
1001 allow):

====================  =========================================================
32000                 hairpin: ``outport == @hubf_ingress && ip4.src ==
                      <hairpin ip>`` allow-related (a pod reaching itself through
                      its own Service; ``hubf_ingress`` = every subject of an
                      ingress rule), so no hub ``deny`` cuts a pod off from itself
31999 … 2000          rule ``i`` of the policy of priority ``p``:
                      ``31999 - p * 30 - i`` (:func:`acl_priority`; 0-999
                      priorities, unique, at most 30 rules per direction)
1001 / 1000           the orchestrator tier (``policy.py``)
====================  =========================================================

``allow`` is ``allow-related`` (replies and related ICMP through conntrack):
the ACL stage stops at it, so no orchestrator policy's drop below can undo it.
``deny`` is ``drop``.

**Pass by subtraction.**  OVN 23.03 has no ``pass`` action and no ACL tiers.
A ``pass`` rule therefore has no ACL of its own; instead every *later* hub rule
of the same direction (lower priority) whose subject shares a port with the
pass rule's gets ``&& !(<pass match>)``, so traffic the pass rule matches
matches no hub ACL below it and meets the orchestrator tier (1000/1001)
untouched, or OVN's default allow.  Rules above it already took what they
match (first match wins), so the first matching hub rule decides exactly as
AdminNetworkPolicy says.  The negated match is kept short: when the later
rule's subject ports are all the pass rule's, the subject test and ``ip`` are
left out of it (the later rule implies them); a pass rule that matches every
packet the later rule could (no peers, no ports, same or wider subject) leaves
that rule no ACL at all.  Cost: ovn-controller expands a negated comparison
bit by bit, and a negated address set per element, so a pass rule with a large
peer set makes every later overlapping rule cost flows; keep pass rules narrow
(a namespace, an orchestrator label on the subject) or put them last.

Everything is recomputed when anything it reads changes (an endpoint, its
addresses, a namespace, the spec): O(hub rules x endpoints of all sources) per
batch with such a change, nothing without hub policies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from core.model import Endpoint
from core.model.fabric import FABRIC_SOURCE, MAX_ADMIN_RULES, AdminPolicy, AdminRule
from core.names import RULE, lsp_name, owner_ids
from core.nb.kinds import DesiredRow, FabricView, register
from core.nb.tables.policy import (
    PG_KIND,
    Candidate,
    RowBuilder,
    _block_match,
    _h,
    _ip_set_match,
    _named_destinations,
    _named_groups,
    _port_match,
    candidates,
    peer_endpoints,
)

#: the first rule of the first policy; rule ``i`` of priority ``p`` is ``HUB_TOP - p * MAX_ADMIN_RULES - i``
HUB_TOP = 31999
HUB_BOTTOM = HUB_TOP - 1000 * MAX_ADMIN_RULES + 1  # 2000, above the orchestrator tier's 1000/1001
HAIRPIN_PRIORITY = 32000
KIND = "admin-policy"
#: every subject of an ingress rule (the hub tier's hairpin allow hangs from it)
INGRESS_PG = "hubf_ingress"
_FABRIC = str(FABRIC_SOURCE)


def acl_priority(policy_priority: int, index: int) -> int:
    """The ACL priority of rule ``index`` (of one direction) of a policy of ``policy_priority``."""
    return HUB_TOP - policy_priority * MAX_ADMIN_RULES - index


def pg_name(policy: str) -> str:
    """The Port_Group of a hub-level policy's subject (``hubf_``: no per-source name starts so)."""
    return f"hubf_{_h(_FABRIC, policy)}"


@dataclass(frozen=True)
class _Term:
    """One ACL's match: ``here`` (which ports) and the clauses ANDed to it."""

    here: str
    clauses: tuple[str, ...]
    #: ``here`` is the rule's whole subject group (not a named port's subset of it)
    whole_subject: bool

    @property
    def match(self) -> str:
        return " && ".join((self.here, *self.clauses))


@dataclass(frozen=True)
class _Compiled:
    """A rule, compiled: the OR of its terms is its match."""

    policy: AdminPolicy
    index: int
    rule: AdminRule
    pg: str
    subject: frozenset[str]
    terms: tuple[_Term, ...]
    ids: dict[str, str]

    @property
    def priority(self) -> int:
        return acl_priority(self.policy.priority, self.index)


def admin_rows(policies: Sequence[AdminPolicy], cands: Sequence[Candidate], hub_id: str, hairpin_ip: str = "") -> list[DesiredRow]:
    """Every Port_Group, Address_Set and ACL the hub-level ``policies`` need over
    ``cands`` (the endpoints of every source, with their selector labels); see the
    module docstring.  Deterministic: the same input gives equal rows."""
    if not policies:
        return []
    b = RowBuilder(FABRIC_SOURCE, hub_id)
    ordered = sorted(policies, key=lambda p: (p.priority, p.name))
    compiled: dict[str, list[_Compiled]] = {"in": [], "eg": []}
    ingress_subjects: set[str] = set()
    for pol in ordered:
        chosen = peer_endpoints(pol.subject, None, cands)
        subject = frozenset(lsp_name(ep) for ep in chosen)
        pg = pg_name(pol.name)
        b.port_group(pg, subject, _ids(pol, hub_id))
        if pol.ingress:
            ingress_subjects |= subject
        for direction, rules in (("in", pol.ingress), ("eg", pol.egress)):
            for i, rule in enumerate(rules[:MAX_ADMIN_RULES]):  # validated; never spill into the next policy's band
                compiled[direction].append(_compile(b, pol, pg, subject, direction, i, rule, chosen, cands, hub_id))
    for direction, done in compiled.items():
        _emit(b, direction, done)
    if ingress_subjects and hairpin_ip:
        ids = owner_ids(FABRIC_SOURCE, KIND, "", "", "hairpin", hub_id)
        b.port_group(INGRESS_PG, ingress_subjects, ids)
        fam = "ip6" if ":" in hairpin_ip else "ip4"
        b.acl(INGRESS_PG, "to-lport", HAIRPIN_PRIORITY, f"outport == @{INGRESS_PG} && {fam}.src == {hairpin_ip}", "allow-related", ids)
    return list(b.rows.values())


def _ids(pol: AdminPolicy, hub_id: str, rule: str = "") -> dict[str, str]:
    ids = owner_ids(FABRIC_SOURCE, KIND, pol.name, "", pol.name, hub_id)
    if rule:
        ids[RULE] = rule
    return ids


def _compile(
    b: RowBuilder,
    pol: AdminPolicy,
    pg: str,
    subject: frozenset[str],
    direction: str,
    index: int,
    rule: AdminRule,
    chosen: list[Endpoint],
    cands: Sequence[Candidate],
    hub_id: str,
) -> _Compiled:
    """The rule's terms (and its peers' address sets, written now: later rules' negations may name them)."""
    ingress = direction == "in"
    side = "src" if ingress else "dst"
    here = f"{'outport' if ingress else 'inport'} == @{pg}"
    ids = _ids(pol, hub_id, f"{'ingress' if ingress else 'egress'}/{index}")
    selector_peers = [p for p in rule.peers if p.cidr is None]
    blocks = [p for p in rule.peers if p.cidr is not None]
    peer_terms: list[str] = []
    peer_eps: dict[str, Endpoint] = {}
    if selector_peers:
        for peer in selector_peers:
            for ep in peer_endpoints(peer, None, cands):
                peer_eps[lsp_name(ep)] = ep
        ips = [ip for ep in peer_eps.values() for ip in ep.ips]
        base = f"{pg}_{direction}{index}"
        b.address_set(f"{base}_v4", (ip for ip in ips if ":" not in ip), ids)
        b.address_set(f"{base}_v6", (ip for ip in ips if ":" in ip), ids)
        peer_terms += [f"ip4.{side} == ${base}_v4", f"ip6.{side} == ${base}_v6"]
    peer_terms += [_block_match(p, side) for p in blocks]
    peer_clause = (f"({' || '.join(peer_terms)})",) if peer_terms else ()

    terms: list[_Term] = []
    numeric = [pp for pp in rule.ports if not isinstance(pp.port, str)]
    named = [pp for pp in rule.ports if isinstance(pp.port, str)]
    if not rule.ports or numeric:
        ports_clause = (f"({' || '.join(_port_match(pp) for pp in numeric)})",) if numeric else ()
        terms.append(_Term(here, ("ip", *peer_clause, *ports_clause), whole_subject=True))
    for pp in named:
        if ingress:  # the destination is a subject endpoint: those that define the name
            for number, group in sorted(_named_groups(pp, chosen).items()):
                outs = ", ".join(json.dumps(lsp_name(ep)) for ep in group)
                terms.append(_Term(f"outport == {{{outs}}}", ("ip", *peer_clause, f"{pp.protocol}.dst == {number}"), False))
        else:  # the destination is a peer: matching the selectors, inside an ipBlock, or (no peers) any endpoint
            pool = [c.ep for c in cands]
            for number, ips in sorted(_named_destinations(pp, bool(rule.peers), peer_eps.values(), blocks, pool).items()):
                if ips:
                    terms.append(_Term(here, ("ip", f"({_ip_set_match(ips, 'dst')})", f"{pp.protocol}.dst == {number}"), True))
    return _Compiled(pol, index, rule, pg, subject, tuple(terms), ids)


_ACTION = {"allow": "allow-related", "deny": "drop"}


def _emit(b: RowBuilder, direction: str, rules: list[_Compiled]) -> None:
    """The ACLs of one direction's rules, in evaluation order, pass rules subtracted."""
    acl_dir = "to-lport" if direction == "in" else "from-lport"
    passes: list[_Compiled] = []
    for r in rules:
        if r.rule.action == "pass":
            passes.append(r)
            continue
        negations: list[str] = []
        shadowed = False
        for p in passes:
            if not (p.subject & r.subject):
                continue  # no port both could match: the pass never meets this rule's traffic
            neg = _negation(p, covers=r.subject <= p.subject)
            if neg is None:
                shadowed = True  # the pass takes everything this rule could match
                break
            if neg:
                negations.append(neg)
        if shadowed:
            continue
        suffix = "".join(f" && !({n})" for n in negations)
        for t in r.terms:
            b.acl(r.pg, acl_dir, r.priority, t.match + suffix, _ACTION[r.rule.action], r.ids)


def _negation(p: _Compiled, covers: bool) -> str | None:
    """The text to negate for pass rule ``p`` inside a later rule ("" : ``p``
    matches nothing; None: everything the later rule could).  ``covers``: the
    later rule's subject is inside ``p``'s, so ``p``'s subject test (and ``ip``,
    which every hub term has) go without saying."""
    parts: list[str] = []
    for t in p.terms:
        if covers and t.whole_subject:
            rest = [c for c in t.clauses if c != "ip"]
            if not rest:
                return None
            parts.append(" && ".join(rest))
        else:
            parts.append(t.match)
    if len(parts) == 1:
        return parts[0]
    return " || ".join(f"({x})" for x in parts)


# ---------------------------------------------------------------- kinds
def derive(view: FabricView) -> list[DesiredRow]:
    """Nothing until every expected source has listed: a subject, a peer set or a
    subtraction computed without one source's endpoints would be wrong (a restart would
    briefly drop what an allow admits), and NB keeps the rows derived before meanwhile
    (the fabric's rows are collected only once every source listed)."""
    spec = view.index.spec
    if not spec.policies or not view.synced:
        return []
    cands: list[Candidate] = []
    for src in sorted(view.sources):
        st = view.sources[src]
        if src == _FABRIC or not st.endpoints:
            continue
        eps = sorted(view.endpoints(src), key=lambda e: (e.network, e.uid))
        cands += candidates(eps, st.namespaces)
    return admin_rows(spec.policies, cands, view.hub_id, spec.hairpin_snat_ip)


register(PG_KIND, fabric=derive)
