"""Helpers shared by the benchmarks: synthetic objects, sandboxes, process stats."""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.model import Endpoint, Network, Source, validate
from core.nb.tables import LS, LSP
from core.ovsdb import OvsdbClient, py_map, py_set
from hub.sandbox import OvnSandbox

HUB_ID = "bench"
NETWORK = "bench"
SUBNET = "10.0.0.0/8"
BIN = Path(sys.executable).parent


def log(msg: str) -> None:
    """Human progress goes to stderr; stdout carries only the JSON result."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result, separators=(",", ":")), flush=True)


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "kernel": platform.release(),
    }


def ipv4(i: int) -> str:
    """The i-th host address of 10.0.0.0/8 (skipping the network address)."""
    x = 0x0A000000 + i + 1
    return f"{x >> 24}.{(x >> 16) & 255}.{(x >> 8) & 255}.{x & 255}"


def mac(i: int) -> str:
    """A locally administered unicast MAC derived from i."""
    return f"02:00:{(i >> 24) & 255:02x}:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}"


def make_network(source: Source, name: str = NETWORK) -> Network:
    net = Network(source=source, name=name, subnets=(SUBNET,))
    validate(net)
    return net


def make_endpoints(n: int, source: Source, network: str = NETWORK) -> list[Endpoint]:
    if n >= (1 << 24) - 2:
        raise ValueError("n must fit in 10.0.0.0/8")
    out = [
        Endpoint(
            source=source,
            uid=f"e{i}",
            namespace="default",
            name=f"c{i}",
            kind="container",
            network=network,
            ips=(ipv4(i),),
            mac=mac(i),
        )
        for i in range(n)
    ]
    for ep in out[:: max(1, n // 100)]:  # spot-check: the generator makes valid objects
        validate(ep)
    return out


@contextmanager
def short_tmpdir(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A temp dir under /tmp with a short name (unix socket paths are short)."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield d
    finally:
        if keep:
            log(f"keeping {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)


@contextmanager
def nb_sandbox(state_dir: Path) -> Iterator[OvnSandbox]:
    """A private NB ovsdb-server (no SB, no northd), always stopped."""
    sb = OvnSandbox(state_dir, northd=False, sb=False)
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


@contextmanager
def nb_server(state_dir: Path, clustered: bool = False) -> Iterator[str]:
    """A private NB (no SB, no northd), always stopped; its remote.  ``clustered``:
    a one-member RAFT cluster (``testkit.nbcluster``), as production runs NB:
    unlike a standalone ovsdb-server it keeps a transaction history."""
    if not clustered:
        with nb_sandbox(state_dir) as sb:
            yield sb.nb_remote
        return
    from testkit.nbcluster import NbCluster

    cluster = NbCluster(state_dir, members=1)
    cluster.start()
    try:
        yield cluster.unix(0)
    finally:
        cluster.stop()


def proc_status_kb(pid: int, fields: tuple[str, ...] = ("VmRSS", "VmHWM")) -> dict[str, int]:
    """Selected ``/proc/<pid>/status`` values, in kB."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in fields:
                out[key] = int(rest.split()[0])
    return out


def mb(kb: int | None) -> float | None:
    return None if kb is None else round(kb / 1024, 1)


def rate(rows: int, seconds: float | None) -> float | None:
    return None if not seconds else round(rows / seconds, 1)


def r(seconds: float | None, digits: int = 4) -> float | None:
    return None if seconds is None else round(seconds, digits)


async def nb_fingerprint(remote: str, sample: list[str]) -> dict[str, Any]:
    """What a path wrote, comparable across sandboxes: the port count, the
    switch (with its port count) and a few sample ports, uuids left out."""
    client = OvsdbClient(remote)
    await client.connect()
    try:
        res = await client.transact(
            [
                {"op": "select", "table": LSP, "where": [], "columns": ["name"]},
                {
                    "op": "select",
                    "table": LS,
                    "where": [],
                    "columns": ["name", "ports", "other_config", "external_ids"],
                },
                *[
                    {
                        "op": "select",
                        "table": LSP,
                        "where": [["name", "==", name]],
                        "columns": ["name", "addresses", "port_security", "options", "external_ids", "type"],
                    }
                    for name in sample
                ],
            ]
        )
    finally:
        await client.close()
    switches = [
        {
            "name": row["name"],
            "ports": len(py_set(row["ports"])) if row["ports"] != ["set", []] else 0,
            "other_config": py_map(row["other_config"]),
            "external_ids": py_map(row["external_ids"]),
        }
        for row in res[1]["rows"]
    ]
    ports = []
    for sel in res[2:]:
        for row in sel["rows"]:
            ports.append(
                {
                    "name": row["name"],
                    "addresses": sorted(py_set(row["addresses"])) if row["addresses"] != ["set", []] else [],
                    "port_security": sorted(py_set(row["port_security"]))
                    if row["port_security"] != ["set", []]
                    else [],
                    "options": py_map(row["options"]),
                    "external_ids": py_map(row["external_ids"]),
                    "type": row["type"],
                }
            )
    return {"ports": len(res[0]["rows"]), "switches": switches, "sample": ports}
