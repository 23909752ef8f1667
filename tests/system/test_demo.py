"""``make demo`` runs and tells the truth: ping on one network, a name resolved
and pinged across networks, the outside host reached through SNAT over the
Geneve tunnel to the gateway chassis; then the policy drops the first ping."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_make_demo_script() -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")], capture_output=True, text=True, timeout=300
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    before, _, after = out.partition("Applying a policy")
    assert " 0% packet loss" in before, out[-4000:]
    # gamma (network red) by name: OVN's DNS answer, then a ping of that name, routed (ttl 63)
    assert re.search(r"Name:\s+gamma\.default\.docker\.local\.hub\nAddress: 10\.81\.0\.\d+", before), before[-4000:]
    ping = before.split("ping -4 -c 3 -W 2 gamma.default.docker.local.hub", 1)[1]
    assert re.search(r"PING gamma\.default\.docker\.local\.hub \(10\.81\.0\.\d+\)", ping), ping[:2000]
    assert "ttl=63" in ping and " 0% packet loss" in ping, ping[:2000]
    # the outside host saw the external address, and the packets crossed the tunnel
    assert "hello from the outside host: you came from 172.16.0.10" in before, before[-4000:]
    assert "outside host: a connection from 172.16.0.10" in before
    tunnel = re.search(r"demo-node's datapath encapsulated (\d+) packets, demo-gw's decapsulated (\d+)", before)
    assert tunnel and int(tunnel.group(1)) > 0 and int(tunnel.group(2)) > 0, before[-2000:]
    assert "100% packet loss" in after, out[-4000:]
    assert "Demo OK" in after and "switch " in after and "drop" in after
    assert "beta's port is up: True; in hub_" in after and ": True" in after.split("beta's port is up")[1].splitlines()[0]
    assert "FAIL" not in out
