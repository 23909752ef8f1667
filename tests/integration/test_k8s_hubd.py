"""hubd with the Kubernetes adapter through the orchestrator faults, into a real NB:
the fake API server (testkit/k8s_fake.py) behind a testkit.proxy.BreakableProxy →
a ``hubd`` subprocess → ovsdb-server.  A watch event cut in half, every watch
expired (410, history compacted), events twice and older ones replayed, an API
server that accepts and never answers - each while pods come and go (seeded);
after each, NB holds exactly the API server's pods and ``hubctl plan`` has nothing
to write; the adapter never needed a restart."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.sandbox import OvnSandbox
from testkit.hubd import Hubd
from testkit.k8s_fake import FakeKubeApi, write_kubeconfig
from testkit.nb import nb_rows, ovs_set
from testkit.proxy import BreakableProxy
from testkit.wait import wait_until
from tests.unit.test_k8s_adapter import mkpod

WAIT = 30.0
SWITCH = "k8s/test/default"


@pytest.fixture
async def fake() -> AsyncIterator[FakeKubeApi]:
    f = FakeKubeApi()
    await f.start()
    try:
        yield f
    finally:
        await f.stop()


async def test_k8s_faults_end_with_nb_equal_to_the_api_server(
    fake: FakeKubeApi, ovn: OvnSandbox, tmpdir_short: Path, hubd_factory: Any
) -> None:
    rng = random.Random(16)
    proxy = BreakableProxy(f"127.0.0.1:{fake.port}")
    await proxy.start()
    fake.add("Namespace", {"metadata": {"name": "default"}})
    n = 0

    def add() -> None:
        nonlocal n
        n += 1
        fake.add("Pod", mkpod(f"p-{n}", f"10.244.0.{10 + n}"))

    def churn() -> None:
        for _ in range(rng.randint(1, 3)):
            add()
        names = sorted(p["metadata"]["name"] for p in fake.objects("Pod"))
        for name in rng.sample(names, k=min(len(names) - 1, rng.randint(1, 2))):
            fake.delete("Pod", name)
        pod = fake.get("Pod", rng.choice(sorted(p["metadata"]["name"] for p in fake.objects("Pod"))))
        pod["metadata"]["labels"] = {"app": f"v{n}"}
        fake.update("Pod", pod)

    for _ in range(4):
        add()
    kubeconfig = write_kubeconfig(tmpdir_short / "kubeconfig", f"http://{proxy.address}")
    h: Hubd = hubd_factory(
        f'[hub]\nid = "k8s-faults"\nstate_dir = "{tmpdir_short}"\n[ovn]\nnb = "{ovn.nb_remote}"\n'
        f'[api]\nlisten = "unix:{tmpdir_short}/api.sock"\n'
        f'[adapters.k8s]\ntype = "k8s"\ncluster = "test"\nkubeconfig = "{kubeconfig}"\nbackoff_max = 0.5\n'
        "watch_timeout = 1\nread_timeout = 2.0\nrequest_timeout = 2.0\n"
    )
    try:
        await asyncio.to_thread(h.wait_ready, WAIT)

        async def nb_is_the_api_server() -> bool:
            want = {f"{SWITCH}/{p['metadata']['uid']}": p for p in fake.objects("Pod")}
            ports = {r["name"]: r for r in await asyncio.to_thread(nb_rows, ovn, "Logical_Switch_Port")}
            if set(ports) != set(want):
                return False
            return all(ovs_set(ports[k]["addresses"])[0].endswith(" " + p["status"]["podIP"]) for k, p in want.items())

        async def converged(what: str) -> None:
            await wait_until(nb_is_the_api_server, WAIT, f"NB equal to the API server after {what}")
            plan = await asyncio.to_thread(h.ctl, "plan")
            assert "nothing to write" in plan.stdout, plan.stdout

        await converged("the first list")
        proxy.cut_mid_record()  # the next watch event arrives by half
        churn()
        assert await proxy.wait_cut(WAIT)
        proxy.heal()
        await converged("a cut event")
        expired = fake.expired_sent
        fake.expire_watches()  # 410 Gone on every watch; the history is compacted
        churn()
        await converged("expired watches")
        assert fake.expired_sent > expired
        fake.duplicate_and_reorder(replay=8, seed=16)  # every event twice; re-watches replay older RVs
        fake.end_watches()
        churn()
        await wait_until(lambda: fake.replayed > 0, WAIT, "a re-watch replaying older events")
        churn()
        fake.stop_duplicating()
        await converged("duplicated and replayed events")
        swallowed = proxy.swallowed
        proxy.black_hole()  # the watches fall silent; relists are swallowed too
        churn()
        await wait_until(lambda: proxy.swallowed > swallowed, WAIT, "hubd's adapter reconnecting into the hole")
        proxy.heal()
        await converged("an API server that never answered")
        assert "disconnected from the kubernetes API" in h.logtext()
        status = json.loads((await asyncio.to_thread(h.ctl, "status", "--json")).stdout)
        (adapter,) = status["adapters"]
        assert adapter["restarts"] == 0 and status["ready"], status
    finally:
        await proxy.stop()
