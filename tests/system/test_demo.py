"""``make demo`` runs and tells the truth: ping passes, then the policy drops it."""

from __future__ import annotations

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
    assert "100% packet loss" in after, out[-4000:]
    assert "Demo OK" in after and "switch " in after and "drop" in after
    assert "beta's port is up: True; in hub_" in after and ": True" in after.split("beta's port is up")[1].splitlines()[0]
