"""The fault suite's world, its checks and its report.

:func:`world` writes a static adapter's file: networks with subnets (the
fabric's router joins them), endpoints across namespaces whose labels move
with a generation number, Services and NetworkPolicy-like Policies over them.
A generation drops and adds a seeded few, moves labels (policy membership) and
backends: churn between two reads of the file.

:func:`check_nb` is how every case ends: the hub's own plan is empty (NB equals
desired), no row of the hub exists twice under one key, and the operator's
1,000 rows are byte-identical to what they were.

:class:`Report` collects, per fault, how often it was injected, how many
injections converged, the times to converge and the failover times; the suite's
conftest prints it as JSON (README's "What it survives" table is made from it).
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.model import (
    Endpoint,
    LBRule,
    Namespace,
    Network,
    Peer,
    Policy,
    PolicyPort,
    Rule,
    Selector,
    Service,
    Source,
    encode,
)
from core.names import ACL_KEY, OWNER, ROW_KEY

NETWORKS = 4


def world(path: Path, cluster: str, n: int, gen: int, *, seed: int = 16) -> int:
    """Write generation ``gen`` of a world of about ``n`` endpoints; returns the endpoints written."""
    src = Source("static", cluster)
    rng = random.Random(seed * 7919 + gen)
    lines = [encode(Network(source=src, name=f"net{k}", subnets=(f"10.{20 + k}.0.0/16",), gateway=f"10.{20 + k}.0.1"))
             for k in range(NETWORKS)]  # fmt: skip
    lines += [encode(Namespace(source=src, name=f"ns{k}", labels={"tier": "a" if k % 2 else "b"})) for k in range(10)]
    gone = set(rng.sample(range(n), n // 50)) if gen else set()
    count = 0
    backends: dict[int, list[str]] = {}
    for i in range(n + (n // 50 if gen else 0)):
        if i in gone:
            continue
        uid = i if i < n else n + gen * n + i  # the added ones are new uids each generation
        net = uid % NETWORKS
        ip = f"10.{20 + net}.{(uid // NETWORKS) // 250 % 250}.{(uid // NETWORKS) % 250 + 2}"
        app = f"app{(uid + gen) % 25}"
        lines.append(encode(Endpoint(
            source=src, uid=f"e{uid}", namespace=f"ns{uid % 10}", name=f"w{uid}", kind="vm", network=f"net{net}",
            ips=(ip,), labels={"app": app, "role": "client" if (uid * 3 + gen) % 7 == 0 else "server"}, node="node1",
        )))  # fmt: skip
        count += 1
        if len(backends.setdefault(uid % 50, [])) < 4:
            backends[uid % 50].append(f"{ip}:8080")
    for s in range(50):
        lines.append(encode(Service(
            source=src, uid=f"s{s}", namespace=f"ns{s % 10}", name=f"svc{s}", network=f"net{s % NETWORKS}",
            rules=(LBRule(vip=f"10.96.{s // 250}.{s % 250 + 1}", port=80,
                          backends=tuple(backends.get((s + gen) % 50, ()))),),
        )))  # fmt: skip
    for p in range(20):
        lines.append(encode(Policy(
            source=src, uid=f"p{p}", namespace=f"ns{p % 10}", name=f"pol{p}",
            pod_selector=Selector(match_labels={"app": f"app{p}"}),
            ingress=(Rule(peers=(Peer(pod_selector=Selector(match_labels={"role": "client"})),
                                 Peer(namespace_selector=Selector(match_labels={"tier": "a"}))),
                          ports=(PolicyPort(port=8080 + gen % 3),)),),
        )))  # fmt: skip
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(b"\n".join(lines) + b"\n")
    tmp.replace(path)  # one rename: the adapter never reads half a generation
    return count


def hubd_config(workdir: Path, hub_id: str, nb: str, adapters: dict[str, Path], *, extra: str = "",
                batch_size: int = 5000, state_dir: Path | None = None) -> str:  # fmt: skip
    text = (f'[hub]\nid = "{hub_id}"\nstate_dir = "{state_dir or workdir}"\n[ovn]\nnb = "{nb}"\nbatch_size = {batch_size}\n'
            f'[api]\nlisten = "unix:{workdir}/api.sock"\n[routers.default]\nnetworks = ["*"]\n')  # fmt: skip
    for name, path in adapters.items():
        text += f'[adapters.{name}]\ntype = "static"\ncluster = "{name}"\npath = "{path}"\npoll_interval = 0.2\n'
    return text + extra


# ---------------------------------------------------------------- checks
def nbctl(db: str, *args: str) -> Any:
    res = subprocess.run(["ovn-nbctl", f"--db={db}", "--format=json", *args], capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    return json.loads(res.stdout)


def add_foreign(db: str, n: int = 1000) -> None:
    """The operator's rows: a switch of n ports, tagged ``owner=operator`` (not the hub's key)."""
    args = ["ls-add", "operator-net"]
    for i in range(n):
        args += ["--", "lsp-add", "operator-net", f"op{i}", "--", "set", "Logical_Switch_Port", f"op{i}",
                 "external_ids:owner=operator", f"addresses=\"02:ff:00:00:{i // 256:02x}:{i % 256:02x} 192.0.2.{i % 250 + 1}\""]  # fmt: skip
    subprocess.run(["ovn-nbctl", f"--db={db}", *args], check=True, capture_output=True, timeout=120)


def foreign(db: str) -> list[str]:
    """The operator's rows, every column, in a stable order."""
    data = nbctl(db, "find", "Logical_Switch_Port", "external_ids:owner=operator")["data"]
    data += nbctl(db, "find", "Logical_Switch", "name=operator-net")["data"]
    return sorted(json.dumps(r) for r in data)


