"""Does requirements.lock agree with pyproject.toml?  Offline, in milliseconds.

    python scripts/check-lock.py              pyproject.toml against the lock (make lint, make deps)
    python scripts/check-lock.py --installed  the venv against the lock (after make deps installed it)

The lock is pip-compile output: ``name==version`` lines, each followed by its
``--hash`` lines and a ``# via`` comment.  pyproject.toml and the lock disagree
when a requirement of the project (dependencies, the ``test`` extra,
build-system.requires) has no pin in the lock, or a pin that does not satisfy
its specifier, or when the lock still pins a package that only pyproject.toml
asked for and no longer does.  ``ovs`` must never be pinned: PyPI's sdist
builds without the C JSON extension and would shadow Debian's
python3-openvswitch.  Exit status 1 with one line per problem and the fix.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version
except ImportError:  # a fresh venv before the lock is installed: pip's own copy
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[assignment]
    from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[assignment]
    from pip._vendor.packaging.version import Version  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
EXTRAS = ("test",)
NEVER_LOCKED = {"ovs": "Debian's python3-openvswitch provides it (with the C JSON extension ovs._json)"}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
_FROM_PYPROJECT = "ovn-hub (pyproject.toml"


class Pin:
    def __init__(self, name: str, version: str, line: int) -> None:
        self.name, self.version, self.line = name, version, line
        self.hashes = 0
        self.via: list[str] = []


def read_lock(path: Path = LOCK) -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    cur: Pin | None = None
    for no, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        m = _PIN.match(raw)
        if m:
            cur = Pin(canonicalize_name(m.group(1)), m.group(2), no)
            pins[cur.name] = cur
        elif cur is not None and line.startswith("--hash="):
            cur.hashes += 1
        elif cur is not None and line.startswith("#") and raw.startswith("    "):
            text = line.lstrip("#").strip()
            text = text[len("via"):].strip() if text.startswith("via") else text
            if text:
                cur.via.append(text)
        elif not raw.startswith(" "):
            cur = None
    return pins


def project_requirements(path: Path = PYPROJECT) -> list[tuple[str, Requirement]]:
    data = tomllib.loads(path.read_text())
    out = [("build-system.requires", Requirement(r)) for r in data.get("build-system", {}).get("requires", [])]
    out += [("project.dependencies", Requirement(r)) for r in data["project"].get("dependencies", [])]
    optional = data["project"].get("optional-dependencies", {})
    for extra in EXTRAS:
        out += [(f"[{extra}]", Requirement(r)) for r in optional.get(extra, [])]
    return out


def check_pyproject(pins: dict[str, Pin], reqs: list[tuple[str, Requirement]]) -> list[str]:
    problems = []
    wanted = set()
    for where, req in reqs:
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        wanted.add(name)
        pin = pins.get(name)
        if pin is None:
            problems.append(f"pyproject.toml {where} requires {req}, which the lock does not pin")
        elif not req.specifier.contains(Version(pin.version), prereleases=True):
            problems.append(f"pyproject.toml {where} requires {req}, the lock pins {pin.name}=={pin.version} "
                            f"(requirements.lock line {pin.line})")
    for pin in pins.values():
        if pin.name in NEVER_LOCKED:
            problems.append(f"the lock pins {pin.name}=={pin.version}, which must not be installed from PyPI: "
                            f"{NEVER_LOCKED[pin.name]}")
        if pin.hashes == 0:
            problems.append(f"the lock pins {pin.name}=={pin.version} without a hash")
        if pin.via and all(v.startswith(_FROM_PYPROJECT) for v in pin.via) and pin.name not in wanted:
            problems.append(f"the lock pins {pin.name}=={pin.version} for pyproject.toml, which no longer requires it")
    return problems


def check_installed(pins: dict[str, Pin]) -> list[str]:
    """Every pin installed at its version, and every requirement of those
    packages satisfied (the lock is installed with --no-deps, so this is
    where a lock that misses a dependency shows up)."""
    from importlib import metadata

    problems = []
    for pin in pins.values():
        try:
            have = metadata.version(pin.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{pin.name}=={pin.version} is locked but not installed")
            continue
        if Version(have) != Version(pin.version):
            problems.append(f"{pin.name} {have} is installed, the lock pins {pin.version}")
    for dist in [*pins, "ovn-hub"]:
        try:
            requires = metadata.requires(dist) or []
        except metadata.PackageNotFoundError:
            continue
        extras = [""] + (list(EXTRAS) if dist == "ovn-hub" else [])
        for text in requires:
            req = Requirement(text)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in extras):
                continue
            try:
                have = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                hint = f" ({NEVER_LOCKED[canonicalize_name(req.name)]})" if canonicalize_name(req.name) in NEVER_LOCKED else ""
                problems.append(f"{dist} requires {req}, which is not installed{hint}")
                continue
            if not req.specifier.contains(Version(have), prereleases=True):
                problems.append(f"{dist} requires {req}, {req.name} {have} is installed")
    try:
        import ovs._json  # noqa: F401
    except ImportError as e:
        problems.append(f"ovs._json does not import ({e}): install python3-openvswitch; PyPI's ovs must not shadow it")
    return problems


def main(argv: list[str]) -> int:
    if not LOCK.is_file():
        print(f"{LOCK.name} is missing: run `make lock`", file=sys.stderr)
        return 1
    pins = read_lock()
    if "--installed" in argv:
        problems = check_installed(pins)
        fix = "the venv does not match requirements.lock: remove .venv and run `make deps`"
    else:
        problems = check_pyproject(pins, project_requirements())
        fix = "pyproject.toml and requirements.lock disagree: run `make lock` and commit requirements.lock"
    if problems:
        print(fix, file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
