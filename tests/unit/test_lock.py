"""scripts/check-lock.py: pyproject.toml against requirements.lock, offline."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check-lock.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_lock", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


cl = _load()

LOCK = """\
#
#    pip-compile --extra=test ... pyproject.toml
#
aiohttp==3.14.5 \\
    --hash=sha256:aaaa \\
    --hash=sha256:bbbb
    # via
    #   ovn-hub (pyproject.toml)
    #   aiodocker
multidict==7.2.1 \\
    --hash=sha256:cccc
    # via aiohttp
pytest==9.2.0 \\
    --hash=sha256:dddd
    # via ovn-hub (pyproject.toml)
setuptools==84.2.1 \\
    --hash=sha256:eeee
    # via ovn-hub (pyproject.toml::build-system.requires)

# WARNING: The following packages were not pinned, but pip requires them to be
# ovs
"""

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
[project]
name = "ovn-hub"
dependencies = [{deps}]
[project.optional-dependencies]
test = [{test}"tomli>=1; python_version < '3.11'"]
"""


def problems(tmp_path: Path, lock: str = LOCK, deps: str = '"aiohttp>=3.9"', test: str = '"pytest>=8", ') -> list[str]:
    (tmp_path / "l").write_text(lock)
    (tmp_path / "p").write_text(PYPROJECT.format(deps=deps, test=test))
    out: list[str] = cl.check_pyproject(cl.read_lock(tmp_path / "l"), cl.project_requirements(tmp_path / "p"))
    return out


def test_parse_lock(tmp_path: Path) -> None:
    (tmp_path / "l").write_text(LOCK)
    pins = cl.read_lock(tmp_path / "l")
    assert {n: p.version for n, p in pins.items()} == {
        "aiohttp": "3.14.5", "multidict": "7.2.1", "pytest": "9.2.0", "setuptools": "84.2.1"}
    assert pins["aiohttp"].hashes == 2 and pins["aiohttp"].via == ["ovn-hub (pyproject.toml)", "aiodocker"]
    assert pins["multidict"].via == ["aiohttp"]


def test_agreeing_files_pass(tmp_path: Path) -> None:
    assert problems(tmp_path) == []  # the marker-excluded tomli needs no pin on 3.11+


@pytest.mark.parametrize(("deps", "lock", "needle"), [
    ('"aiohttp>=3.15"', LOCK, "requires aiohttp>=3.15, the lock pins aiohttp==3.14.5"),
    ('"aiohttp>=3.9", "msgspec>=0.18"', LOCK, "requires msgspec>=0.18, which the lock does not pin"),
    ('"aiohttp>=3.9"', LOCK.replace("    --hash=sha256:cccc\n", ""), "multidict==7.2.1 without a hash"),
    ('"aiohttp>=3.9"', LOCK + "ovs==3.6.0 \\\n    --hash=sha256:ffff\n    # via ovsdbapp\n", "pins ovs==3.6.0"),
])
def test_disagreements_are_named(tmp_path: Path, deps: str, lock: str, needle: str) -> None:
    found = problems(tmp_path, lock, deps)
    assert len(found) == 1 and needle in found[0], found


def test_stale_pin_is_named(tmp_path: Path) -> None:
    assert problems(tmp_path, test="") == [
        "the lock pins pytest==9.2.0 for pyproject.toml, which no longer requires it"]
    assert problems(tmp_path, deps='"multidict"') == []  # aiohttp stays: aiodocker needs it too


def test_repo_lock_agrees_and_leaves_out_ovs() -> None:
    pins = cl.read_lock()
    assert "ovs" not in pins and "ovsdbapp" in pins
    assert {"setuptools", "wheel", "hypothesis", "pytest"} <= set(pins)
    r = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr) == (0, "")


def test_installed_venv_matches_lock() -> None:
    assert cl.check_installed(cl.read_lock()) == []
