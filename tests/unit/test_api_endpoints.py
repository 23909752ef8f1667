"""``/v1/endpoints`` (``hubctl endpoints``): a port left to OVN's IPAM shows
the address northd allocated, marked as such; before that, none."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from core.model import Endpoint, Source
from core.names import lsp_name
from core.nb import PortStatus
from hub.api import endpoint_rows

SRC = Source("docker", "local")
STATIC = Endpoint(source=SRC, uid="s", namespace="default", name="s", kind="container", network="blue",
                  ips=("10.10.0.5",), mac="02:00:00:00:00:05")  # fmt: skip
DYNAMIC = Endpoint(source=SRC, uid="d", namespace="default", name="d", kind="container", network="blue")
LATE = Endpoint(source=SRC, uid="l", namespace="default", name="l", kind="container", network="blue")


class View:
    def endpoints(self) -> Iterator[Endpoint]:
        yield from (STATIC, DYNAMIC, LATE)

    def port_status(self, port: str) -> PortStatus:
        return PortStatus(programmed=True, up=None, error=None)

    def port_addresses(self, port: str) -> tuple[str, tuple[str, ...]] | None:
        if port == lsp_name(DYNAMIC):
            return "26:52:a0:0a:00:03", ("10.10.0.2",)
        if port == lsp_name(STATIC):
            return "02:00:00:00:00:05", ("10.10.0.5",)
        return None  # northd has not allocated yet


def test_endpoint_rows_show_ovns_allocation() -> None:
    rows: dict[str, Any] = {r["name"]: r for r in endpoint_rows(View())}  # type: ignore[arg-type]
    assert (rows["s"]["ips"], rows["s"]["mac"], rows["s"]["allocated"]) == (["10.10.0.5"], "02:00:00:00:00:05", False)
    assert (rows["d"]["ips"], rows["d"]["mac"], rows["d"]["allocated"]) == (["10.10.0.2"], "26:52:a0:0a:00:03", True)
    assert (rows["l"]["ips"], rows["l"]["mac"], rows["l"]["allocated"]) == ([], None, False)
