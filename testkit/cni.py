"""Running ``ovn-hub-cni`` the way a CNI runtime does: environment + stdin, JSON on stdout.

:func:`plugin_dir` makes a ``CNI_PATH`` directory holding ``ovn-hub`` (the
conflist's ``type``: a two-line shim that runs :mod:`hub.cniplugin` of *this*
checkout with this interpreter, so a test of a work tree runs that tree's
plugin) next to Debian's reference plugins (``/usr/lib/cni``) when present.
:func:`invoke` execs one plugin as SPEC.md's runtime does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_PLUGINS = Path("/usr/lib/cni")


def plugin_dir(directory: Path) -> Path:
    """``directory`` with ``ovn-hub`` and links to Debian's reference plugins."""
    directory.mkdir(parents=True, exist_ok=True)
    # what `ovn-hub-cni --install DIR` writes, run from this checkout
    subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); sys.argv = ['ovn-hub-cni',"
                    f" '--install', {str(directory)!r}]; from hub.cniplugin import main; sys.exit(main())"],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    if DEBIAN_PLUGINS.is_dir():
        for p in DEBIAN_PLUGINS.iterdir():
            link = directory / p.name
            if not link.exists():
                link.symlink_to(p)
    return directory


def conflist(name: str, network: str, socket: str, timeout: float = 30, version: str = "1.0.0",
             **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {"cniVersion": version, "name": name,
            "plugins": [{"type": "ovn-hub", "network": network, "socket": socket, "timeout": timeout, **extra}]}


def plugin_conf(conflist: dict[str, Any], index: int = 0, **extra: Any) -> dict[str, Any]:
    """One plugin's configuration as a runtime hands it: the list's cniVersion and name inserted."""
    conf = dict(conflist["plugins"][index])
    conf.update({"cniVersion": conflist["cniVersion"], "name": conflist["name"]})
    conf.update(extra)
    return conf


def invoke(path: Path, command: str, conf: dict[str, Any] | bytes | str, *, container_id: str = "",
           netns: str = "", ifname: str = "eth0", args: str = "", plugin: str = "ovn-hub",
           timeout: float = 120) -> tuple[int, dict[str, Any] | None, str]:  # fmt: skip
    """Exec ``<path>/<plugin>``: (exit status, stdout's JSON or None, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    env.update(CNI_COMMAND=command, CNI_PATH=str(path))
    for key, value in (("CNI_CONTAINERID", container_id), ("CNI_NETNS", netns), ("CNI_IFNAME", ifname),
                       ("CNI_ARGS", args)):  # fmt: skip
        if value:
            env[key] = value
    data = conf if isinstance(conf, bytes | str) else json.dumps(conf)
    res = subprocess.run([str(path / plugin)], input=data.encode() if isinstance(data, str) else data,
                         capture_output=True, env=env, timeout=timeout)  # fmt: skip
    out = res.stdout.decode().strip()
    return res.returncode, json.loads(out) if out else None, res.stderr.decode()
