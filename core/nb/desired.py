"""The desired state: what every source says exists, and the rows it implies.

:meth:`DesiredState.apply` folds one input event in and *marks* the keys whose
desired row changed (through the ``mark`` callback); it never writes.  Two
kinds are direct: an endpoint is one port, a network (or any endpoint or
service on it) one switch.  Everything else is *derived* (services → load
balancers, policies → port groups, address sets, ACLs, endpoints and services
→ DNS records), and derived **incrementally**: each deriver of ``DERIVERS``
has an incremental form (``kinds.Incremental``, registered with it), one per
source.  Events only note what they touched (endpoint keys; services,
policies and namespaces with their value before the first change); before
each batch :meth:`derive` tells each stale source's derivers what changed
(an endpoint as the derivers see it: programmed, yielded ones left out, with
the addresses OVN allocated filled in) and they answer the rows of the *units*
that changed: one policy's rows (its port group, address sets, ACLs), one
default-deny group, one service's balancers, one namespace's DNS records.
A unit's rows are compared with its previous ones and only changed keys are
marked; a policy's or a default-deny port group's members say what joined and
left since the last time (``kinds.Members``), so the member index here and the
plan's diff move by that change, not by the whole column.  So an endpoint event costs the policies whose groups it joins or
leaves (found by namespace and by label, ``tables/policy.PolicyIndex``), its
namespace's DNS records and nothing of the services; a policy or service
event costs its own rows.  The derivers are loaded from the whole state the
first time a source has something to derive and after a fabric change
(routers, DNS zone, hairpin address); a source without services, policies or
DNS costs nothing.  The pure whole-source derivers stay the oracle:
:meth:`DesiredState.recomputed` is what ``SourceState.derived`` must equal
after every derive (``tests/unit/nb/test_incremental.py`` checks it after
every step of random change sequences).  The fabric's rows (routers, NAT,
hub-level policies) are still recomputed as a whole when anything they read
changed.

Indexes, kept with the derived rows: the rows hanging from or attached to a
parent (a re-created switch takes its balancers back) and the rows holding a
member (a port whose insert is recorded joins its port groups).

**One port per workload.**  Endpoints of different sources that declare the
same workload (label ``ovn-hub.io/workload``, :data:`~core.model.LABEL_WORKLOAD`:
a Mesos task the Docker adapter also sees as ``mesos-<ContainerID>``) are all
kept, but only those of the source with the highest
:func:`~core.model.workload_rank` (the scheduling orchestrator > another
orchestrator adapter > docker > cni; ties: the lowest source name) are
programmed: they are in ``ports``; a winner without a MAC takes the MAC a yielded
endpoint of its workload has on the same network name (the runtime plugged the
interface; the orchestrator may not know its address).  The others are
``yielded``: no port, and left out of their source's derived rows (DNS records,
policy address sets and port groups, floating IPs); they come back when the
winner's go.

**Shared networks.**  A Network declared ``shared`` is one switch
``ovn-hub/net/<name>`` for every source that declares it (``core.names.switch_of``
resolves a (source, network) to its switch; every caller uses it).  The switch
is wanted while a source declares it (a ``mirror`` declaration only while its
source has endpoints or services on it), built from the declaration of the
lowest source name (mirrors last); a declaration with other subnets or another
gateway is a ``shared-conflict`` rejection (``rejections``, drained by the
programmer), and its endpoints still hang from the shared switch.  The row is
the fabric's (its GC waits until every expected source listed), and NB's rule 2
keeps it while ports of any source hang from it.
"""

from __future__ import annotations

import functools
import ipaddress
import time
from collections import Counter
from collections.abc import Callable

import msgspec

from core.gcpause import gc_paused
from core.model import (
    Delete,
    Endpoint,
    InputEvent,
    Namespace,
    Network,
    ObjectKind,
    Policy,
    Rejected,
    Service,
    Snapshot,
    Source,
    Upsert,
    share_names,
    workload_of,
    workload_rank,
)
from core.model.fabric import FABRIC_SOURCE, Fabric
from core.names import SHARED_PREFIX, SHARED_SOURCE, ls_name, lsp_name, switch_of
from core.nb.kinds import (
    DERIVERS,
    FABRIC_DERIVERS,
    INCREMENTAL,
    KINDS,
    DesiredRow,
    FabricView,
    Incremental,
    Members,
    SourceView,
    Unit,
)
from core.nb.tables import port, switch
from core.nb.tables.fabric import FabricIndex

