"""adapters.mesos.marathon: apps → namespaces and VIP Services, pure."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters.mesos import marathon as mt
from core.model import Invalid, LBRule, Source, validate

SRC = Source("mesos", "test")


def app(app_id: str, *, vips: dict[str, str] | None = None, port: int = 8080, network: str | None = "blue",
        tasks: list[dict[str, Any]] = (), health: bool = False, protocol: str = "tcp", **extra: Any) -> dict[str, Any]:  # type: ignore[assignment]  # fmt: skip
    a: dict[str, Any] = {"id": app_id, "tasks": list(tasks)}
    if network is not None:
        a["networks"] = [{"mode": "container", "name": network}]
    a["container"] = {"type": "MESOS", "portMappings": [{"containerPort": port, "labels": vips or {}, "protocol": protocol}]}
    if health:
        a["healthChecks"] = [{"protocol": "MESOS_HTTP"}]
    a.update(extra)
    return a


def task(tid: str, ip: str | None, state: str = "TASK_RUNNING", alive: bool | None = None) -> dict[str, Any]:
    t: dict[str, Any] = {"id": tid, "state": state, "ipAddresses": [{"ipAddress": ip, "protocol": "IPv4"}] if ip else []}
    if alive is not None:
        t["healthCheckResults"] = [{"alive": alive}]
    return t


def decode(*apps: dict[str, Any]) -> list[mt.App]:
    out, bad = mt.decode_apps(json.dumps({"apps": list(apps)}).encode())
    assert not bad, bad
    return out


def services(*apps: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], list[Invalid]]:
    svcs, bad = mt.services(decode(*apps), SRC, kw.pop("alloc", mt.VipAllocator("10.99.0.0/24")), **kw)
    for s in svcs:
        validate(s)
    return {s.name: s for s in svcs}, bad


def test_group_paths_are_namespaces_most_specific_first() -> None:
    assert mt.group_namespace("/shop/web/api") == "web.shop"
    assert mt.group_namespace("/api") == "marathon"
    assert mt.app_name("/shop/web/api") == "api"
    apps = decode(app("/shop/web/api", tasks=[task("shop_web_api.1", "10.1.0.5")]), app("/db", tasks=[task("db.1", None)]))
    assert mt.task_overrides(apps) == {"shop_web_api.1": ("web.shop", "api"), "db.1": ("marathon", "db")}


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("10.0.0.5:80", ("", "10.0.0.5", 80)),
        ("[fd00::5]:443", ("", "fd00::5", 443)),
        ("/web:80", ("web", "", 80)),
        ("web:80", ("web", "", 80)),
        ("/shop/Web:8080", ("shop/web", "", 8080)),
    ],
)
def test_vip_values(value: str, want: tuple[str, str, int]) -> None:
    assert mt.parse_vip(value) == want


@pytest.mark.parametrize("value", ["web", "/web:0", "/web:70000", ":80", "/a b:80", "/x//y:80", "10.0.0.5:http"])
def test_bad_vip_values(value: str) -> None:
    with pytest.raises(Invalid) as exc:
        mt.parse_vip(value)
    assert exc.value.reason == "bad-vip"


def test_named_vips_get_stable_addresses_and_release_them() -> None:
    a = mt.VipAllocator("10.99.0.0/30")  # two host addresses
    b = mt.VipAllocator("10.99.0.0/30")
    assert a.get("web") == b.get("web") and a.get("web") in ("10.99.0.1", "10.99.0.2")
    other = a.get("db")
    assert other != a.get("web") and {other, a.get("web")} == {"10.99.0.1", "10.99.0.2"}
    with pytest.raises(Invalid, match="every address") as exc:
        a.get("third")
    assert exc.value.reason == "vip-exhausted"
    a.keep_only(["web"])
    assert a.get("third") == other  # db's address was released
    assert mt.VipAllocator("11.0.0.0/8").get("web") == mt.VipAllocator("11.0.0.0/8").get("web")


def test_a_vip_service_has_the_healthy_running_tasks_as_backends() -> None:
    web = app("/shop/web", vips={"VIP_0": "/web:80"}, health=True, tasks=[
        task("w1", "10.1.0.11", alive=True), task("w2", "10.1.0.12", alive=False), task("w3", "10.1.0.13"),
        task("w4", "10.1.0.14", state="TASK_STAGING", alive=True), task("w5", "10.1.0.15", alive=True)])  # fmt: skip
    alloc = mt.VipAllocator("10.99.0.0/24")
    got, bad = services(web, alloc=alloc, gone=lambda tid: tid == "w5")
    assert not bad
    svc = got["web"]
    assert (svc.uid, svc.namespace, svc.network) == ("marathon-vip:web", "marathon", "blue")
    assert svc.rules == (LBRule(protocol="tcp", vip=alloc.get("web"), port=80, backends=("10.1.0.11:8080",)),)


def test_apps_sharing_a_vip_share_its_service_and_an_ip_vip_keeps_its_address() -> None:
    a = app("/a", vips={"VIP_0": "/shared:80"}, tasks=[task("a1", "10.1.0.1")])
    b = app("/b", vips={"vip_1": "/shared:80"}, port=9090, tasks=[task("b1", "10.1.0.2")])
    c = app("/prod/c", vips={"VIP_0": "10.98.0.5:5432"}, port=5432, protocol="udp,tcp", tasks=[task("c1", "10.1.0.3")])
    got, bad = services(a, b, c)
    assert not bad
    assert got["shared"].rules[0].backends == ("10.1.0.1:8080", "10.1.0.2:9090")
    ip = got["vip-10-98-0-5"]
    assert (ip.namespace, [(r.protocol, r.vip, r.port) for r in ip.rules]) == (
        "prod", [("tcp", "10.98.0.5", 5432), ("udp", "10.98.0.5", 5432)])


def test_mesos_knowledge_and_address_families() -> None:
    a = app("/a", vips={"VIP_0": "/a:80", "VIP_1": "[fd00::80]:80"}, tasks=[task("a1", None), task("a2", "10.1.0.2")])
    got, _ = services(a, mesos_ips=lambda tid: ("10.1.0.1", "fd00::1") if tid == "a1" else ())
    assert got["a"].rules[0].backends == ("10.1.0.1:8080", "10.1.0.2:8080")
    assert got["vip-fd00--80"].rules[0].backends == ("[fd00::1]:8080",)


def test_legacy_shapes_and_what_is_skipped() -> None:
    legacy_docker = {"id": "/d", "container": {"type": "DOCKER", "docker": {"network": "USER", "portMappings": [
        {"containerPort": 80, "labels": {"VIP_0": "/d:80"}}]}}, "tasks": [task("d1", "10.1.0.4")]}  # fmt: skip
    legacy_ip = {"id": "/i", "ipAddress": {"networkName": "blue", "discovery": {"ports": [
        {"number": 81, "protocol": "tcp", "labels": {"VIP_0": "/i:81"}}]}}, "tasks": [task("i1", "10.1.0.5")]}  # fmt: skip
    host = {"id": "/h", "portDefinitions": [{"port": 10000, "labels": {"VIP_0": "/h:80"}}], "tasks": [task("h1", "10.1.0.6")]}
    skips: list[tuple[str, str]] = []
    got, bad = services(legacy_docker, legacy_ip, host, default_network="docker-user",
                        on_skip=lambda r, m: skips.append((r, m)))  # fmt: skip
    assert not bad
    assert (got["d"].network, got["d"].rules[0].backends) == ("docker-user", ("10.1.0.4:80",))
    assert (got["i"].network, got["i"].rules[0].backends) == ("blue", ("10.1.0.5:81",))
    assert "h" not in got and [r for r, _ in skips] == ["host-network"]
    _, bad = services(legacy_docker)  # no network name, no default
    assert [b.reason for b in bad] == ["no-network"]


def test_bad_apps_and_tasks_are_invalids_one_each() -> None:
    body = json.dumps({"apps": [app("/ok", tasks=[task("ok.1", "10.1.0.1"), {"id": 5}]), {"id": "relative"},
                                {"no": "id"}, app("/bad", vips={"VIP_0": "/x:80"}, protocol="ipx")]}).encode()  # fmt: skip
    apps, bad = mt.decode_apps(body)
    assert [a.spec.id for a in apps] == ["/ok", "/bad"] and [len(a.tasks) for a in apps] == [1, 0]
    assert sorted(b.reason for b in bad) == ["bad-field", "bad-field", "bad-id"]
    _, worse = mt.services(apps, SRC, mt.VipAllocator("10.99.0.0/24"))
    assert [b.reason for b in worse] == ["bad-protocol"]
    with pytest.raises(Invalid):
        mt.decode_apps(b'{"apps": 3}')
    (one,), _ = mt.decode_apps(json.dumps({"app": app("/single")}).encode())
    assert one.spec.id == "/single"
    assert mt.decode_event('{"eventType": "status_update_event", "taskId": "x"}').taskId == "x"
