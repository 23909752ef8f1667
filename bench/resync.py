"""``bench resync``: restart a real ``hubd`` over N already-programmed endpoints.

A ``hubd`` subprocess (the console script next to ``sys.executable``) runs the
static adapter on a JSON-lines file of N canonical Endpoints, against a private
NB.  The first run programs them.  Then, ``--repeat`` times, two restarts are
measured: **clean** (a SIGTERM wrote the port cache before it) and **crash**
(no cache: the one before was SIGKILLed, and a start consumes the cache it
reads).  Each reports process start to ``READY=1`` on a NOTIFY_SOCKET we bind,
the NB writes it made before READY (``ovn_hub_nb_operations_total`` from
/metrics and ``nb.transactions`` from /v1/status, over the API unix socket),
the ports taken from the cache and read, and its RSS (VmRSS, VmHWM) at READY.

Baseline, same run, before each restart: one ``transact`` selecting every
Logical_Switch_Port (with the hub's columns) and Logical_Switch through
:class:`core.ovsdb.OvsdbClient`, JSON parse included.  Medians count for the
times (ranges reported), the maximum for RSS, HWM and writes.  For context, the
RSS of a bare ``python -c "import hub.daemon"``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    BIN,
    HUB_ID,
    emit,
    environment,
    log,
    make_endpoints,
    make_network,
    mb,
    nb_server,
    proc_status_kb,
    r,
    short_tmpdir,
)
from core.model import Source, encode
from core.nb.tables import LS, LSP, port, switch
from core.ovsdb import OvsdbClient

SOURCE = Source("static", "bench")  # the static adapter's source: type/cluster
TARGET_RATIO = 1.5
TARGET_WRITES = 0


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[str] = []

    def drain(self) -> None:
        self.sock.setblocking(False)
        try:
            while True:
                self.messages.extend(self.sock.recv(65536).decode().split("\n"))
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)

    def wait_for(self, line: str, proc: subprocess.Popen[bytes], timeout: float) -> float:
        """Block until a datagram holds ``line``; return time.monotonic() of its arrival."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {line!r} within {timeout}s; got {self.messages[-5:]}")
            if proc.poll() is not None:
                raise RuntimeError(f"hubd exited with {proc.returncode} before {line!r}")
            self.sock.settimeout(min(left, 0.5))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            now = time.monotonic()
            lines = data.decode().split("\n")
            self.messages.extend(lines)
            if line in lines:
                return now

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)


class HubdProcess:
    def __init__(self, workdir: Path, config: Path, notify: NotifySocket) -> None:
        self.workdir = workdir
        self.config = config
        self.notify = notify
        self.log_path = workdir / "hubd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        #: PYTHONPATH of the next start (``--hubd-src``: another tree's code); None: this tree's
        self.pythonpath: str | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", NOTIFY_SOCKET=str(self.notify.path))
        if self.pythonpath is not None:
            env["PYTHONPATH"] = self.pythonpath
        env.pop("WATCHDOG_USEC", None)
        self.notify.drain()
        self.notify.messages.clear()
        with open(self.log_path, "ab") as logf:
            self.started = time.monotonic()
            self.proc = subprocess.Popen(
                [str(BIN / "hubd"), "--config", str(self.config)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )

    def wait_ready(self, timeout: float) -> float:
        assert self.proc is not None
        return self.notify.wait_for("READY=1", self.proc, timeout) - self.started

    def terminate(self, timeout: float = 60.0) -> tuple[int, float]:
        """SIGTERM and wait; returns (exit code, seconds to exit)."""
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(10)
        return rc, time.monotonic() - t0

    def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def write_inputs(tmp: Path, n: int, nb_remote: str) -> tuple[Path, Path]:
    data = tmp / "eps.jsonl"
    with open(data, "wb") as fh:
        fh.write(encode(make_network(SOURCE)) + b"\n")
        for ep in make_endpoints(n, SOURCE):
            fh.write(encode(ep) + b"\n")
    config = tmp / "hubd.toml"
    config.write_text(
        f"""[hub]
id = "{HUB_ID}"
state_dir = "{tmp / "state"}"
log_level = "info"

[ovn]
nb = "{nb_remote}"

[api]
listen = "unix:{tmp / "api.sock"}"

[adapters.s]
type = "static"
cluster = "{SOURCE.cluster}"
path = "{data}"
"""
    )
    return data, config


async def api_counters(api_sock: Path) -> dict[str, Any]:
    """NB write counters of a running hubd, over its admin API socket."""
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(api_sock))) as session:
        async with session.get("http://hubd/metrics") as resp:
            resp.raise_for_status()
            text = await resp.text()
        async with session.get("http://hubd/v1/status") as resp:
            resp.raise_for_status()
            status: dict[str, Any] = await resp.json()
    ops: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("ovn_hub_nb_operations_total{"):
            labels, _, value = line.rpartition(" ")
            ops[labels[len("ovn_hub_nb_operations_total") :]] = float(value)
    nb = status.get("nb", {})
    return {
        "nb_operations": int(sum(ops.values())),
        "nb_operations_by_label": ops,
        "transactions": nb.get("transactions"),
        "ports": nb.get("ports"),
        "switches": nb.get("switches"),
        "dirty": nb.get("dirty"),
        "ports_from_cache": nb.get("ports_from_cache"),
        "ports_read": nb.get("ports_read"),
        "ports_load": nb.get("ports_load"),
        "endpoints": status.get("endpoints"),
        "ready": status.get("ready"),
    }


