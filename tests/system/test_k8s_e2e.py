"""The whole Kubernetes path: fake API server → hubd (k8s adapter, real
kubernetes_asyncio) → real NB → real ovn-northd → ovn-trace verdicts."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.model import Endpoint, Source
from hub.sandbox import OvnSandbox
from testkit.hubd import Hubd
from testkit.k8s_fake import FakeKubeApi
from testkit.nb import nb_rows, ovs_map, ovs_set
from testkit.ovn_trace import sync, tcp, tcp_to, trace
from testkit.wait import wait_until
from tests.integration.test_k8s_adapter import SERVICE_NAME_LABEL, mkslice, mksvc
from tests.unit.test_k8s_adapter import mkpod

SRC = Source("k8s", "test")
SWITCH = "k8s/test/default"


@pytest.fixture
def ovn_northd(tmpdir_short: Path) -> Iterator[OvnSandbox]:
    sb = OvnSandbox(tmpdir_short / "ovn", northd=True)
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


def endpoint(pod: dict[str, Any]) -> Endpoint:
    return Endpoint(
        source=SRC, uid=pod["metadata"]["uid"], namespace=pod["metadata"]["namespace"], name=pod["metadata"]["name"],
        kind="pod", network="default", ips=(pod["status"]["podIP"],),
    )


async def nb(sb: OvnSandbox, table: str) -> list[dict[str, Any]]:
    return await asyncio.to_thread(nb_rows, sb, table)


async def test_pods_services_policies_through_hubd(
    fake: FakeKubeApi, ovn_northd: OvnSandbox, tmpdir_short: Path, hubd_factory: Any
) -> None:
    sb = ovn_northd
    fake.add("Namespace", {"metadata": {"name": "default", "labels": {"team": "a"}}})
    web = fake.add("Pod", mkpod("web-1", "10.244.0.5"))
    db = fake.add("Pod", mkpod("db-1", "10.244.0.6"))
    client = fake.add("Pod", mkpod("client-1", "10.244.0.7"))
    fake.add("Service", mksvc("web", "10.96.0.10"))
    fake.add("EndpointSlice", mkslice("web-abc", "web", "10.244.0.5"))
    kubeconfig = fake.write_kubeconfig(tmpdir_short / "kubeconfig")
    h: Hubd = hubd_factory(
        f'[hub]\nid = "k8s-e2e"\nstate_dir = "{tmpdir_short}"\n[ovn]\nnb = "{sb.nb_remote}"\n'
        f'[api]\nlisten = "unix:{tmpdir_short}/api.sock"\n'
        f'[adapters.k8s]\ntype = "k8s"\ncluster = "test"\nkubeconfig = "{kubeconfig}"\n'
    )
    await asyncio.to_thread(h.wait_ready, 60)

    # pods → ports with their IPs; the service → a load balancer on their switch
    ports = {r["name"]: r for r in await nb(sb, "Logical_Switch_Port")}
    eps = {p["metadata"]["name"]: endpoint(p) for p in (web, db, client)}
    for ep in eps.values():
        name = f"{SWITCH}/{ep.uid}"
        assert ovs_set(ports[name]["addresses"])[0].endswith(ep.ips[0]), ports[name]
        assert ovs_map(ports[name]["options"]) == {"requested-chassis": "worker-1"}
    lbs = await nb(sb, "Load_Balancer")
    assert len(lbs) == 1 and ovs_map(lbs[0]["vips"]) == {"10.96.0.10:80": "10.244.0.5:8080"}
    switch = next(s for s in await nb(sb, "Logical_Switch") if s["name"] == SWITCH)
    assert ovs_set(switch["load_balancer"]) == [lbs[0]["_uuid"]]

    # no policy: everything passes; the VIP DNATs to the backend
    await asyncio.to_thread(sync, sb)
    t = await asyncio.to_thread(trace, sb, SWITCH, tcp_to(eps["client-1"], eps["db-1"], 5432))
    assert t.reaches(eps["db-1"]), t.text
    t = await asyncio.to_thread(trace, sb, SWITCH, tcp(eps["client-1"], "10.96.0.10", 80, "0a:58:0a:f4:00:05"))
    assert "10.244.0.5:8080" in ",".join(t.backends), t.text

    # a policy: db accepts 5432 from web only
    fake.add("NetworkPolicy", {
        "metadata": {"name": "db-from-web", "namespace": "default"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "db"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 5432}]}],
        },
    })

    async def acls() -> int:
        return len(await nb(sb, "ACL"))

    await wait_until(acls, 20, "ACLs programmed")
    await asyncio.to_thread(sync, sb)
    allowed = await asyncio.to_thread(trace, sb, SWITCH, tcp_to(eps["web-1"], eps["db-1"], 5432))
    assert allowed.reaches(eps["db-1"]), allowed.text
    denied = await asyncio.to_thread(trace, sb, SWITCH, tcp_to(eps["client-1"], eps["db-1"], 5432))
    assert not denied.reaches(eps["db-1"]), denied.text
    wrong_port = await asyncio.to_thread(trace, sb, SWITCH, tcp_to(eps["web-1"], eps["db-1"], 22))
    assert not wrong_port.reaches(eps["db-1"]), wrong_port.text

    # the backend goes not-ready: the VIP loses it; the pod is deleted: its port goes
    fake.update("EndpointSlice", mkslice("web-abc", "web", ("10.244.0.5", False)))
    fake.delete("Pod", "client-1")

    async def converged() -> bool:
        lb = (await nb(sb, "Load_Balancer"))[0]
        names = {r["name"] for r in await nb(sb, "Logical_Switch_Port")}
        return "10.96.0.10:80" not in ovs_map(lb["vips"]) and f"{SWITCH}/{eps['client-1'].uid}" not in names

    await wait_until(converged, 20, "backend and pod removed")
    status = json.loads((await asyncio.to_thread(h.ctl, "status", "--json")).stdout)
    assert status["ready"] and status["adapters"][0]["restarts"] == 0
    h.signal(signal.SIGTERM)
    assert await asyncio.to_thread(h.wait, 30) == 0
    assert SERVICE_NAME_LABEL  # the slice label the adapter joins on
