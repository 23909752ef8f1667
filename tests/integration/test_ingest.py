"""The hub's authenticated ingest (``POST /v1/ingest/<orchestrator>/<cluster>``) on a real
hubd and NB: the token (generated 0600 in the state dir), the sources it takes (cni/*), the
remote ingest's checks, and what the hub then writes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import aiohttp

from core.model import Endpoint, Network, Snapshot, Source, encode
from testkit.hubd import Hubd
from testkit.nb import nb_rows
from testkit.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
SRC = Source("cni", "node7")


async def post(sock: Path, path: str, body: bytes, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock))) as s:
        async with s.post(f"http://hub{path}", data=body, headers=headers) as resp:
            return resp.status, await resp.json()


async def test_ingest_takes_cni_sources_with_the_token(ovn: Any, tmpdir_short: Path, hubd_factory: Any) -> None:
    h: Hubd = hubd_factory(
        f'[hub]\nid = "ing"\nstate_dir = "{tmpdir_short}"\n[ovn]\nnb = "{ovn.nb_remote}"\n'
        f'[api]\nlisten = "unix:{tmpdir_short}/api.sock"\n', env={"PYTHONPATH": str(ROOT)}
    )
    await wait_until(lambda: (tmpdir_short / "api.sock").exists(), 30, "the admin API")
    token_file = tmpdir_short / "ingest.token"
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    token = token_file.read_text().strip()
    assert len(token) == 64
    sock = tmpdir_short / "api.sock"
    net = Network(source=SRC, name="blue", subnets=("10.90.0.0/24",), gateway="10.90.0.1")
    ep = Endpoint(source=SRC, uid="c1-eth0", namespace="default", name="c1", kind="container", network="blue",
                  node="node7", ips=("10.90.0.5",))  # fmt: skip
    body = encode(Snapshot(source=SRC, objects=(net, ep)))

    assert (await post(sock, "/v1/ingest/cni/node7", body, None))[0] == 401
    assert (await post(sock, "/v1/ingest/cni/node7", body, "x" * 64))[0] == 401
    status, answer = await post(sock, "/v1/ingest/docker/local", body, token)  # not a source ingest takes
    assert status == 403 and "cni/*" in answer["error"]
    status, answer = await post(sock, "/v1/ingest/cni/other", body, token)  # the event's source is not the path's
    assert status == 422 and "unauthorized-source" in answer["error"]
    status, answer = await post(sock, "/v1/ingest/cni/node7", b"{not json", token)
    assert status == 422
    bad = Endpoint(source=SRC, uid="c2-eth0", namespace="default", name="c2", kind="container", network="blue",
                   ips=("127.0.0.1",))  # fmt: skip
    status, answer = await post(sock, "/v1/ingest/cni/node7", encode(Snapshot(source=SRC, objects=(net, ep, bad))),
                                token)  # fmt: skip
    assert status == 200 and answer["accepted"] is True
    assert len(answer["rejected"]) == 1 and "snapshot endpoint blue/c2-eth0" in answer["rejected"][0]

    await wait_until(lambda: any(r["name"] == "cni/node7/blue/c1-eth0" for r in nb_rows(ovn, "Logical_Switch_Port")),
                     30, "the node's endpoint in NB")  # fmt: skip
    status_json = json.loads(h.ctl("status", "--json").stdout)
    assert status_json["ingest"][0]["source"] == "cni/node7" and status_json["ingest"][0]["snapshots"] == 1
    assert status_json["rejections"]["by_source"].get("cni/node7 bad-ip", 0) >= 1, status_json["rejections"]

    # an empty snapshot collects the source's rows (snapshot-bounded GC)
    status, _ = await post(sock, "/v1/ingest/cni/node7", encode(Snapshot(source=SRC, objects=())), token)
    assert status == 200
    await wait_until(lambda: not any(r["name"].startswith("cni/") for r in nb_rows(ovn, "Logical_Switch_Port")),
                     30, "the node's rows collected")  # fmt: skip
