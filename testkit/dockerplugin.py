"""Install a Docker plugin for one test run through the engine's plugin discovery.

Docker (20.10) looks a legacy plugin up by name, when a network first names
it, in fixed directories: ``/run/docker/plugins/<name>.sock`` and spec files
``/etc/docker/plugins/<name>.spec`` (a URL: ``unix:///path/to.sock``).  Those
paths are the machine's, shared by every dockerd on it, so :func:`installed`
uses a name unique to the run, writes the spec file pointing at a socket in the
caller's temp dir, and removes it on the way out — also when the body failed
(and ``/etc/docker/plugins`` itself when this created it and nothing else is
in it).  A private dockerd that never names the plugin never reads it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

SPEC_DIR = Path("/etc/docker/plugins")


def unique_name(prefix: str = "ovn-hub") -> str:
    """``ovn-hub-<6 hex>``: a plugin name no other run on this machine uses."""
    return f"{prefix}-{secrets.token_hex(3)}"


@contextlib.contextmanager
def installed(name: str, socket: str | Path, spec_dir: Path = SPEC_DIR) -> Iterator[Path]:
    """The spec file ``<spec_dir>/<name>.spec`` → ``unix://<socket>``, removed afterwards."""
    made_dir = not spec_dir.exists()
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = spec_dir / f"{name}.spec"
    if spec.exists():
        raise FileExistsError(f"{spec} exists: another run uses the name {name!r}")
    try:
        tmp = spec_dir / f".{name}.spec.tmp"
        tmp.write_text(f"unix://{socket}\n")
        os.replace(tmp, spec)
        yield spec
    finally:
        spec.unlink(missing_ok=True)
        (spec_dir / f".{name}.spec.tmp").unlink(missing_ok=True)
        if made_dir:
            with contextlib.suppress(OSError):  # not empty: someone else's spec is there now
                spec_dir.rmdir()
