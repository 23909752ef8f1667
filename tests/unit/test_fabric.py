"""The fabric's pure parts: the spec's checks, the index of routed networks,
the config sections, and the rows the fabric and DNS derivers produce."""

from __future__ import annotations

import pytest

from core.model import Endpoint, Invalid, LBRule, Network, Service, Source
from core.model.fabric import ExternalSpec, Fabric, RouterSpec, gateway_of, routed_subnets, validate_fabric
from core.nb.desired import DesiredState
from core.nb.tables.dns import record_name
from core.nb.tables.fabric import FabricIndex
from hub.config import ConfigError, loads

D = Source("docker", "local")
K = Source("k8s", "prod")


def net(src: Source, name: str, *subnets: str, gw: str | None = None) -> Network:
    return Network(source=src, name=name, subnets=subnets, gateway=gw)


def test_patterns_pick_the_first_router_by_name() -> None:
    fab = Fabric(routers=(RouterSpec(name="a", networks=("k8s/*",)), RouterSpec(name="b", networks=("*",))))
    assert fab.router_of(K, "pods") == "a" and fab.router_of(D, "blue") == "b"
    assert Fabric(routers=(RouterSpec(name="a", networks=("docker/local/blue",)),)).router_of(D, "red") == ""


def test_gateways_and_subnets() -> None:
    n = net(D, "blue", "10.1.0.0/24", "fd00:1::/64", gw="10.1.0.254")
    subnets = routed_subnets(n)
    assert [str(s) for s in subnets] == ["10.1.0.0/24", "fd00:1::/64"]
    assert [gateway_of(n, s) for s in subnets] == ["10.1.0.254", "fd00:1::1"]
    two = net(K, "pods", "10.244.1.0/24", "10.244.3.0/24", gw="10.244.1.1")
    assert [gateway_of(two, s) for s in routed_subnets(two)] == ["10.244.1.1", "10.244.3.1"]


def test_index_skips_unrouted_and_overlapping_networks() -> None:
    fab = Fabric(routers=(RouterSpec(name="main"),))
    idx = FabricIndex.build(fab, [
        ("docker/local", net(D, "blue", "10.1.0.0/24")),
        ("docker/local", net(D, "flat")),  # no subnet: L2 only
        ("k8s/prod", net(K, "pods", "10.1.0.128/25")),  # overlaps blue: stays off
    ])  # fmt: skip
    assert idx.router_of == {"docker/local/blue": "main"}
    assert idx.switches("main") == ("docker/local/blue",)
    assert len(idx.problems) == 1 and "k8s/prod/pods" in idx.problems[0] and "overlaps" in idx.problems[0]
    assert [n.cidrs for n in idx.nets["main"]] == [("10.1.0.1/24",)]


def test_spec_checks_name_the_key() -> None:
    ext = ExternalSpec(name="up", router="nope", cidr="172.16.0.0/24", ip="172.16.0.10", chassis=("c",))
    with pytest.raises(Invalid, match=r"external\.up\.router"):
        validate_fabric(Fabric(routers=(RouterSpec(name="main"),), externals=(ext,)))
    bad_ip = ExternalSpec(name="up", router="main", cidr="172.16.0.0/24", ip="10.0.0.1", chassis=("c",))
    with pytest.raises(Invalid, match="inside cidr"):
        validate_fabric(Fabric(routers=(RouterSpec(name="main"),), externals=(bad_ip,)))
    with pytest.raises(Invalid, match="chassis"):
        validate_fabric(Fabric(routers=(RouterSpec(name="main"),), externals=(ExternalSpec(
            name="up", router="main", cidr="172.16.0.0/24", ip="172.16.0.10"),)))  # fmt: skip
    with pytest.raises(Invalid, match="hairpin"):
        validate_fabric(Fabric(hairpin_snat_ip="nope"))


