"""What Cloud Foundry's garden-external-networker passes to ovn-hub-cni (core/vif/cni.py), the node
agent's endpoint of an app instance's container (hub/cni.py), and its one port (core/nb/desired.py):
the cloudfoundry adapter's endpoint of the instance wins, whichever comes first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.cloudfoundry.normalize import APP_GUID, ORG_GUID, SPACE_GUID, workload
from core.model import LABEL_WORKLOAD, Endpoint, Snapshot, Source
from core.names import lsp_name
from core.nb import Programmer
from core.vif import FakeBridge, FakeLinks
from core.vif.cni import GARDEN_LABELS, garden_app_instance, garden_labels
from hub import cniplugin as P
from hub.cni import CniAgent
from hub.config import CniNetwork, CniSection

APP, SPACE, ORG, INSTANCE = ("5d5e3a8f-6a0b-4a37-9a2e-0d5c3d1f0a11", "0b6b2d43-7a3c-4f0e-b4d2-2f1b9b3a7c22",
                             "9c1e4f2a-3d5b-4e6f-8a7b-1c2d3e4f5a33", "2f0e8c1a-9b7d-4c3e-5a6f-7b8c9d0e1f44")  # fmt: skip
#: the Cloud Controller's container network properties (ContainerNetworkInfo) of an app's container
META = {"policy_group_id": APP, "app_id": APP, "space_id": SPACE, "org_id": ORG, "ports": "8080",
        "container_workload": "app"}  # fmt: skip
#: Garden's legacy networking, what garden-external-networker puts in runtimeConfig
NET_OUT = {"portMappings": [{"host_port": 61001, "container_port": 8080}],
           "netOutRules": [{"protocol": 1, "networks": [{"start": "172.16.0.0", "end": "172.16.0.255"}],
                            "ports": [{"start": 443, "end": 443}]}]}  # fmt: skip
BASE = {"cniVersion": "0.3.1", "name": "cni-wrapper", "type": "ovn-hub", "network": "apps"}
ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": INSTANCE, "CNI_NETNS": "/var/run/netns/x", "CNI_IFNAME": "eth0",
       "CNI_PATH": "/opt/cni/bin"}  # fmt: skip
CF, CNI = Source("cloudfoundry", "prod"), Source("cni", "diego-cell-1")


def test_garden_injects_the_metadata_top_level_or_the_doc_shows_it_under_runtime_config() -> None:
    """garden-external-networker's CNIController: libcni.InjectConf(conf, {"metadata": ..., "runtimeConfig": ...});
    cf-networking's docs/11-3rd-party.md shows the metadata inside runtimeConfig."""
    assert garden_app_instance({**BASE, "metadata": META, "runtimeConfig": NET_OUT}) == META
    assert garden_app_instance({**BASE, "runtimeConfig": {**NET_OUT, "metadata": META}}) == META
    old = {k: v for k, v in META.items() if k != "container_workload"}  # a Cloud Controller before that property
    assert garden_app_instance({**BASE, "metadata": old}) == old
    assert garden_labels(META) == {APP_GUID: APP, SPACE_GUID: SPACE, ORG_GUID: ORG}
    assert garden_labels({"policy_group_id": APP}) == {APP_GUID: APP}
    assert set(GARDEN_LABELS.values()) == {APP_GUID, SPACE_GUID, ORG_GUID}, "the adapter's label keys"


@pytest.mark.parametrize(
    "conf",
    [BASE, {**BASE, "metadata": {"ports": "8080"}}, {**BASE, "metadata": "app"}, {**BASE, "metadata": {"app_id": 7}},
     {**BASE, "metadata": {**META, "container_workload": "task"}},
     {**BASE, "metadata": {**META, "container_workload": "staging"}}],
)  # fmt: skip
def test_anything_else_is_no_app_instance(conf: dict[str, Any]) -> None:
    """Tasks and staging containers are no ActualLRP instances; other runtimes send no such metadata."""
    assert garden_app_instance(conf) is None