_FABRIC = str(FABRIC_SOURCE)


#: mark(table, key, now): a desired row changed (``now`` for an endpoint's port: its event time)
Mark = Callable[[str, str, "float | None"], None]


class SourceState:
    def __init__(self) -> None:
        self.networks: dict[str, Network] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.namespaces: dict[str, Namespace] = {}
        self.services: dict[str, Service] = {}
        self.policies: dict[str, Policy] = {}
        #: the derived rows (every unit's), by table and key
        self.derived: dict[tuple[str, str], DesiredRow] = {}
        self.synced = False
        #: the incremental derivers (``INCREMENTAL``, in order; None: built and loaded by the next
        #: derive), the rows of each of their units, and the endpoints they were told of
        #: (programmed ones, OVN-allocated addresses filled in)
        self.engines: list[Incremental] | None = None
        self.units: dict[tuple[int, Unit], dict[tuple[str, str], DesiredRow]] = {}
        self.told: dict[str, Endpoint] = {}
        #: what changed since the last derive: endpoint keys; services, policies and namespaces
        #: with their value before the first change
        self.touched_eps: set[str] = set()
        self.touched_svcs: dict[str, Service | None] = {}
        self.touched_pols: dict[str, Policy | None] = {}
        self.touched_ns: dict[str, Namespace | None] = {}

    def unload(self) -> None:
        """Forget the incremental derivers: the next derive loads them from the whole state."""
        self.engines = None
        self.told = {}
        self.forget_touched()

    def forget_touched(self) -> None:
        self.touched_eps = set()
        self.touched_svcs = {}
        self.touched_pols = {}
        self.touched_ns = {}


