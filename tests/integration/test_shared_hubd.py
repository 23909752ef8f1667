"""Shared networks on a real hubd and NB: two node sources (through the authenticated
ingest) declaring one shared network with different subnets are one switch and one
rejection, seen in ``hubctl status`` and ``ovn_hub_rejected_total``; the hub's
allocator (``POST /v1/ipam/request|release``) takes the same token and never hands
out an address an endpoint of the desired state holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core.model import Endpoint, Network, Snapshot, Source, encode
from testkit.hubd import Hubd
from testkit.nb import nb_rows, ovs_map
from testkit.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
N1, N2 = Source("cni", "node1"), Source("cni", "node2")


async def post(sock: Path, path: str, body: bytes, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock))) as s:
        async with s.post(f"http://hub{path}", data=body, headers=headers) as resp:
            return resp.status, await resp.json()


async def get_text(sock: Path, path: str) -> str:
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock))) as s:
        async with s.get(f"http://hub{path}") as resp:
            return await resp.text()


def green(src: Source, subnet: str, gateway: str) -> Network:
    return Network(source=src, name="green", subnets=(subnet,), gateway=gateway, shared=True)


async def test_a_conflict_is_one_rejection_and_the_allocator_avoids_held_addresses(
    ovn: Any, tmpdir_short: Path, hubd_factory: Any
) -> None:
    h: Hubd = hubd_factory(
        f'[hub]\nid = "shr"\nstate_dir = "{tmpdir_short}"\n[ovn]\nnb = "{ovn.nb_remote}"\n'
        f'[api]\nlisten = "unix:{tmpdir_short}/api.sock"\n', env={"PYTHONPATH": str(ROOT)}
    )
    sock = tmpdir_short / "api.sock"
    await wait_until(lambda: sock.exists(), 30, "the admin API")
    token = (tmpdir_short / "ingest.token").read_text().strip()
    e1 = Endpoint(source=N1, uid="c1", namespace="default", name="c1", kind="container", network="green",
                  node="node1", ips=("10.60.0.2",))  # fmt: skip
    e2 = Endpoint(source=N2, uid="c2", namespace="default", name="c2", kind="container", network="green",
                  node="node2", ips=("10.61.0.9",))  # fmt: skip
    snap1 = encode(Snapshot(source=N1, objects=(green(N1, "10.60.0.0/24", "10.60.0.1"), e1)))
    snap2 = encode(Snapshot(source=N2, objects=(green(N2, "10.61.0.0/24", "10.61.0.1"), e2)))
    assert (await post(sock, "/v1/ingest/cni/node1", snap1, token))[0] == 200
    assert (await post(sock, "/v1/ingest/cni/node2", snap2, token))[0] == 200

    def switch() -> dict[str, Any] | None:
        return next((r for r in nb_rows(ovn, "Logical_Switch") if r["name"] == "ovn-hub/net/green"), None)

    def port_names() -> set[str]:
        return {r["name"] for r in nb_rows(ovn, "Logical_Switch_Port")}

    await wait_until(lambda: {"cni/node1/green/c1", "cni/node2/green/c2"} <= port_names(), 30, "both ports")
    sw = switch()
    assert sw is not None and ovs_map(sw["other_config"])["subnet"] == "10.60.0.0/24"  # cni/node1 < cni/node2
    assert {r["name"] for r in nb_rows(ovn, "Logical_Switch")} == {"ovn-hub/net/green"}

    def conflicts() -> int:
        by = json.loads(h.ctl("status", "--json").stdout)["rejections"]["by_source"]
        return int(by.get("cni/node2 shared-conflict", 0))

    await wait_until(lambda: conflicts() == 1, 30, "the conflict in hubctl status")
    assert "shared-conflict" in h.ctl("status").stdout
    # the same snapshot again is the same rejection, counted once
    assert (await post(sock, "/v1/ingest/cni/node2", snap2, token))[0] == 200
    metrics = await get_text(sock, "/metrics")
    assert 'ovn_hub_rejected_total{reason="shared-conflict",source="cni/node2"} 1.0' in metrics, [
        line for line in metrics.splitlines() if "rejected" in line]  # fmt: skip
    assert conflicts() == 1

    # the allocator: the same token, and never an address an endpoint holds (.2 is c1's)
    req = json.dumps({"node": "a", "subnet": "10.60.0.0/24", "exclude": ["10.60.0.1"]}).encode()
    assert (await post(sock, "/v1/ipam/request", req, None))[0] == 401
    assert (await post(sock, "/v1/ipam/request", req, "x" * 64))[0] == 401
    assert await post(sock, "/v1/ipam/request", req, token) == (200, {"address": "10.60.0.3"})
    req_b = json.dumps({"node": "b", "subnet": "10.60.0.0/24", "exclude": ["10.60.0.1"]}).encode()
    assert await post(sock, "/v1/ipam/request", req_b, token) == (200, {"address": "10.60.0.4"})
    taken = json.dumps({"node": "b", "subnet": "10.60.0.0/24", "address": "10.60.0.2"}).encode()
    status, answer = await post(sock, "/v1/ipam/request", taken, token)
    assert status == 409 and "held by an endpoint" in answer["error"]
    rel = json.dumps({"node": "a", "subnet": "10.60.0.0/24", "address": "10.60.0.3"}).encode()
    assert await post(sock, "/v1/ipam/release", rel, token) == (200, {"released": True})
    assert json.loads(h.ctl("status", "--json").stdout)["ipam"]["requests"] == 3


async def test_a_node_whose_hub_does_not_answer_gives_docker_the_reason(tmp_path: Path) -> None:
    from adapters.docker.driver import LOCAL_SPACE, DriverError
    from adapters.docker.drivernode import DriverNode
    from core.vif.handoff import FakeHandoff

    (tmp_path / "token").write_text("t" * 64 + "\n")
    n = DriverNode(name="ovn-hub", socket=str(tmp_path / "x.sock"), state_path="", hub_id="hub1",
                   nb_remote="unix:/nonexistent", docker_url="unix:///nonexistent", handoff=FakeHandoff(),
                   hub_api=f"unix:{tmp_path}/api.sock", hub_token_file=str(tmp_path / "token"))  # fmt: skip
    pool = f"{LOCAL_SPACE}/10.60.0.0/24"
    await n.driver.request_pool({"AddressSpace": LOCAL_SPACE, "Pool": "10.60.0.0/24"})
    with pytest.raises(DriverError, match=rf"the hub at unix:{tmp_path}/api.sock did not answer .*is hubd running"):
        await n.driver.request_address({"PoolID": pool})
    assert n.state.pools[pool].allocated == {}  # nothing handed out