LSP_COLUMNS = list(port.COLUMNS)
LS_COLUMNS = list(switch.COLUMNS)


async def raw_read(remote: str) -> tuple[float, int, int]:
    """One transact selecting all LSP and LS rows with the hub's columns."""
    client = OvsdbClient(remote)
    await client.connect()
    try:
        t0 = time.perf_counter()
        res = await client.transact(
            [
                {"op": "select", "table": LSP, "where": [], "columns": LSP_COLUMNS},
                {"op": "select", "table": LS, "where": [], "columns": LS_COLUMNS},
            ]
        )
        seconds = time.perf_counter() - t0
    finally:
        await client.close()
    return seconds, len(res[0]["rows"]), len(res[1]["rows"])


def bare_interpreter() -> dict[str, Any]:
    """RSS (and wall time) of a bare ``python -c "import hub.daemon"``."""
    code = "import hub.daemon, sys; sys.stdout.write(open('/proc/self/status').read())"
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    seconds = time.monotonic() - t0
    kb: dict[str, int] = {}
    for line in res.stdout.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            kb[key] = int(rest.split()[0])
    return {"rss_mb": mb(kb.get("VmRSS")), "hwm_mb": mb(kb.get("VmHWM")), "seconds": r(seconds, 3)}


#: RSS at READY (MB) by N (issue 15); HWM within HWM_OVER_RSS of it
TARGET_RSS_MB: dict[int, float] = {50000: 100.0, 100000: 180.0}
TARGET_CLEAN_RATIO = 0.5
HWM_OVER_RSS = 1.2
MODES = ("clean", "crash")


def measure_restart(hubd: HubdProcess, api_sock: Path, timeout: float, how: str) -> dict[str, Any]:
    """Start hubd, wait for READY, read its counters and memory; stop it with
    SIGTERM (``how="term"``: it writes the port cache) or SIGKILL (a crash:
    the next start finds no cache, the load consumed it)."""
    hubd.start()
    assert hubd.proc is not None
    ready = hubd.wait_ready(timeout)
    kb = proc_status_kb(hubd.proc.pid)
    counters = asyncio.run(api_counters(api_sock))
    if how == "term":
        rc, stop = hubd.terminate()
    else:
        t0 = time.monotonic()
        hubd.proc.kill()
        rc, stop = hubd.proc.wait(30), time.monotonic() - t0
    return {
        "ready_seconds": ready,
        "rss_mb": mb(kb.get("VmRSS")),
        "hwm_mb": mb(kb.get("VmHWM")),
        **counters,
        "exit_code": rc,
        "stop_seconds": r(stop, 3),
    }