def twins(db: str, hub_id: str) -> dict[str, int]:
    """Rows of the hub that exist twice under one key (must be none)."""
    out: dict[str, int] = {}
    for table in ("Logical_Switch", "Logical_Router", "Load_Balancer", "ACL", "Port_Group", "Address_Set", "NAT", "DNS"):
        data = nbctl(db, "--columns=name,external_ids", "list", table) if table not in ("NAT", "DNS") else \
            nbctl(db, "--columns=external_ids", "list", table)  # fmt: skip
        keys: Counter[str] = Counter()
        for row in data["data"]:
            ids = dict(row[-1][1])
            if ids.get(OWNER) != hub_id:
                continue
            name = row[0] if len(row) > 1 else ""
            keys[ids.get(ACL_KEY) or ids.get(ROW_KEY) or (name if isinstance(name, str) else json.dumps(ids))] += 1
        out.update({f"{table}:{k}": c for k, c in keys.items() if c > 1})
    return out


# ---------------------------------------------------------------- report
@dataclass
class Case:
    injected: int = 0
    converged: int = 0
    converge_seconds: list[float] = field(default_factory=list)
    failover_seconds: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def stats(xs: list[float]) -> dict[str, float] | None:
            if not xs:
                return None
            return {"median": round(statistics.median(xs), 3), "max": round(max(xs), 3), "min": round(min(xs), 3)}

        return {"injected": self.injected, "converged": self.converged, "converge_seconds": stats(self.converge_seconds),
                "failover_seconds": stats(self.failover_seconds), "notes": self.notes}  # fmt: skip


class Report:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.cases: dict[str, Case] = {}

    def case(self, fault: str) -> Case:
        return self.cases.setdefault(fault, Case())

    def as_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "faults": {k: v.summary() for k, v in self.cases.items()}}


def markdown(report: dict[str, Any]) -> str:
    """README's "What it survives" table from a report's JSON."""

    def s(x: dict[str, float] | None) -> str:
        return "-" if not x else f"{x['median']:.2f} s (max {x['max']:.2f})"

    rows = ["| fault | injected | converged | time to converge (median) | failover (median) |", "| --- | --- | --- | --- | --- |"]
    for name, c in report["faults"].items():
        rows.append(f"| {name} | {c['injected']} | {c['converged']}/{c['injected']} | {s(c['converge_seconds'])} | "
                    f"{s(c['failover_seconds'])} |")  # fmt: skip
    return "\n".join(rows)
