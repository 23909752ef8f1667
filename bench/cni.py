"""``bench cni``: CNI ADD latency for a burst of N sandboxes, ovn-hub vs Debian's bridge + host-local.

A runtime (kubelet, podman) execs the plugin once per sandbox, and a node
starting many pods at once execs them in parallel.  This starts the one-host
data plane (testkit/dataplane.py), a real ``hubd`` and ``hubd --role node``
with ``[cni]`` (the source ``cni/node1``: each ADD is an endpoint published to
the hub, written to NB by it, allocated by ovn-northd, locked by the hub,
plugged by the agent: the whole path), makes N network namespaces and execs N
``ovn-hub`` ADDs at once, timing each from exec to exit.  The baseline, in the
same run: Debian's reference ``bridge`` plugin (a Linux bridge, ``isGateway``)
with ``host-local`` IPAM (its data dir in the temp dir), the same N ADDs at once
into N fresh namespaces.  Both are exec'd through ``ip netns exec <bench ns>``,
so the reference bridge lives in a namespace of the bench's own, never the
host's (the unix socket of the agent is reachable from any namespace).

Also: the plugin's own start-up (``VERSION``, answered without the agent) and,
after the burst, N sequential ADDs of each (latency without a queue).  Every
ADD must succeed; all is removed in ``finally``.  Needs root.  JSON out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import emit, environment, log, short_tmpdir
from testkit.cni import conflist, plugin_conf, plugin_dir
from testkit.dataplane import OneHostOvn
from testkit.hubd import Hubd

ROOT = Path(__file__).resolve().parents[1]
HUB_ID = "benchcni"


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--n", type=int, default=100, help="sandboxes per burst (default 100)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def _summary(xs: list[float]) -> dict[str, float]:
    return {"p50": round(_pct(xs, 0.5), 4), "p99": round(_pct(xs, 0.99), 4), "max": round(max(xs), 4),
            "mean": round(statistics.fmean(xs), 4)}  # fmt: skip


async def _exec(argv: list[str], env: dict[str, str], stdin: bytes) -> tuple[float, int, bytes]:
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
    out, err = await proc.communicate(stdin)
    return time.monotonic() - t0, proc.returncode or 0, out + err


class Run:
    def __init__(self, tmp: Path, n: int) -> None:
        self.tmp = tmp
        self.n = n
        self.cni_path = plugin_dir(tmp / "bin")
        self.sock = str(tmp / "cni.sock")
        self.exec_ns = ""
        self.namespaces: list[str] = []
        self.tag = "hubt-" + secrets.token_hex(3)

    def netns(self, name: str) -> str:
        subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
        self.namespaces.append(name)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        return name

    def env(self, command: str, cid: str, ns: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
        env.update(CNI_COMMAND=command, CNI_CONTAINERID=cid, CNI_NETNS=f"/var/run/netns/{ns}", CNI_IFNAME="eth0",
                   CNI_PATH=str(self.cni_path))  # fmt: skip
        return env

    async def burst(self, plugin: str, conf: dict[str, Any], prefix: str, command: str = "ADD",
                    names: list[str] | None = None) -> tuple[list[float], float, list[str]]:  # fmt: skip
        names = names or [self.netns(f"{self.tag}-{prefix}{i}") for i in range(self.n)]
        data = json.dumps(conf).encode()
        argv = ["ip", "netns", "exec", self.exec_ns, str(self.cni_path / plugin)]
        t0 = time.monotonic()
        done = await asyncio.gather(*(_exec(argv, self.env(command, f"{prefix}-{i}", ns), data)
                                      for i, ns in enumerate(names)))  # fmt: skip
        wall = time.monotonic() - t0
        failed = [o.decode(errors="replace")[-300:] for _, rc, o in done if rc != 0]
        if failed:
            raise RuntimeError(f"{plugin} {command}: {len(failed)} of {len(done)} failed; first: {failed[0]}")
        return [t for t, _, _ in done], wall, names

    async def sequential(self, plugin: str, conf: dict[str, Any], prefix: str) -> list[float]:
        data = json.dumps(conf).encode()
        argv = ["ip", "netns", "exec", self.exec_ns, str(self.cni_path / plugin)]
        out = []
        for i in range(self.n):
            ns = self.netns(f"{self.tag}-{prefix}{i}")
            t, rc, o = await _exec(argv, self.env("ADD", f"{prefix}-{i}", ns), data)
            if rc != 0:
                raise RuntimeError(f"{plugin} ADD: {o.decode(errors='replace')[-300:]}")
            out.append(t)
        return out

    def cleanup(self) -> None:
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=20)
        self.namespaces.clear()


async def _main(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    run = Run(tmp, args.n)
    procs: list[Hubd] = []
    env = {"PYTHONPATH": str(ROOT)}
    host = OneHostOvn(chassis="node1")
    host.start()
    try:
        run.exec_ns = run.netns(f"{run.tag}-x")
        hd, nd = tmp / "hub", tmp / "node"
        hd.mkdir()
        nd.mkdir()
        hub = Hubd(hd, f'[hub]\nid = "{HUB_ID}"\nstate_dir = "{hd}"\n[ovn]\nnb = "{host.ovn.nb_remote}"\n'
                       f'[api]\nlisten = "unix:{hd}/api.sock"\n[routers.default]\nnetworks = ["*"]\n', env=env)
        procs.append(hub)
        hub.start()
        await asyncio.to_thread(hub.wait_ready, 60)
        node = Hubd(nd, f'[hub]\nid = "{HUB_ID}"\nstate_dir = "{nd}"\n[ovn]\nnb = "{host.ovn.nb_remote}"\n'
                        f'[node]\ndocker = ""\novs = "{host.db_remote}"\nchassis = "node1"\n'
                        f'switch_netns = "{host.sw_ns}"\n'
                        f'[cni]\nenabled = true\nsocket = "{run.sock}"\nhub_api = "unix:{hd}/api.sock"\n'
                        f'hub_token_file = "{hd}/ingest.token"\n'
                        '[cni.networks.blue]\nsubnet = "10.80.0.0/16"\ngateway = "10.80.0.1"\n',
                    args=("--role", "node"), env=env)  # fmt: skip
        procs.append(node)
        node.start()
        await asyncio.to_thread(node.wait_ready, 60)
        hub_conf = plugin_conf(conflist("hubnet", "blue", run.sock, timeout=120))
        ref_conf = {"cniVersion": "1.0.0", "name": "refnet", "type": "bridge", "bridge": "hubbench0",
                    "isGateway": True, "ipam": {"type": "host-local", "subnet": "10.81.0.0/16",
                                                "dataDir": str(tmp / "host-local")}}  # fmt: skip

        version: list[float] = []
        ref_version: list[float] = []
        for plugin, times in (("ovn-hub", version), ("bridge", ref_version)):
            for _ in range(20):
                t, rc, out = await _exec([str(run.cni_path / plugin)], {"CNI_COMMAND": "VERSION"}, b"{}")
                if rc != 0:
                    raise RuntimeError(f"{plugin} VERSION: {out.decode(errors='replace')[-300:]}")
                times.append(t)

        # the reference first, then ovn-hub, then both again one at a time
        log(f"bridge + host-local: {args.n} ADDs at once")
        ref, ref_wall, ref_names = await run.burst("bridge", ref_conf, "r")
        log(f"ovn-hub: {args.n} ADDs at once")
        hub_t, hub_wall, hub_names = await run.burst("ovn-hub", hub_conf, "h")
        log("sequential ADDs")
        ref_seq = await run.sequential("bridge", ref_conf, "rs")
        hub_seq = await run.sequential("ovn-hub", hub_conf, "hs")
        log("DEL bursts")
        hub_del, hub_del_wall, _ = await run.burst("ovn-hub", hub_conf, "h", command="DEL", names=hub_names)
        ref_del, ref_del_wall, _ = await run.burst("bridge", ref_conf, "r", command="DEL", names=ref_names)
        results: dict[str, Any] = {
            "bench": "cni",
            "n": args.n,
            "burst_add": {"hub": {**_summary(hub_t), "wall": round(hub_wall, 3)},
                          "bridge_host_local": {**_summary(ref), "wall": round(ref_wall, 3)},
                          "ratio_p50": round(_pct(hub_t, 0.5) / _pct(ref, 0.5), 2),
                          "ratio_p99": round(_pct(hub_t, 0.99) / _pct(ref, 0.99), 2)},
            "sequential_add": {"hub": _summary(hub_seq), "bridge_host_local": _summary(ref_seq),
                               "ratio_p50": round(_pct(hub_seq, 0.5) / _pct(ref_seq, 0.5), 2)},
            "burst_del": {"hub": {**_summary(hub_del), "wall": round(hub_del_wall, 3)},
                          "bridge_host_local": {**_summary(ref_del), "wall": round(ref_del_wall, 3)}},
            "plugin_start_version": {"hub": _summary(version), "bridge": _summary(ref_version)},
            "env": environment(),
        }  # fmt: skip
        return results
    finally:
        for h in reversed(procs):
            h.close()
        run.cleanup()
        host.stop()


def main(args: argparse.Namespace) -> int:
    if os.geteuid() != 0 or not shutil.which("ovs-vswitchd") or not Path("/usr/lib/cni/bridge").exists():
        raise SystemExit("bench cni needs root, ovs-vswitchd and containernetworking-plugins")
    with short_tmpdir("bcni", keep=args.keep) as tmp:
        emit(asyncio.run(_main(args, tmp)))
    return 0