def summarize(runs: list[dict[str, Any]], raw_seconds: float, n: int, target_ratio: float) -> dict[str, Any]:
    """Medians of the times; RSS, HWM and writes: the maximum over the restarts."""
    ordered = sorted(runs, key=lambda x: x["ready_seconds"])
    median_run = ordered[(len(ordered) - 1) // 2]
    ready = statistics.median(x["ready_seconds"] for x in runs)
    ratio = ready / raw_seconds
    rss = max(x["rss_mb"] for x in runs)
    hwm = max(x["hwm_mb"] for x in runs)
    writes = max(x["nb_operations"] for x in runs)
    rss_target = TARGET_RSS_MB.get(n)
    return {
        "ready_seconds": r(ready, 3),
        "ready_range": [r(ordered[0]["ready_seconds"], 3), r(ordered[-1]["ready_seconds"], 3)],
        "ratio": r(ratio, 3),
        "writes_during_resync": writes,
        "transactions_during_resync": max(x["transactions"] for x in runs),
        "rss_mb": rss,
        "hwm_mb": hwm,
        "hwm_over_rss": round(max(x["hwm_mb"] / x["rss_mb"] for x in runs), 3),
        "samples": {
            "ready_seconds": [r(x["ready_seconds"], 3) for x in runs],
            "rss_mb": [x["rss_mb"] for x in runs],
            "hwm_mb": [x["hwm_mb"] for x in runs],
            "writes": [x["nb_operations"] for x in runs],
            "ports_from_cache": [x.get("ports_from_cache") for x in runs],
            "ports_read": [x.get("ports_read") for x in runs],
            "ports_load": [x.get("ports_load") for x in runs],
        },
        "median_run": {**median_run, "ready_seconds": r(median_run["ready_seconds"], 3)},
        "targets": {"ratio": target_ratio, "writes_during_resync": TARGET_WRITES, "rss_mb": rss_target,
                    "hwm_over_rss": HWM_OVER_RSS},
        "target_met": {
            "ratio": ratio <= target_ratio,
            "writes_during_resync": writes == TARGET_WRITES,
            "rss_mb": rss_target is None or rss <= rss_target,
            "hwm_over_rss": all(x["hwm_mb"] <= HWM_OVER_RSS * x["rss_mb"] for x in runs),
            "programmed": all(x["ports"] == n and x["endpoints"] == n for x in runs),
        },
    }


def run_one(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Both restarts over N programmed endpoints, alternating with raw reads:
    per repeat a raw read, a clean restart (the cache the last SIGTERM wrote;
    SIGKILL at READY, so no cache is written), a raw read, a crash restart
    (no cache: the full read; SIGTERM at READY writes the next cache)."""
    out: dict[str, Any] = {"n": n}
    modes = [m for m in MODES if m in args.modes.split(",")]
    out["nb"] = "clustered (1 member)" if args.clustered else "standalone"
    with short_tmpdir("br", keep=args.keep) as tmp, nb_server(tmp / "ovn", args.clustered) as nb_remote:
        log(f"N={n}: writing {n} endpoints to a JSON-lines file")
        _, config = write_inputs(tmp, n, nb_remote)
        notify = NotifySocket(tmp / "n.sock")
        hubd = HubdProcess(tmp, config, notify)
        api = tmp / "api.sock"
        try:
            log(f"N={n}: hubd run 1: programming an empty NB")
            first = measure_restart(hubd, api, args.timeout, "term")
            log(f"N={n}: hubd run 1: READY after {first['ready_seconds']:.2f}s, {first['nb_operations']} NB writes")
            out["first_run"] = {k: first[k] for k in ("nb_operations", "transactions", "ports", "exit_code", "stop_seconds",
                                                     "rss_mb", "hwm_mb")}  # fmt: skip
            out["first_run"]["ready_seconds"] = r(first["ready_seconds"], 3)
            reads: list[tuple[float, int, int]] = []
            variants: list[tuple[str, str | None]] = [("", None)]
            if args.hubd_src:
                variants = [(f"{name}:", path) for name, _, path in (v.partition("=") for v in args.hubd_src)]
                modes = [m for m in ("crash", "clean") if m in modes]  # each variant's clean start reads its own cache
            runs: dict[str, list[dict[str, Any]]] = {f"{v}{m}": [] for v, _ in variants for m in modes}
            for i in range(args.repeat):
                for variant, path in variants:
                    hubd.pythonpath = path
                    for mode in modes:
                        reads.append(asyncio.run(raw_read(nb_remote)))
                        log(f"N={n}: raw read #{len(reads)}: {reads[-1][0]:.3f}s ({reads[-1][1]} ports)")
                        if mode == "crash":
                            for stale in (tmp / "state").glob("nb-ports-*.cache"):
                                stale.unlink()  # (only when clean is not measured: its SIGKILL left none)
                        # a clean restart ends in SIGKILL so the crash restart after it finds no cache (measured
                        # alone, in SIGTERM: the next clean restart needs the cache it writes)
                        how = "kill" if mode == "clean" and "crash" in modes else "term"
                        res = measure_restart(hubd, api, args.timeout, how)
                        runs[f"{variant}{mode}"].append(res)
                        log(f"N={n}: {variant}{mode} restart #{i + 1}: READY after {res['ready_seconds']:.2f}s, "
                            f"{res['nb_operations']} NB writes, RSS {res['rss_mb']} MB HWM {res['hwm_mb']} MB, "
                            f"{res.get('ports_from_cache')} ports from the cache, {res.get('ports_read')} read ({res.get('ports_load')})")  # fmt: skip
        except BaseException:
            log(f"hubd log tail:\n{hubd.log_tail()}")
            raise
        finally:
            hubd.ensure_stopped()
            notify.close()
    raw_seconds = statistics.median(x[0] for x in reads)
    out["raw_read"] = {
        "seconds": r(raw_seconds),
        "samples": [r(x[0]) for x in reads],
        "ports": reads[0][1],
        "switches": reads[0][2],
        "columns": {"Logical_Switch_Port": LSP_COLUMNS, "Logical_Switch": LS_COLUMNS},
    }
    for key, got in runs.items():
        mode = key.rpartition(":")[2]
        out[key] = summarize(got, raw_seconds, n, TARGET_CLEAN_RATIO if mode == "clean" else TARGET_RATIO)
    out["target_met"] = {key: all(out[key]["target_met"].values()) for key in runs}
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"bench": "resync", "env": environment(), "repeat": args.repeat}
    started = time.perf_counter()
    log("bare interpreter: python -c 'import hub.daemon'")
    out["interpreter_baseline"] = bare_interpreter()
    out["results"] = [run_one(n, args) for n in args.n]
    for res in out["results"]:
        for key in res["target_met"]:
            res[key]["rss_over_interpreter_mb"] = round(res[key]["rss_mb"] - out["interpreter_baseline"]["rss_mb"], 1)
    out["all_targets_met"] = all(all(x["target_met"].values()) for x in out["results"])
    out["wall_seconds"] = round(time.perf_counter() - started, 1)
    return out


def main(args: argparse.Namespace) -> int:
    emit(run(args))
    return 0


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--n", type=int, nargs="+", default=[50000, 100000], help="endpoint counts (default 50000 100000)")
    ap.add_argument("--modes", default="clean,crash", help="restarts to measure: clean (with the port cache), crash (without)")
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="raw reads and measured hubd restarts, alternating; medians count (RSS and writes: max)",
    )
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for READY=1")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (NB database, hubd log)")
    ap.add_argument("--clustered", action="store_true",
                    help="NB as a one-member RAFT cluster (a clean restart then asks NB's transaction history)")
    ap.add_argument(
        "--hubd-src",
        action="append",
        metavar="NAME=PYTHONPATH",
        help="alternate hubds running another tree's code (PYTHONPATH before this venv's), e.g. old=/tmp/main new=.; "
        "results under '<NAME>:clean', '<NAME>:crash'; each variant runs crash, then clean (its own cache)",
    )
