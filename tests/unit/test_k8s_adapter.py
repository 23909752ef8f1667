"""K8sAdapter without an API server: options, the pod builder, and a missing
in-cluster config.  The adapter with the REAL kubernetes_asyncio client against
the fake API server (testkit.k8s_fake), which shares this module's helpers, is in
tests/integration/test_k8s_adapter.py."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from kubernetes_asyncio import config as k8s_config

from adapters.k8s import K8sAdapter, create
from core.adapter import AdapterSpec, OptionsError
from core.model import (
    Endpoint,
    InputEvent,
    Network,
    Snapshot,
    Source,
    Upsert,
)

WAIT = 20.0  # upper bound of every wait
T = TypeVar("T")


# ---------------------------------------------------------------- helpers
class Sink:
    def __init__(self) -> None:
        self.events: list[InputEvent] = []
        self._changed = asyncio.Event()

    async def emit(self, event: InputEvent) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, pred: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    res = pred()
                    if res:
                        return res
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            tail = "\n".join(repr(e)[:300] for e in self.events[-15:])
            raise AssertionError(f"timed out waiting for {what}; last events:\n{tail}") from None

    def snapshots(self) -> list[Snapshot]:
        return [e for e in self.events if isinstance(e, Snapshot)]

    def of(self, typ: type[T]) -> list[T]:
        return [e for e in self.events if isinstance(e, typ)]

    def upserts(self, uid: str) -> list[Endpoint]:
        return [
            e.obj for e in self.events if isinstance(e, Upsert) and isinstance(e.obj, Endpoint) and e.obj.uid == uid
        ]

    def find(self, pred: Callable[[InputEvent], bool], start: int = 0) -> InputEvent | None:
        return next((e for e in self.events[start:] if pred(e)), None)


def mkpod(
    name: str, ip: str | None = None, *, node: str = "worker-1", namespace: str = "default", **extra: Any
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running" if ip else "Pending"}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    pod: dict[str, Any] = {
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name.split("-")[0]}},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "ports": [{"containerPort": 8080, "protocol": "TCP"}]}],
        },
        "status": status,
    }
    pod.update(extra)
    return pod


async def test_options() -> None:
    def spec(**options: Any) -> AdapterSpec:
        return AdapterSpec(name="k", type="k8s", cluster="test", options=options)

    adapter = create(spec(kubeconfig="/x", context="c", network="blue", page_size=10, backoff_max=2.5))
    assert isinstance(adapter, K8sAdapter) and adapter.options.page_size == 10 and adapter.network == "blue"
    for bad, where in (
        ({"nope": 1}, "adapters.k"),
        ({"page_size": 0}, "adapters.k.page_size"),
        ({"page_size": "10"}, "adapters.k.page_size"),
        ({"backoff_max": 0}, "adapters.k.backoff_max"),
        ({"context": "c"}, "adapters.k.context"),
        ({"network": "bad name"}, "adapters.k.network"),
    ):
        with pytest.raises(OptionsError, match=where.replace(".", r"\.")):
            create(spec(**bad))


async def test_pod_network_options() -> None:
    def spec(**options: Any) -> AdapterSpec:
        return AdapterSpec(name="k", type="k8s", cluster="test", options=options)

    def adapter(**options: Any) -> K8sAdapter:
        a = create(spec(**options))
        assert isinstance(a, K8sAdapter)
        return a

    src = Source("k8s", "test")
    derived = adapter()
    assert derived.pod_cidr is None and derived.pod_network == Network(source=src, name="default")
    a = adapter(pod_cidr="10.244.0.0/16", network="pods")
    assert a.pod_network == Network(source=src, name="pods", subnets=("10.244.0.0/16",), gateway="10.244.0.1")
    a = adapter(pod_cidr=" fd00:10:244::/56 ,10.244.0.0/16", pod_gateway="10.244.0.254")
    assert a.pod_cidr == ("10.244.0.0/16", "fd00:10:244::/56") and a.pod_network.gateway == "10.244.0.254"
    assert adapter(pod_cidr=["fd00:10:244::/56"]).pod_network.gateway == "fd00:10:244::1"
    assert adapter(pod_cidr=[]).pod_cidr is None  # empty: derived from the nodes
    for bad, message in (
        ({"pod_cidr": 5}, r"adapters\.k\.pod_cidr: Expected `str \| array`, got `int`"),
        ({"pod_cidr": [5]}, r"adapters\.k\.pod_cidr\[0\]: Expected `str`"),
        ({"pod_cidr": "10.244.0.0/33"}, r"adapters\.k\.pod_cidr: entry 1 '10\.244\.0\.0/33' is not a CIDR"),
        ({"pod_cidr": "10.244.0.1/16"}, r"adapters\.k\.pod_cidr: .*host bits set \(the network is 10\.244\.0\.0/16\)"),
        ({"pod_cidr": "10.0.0.0/8,10.1.0.0/16"}, r"adapters\.k\.pod_cidr: 10\.1\.0\.0/16 overlaps 10\.0\.0\.0/8"),
        ({"pod_gateway": "10.244.0.1"}, r"adapters\.k\.pod_gateway: needs pod_cidr"),
        ({"pod_cidr": "10.244.0.0/16", "pod_gateway": "10.96.0.1"}, r"adapters\.k\.pod_gateway: 10\.96\.0\.1 is not in"),
        ({"pod_cidr": "10.244.0.0/16", "pod_gateway": "10.244.0.0"}, r"adapters\.k\.pod_gateway: .*network or broadcast"),
        ({"pod_cidr": "10.244.0.0/16", "pod_gateway": 1}, r"adapters\.k\.pod_gateway: Expected `str`"),
    ):
        with pytest.raises(OptionsError, match=message):
            create(spec(**bad))


def test_pod_copy_helper_is_isolated() -> None:
    a = mkpod("x-1", "10.0.0.1")
    b = copy.deepcopy(a)
    b["metadata"]["labels"]["app"] = "y"
    assert a["metadata"]["labels"]["app"] == "x"


async def test_in_cluster_config_missing_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """No kubeconfig and not in a pod: run() raises (the hub restarts it with backoff)."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    adapter = create(AdapterSpec(name="k", type="k8s", cluster="test"))
    with pytest.raises(k8s_config.ConfigException):
        async with asyncio.timeout(WAIT):
            await adapter.run(Sink())