def test_config_sections() -> None:
    cfg = loads("""
[routers.main]
networks = ["docker/*", "k8s/prod/pods"]
[external.uplink]
router = "main"
cidr = "172.16.0.0/24"
ip = "172.16.0.10"
gateway = "172.16.0.1"
chassis = ["gw-1"]
[dns]
zone = "example.internal"
""")
    fab = cfg.fabric_spec()
    assert fab.routers == (RouterSpec(name="main", networks=("docker/*", "k8s/prod/pods")),)
    assert fab.externals[0].chassis == ("gw-1",) and fab.dns.zone == "example.internal"
    with pytest.raises(ConfigError, match="not a configured router"):
        loads('[external.up]\nrouter = "x"\ncidr = "172.16.0.0/24"\nip = "172.16.0.2"\nchassis = ["c"]\n')
    with pytest.raises(ConfigError, match="unknown key"):
        loads('[routers.main]\nnetwork = ["*"]\n')
    with pytest.raises(ConfigError, match="DNS label"):
        loads('[routers.Main_1]\n')


def test_reserved_orchestrator() -> None:
    from core.model import validate

    with pytest.raises(Invalid, match="reserved"):
        validate(net(Source("ovn-hub", "x"), "n", "10.0.0.0/24"))


def test_dns_names() -> None:
    assert record_name("web", "default", "docker/local", "hub") == "web.default.docker.local.hub"
    assert record_name("Web", "Team-A", "k8s/prod", "example.org") == "web.team-a.k8s.prod.example.org"
    assert record_name("bad name", "default", "k8s/prod", "hub") is None
    assert record_name("x" * 64, "default", "k8s/prod", "hub") is None


def _marks() -> tuple[DesiredState, list[tuple[str, str]]]:
    marked: list[tuple[str, str]] = []
    ds = DesiredState("hub1", lambda t, k, now: marked.append((t, k)))
    return ds, marked


def ep(src: Source, uid: str, network: str, ip: str, name: str | None = None, ns: str = "default") -> Endpoint:
    return Endpoint(source=src, uid=uid, namespace=ns, name=name or uid, kind="c", network=network, ips=(ip,))


def test_dns_conflicts_service_wins_and_same_names_merge() -> None:
    from core.model import Snapshot

    ds, _ = _marks()
    ds.set_fabric(Fabric(routers=(RouterSpec(name="main"),)))
    svc = Service(source=K, uid="s", namespace="default", name="db", network="pods",
                  rules=(LBRule(vip="10.96.0.20", port=5432, backends=("10.244.0.5:5432",)),))  # fmt: skip
    ds.apply(Snapshot(source=K, objects=(net(K, "pods", "10.244.0.0/16"), net(K, "other", "10.245.0.0/16"),
                                         ep(K, "a", "pods", "10.244.0.5", name="db"),  # same name as the Service
                                         ep(K, "b", "pods", "10.244.0.6", name="twin"),
                                         ep(K, "b", "other", "10.245.0.6", name="twin"), svc)))  # fmt: skip
    ds.derive(lambda e: e)
    rows = ds.rows["DNS"]
    assert set(rows) == {"ovn-hub/dns/main/k8s/prod/default"}
    row = rows["ovn-hub/dns/main/k8s/prod/default"]
    assert row.columns["records"] == {"db.default.k8s.prod.hub": "10.96.0.20", "twin.default.k8s.prod.hub": "10.244.0.6 10.245.0.6"}
    assert set(row.parents) == {"k8s/prod/pods", "k8s/prod/other"}


def test_fabric_rows_wait_for_nothing_but_deletes_wait_for_every_source() -> None:
    from core.model import Snapshot

    ds, marked = _marks()
    ds.set_fabric(Fabric(routers=(RouterSpec(name="main"),)))
    ds.expect({"docker/local", "k8s/prod"})
    ds.apply(Snapshot(source=D, objects=(net(D, "blue", "10.1.0.0/24"),)))
    ds.state(D).synced = True
    ds.derive(lambda e: e)
    assert ("Logical_Router", "ovn-hub/main") in marked and "ovn-hub/rtos/docker/local/blue" in ds.rows["Logical_Router_Port"]
    assert not ds.synced("ovn-hub/fabric")  # k8s has not listed: nothing of the fabric is collected yet
    ds.apply(Snapshot(source=K, objects=()))
    ds.state(K).synced = True
    ds.derive(lambda e: e)
    assert ds.synced("ovn-hub/fabric")
