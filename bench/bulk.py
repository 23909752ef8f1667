"""``bench bulk``: program N endpoints into an empty NB, four ways.

* ``hub``      a Snapshot published on a :class:`hub.bus.Bus`, consumed into
               :class:`core.nb.Programmer` (as ``hubd`` does), timed
               from publish until ``flush()`` returns.
* ``raw``      the same rows as one JSON-RPC ``transact`` with
               :class:`core.ovsdb.OvsdbClient`, timed around the call only.
* ``nbctl``    one ``ovn-nbctl`` invocation, all rows in one transaction.
* ``ovsdbapp`` the usual ovsdbapp way (``OvnNbApiIdlImpl`` over a full IDL), one
               transaction; the IDL's initial connect is timed separately.

Every path runs against its own fresh NB ovsdb-server.  ``ratio_vs_raw`` is
``raw_seconds / hub_seconds``: the hub's rate as a fraction of the raw rate.

On a machine shared with other work, wall-clock times swing 2x with the
neighbours' load, so ``hub`` and ``raw`` also report the CPU seconds spent in
the timed window by the NB ovsdb-server (``server_cpu_seconds``, utime+stime
from ``/proc``) and by this process (``process_cpu_seconds``: the Programmer,
the bus and the bench's consumer for ``hub``; encode and decode for ``raw``),
and the 1-minute load average when the run started (``loadavg``).
``cpu_ratio_vs_raw`` is the raw path's CPU seconds (both processes) over the
hub's, medians: what ``ratio_vs_raw`` would be if both ran on a saturated
machine, where only the CPU they need counts.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import errno
import gc
import io
import json
import logging
import os
import pstats
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import (
    HUB_ID,
    NETWORK,
    emit,
    environment,
    log,
    make_endpoints,
    make_network,
    nb_fingerprint,
    nb_sandbox,
    r,
    rate,
    short_tmpdir,
)
from core.model import Delete, Endpoint, Event, Network, Snapshot, Source, Upsert
from core.names import lsp_name
from core.nb import Programmer
from core.nb.tables import LS, LSP
from core.nb.tables.port import lsp_columns
from core.nb.tables.switch import ls_columns
from core.ovsdb import OvsdbClient
from core.ovsdb.values import to_ovsdb
from hub.bus import Bus

SOURCE = Source("docker", "bench")
TARGET_RATIO = 0.8  # issue 15: >= 0.8x the raw rate at 50k and 100k
PATHS = {"hub", "raw", "nbctl", "ovsdbapp"}
# Linux caps argv + envp at min(RLIMIT_STACK / 4, 6 MiB) (fs/exec.c: _STK_LIM / 4 * 3).
_ARGV_CAP = 6 << 20
_STACK_FOR_ARGV = 4 * _ARGV_CAP


# ------------------------------------------------------------------ hub path
def server_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) process ``pid`` has used (0.0: unknown)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _nb_pid(sb: Any) -> int | None:
    proc = getattr(sb, "procs", {}).get("nb")
    return proc.pid if proc is not None else None


async def hub_path(remote: str, snap: Snapshot, profile: cProfile.Profile | None,
                   server_pid: int | None = None, batch_size: int | None = None) -> dict[str, Any]:  # fmt: skip
    bus = Bus()
    prog = Programmer(remote, HUB_ID, publish=bus.publish, publish_many=bus.publish_many)
    if batch_size is not None:
        prog.batch_size = batch_size
    await prog.start()
    sub = bus.subscribe("programmer", accept=lambda e: isinstance(e, Snapshot | Upsert | Delete))
    applied = asyncio.Event()
    apply_seconds = 0.0
    transact_seconds = 0.0

    async def consume() -> None:  # hub/daemon.py Hub._consume
        nonlocal apply_seconds
        while True:
            ev: Event = await sub.get()
            if isinstance(ev, Snapshot | Upsert | Delete):
                t = time.perf_counter()
                prog.apply(ev)
                apply_seconds += time.perf_counter() - t
                if isinstance(ev, Snapshot):
                    applied.set()

    client = prog._client
    assert client is not None
    def timed(call: Callable[..., Awaitable[list[Any]]]) -> Callable[..., Awaitable[list[Any]]]:
        async def run(*args: Any, **kwargs: Any) -> list[Any]:
            nonlocal transact_seconds
            t = time.perf_counter()
            try:
                return await call(*args, **kwargs)
            finally:
                transact_seconds += time.perf_counter() - t

        return run

    timed_transact, timed_stream = timed(client.transact), timed(client.transact_stream)
    client.transact = timed_transact  # type: ignore[method-assign,assignment]
    client.transact_stream = timed_stream  # type: ignore[method-assign,assignment]
    writer = asyncio.create_task(prog.run(), name="nb-writer")
    consumer = asyncio.create_task(consume(), name="consumer")
    try:
        await prog.flush(timeout=30)  # the writer's first (empty) pass after connect
        if profile is not None:
            profile.enable()
        loadavg = os.getloadavg()[0]
        c0, s0 = time.process_time(), server_cpu(server_pid)
        t0 = time.perf_counter()
        await bus.publish(snap)
        await applied.wait()
        await prog.flush()
        seconds = time.perf_counter() - t0
        process_cpu, server = time.process_time() - c0, server_cpu(server_pid) - s0
        if profile is not None:
            profile.disable()
    finally:
        for t in (consumer, writer):
            t.cancel()
        await asyncio.gather(consumer, writer, return_exceptions=True)
        await prog.close()
    return {
        "seconds": seconds,
        "server_cpu_seconds": server,
        "process_cpu_seconds": process_cpu,
        "loadavg": round(loadavg, 2),
        "apply_seconds": apply_seconds,
        "transact_seconds": transact_seconds,
        "transactions": prog.transactions,
        "writes": prog.writes,
        "failed": len(prog.failed),
    }


# ------------------------------------------------------------------ raw path
#: an insert's columns whose schema default is empty (ovn-nb.ovsschema: min 0)
_EMPTY_DEFAULT = {"addresses", "port_security", "options"}


def shortest(row: dict[str, Any]) -> dict[str, Any]:
    """A row in OVSDB's shortest forms, as the hub writes an insert: a set of
    one string as that string (RFC 7047 5.1), an empty set or map left out
    where it is the insert's default.  The baseline sends no byte more than
    the hub (~10% fewer than ``to_ovsdb``'s forms at 50k ports)."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, list) and v and v[0] in ("set", "map"):
            if not v[1] and k in _EMPTY_DEFAULT:
                continue
            if v[0] == "set" and len(v[1]) == 1 and isinstance(v[1][0], str):
                v = v[1][0]
        out[k] = v
    return out


def raw_ops(net: Network, eps: list[Endpoint]) -> list[dict[str, Any]]:
    """One LS insert whose ``ports`` are the named uuids of N LSP inserts, with
    the columns the programmer writes (core/nb/tables), in the shortest forms
    the hub's inserts use (:func:`shortest`)."""
    ls_row = shortest(to_ovsdb(ls_columns(net.source, net.name, net, HUB_ID)))
    ls_row["ports"] = ["set", [["named-uuid", f"p{i}"] for i in range(len(eps))]]
    ops: list[dict[str, Any]] = [{"op": "insert", "table": LS, "row": ls_row, "uuid-name": "s0"}]
    ops.extend(
        {"op": "insert", "table": LSP, "row": shortest(to_ovsdb(lsp_columns(ep, HUB_ID))), "uuid-name": f"p{i}"}
        for i, ep in enumerate(eps)
    )
    return ops


async def raw_path(remote: str, ops: list[dict[str, Any]], server_pid: int | None = None) -> dict[str, Any]:
    client = OvsdbClient(remote)
    await client.connect()
    try:
        loadavg = os.getloadavg()[0]
        c0, s0 = time.process_time(), server_cpu(server_pid)
        t0 = time.perf_counter()
        result = await client.transact(ops)
        seconds = time.perf_counter() - t0
        process_cpu, server = time.process_time() - c0, server_cpu(server_pid) - s0
    finally:
        await client.close()
    assert len(result) == len(ops)
    return {"seconds": seconds, "server_cpu_seconds": server, "process_cpu_seconds": process_cpu,
            "loadavg": round(loadavg, 2)}  # fmt: skip


# ------------------------------------------------------------------ ovn-nbctl path
def _q(text: str) -> str:
    """An OVSDB string atom as ovn-nbctl parses it (JSON string syntax)."""
    return json.dumps(text)


def _map_arg(column: str, values: dict[str, str]) -> str:
    return f"{column}={{{','.join(f'{_q(k)}={_q(v)}' for k, v in sorted(values.items()))}}}"


def _set_arg(column: str, values: tuple[str, ...]) -> str:
    return f"{column}=[{','.join(_q(v) for v in values)}]"


def nbctl_argv(remote: str, net: Network, eps: list[Endpoint], compact: bool) -> list[str]:
    """``ls-add`` + per port ``lsp-add`` and friends, all in one transaction.

    The friendly form is lsp-add, lsp-set-addresses, lsp-set-port-security and
    a ``set`` for external_ids; the compact form (same rows, ~20% shorter argv)
    does lsp-add + one ``set`` of all columns."""
    ls_cols = ls_columns(net.source, net.name, net, HUB_ID)
    sw = ls_cols["name"]
    argv = [
        shutil.which("ovn-nbctl") or "ovn-nbctl",
        f"--db={remote}",
        "ls-add",
        sw,
        "--",
        "set",
        LS,
        sw,
        _map_arg("other_config", ls_cols["other_config"]),
        _map_arg("external_ids", ls_cols["external_ids"]),
    ]
    for ep in eps:
        cols = lsp_columns(ep, HUB_ID)
        port = cols["name"]
        argv += ["--", "lsp-add", sw, port]
        if compact:
            argv += ["--", "set", LSP, port, _set_arg("addresses", cols["addresses"])]
            argv.append(_set_arg("port_security", cols["port_security"]))
        else:
            argv += ["--", "lsp-set-addresses", port, *cols["addresses"]]
            argv += ["--", "lsp-set-port-security", port, *cols["port_security"]]
            argv += ["--", "set", LSP, port]
        if cols["options"]:
            argv.append(_map_arg("options", cols["options"]))
        argv.append(_map_arg("external_ids", cols["external_ids"]))
    return argv


def argv_bytes(argv: list[str]) -> int:
    """What execve counts against its limit: strings (+NUL) and pointers, env included."""
    env = sum(len(k) + len(v) + 2 for k, v in os.environ.items())
    return sum(len(a.encode()) + 1 for a in argv) + env + 8 * (len(argv) + len(os.environ) + 2)


def _raise_stack_limit() -> tuple[int, int]:
    """Lift the usual 2 MiB argv limit (8 MiB stack / 4) to the 6 MiB kernel cap
    for children; returns the previous limits to restore."""
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    if soft != resource.RLIM_INFINITY and soft < _STACK_FOR_ARGV:
        new = _STACK_FOR_ARGV if hard == resource.RLIM_INFINITY else min(hard, _STACK_FOR_ARGV)
        resource.setrlimit(resource.RLIMIT_STACK, (new, hard))
    return soft, hard


def nbctl_path(remote: str, net: Network, eps: list[Endpoint]) -> dict[str, Any]:
    argv = nbctl_argv(remote, net, eps, compact=False)
    form = "lsp-add + lsp-set-addresses + lsp-set-port-security + set external_ids"
    if argv_bytes(argv) > _ARGV_CAP:
        full = argv_bytes(argv)
        argv = nbctl_argv(remote, net, eps, compact=True)
        form = f"lsp-add + set (friendly form needs {full} argv bytes)"
    size = argv_bytes(argv)
    if size > _ARGV_CAP:
        return {
            "seconds": None,
            "argv_bytes": size,
            "reason": f"one transaction needs {size} bytes of argv; execve allows at most {_ARGV_CAP} "
            "(fs/exec.c: 3/4 of _STK_LIM) and ovn-nbctl has no batch input",
        }
    limits = _raise_stack_limit()
    try:
        t0 = time.perf_counter()
        res = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        seconds = time.perf_counter() - t0
    except OSError as exc:
        if exc.errno != errno.E2BIG:
            raise
        return {"seconds": None, "argv_bytes": size, "reason": f"execve: {exc.strerror} ({size} bytes of argv)"}
    finally:
        resource.setrlimit(resource.RLIMIT_STACK, limits)
    if res.returncode != 0:
        return {"seconds": None, "argv_bytes": size, "reason": f"ovn-nbctl failed: {res.stderr.strip()[:500]}"}
    return {"seconds": seconds, "argv_bytes": size, "form": form}


# ------------------------------------------------------------------ ovsdbapp path
def ovsdbapp_path(remote: str, net: Network, eps: list[Endpoint]) -> dict[str, Any]:
    from ovsdbapp.backend.ovs_idl import connection, idlutils  # type: ignore[import-untyped]
    from ovsdbapp.schema.ovn_northbound import impl_idl  # type: ignore[import-untyped]

    logging.getLogger("ovsdbapp").setLevel(logging.WARNING)
    ls_cols = ls_columns(net.source, net.name, net, HUB_ID)
    sw = ls_cols["name"]
    rows = [lsp_columns(ep, HUB_ID) for ep in eps]
    t0 = time.perf_counter()
    helper = idlutils.get_schema_helper(remote, "OVN_Northbound")
    helper.register_all()
    conn = connection.Connection(idl=connection.OvsdbIdl(remote, helper), timeout=600)
    # Backend keeps the connection on the class: a fresh sandbox needs a fresh one.
    impl_idl.OvnNbApiIdlImpl._ovsdb_connection = None
    try:
        api = impl_idl.OvnNbApiIdlImpl(conn)
        connect_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        with api.transaction(check_error=True) as txn:
            txn.add(api.ls_add(sw, other_config=ls_cols["other_config"], external_ids=ls_cols["external_ids"]))
            for cols in rows:
                port = cols["name"]
                extra = {"options": cols["options"]} if cols["options"] else {}
                txn.add(api.lsp_add(sw, port, external_ids=cols["external_ids"], **extra))
                txn.add(api.lsp_set_addresses(port, list(cols["addresses"])))
                txn.add(api.lsp_set_port_security(port, list(cols["port_security"])))
        commit_seconds = time.perf_counter() - t1
    finally:
        conn.stop(timeout=10)
        impl_idl.OvnNbApiIdlImpl._ovsdb_connection = None
    return {"connect_seconds": connect_seconds, "commit_seconds": commit_seconds, "seconds": commit_seconds}


# ------------------------------------------------------------------ driver
def _profile_report(profile: cProfile.Profile, path: str | None, top: int = 30) -> list[dict[str, Any]]:
    if path:
        profile.dump_stats(path)
        log(f"profile written to {path}")
    buf = io.StringIO()
    stats = pstats.Stats(profile, stream=buf)
    stats.sort_stats("tottime").print_stats(top)
    print(buf.getvalue(), file=sys.stderr)
    out = []
    raw_stats: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    items = sorted(raw_stats.items(), key=lambda kv: kv[1][2], reverse=True)[:15]
    for (file, line, func), (_cc, nc, tt, ct, _callers) in items:
        out.append(
            {"func": f"{Path(file).name}:{line}({func})", "calls": nc, "tottime": round(tt, 3), "cumtime": round(ct, 3)}
        )
    return out


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median time, plus every run's time."""
    ordered = sorted(runs, key=lambda x: x["seconds"])
    out = {**ordered[(len(ordered) - 1) // 2], "samples": [r(x["seconds"]) for x in runs]}
    if all("server_cpu_seconds" in x for x in runs):
        out["cpu_samples"] = [r(x["server_cpu_seconds"] + x["process_cpu_seconds"], 3) for x in runs]
    return out


def _median_cpu(runs: list[dict[str, Any]]) -> float:
    """The median of the runs' CPU seconds, NB server and this process together."""
    cpu = sorted(float(x["server_cpu_seconds"]) + float(x["process_cpu_seconds"]) for x in runs)
    return cpu[(len(cpu) - 1) // 2]


def _skipped(reason: str) -> dict[str, Any]:
    return {"seconds": None, "reason": reason}


def run_one(n: int, args: argparse.Namespace, profile: cProfile.Profile | None) -> dict[str, Any]:
    paths = set(args.paths.split(","))
    unknown = paths - PATHS
    if unknown:
        raise SystemExit(f"bench bulk: unknown --paths {sorted(unknown)}; choose from {sorted(PATHS)}")
    net = make_network(SOURCE)
    eps = make_endpoints(n, SOURCE)
    sample = [lsp_name(eps[i]) for i in sorted({0, n // 2, n - 1})]
    rows = n + 1
    res: dict[str, Any] = {"n": n, "rows": rows}
    prints: dict[str, Any] = {}
    hub: dict[str, Any] = _skipped("not selected (--paths)")
    raw: dict[str, Any] = _skipped("not selected (--paths)")
    nbctl: dict[str, Any] = _skipped("not selected (--paths)")
    odb: dict[str, Any] = _skipped("not selected (--paths)")

    with short_tmpdir("bb", keep=args.keep) as tmp:
        # hub and raw alternate, each repeat on fresh sandboxes; the median counts
        hub_runs: list[dict[str, Any]] = []
        raw_runs: list[dict[str, Any]] = []
        if profile is not None and "hub" in paths:
            snap = Snapshot(source=SOURCE, objects=(net, *eps))
            with nb_sandbox(tmp / "prof") as sb:
                profiled = asyncio.run(hub_path(sb.nb_remote, snap, profile, batch_size=args.batch_size))
            del snap
            res["hub_profiled_seconds"] = r(profiled["seconds"])
            log(f"N={n}: hub under cProfile {profiled['seconds']:.3f}s (not counted)")
        for i in range(args.repeat):
            if "hub" in paths:
                snap = Snapshot(source=SOURCE, objects=(net, *eps))
                with nb_sandbox(tmp / f"hub{i}") as sb:
                    hub_runs.append(asyncio.run(hub_path(sb.nb_remote, snap, None, _nb_pid(sb), args.batch_size)))
                    if i == 0:
                        prints["hub"] = asyncio.run(nb_fingerprint(sb.nb_remote, sample))
                del snap
                h = hub_runs[-1]
                log(f"N={n}: hub #{i + 1} {h['seconds']:.3f}s ({h['transactions']} txns, {h['writes']} writes; "
                    f"CPU: NB {h['server_cpu_seconds']:.2f}s, hub {h['process_cpu_seconds']:.2f}s; load {h['loadavg']})")
            if "raw" in paths:
                ops = raw_ops(net, eps)
                with nb_sandbox(tmp / f"raw{i}") as sb:
                    raw_runs.append(asyncio.run(raw_path(sb.nb_remote, ops, _nb_pid(sb))))
                    if i == 0:
                        prints["raw"] = asyncio.run(nb_fingerprint(sb.nb_remote, sample))
                del ops
                w = raw_runs[-1]
                log(f"N={n}: raw #{i + 1} {w['seconds']:.3f}s (CPU: NB {w['server_cpu_seconds']:.2f}s, "
                    f"client {w['process_cpu_seconds']:.2f}s; load {w['loadavg']})")
        if hub_runs:
            hub = _median_run(hub_runs)
        if raw_runs:
            raw = _median_run(raw_runs)
        if hub_runs and raw_runs:
            hub_cpu = _median_cpu(hub_runs)
            res["cpu_ratio_vs_raw"] = r(_median_cpu(raw_runs) / hub_cpu, 3) if hub_cpu > 0 else None

        if "nbctl" in paths and n > args.nbctl_max:
            nbctl = _skipped(f"skipped: N > --nbctl-max {args.nbctl_max}")
        elif "nbctl" in paths:
            log(f"N={n}: ovn-nbctl")
            with nb_sandbox(tmp / "ctl") as sb:
                nbctl = nbctl_path(sb.nb_remote, net, eps)
                if nbctl["seconds"] is not None:
                    prints["nbctl"] = asyncio.run(nb_fingerprint(sb.nb_remote, sample))
            log(f"N={n}: ovn-nbctl " + (f"{nbctl['seconds']:.3f}s" if nbctl["seconds"] else nbctl["reason"]))

        if "ovsdbapp" in paths and n > args.ovsdbapp_max:
            odb = _skipped(f"skipped: N > --ovsdbapp-max {args.ovsdbapp_max}")
        elif "ovsdbapp" in paths:
            log(f"N={n}: ovsdbapp")
            with nb_sandbox(tmp / "odb") as sb:
                odb = ovsdbapp_path(sb.nb_remote, net, eps)
                prints["ovsdbapp"] = asyncio.run(nb_fingerprint(sb.nb_remote, sample))
            log(f"N={n}: ovsdbapp connect {odb['connect_seconds']:.3f}s commit {odb['seconds']:.3f}s")

    def block(d: dict[str, Any]) -> dict[str, Any]:
        out = {k: (r(v) if k.endswith("seconds") else v) for k, v in d.items()}
        out["rows_per_s"] = rate(rows, d.get("seconds"))
        return out

    res["hub"] = block(hub)
    res["raw"] = block(raw)
    res["ovn_nbctl"] = block(nbctl)
    res["ovsdbapp"] = block(odb)
    ref = next(iter(prints.values()), None)
    res["rows_identical"] = {k: v == ref for k, v in prints.items()}
    res["nb_ports"] = {k: v["ports"] for k, v in prints.items()}
    ratio = raw["seconds"] / hub["seconds"] if raw["seconds"] and hub["seconds"] else None
    res["ratio_vs_raw"] = r(ratio, 3)
    res["target_ratio"] = TARGET_RATIO
    res["target_met"] = (
        ratio is not None
        and ratio >= TARGET_RATIO
        and all(res["rows_identical"].values())
        and all(p == n for p in res["nb_ports"].values())
    )
    return res


def main(args: argparse.Namespace) -> int:
    sizes: list[int] = args.n
    if args.gc_threshold is not None:
        gc.set_threshold(args.gc_threshold)
    profile_n = max(sizes) if args.profile else None
    results = []
    started = time.perf_counter()
    profile_top: list[dict[str, Any]] | None = None
    for n in sizes:
        profile = cProfile.Profile() if n == profile_n else None
        results.append(run_one(n, args, profile))
        if profile is not None:
            profile_top = _profile_report(profile, args.profile_out)
    out: dict[str, Any] = {
        "bench": "bulk",
        "env": environment(),
        "hub_id": HUB_ID,
        "network": NETWORK,
        "repeat": args.repeat,
        "gc_threshold": list(gc.get_threshold()),
        "gc_tuned": args.gc_threshold is not None,
        "batch_size": args.batch_size,  # None: the Programmer's default (hubd's ovn.batch_size default)
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "results": results,
        "target_met": all(x["target_met"] for x in results),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    if profile_top is not None:
        out["profile"] = {
            "n": profile_n,
            "note": "hub path under cProfile (slower than unprofiled)",
            "top_tottime": profile_top,
        }
    emit(out)
    return 0


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--n", type=int, nargs="+", default=[10000, 50000], help="endpoint counts (default 10000 50000)")
    ap.add_argument("--ovsdbapp-max", type=int, default=10000, help="run the ovsdbapp baseline only up to this N")
    ap.add_argument("--nbctl-max", type=int, default=50000, help="run the ovn-nbctl baseline only up to this N")
    ap.add_argument("--profile", action="store_true", help="cProfile the hub path at the largest N (stderr + JSON)")
    ap.add_argument("--profile-out", default=None, help="also dump the pstats file here")
    ap.add_argument(
        "--paths",
        default="hub,raw,nbctl,ovsdbapp",
        help="comma-separated subset of hub,raw,nbctl,ovsdbapp (hub and raw are needed for the ratio)",
    )
    ap.add_argument("--repeat", type=int, default=3, help="hub and raw runs per N (alternating); medians count")
    ap.add_argument(
        "--gc-threshold",
        type=int,
        default=None,
        help="experiment: gc.set_threshold(VALUE) in this process (hubd does not tune the GC; default: untouched)",
    )
    ap.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="experiment: the Programmer's batch_size (hubd's ovn.batch_size; default: its default, 50000)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (NB databases and logs)")
