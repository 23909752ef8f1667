"""``hubctl normalize --from cloudfoundry``: Cloud Foundry payloads from files → canonical.

Accepts JSON (one document) or JSON lines (one document a line, as ``cfdot
actual-lrps`` prints), each document one of:

* an **ActualLRP** (``cfdot`` JSON: ``process_guid``, ``instance_guid``, …) →
  its Endpoint (joined with the Cloud Controller records of the same input, else
  named from its ``metric_tags``), or nothing when it is not up (CRASHED,
  UNCLAIMED, no instance guid: skip ``not-up``) or is the evacuating twin of
  another record of the same instance (skip ``twin``);
* **Cloud Controller v3** resources, alone or as a list (``{"resources": […]}``):
  apps, processes, spaces, organizations → a space with its organization in the
  input is a Namespace (``org/space``) plus its ``c2c-default`` Policy (and
  ``asg-*`` Policies when the input has security groups); apps, processes and
  organizations name the rest (skip ``joined``); **process stats** → the
  Endpoints of the instances that have an instance guid and an address;
* **policy-server** responses: ``{"policies": […]}`` (c2c, internal or external
  API) → one ``c2c-<app>`` Policy per destination app whose namespace the input
  tells (skip ``no-app`` otherwise); ``{"security_groups": […]}`` → the ``asg-*``
  Policies of every space of the input (skip ``no-space`` when there is none);
  ``{"tags": […]}`` → nothing (skip ``tags``).

Anything else, and text that is not JSON (the BBS documentation's
pseudo-JSON example), is one :class:`~core.model.Invalid` with the reason and
where.  Pure: no file, socket or process.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from core.model import Delete, Invalid, Object, Policy, Source

from .normalize import (
    DEFAULT_SUBNETS,
    LRP,
    Asg,
    C2CPolicy,
    Catalog,
    best_records,
    cc_kind,
    lrp_endpoint,
    lrp_from_json,
    overlay_network,
    parse_c2c,
    parse_cc_resource,
    parse_security_groups,
    platform_objects,
    stats_endpoints,
)

__all__ = ["normalize_text"]

OnSkip = Callable[[str, str], None]
NETWORK = "apps"


def _documents(text: str) -> Iterator[tuple[str, Any] | Invalid]:
    """(where, document) pairs; an Invalid for text that is not JSON."""
    stripped = text.strip()
    if not stripped:
        return
    try:
        yield "", json.loads(stripped)
        return
    except RecursionError:
        yield Invalid("bad-json", "nested too deep")
        return
    except json.JSONDecodeError as whole:
        lines = [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
        try:
            json.loads(lines[0][1])
        except (ValueError, RecursionError):
            yield Invalid("bad-json", f"not JSON or JSON lines: {whole.msg} (line {whole.lineno} column {whole.colno})")
            return
    for i, line in lines:
        try:
            yield f"line {i}: ", json.loads(line)
        except (ValueError, RecursionError) as exc:
            yield Invalid("bad-json", f"line {i}: not JSON: {getattr(exc, 'msg', 'nested too deep')}")


class _Input:
    def __init__(self) -> None:
        self.catalog = Catalog()
        self.lrps: list[tuple[str, LRP]] = []
        self.stats: list[tuple[str, dict[str, Any]]] = []
        self.c2c: list[C2CPolicy] = []
        self.asgs: list[Asg] | None = None
        self.skips: list[tuple[str, str]] = []
        self.bad: list[Invalid] = []
        self.has_policies = False

    def take(self, where: str, doc: Any) -> None:
        if isinstance(doc, list):
            for i, item in enumerate(doc):
                self.take(f"{where}[{i}] ", item)
            return
        if not isinstance(doc, dict):
            self.bad.append(Invalid("not-object", f"{where}a document is {type(doc).__name__}, expected an object"))
            return
        try:
            if "process_guid" in doc:
                self.lrps.append((where, lrp_from_json(doc)))
            elif isinstance(doc.get("resources"), list):
                for i, res in enumerate(doc["resources"]):
                    self.resource(f"{where}resources[{i}]: ", res)
            elif "policies" in doc:
                policies, bad = parse_c2c(doc)
                self.has_policies = True
                self.c2c += policies
                self.bad += [Invalid(b.reason, f"{where}{b}") for b in bad]
            elif "security_groups" in doc:
                groups, bad, _ = parse_security_groups(doc)
                self.asgs = (self.asgs or []) + groups
                self.bad += [Invalid(b.reason, f"{where}{b}") for b in bad]
                for g in groups:
                    self.bad += [Invalid(u.reason, f"{where}{u}") for u in g.unsupported]
            elif "tags" in doc:
                self.skips.append(("tags", f"{where}policy-server tags: the VXLAN marks of the c2c policy groups"))
            else:
                self.resource(where, doc)
        except Invalid as exc:
            self.bad.append(Invalid(exc.reason, f"{where}{exc}"))

    def resource(self, where: str, res: Any) -> None:
        try:
            kind = cc_kind(res) if isinstance(res, dict) else ""
            if kind == "stats":
                self.stats.append((where, res))
                return
            rec = parse_cc_resource(res, kind)
        except Invalid as exc:
            if exc.reason == "unknown-kind":
                exc = Invalid(
                    "unknown-kind",
                    "not an ActualLRP, a CC v3 app, process, process stats, space or organization,"
                    " or a policy-server response",
                )
            self.bad.append(Invalid(exc.reason, f"{where}{exc}"))
            return
        self.catalog.add(rec)
        if kind != "space":
            self.skips.append(("joined", f"{where}CC {kind} {rec.guid}: names and labels of instances and policies"))


def normalize_text(
    text: str, source: Source, *, network: str = NETWORK, on_skip: OnSkip | None = None
) -> Iterator[Object | Delete | Invalid]:
    """Offline normalizer (entry point ``ovn_hub.normalizers``: ``cloudfoundry``)."""
    inp = _Input()
    any_doc = False
    for piece in _documents(text):
        if isinstance(piece, Invalid):
            yield piece
            continue
        any_doc = True
        inp.take(*piece)
    yield from inp.bad
    if not any_doc:
        if on_skip is not None and not text.strip():
            on_skip("empty", "no document in the input")
        return
    skip = on_skip or (lambda reason, message: None)
    for reason, message in inp.skips:
        skip(reason, message)
    wrote_network = False
    best = best_records(rec for _, rec in inp.lrps)
    app_namespaces: dict[str, str] = {}
    for where, rec in inp.lrps:
        if not rec.up:
            skip("not-up", f"{where}ActualLRP {rec.process_guid} index {rec.index} is {rec.state}: no port")
            continue
        if best[rec.instance_guid] is not rec:
            skip("twin", f"{where}ActualLRP {rec.process_guid} index {rec.index} ({rec.presence}): the same instance"
                         f" {rec.instance_guid} as another record, one port")  # fmt: skip
            continue
        try:
            meta = inp.catalog.meta(rec.process_guid, dict(rec.tags))
            ep = lrp_endpoint(rec, source, meta, network)
        except Invalid as exc:
            yield Invalid(exc.reason, f"{where}{exc}")
            continue
        if ep is not None:
            if not wrote_network:
                yield overlay_network(source, network, DEFAULT_SUBNETS)
                wrote_network = True
            app_namespaces.setdefault(meta.app_guid, meta.namespace)
            yield ep
    for where, res in inp.stats:
        try:
            eps = stats_endpoints(res, source, inp.catalog, network)
        except Invalid as exc:
            yield Invalid(exc.reason, f"{where}{exc}")
            continue
        if not eps:
            skip("not-up", f"{where}process stats of {res.get('type')} index {res.get('index')}: no instance address")
        for ep in eps:
            if not wrote_network:
                yield overlay_network(source, network, DEFAULT_SUBNETS)
                wrote_network = True
            yield ep
    try:
        objs = list(platform_objects(source, inp.catalog, inp.c2c, inp.asgs, DEFAULT_SUBNETS,
                                     app_namespaces=app_namespaces))  # fmt: skip
    except Invalid as exc:
        yield exc
        return
    yield from objs
    for guid, space in sorted(inp.catalog.spaces.items()):
        if space.org not in inp.catalog.orgs:
            skip("no-org", f"CC space {guid} ({space.name}): its organization {space.org} is not in the input,"
                           " so its namespace (org/space) is not known")  # fmt: skip
    placed = {o.uid.partition(":")[2] for o in objs if isinstance(o, Policy) and o.uid.startswith("c2c:")}
    for dest in sorted({p.destination for p in inp.c2c} - placed):
        skip("no-app", f"c2c policies to app {dest}: the input has neither the app (with its space and organization)"
                       " nor an instance of it; the hub places them once the Cloud Controller names it")  # fmt: skip
    if inp.asgs is not None and not any(isinstance(o, Policy) and o.uid.startswith("asg-") for o in objs):
        skip("no-space", "security groups: the input has no space (with its organization) to apply them to")
    if inp.has_policies and not inp.c2c and on_skip is not None:
        on_skip("empty", "a policies response with no policy")