def agent(tmp_path: Path) -> CniAgent:
    cfg = CniSection(enabled=True, socket=str(tmp_path / "cni.sock"), hub_api="unix:/nonexistent",
                     networks={"apps": CniNetwork(subnet="10.255.0.0/16", gateway="10.255.0.1")})  # fmt: skip
    a = CniAgent(cfg, hub_id="hub1", nb_remote="unix:/nonexistent", chassis="diego-cell-1", bridge=FakeBridge(),
                 links=FakeLinks(), state_dir=str(tmp_path))  # fmt: skip
    a.source = CNI
    return a


def test_the_cells_endpoint_of_an_app_instance_declares_the_adapters_workload(tmp_path: Path) -> None:
    """uid = CNI_CONTAINERID (the instance guid), the guids as the adapter's labels, the workload the adapter
    declares, no MAC of its own (a winner would take it over and rewrite the port the ADD plugged)."""
    a = agent(tmp_path)
    stdin = json.dumps({**BASE, "metadata": META, "runtimeConfig": NET_OUT})
    e = a._entry(P.parse(ENV, stdin))
    assert e.endpoint is not None and (e.uid, e.network) == (INSTANCE, "apps")
    ep = e.endpoint
    assert ep.uid == INSTANCE and ep.mac is None and ep.ips == () and ep.node == "diego-cell-1"
    assert ep.labels == {APP_GUID: APP, SPACE_GUID: SPACE, ORG_GUID: ORG, LABEL_WORKLOAD: workload(INSTANCE)}
    # a task's container: this node's plain endpoint (uid = container id + ifname, no workload)
    task = a._entry(P.parse(ENV, json.dumps({**BASE, "metadata": {**META, "container_workload": "task"}})))
    assert task.endpoint is not None and task.uid == f"{INSTANCE}-eth0" and LABEL_WORKLOAD not in task.endpoint.labels


def test_the_adapters_port_is_the_one_port_whichever_comes_first() -> None:
    """Diego's order: the claimed instance (a dynamic port, no MAC) before the cell's endpoint, which yields at
    once and changes nothing of that port; the other order: the cell's endpoint has the port until the BBS says."""
    claimed = Endpoint(source=CF, uid=INSTANCE, namespace="acme/dev", name="frontend/web/0", kind="app-instance",
                       network="apps", node="diego-cell-1", labels={APP_GUID: APP, LABEL_WORKLOAD: workload(INSTANCE)},
                       state="claimed")  # fmt: skip
    cell = Endpoint(source=CNI, uid=INSTANCE, namespace="default", name=INSTANCE[:12], kind="container",
                    network="apps", node="diego-cell-1", labels={APP_GUID: APP, LABEL_WORKLOAD: workload(INSTANCE)})  # fmt: skip
    p = Programmer("unix:/nonexistent", "hub1")
    p.apply(Snapshot(source=CF, objects=(claimed,)))
    before = p.desired.ports[lsp_name(claimed)]
    p.apply(Snapshot(source=CNI, objects=(cell,)))
    assert set(p.desired.ports) == {lsp_name(claimed)} and lsp_name(cell) in p.desired.yielded
    assert p.desired.ports[lsp_name(claimed)] == before and before.mac is None
    q = Programmer("unix:/nonexistent", "hub1")
    q.apply(Snapshot(source=CNI, objects=(cell,)))
    assert set(q.desired.ports) == {lsp_name(cell)}
    q.apply(Snapshot(source=CF, objects=(claimed,)))
    assert set(q.desired.ports) == {lsp_name(claimed)} and lsp_name(cell) in q.desired.yielded


def test_a_result_without_dns_leaves_the_runtime_its_resolver() -> None:
    """Garden writes the result's nameservers into the container's resolv.conf; OVN at the
    gateway answers only the hub's names, so an app instance's result carries none."""
    from core.vif.attachment import Attachment
    from core.vif.cni import result

    a = Attachment(key="ia0-eth0", network="apps", netns_path="/var/run/netns/x", port="cloudfoundry/prod/apps/ia0",
                   mac="0a:58:0a:ff:00:05", addrs=("10.255.0.5/24",), gateway="10.255.0.1")  # fmt: skip
    assert result("1.0.0", a)["dns"] == {"nameservers": ["10.255.0.1"]}
    out = result("1.0.0", a, dns=False)
    assert "dns" not in out and out["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.255.0.1"}]