class DesiredState:
    def __init__(self, hub_id: str, mark: Mark) -> None:
        self.hub_id = hub_id
        self.mark = mark
        self.sources: dict[str, SourceState] = {}
        #: endpoints by port name (the port kind's desired rows, computed at diff time)
        self.ports: dict[str, Endpoint] = {}
        #: every kind's desired rows, by table and key (ports: the fabric's router ports)
        self.rows: dict[str, dict[str, DesiredRow]] = {t: {} for t in KINDS}
        self.switch_refs: Counter[str] = Counter()  # switch name -> endpoints and services on it
        self._switch_net: dict[str, Network | None] = {}  # the Network a switch row was built from
        self.stale: set[str] = set()  # sources with changes their derived rows have not seen
        self.children_of: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self.holders: dict[tuple[str, str], set[tuple[str, str]]] = {}
        # the fabric: its spec, its index (rebuilt lazily when a network or the spec changed),
        # its derived rows, and its "synced": the fabric's rows are collected only once every
        # expected source delivered its snapshot, so a restart never deletes the router port
        # of a network whose source has not listed yet (memberships: see plan.diff)
        self.fabric = FabricIndex()
        self._index_stale = False
        self.fabric_stale = False
        self.fabric_derived: dict[tuple[str, str], DesiredRow] = {}
        self.fabric_open = False
        #: the sources the fabric waits for (None: every source known)
        self.expected: set[str] | None = None
        #: endpoints that ask for a floating IP, by port name (the fabric's NAT rows)
        self.floating: dict[str, Endpoint] = {}
        #: every endpoint declaring a workload, by workload and port name; and the ones not
        #: programmed because another source's endpoints of their workload are (module docstring)
        self.claims: dict[str, dict[str, Endpoint]] = {}
        self.yielded: dict[str, Endpoint] = {}
        #: shared networks: name -> source -> its declaration (module docstring)
        self.shared: dict[str, dict[str, Network]] = {}
        #: (source, network) -> why its shared declaration is not the one the switch is built from
        self.conflicts: dict[tuple[str, str], str] = {}
        #: rejections not reported yet (a conflict that appeared); the programmer drains them
        self.rejections: list[Rejected] = []
        self._source_objs: dict[Source, Source] = {}  # one Source object per source (_compact)
        self._names: dict[str, str] = {}  # one copy of each namespace, kind, network, node, state (_compact)

    def state(self, source: Source) -> SourceState:
        st = self.sources.get(str(source))
        if st is None:
            st = self.sources[str(source)] = SourceState()
        return st

    def synced(self, source: str) -> bool:
        if source == _FABRIC:
            return self.fabric_open
        st = self.sources.get(source)
        return st is not None and st.synced

    def set_fabric(self, spec: Fabric) -> None:
        """A new fabric spec (start, SIGHUP): everything it shapes is derived again."""
        if spec == self.fabric.spec:
            return
        self.fabric = FabricIndex(spec=spec)
        self._index_stale = True
        self.fabric_stale = True
        self._rederive_all()  # DNS, hairpin and hub-level policy rows read the spec

    def _rederive_all(self) -> None:
        for st in self.sources.values():
            st.unload()
        self.stale.update(self.sources)

    def expect(self, sources: set[str]) -> None:
        """The sources the fabric waits for before its first derivation."""
        self.expected = set(sources)

    def allocated(self, port: str) -> None:
        """northd allocated ``port`` (an endpoint with no address of its own) an
        address: the derived rows that hold endpoint IPs follow, its source's
        policy address sets and DNS records, and the fabric's hub-level policies
        and its floating IP's NAT."""
        ep = self.ports.get(port)
        if ep is None:
            return
        st = self.sources.get(str(ep.source))
        if st is not None:
            self._touch_ep(st, str(ep.source), ep.key)
        if port in self.floating or self.fabric.spec.policies:
            self.fabric_stale = True

    def _floating_label(self, ep: Endpoint) -> bool:
        return any(e.floating_ip_label in ep.labels for e in self.fabric.spec.externals)

    def _dns_on(self, ep: Endpoint) -> bool:
        return self.fabric.spec.dns.enabled and self.switch_of(ep.source, ep.network) in self.fabric.router_of

    def switch_of(self, source: Source | str, network: str) -> str:
        """The switch ``source``'s endpoints and services on ``network`` hang from."""
        st = self.sources.get(str(source))
        return switch_of(source, network, st.networks if st is not None else None)

    def want(self, table: str, key: str) -> DesiredRow | None:
        return self.rows[table].get(key)

    # ------------------------------------------------------------ events
    def apply(self, event: InputEvent) -> bool:
        """Fold one input event in; False if it is not input (nothing to do)."""
        now = time.monotonic()
        if isinstance(event, Upsert):
            obj = event.obj
            st = self.state(obj.source)
            if isinstance(obj, Endpoint):
                self._set_endpoint(st, obj, now)
            elif isinstance(obj, Network):
                if st.networks.get(obj.name) != obj:
                    self._resharing(st, obj.source, st.networks.get(obj.name), obj)
                    st.networks[obj.name] = obj
                    self._refresh_switch(obj.source, obj.name)
            elif isinstance(obj, Service):
                self._set_service(st, obj, obj.source, obj.uid)
            elif isinstance(obj, Namespace):
                self._set_other(st, obj.source, "namespace", obj.name, obj)
            else:
                self._set_other(st, obj.source, "policy", obj.uid, obj)
        elif isinstance(event, Delete):
            st = self.state(event.source)
            if event.kind == "endpoint":
                self._del_endpoint(st, event.source, event.key, now)
            elif event.kind == "network":
                old_net = st.networks.pop(event.key, None)
                if old_net is not None:
                    self._resharing(st, event.source, old_net, None)
                    self._refresh_switch(event.source, event.key)
            elif event.kind == "service":
                if event.key in st.services:
                    self._set_service(st, None, event.source, event.key)
            elif event.kind in ("namespace", "policy"):
                if event.key in (st.namespaces if event.kind == "namespace" else st.policies):
                    self._set_other(st, event.source, event.kind, event.key, None)
        elif isinstance(event, Snapshot):
            with gc_paused():
                self._apply_snapshot(event, now)
        else:
            return False
        return True

    def _set_endpoint(self, st: SourceState, ep: Endpoint, now: float, refresh: bool = True) -> bool:
        """``refresh``: the switch is refreshed here (a snapshot refreshes each of its
        networks once, after all its endpoints).  False: ``ep`` was already so."""
        key = ep.key
        old = st.endpoints.get(key)
        if old == ep:
            return False
        self._compact(ep)
        if old is None:
            self.switch_refs[ls_name(ep.source, ep.network)] += 1
        st.endpoints[key] = ep
        self._touch_ep(st, str(ep.source), key)
        if self.fabric.spec.policies:
            self.fabric_stale = True  # hub-level policies select endpoints of every source
        name = lsp_name(ep)
        self._program(name, ep, old, now)
        if self.fabric.spec.externals and (self._floating_label(ep) or name in self.floating):
            if self._floating_label(ep):
                self.floating[name] = ep
            else:
                del self.floating[name]
            self.fabric_stale = True
        self.mark(port.TABLE, name, now)
        if refresh:
            self._refresh_switch(ep.source, ep.network)
        return True

    def _compact(self, ep: Endpoint) -> None:
        """One copy of the names endpoints repeat (source, namespace, kind,
        network, node, state) and of empty labels (:func:`core.model.share_names`),
        in place, so the adapter's cache and the event share the compact endpoint too."""
        src = self._source_objs.setdefault(ep.source, ep.source)
        if src is not ep.source:
            msgspec.structs.force_setattr(ep, "source", src)
        share_names(ep, self._names)

    def _del_endpoint(self, st: SourceState, source: Source, key: str, now: float) -> None:
        ep = st.endpoints.pop(key, None)
        if ep is None:
            return
        self._touch_ep(st, str(source), key)
        if self.fabric.spec.policies:
            self.fabric_stale = True
        name = lsp_name(ep)
        self._program(name, None, ep, now)
        if self.floating.pop(name, None) is not None:
            self.fabric_stale = True
        self.mark(port.TABLE, name, now)
        self._unref_switch(source, ep.network)

    def _program(self, name: str, ep: Endpoint | None, old: Endpoint | None, now: float) -> None:
        """Port ``name`` is now ``ep`` (None: gone): in ``ports``, unless it yields to
        another source's endpoint of its workload (the caller marks ``name`` itself)."""
        was = workload_of(old) if old is not None else ""
        wl = workload_of(ep) if ep is not None else ""
        if not was and not wl:  # the common case: no workload declared
            if ep is None:
                self.ports.pop(name, None)
            else:
                self.ports[name] = ep
            return
        if was and was != wl:
            claims = self.claims.get(was, {})
            claims.pop(name, None)
            if not claims:
                self.claims.pop(was, None)
        if ep is None or not wl:
            self.yielded.pop(name, None)
            if ep is None:
                self.ports.pop(name, None)
            else:
                self.ports[name] = ep
        else:
            self.claims.setdefault(wl, {})[name] = ep
        for w in {was, wl} - {""}:
            self._elect(w, name, now)

    def _elect(self, workload: str, current: str, now: float) -> None:
        """Program the endpoints of ``workload``'s winning source, yield the others'."""
        claims = self.claims.get(workload)
        if not claims:
            return
        winner = min(claims.values(), key=lambda e: (-workload_rank(e), str(e.source))).source
        for n, e in claims.items():
            if e.source == winner:
                if e.mac is None:  # the runtime knows the MAC the workload's interface has
                    mac = next((o.mac for o in claims.values() if o.source != winner and o.network == e.network
                                and o.mac), None)  # fmt: skip
                    e = msgspec.structs.replace(e, mac=mac) if mac else e
                changed = self.yielded.pop(n, None) is not None or self.ports.get(n, e) != e
                self.ports[n] = e
            else:
                changed = n in self.ports or n not in self.yielded
                self.ports.pop(n, None)
                self.yielded[n] = e
            if changed and n != current:  # another source's port comes back or goes
                self.mark(port.TABLE, n, now)
            if changed:  # its DNS records and policy peers follow
                self._touch_ep(self.state(e.source), str(e.source), e.key)
                self.fabric_stale = self.fabric_stale or bool(self.fabric.spec.policies or self.floating)

    def _programmed(self, eps: list[Endpoint]) -> list[Endpoint]:
        """``eps`` without the yielded ones (see the module docstring)."""
        if not self.yielded:
            return eps
        return [ep for ep in eps if self.yielded.get(lsp_name(ep)) is not ep]

    def _unref_switch(self, source: Source, network: str) -> None:
        name = ls_name(source, network)
        self.switch_refs[name] -= 1
        if self.switch_refs[name] <= 0:
            del self.switch_refs[name]
        self._refresh_switch(source, network)

    def _set_service(self, st: SourceState, svc: Service | None, source: Source, uid: str) -> None:
        """Services hold their switch in the desired state like endpoints do:
        a load balancer needs a switch to hang from."""
        old = st.services.get(uid)
        if old == svc:
            return
        if st.engines is not None:
            st.touched_svcs.setdefault(uid, old)
        if svc is None:
            del st.services[uid]
        else:
            st.services[uid] = svc
        old_net = old.network if old is not None else None
        new_net = svc.network if svc is not None else None
        if old_net != new_net:
            if new_net is not None:
                self.switch_refs[ls_name(source, new_net)] += 1
                self._refresh_switch(source, new_net)
            if old_net is not None:
                self._unref_switch(source, old_net)
        self.stale.add(str(source))
        if self.fabric.spec.routers:
            self.fabric_stale = True  # a router's load-balancer group holds its services' balancers

    def _set_other(self, st: SourceState, source: Source, kind: ObjectKind, key: str, obj: Namespace | Policy | None) -> None:
        """Namespaces and policies only feed the derived rows."""
        table: dict[str, Namespace | Policy] = st.namespaces if kind == "namespace" else st.policies  # type: ignore[assignment]
        old = table.get(key)
        if old == obj:
            return
        self._touch_other(st, kind, key, old)
        if obj is None:
            del table[key]
        else:
            table[key] = obj
        if kind == "policy" or st.policies:
            self.stale.add(str(source))
        if kind == "namespace" and self.fabric.spec.policies:
            self.fabric_stale = True  # hub-level namespace selectors read every source's namespaces

    def _touch_ep(self, st: SourceState, src: str, key: str) -> None:
        """Endpoint ``key`` of ``src`` changed (or its programming or its allocated addresses)."""
        if st.engines is not None:
            st.touched_eps.add(key)
            self.stale.add(src)
        elif st.policies or st.services or st.derived or self.fabric.router_of:
            self.stale.add(src)  # the derivers will be loaded

    def _touch_other(self, st: SourceState, kind: ObjectKind, key: str, old: Namespace | Policy | None) -> None:
        if st.engines is None:
            return
        if kind == "namespace":
            st.touched_ns.setdefault(key, old)  # type: ignore[arg-type]
        else:
            st.touched_pols.setdefault(key, old)  # type: ignore[arg-type]

    def _resharing(self, st: SourceState, source: Source, old: Network | None, new: Network | None) -> None:
        """A network of ``source`` became shared or stopped being: the switch its
        services' balancers and its DNS records hang from changed, and the
        incremental derivers know units, not switches: they are loaded again."""
        if bool(old is not None and old.shared) != bool(new is not None and new.shared) and st.engines is not None:
            st.unload()
            self.stale.add(str(source))

    def _refresh_switch(self, source: Source, network: str) -> None:
        """The switch of ``network`` is wanted while a Network object, an
        endpoint or a service is on it.  Its row is rebuilt only when the
        Network object changed (this runs once per endpoint event)."""
        name = ls_name(source, network)
        st = self.sources.get(str(source))
        net = st.networks.get(network) if st is not None else None
        if (net is not None and net.shared) or network in self.shared:
            self._refresh_shared(str(source), network, net if net is not None and net.shared else None)
            if net is not None and net.shared:
                net = None  # the source's own switch is not wanted: its endpoints are on the shared one
        rows = self.rows[switch.TABLE]
        if self._switch_net.get(name) != net and self.fabric.spec.routers:
            self._index_stale = True  # the networks a router joins may have changed
        if (self.switch_refs.get(name, 0) > 0 and self.switch_of(source, network) == name) or net is not None:
            if name in rows and self._switch_net.get(name) == net:
                return  # unchanged
            rows[name] = DesiredRow(switch.TABLE, name, str(source), switch.ls_columns(source, network, net, self.hub_id))
            self._switch_net[name] = net
        elif rows.pop(name, None) is None:
            return  # was not wanted either
        else:
            self._switch_net.pop(name, None)
        self.mark(switch.TABLE, name, None)

    def _refresh_shared(self, source: str, network: str, net: Network | None) -> None:
        """``source`` declares shared ``network`` as ``net`` (None: not, or no more):
        the shared switch's declarations, its conflicts, and whether it is wanted."""
        decl = self.shared.get(network, {})
        if decl.get(source) != net:
            if net is None:
                decl.pop(source, None)
            else:
                decl[source] = net
            if decl:
                self.shared[network] = decl
            else:
                self.shared.pop(network, None)
            self._check_conflicts(network)
        name = ls_name(SHARED_SOURCE, network)
        winner = _winner(decl)[1] if decl else None
        wanted = any(not n.mirror or self.switch_refs.get(ls_name(s, network), 0) > 0 for s, n in decl.items())
        rows = self.rows[switch.TABLE]
        if wanted:
            if name in rows and self._switch_net.get(name) == winner:
                return
            rows[name] = DesiredRow(switch.TABLE, name, _FABRIC,
                                    switch.ls_columns(SHARED_SOURCE, network, winner, self.hub_id, shared=True))  # fmt: skip
            self._switch_net[name] = winner
        elif rows.pop(name, None) is None:
            return
        else:
            self._switch_net.pop(name, None)
        if self.fabric.spec.routers:
            self._index_stale = True
        self.mark(switch.TABLE, name, None)

    def _check_conflicts(self, network: str) -> None:
        """Declarations of shared ``network`` that differ from the winner's are rejected (once)."""
        decl = self.shared.get(network, {})
        found: dict[tuple[str, str], str] = {}
        if decl:
            wsrc, win = _winner(decl)
            for src, n in sorted(decl.items()):
                if src != wsrc and _shape(n) != _shape(win):
                    found[(src, network)] = (
                        f"shared network {network!r} of {src} (subnets {', '.join(n.subnets) or 'none'}, gateway"
                        f" {n.gateway or 'none'}) differs from {wsrc}'s (subnets {', '.join(win.subnets) or 'none'},"
                        f" gateway {win.gateway or 'none'}), which switch {SHARED_PREFIX}{network} keeps"
                        " (the lowest source name wins, mirrors last)"
                    )  # fmt: skip
        for key in [k for k in self.conflicts if k[1] == network and k not in found]:
            del self.conflicts[key]
        for key, why in found.items():
            if self.conflicts.get(key) != why:
                self.conflicts[key] = why
                self.rejections.append(Rejected(source=Source.parse(key[0]), reason="shared-conflict", message=why,
                                                ref=f"{SHARED_PREFIX}{network}"))  # fmt: skip

    def _apply_snapshot(self, snap: Snapshot, now: float) -> None:
        st = self.state(snap.source)
        new_eps: dict[str, Endpoint] = {}
        new_nets: dict[str, Network] = {}
        others: list[Namespace | Service | Policy] = []
        for o in snap.objects:
            if isinstance(o, Endpoint):
                new_eps[o.key] = o
            elif isinstance(o, Network):
                new_nets[o.name] = o
            else:
                others.append(o)
        new_svcs = {o.uid: o for o in others if isinstance(o, Service)}
        for uid in [u for u in st.services if u not in new_svcs]:
            self._set_service(st, None, snap.source, uid)
        for svc in new_svcs.values():
            self._set_service(st, svc, snap.source, svc.uid)
        new_ns = {o.name: o for o in others if isinstance(o, Namespace)}
        new_pols = {o.uid: o for o in others if isinstance(o, Policy)}
        if new_ns != st.namespaces or new_pols != st.policies:
            if new_ns != st.namespaces and self.fabric.spec.policies:
                self.fabric_stale = True
            for key in st.namespaces.keys() | new_ns.keys():
                if st.namespaces.get(key) != new_ns.get(key):
                    self._touch_other(st, "namespace", key, st.namespaces.get(key))
            for key in st.policies.keys() | new_pols.keys():
                if st.policies.get(key) != new_pols.get(key):
                    self._touch_other(st, "policy", key, st.policies.get(key))
            st.namespaces = new_ns
            st.policies = new_pols
            self.stale.add(str(snap.source))
        for key in [k for k in st.endpoints if k not in new_eps]:
            self._del_endpoint(st, snap.source, key, now)
        old_nets = st.networks
        st.networks = new_nets
        for name in set(old_nets) | set(new_nets):
            if old_nets.get(name) != new_nets.get(name):
                self._resharing(st, snap.source, old_nets.get(name), new_nets.get(name))
                self._refresh_switch(snap.source, name)
        networks: dict[tuple[Source, str], None] = {}  # (in order: each refreshed as its first endpoint's would be)
        for ep in new_eps.values():
            if self._set_endpoint(st, ep, now, refresh=False):
                networks[(ep.source, ep.network)] = None
        for source, network in networks:  # (endpoints only add references here: once per network is the same)
            self._refresh_switch(source, network)

    # ------------------------------------------------------------ derived rows
    def derive(self, with_ips: Callable[[Endpoint], Endpoint]) -> None:
        """Recompute the derived rows of every stale source (pure functions of
        its desired state) and of the fabric, and mark the keys whose desired
        row changed.  ``with_ips``: an endpoint with the addresses OVN allocated to it."""
        if self._index_stale:
            self._index_stale = False
            nets = [(src, n) for src, st in self.sources.items() for n in st.networks.values() if not n.shared]
            nets += [(SHARED_SOURCE, n) for k, n in self._switch_net.items() if n is not None and k.startswith(SHARED_PREFIX)]
            new = FabricIndex.build(self.fabric.spec, nets)
            if new.signature() != self.fabric.signature() or not self.fabric_derived:
                self.fabric_stale = True
                self._rederive_all()  # DNS rows hang from every switch of their router
            self.fabric = new
        while self.stale:
            src = self.stale.pop()
            st = self.sources.get(src)
            if st is not None:
                self._derive_source(src, st, with_ips)
        if not self.fabric_open and self._fabric_ready():
            self.fabric_open = True  # the fabric's rows may be collected from now on
            self.fabric_stale = self.fabric_stale or bool(self.fabric.spec.policies)  # they waited for it
        if self.fabric_stale:
            self.fabric_stale = False
            sources = self.sources
            programmed = self._programmed

            def endpoints(src: str) -> list[Endpoint]:
                st = sources.get(src)
                return [with_ips(ep) for ep in programmed(list(st.endpoints.values()))] if st is not None else []

            floating = programmed(list(self.floating.values()))
            fview = FabricView(self.fabric, sources, self.hub_id, endpoints, [with_ips(ep) for ep in floating],
                               self.fabric_open)  # fmt: skip
            frows: list[DesiredRow] = []
            for fderive in FABRIC_DERIVERS:
                frows += fderive(fview)
            new_f = {(r.table, r.key): r for r in frows}
            if new_f != self.fabric_derived:
                old_f, self.fabric_derived = self.fabric_derived, new_f
                self._replace(old_f, new_f)

    def _derive_source(self, src: str, st: SourceState, with_ips: Callable[[Endpoint], Endpoint]) -> None:
        """Bring the derived rows of ``src`` up to date: its incremental derivers are
        told what changed and answer the units it touched (or, the first time and
        after a fabric change, are loaded from the whole state)."""
        wanted = bool(st.services or st.policies or st.derived or (self.fabric.router_of and st.endpoints))
        source = Source.parse(src)
        if st.engines is None:
            st.forget_touched()
            if not wanted:
                return
            eps = functools.partial(_filled, with_ips, self._programmed(list(st.endpoints.values())))
            view = SourceView(source, st, self.hub_id, eps, self.fabric)
            st.told = {ep.key: ep for ep in view.endpoints}
            engines = st.engines = [make() for make in INCREMENTAL]
            for e in engines:
                e.load(view)
            old = st.derived
            st.units, st.derived = {}, {}
            for i, e in enumerate(engines):
                for unit, rows in e.rows(view).items():
                    if rows:
                        got = st.units[(i, unit)] = {(r.table, r.key): r for r in rows}
                        st.derived.update(got)
            self._replace(old, st.derived)
        else:
            self._tell(st, with_ips)
            told = st.told
            view = SourceView(source, st, self.hub_id, lambda: list(told.values()), self.fabric)
            for i, e in enumerate(st.engines):
                for unit, rows in e.rows(view).items():
                    prev = st.units.pop((i, unit), {})
                    now = {(r.table, r.key): r for r in rows}
                    if now:
                        st.units[(i, unit)] = now
                    if now != prev:
                        for tk in prev.keys() - now.keys():
                            del st.derived[tk]
                        st.derived.update(now)
                        self._replace(prev, now)
        if not st.derived and not wanted:
            st.unload()  # nothing derives from this source any more: endpoint events cost nothing again

    def _tell(self, st: SourceState, with_ips: Callable[[Endpoint], Endpoint]) -> None:
        """Tell the derivers of ``st`` what changed since they last heard."""
        engines = st.engines
        assert engines is not None
        for name, was in st.touched_ns.items():
            ns = st.namespaces.get(name)
            if ns != was:
                for e in engines:
                    e.namespace(name, was, ns)
        for uid, old_pol in st.touched_pols.items():
            pol = st.policies.get(uid)
            if pol != old_pol:
                for e in engines:
                    e.policy(old_pol, pol)
        for uid, old_svc in st.touched_svcs.items():
            svc = st.services.get(uid)
            if svc != old_svc:
                for e in engines:
                    e.service(old_svc, svc)
        yielded = self.yielded
        for key in st.touched_eps:
            ep = st.endpoints.get(key)
            new = with_ips(ep) if ep is not None and not (yielded and yielded.get(lsp_name(ep)) is ep) else None
            old = st.told.get(key)
            if old == new:
                continue
            if new is None:
                del st.told[key]
            else:
                st.told[key] = new
            for e in engines:
                e.endpoint(old, new)
        st.forget_touched()

    def recomputed(self, source: str, with_ips: Callable[[Endpoint], Endpoint]) -> dict[tuple[str, str], DesiredRow]:
        """The oracle: the derived rows of ``source`` recomputed as a whole by the
        pure ``DERIVERS`` (what ``SourceState.derived`` must equal after every derive)."""
        st = self.sources.get(source)
        if st is None:
            return {}
        eps = functools.partial(_filled, with_ips, self._programmed(list(st.endpoints.values())))
        view = SourceView(Source.parse(source), st, self.hub_id, eps, self.fabric)
        return {(r.table, r.key): r for derive in DERIVERS for r in derive(view)}

    def _fabric_ready(self) -> bool:
        if self.expected is not None:
            return all(self.synced(s) for s in self.expected)
        return bool(self.sources) and all(st.synced for st in self.sources.values())

    def _replace(self, old: dict[tuple[str, str], DesiredRow], new: dict[tuple[str, str], DesiredRow]) -> None:
        for tk in old.keys() - new.keys():
            r = old[tk]
            rows = self.rows[r.table]
            if rows.get(r.key) == r:  # (a unit of another source may hold the key by now)
                del rows[r.key]
            self._unindex(r)
            self.mark(r.table, r.key, None)
        for tk, r in new.items():
            prev = old.get(tk)
            if prev == r:
                continue
            self.rows[r.table][r.key] = r
            if prev is not None:
                self._reindex(prev, r)
            else:
                self._index(r)
            self.mark(r.table, r.key, None)

    def _reindex(self, prev: DesiredRow, r: DesiredRow) -> None:
        """Move the indexes from ``prev`` to ``r`` (the same row): only what differs
        (a default-deny group holds every isolated port; one joins or leaves)."""
        kind = KINDS[r.table]
        tk = (r.table, r.key)
        if kind.parent is not None and prev.parents != r.parents:
            for p in prev.parents:
                _drop(self.children_of, (kind.parent.table, p), tk)
            for p in r.parents:
                self.children_of.setdefault((kind.parent.table, p), set()).add(tk)
        if kind.members is None:
            return
        ms = r.members
        if isinstance(ms, Members) and ms.base is prev.members:  # what changed, from the deriver
            gone, came = ms.left, ms.joined
        elif prev.members != ms:
            was, now = set(prev.members), set(ms)
            gone, came = tuple(was - now), tuple(now - was)
        else:
            return
        for m in gone:
            _drop(self.holders, (kind.members.table, m), tk)
        for m in came:
            self.holders.setdefault((kind.members.table, m), set()).add(tk)

    def _index(self, r: DesiredRow) -> None:
        kind = KINDS[r.table]
        if kind.parent is not None:
            for p in r.parents:
                self.children_of.setdefault((kind.parent.table, p), set()).add((r.table, r.key))
        if kind.members is not None:
            for m in r.members:
                self.holders.setdefault((kind.members.table, m), set()).add((r.table, r.key))

    def _unindex(self, r: DesiredRow) -> None:
        kind = KINDS[r.table]
        if kind.parent is not None:
            for p in r.parents:
                _drop(self.children_of, (kind.parent.table, p), (r.table, r.key))
        if kind.members is not None:
            for m in r.members:
                _drop(self.holders, (kind.members.table, m), (r.table, r.key))


def _winner(decl: dict[str, Network]) -> tuple[str, Network]:
    """The declaration a shared switch is built from: not a mirror first, then the lowest source name."""
    return min(decl.items(), key=lambda sn: (sn[1].mirror, sn[0]))


def _shape(net: Network) -> tuple[frozenset[str], str]:
    """What two declarations of one shared network must agree on."""
    return frozenset(str(ipaddress.ip_network(s, strict=False)) for s in net.subnets), net.gateway or ""


def _filled(with_ips: Callable[[Endpoint], Endpoint], eps: list[Endpoint]) -> list[Endpoint]:
    return [with_ips(ep) for ep in eps]


def _drop(index: dict[tuple[str, str], set[tuple[str, str]]], k: tuple[str, str], v: tuple[str, str]) -> None:
    vals = index.get(k)
    if vals is not None:
        vals.discard(v)
        if not vals:
            del index[k]
