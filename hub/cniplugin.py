"""``ovn-hub-cni``: the CNI plugin (spec 1.0.0, and GC/STATUS of 1.1.0), a thin
client of the node agent.

A runtime (kubelet's CRI, podman, containerd, Mesos' ``network/cni``
isolator, Garden) execs this binary once per operation, with ``CNI_COMMAND``,
``CNI_CONTAINERID``, ``CNI_NETNS``, ``CNI_IFNAME``, ``CNI_ARGS`` and
``CNI_PATH`` in the environment and the network configuration on stdin, and
reads one JSON result (or error) from stdout.  The plugin checks what it is
handed (the spec's error codes), answers ``VERSION`` itself, and passes
everything else to ``hubd --role node`` over its unix socket (the conf's
``socket``, default ``/run/ovn-hub/cni.sock``): one JSON request line, one JSON
answer.  The agent does the work and the waiting; the plugin waits at most the
conf's ``timeout`` seconds (default 30) plus a little, so an agent that never
answers is an error naming the socket, never a hung runtime.

Exec'd per call, so only the standard library is imported (json, os, socket,
sys): about the interpreter's own start-up (``bench cni`` measures it).  The
agent validates with the same functions (:func:`parse`), so both sides agree
on what a request is.

The conflist::

    {"cniVersion": "1.0.0", "name": "hubnet",
     "plugins": [{"type": "ovn-hub", "network": "blue", "socket": "/run/ovn-hub/cni.sock", "timeout": 30}]}
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time: start-up is the plugin's cost
    from typing import Any

#: The versions whose results this plugin writes (GC and STATUS need 1.1.0).
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
DEFAULT_SOCKET = "/run/ovn-hub/cni.sock"
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 3600.0
PLUGIN_TYPE = "ovn-hub"
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS")

# The spec's error codes (SPEC.md "Error"), and this plugin's own (>= 100).
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENV = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN = 11
NOT_AVAILABLE = 50  # STATUS (1.1.0): the plugin cannot serve ADDs now
AGENT_UNREACHABLE = 100  # nothing listens on the socket
AGENT_TIMEOUT = 101  # the agent did not answer within the timeout
NO_PORT = 102  # NB has no logical port for this attachment on this chassis
NO_ADDRESS = 103  # the port exists but has no address yet (OVN IPAM, the hub's lock)
PLUMBING_FAILED = 104  # the veth or the OVS port could not be made
HUB_UNREACHABLE = 105  # the hub did not take the endpoint this node publishes
CHECK_FAILED = 106  # CHECK: the attachment is not what it was made as
AGENT_ERROR = 107  # the agent failed unexpectedly (its log says more)

# What the spec allows (SPEC.md "Parameters"), and core.model's network names.
_CONTAINER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_NET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
NETWORK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")  # == core.model.validate.NETWORK_NAME
_MAX_STDIN = 16 << 20


class CniError(Exception):
    """A spec-shaped error: ``code``, ``msg`` (short), ``details`` (longer)."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, version: str) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


def version_at_least(version: str, floor: str) -> bool:
    return _version_tuple(version) >= _version_tuple(floor)


def parse_args(text: str) -> dict[str, str]:
    """``CNI_ARGS`` ("K1=V1;K2=V2") → a dict; code 4 for a pair without "="."""
    out: dict[str, str] = {}
    for pair in text.split(";"):
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CniError(INVALID_ENV, "CNI_ARGS is malformed", f"{pair[:80]!r} is not KEY=VALUE")
        out[key] = value
    return out


def _env(env: dict[str, str], key: str) -> str:
    value = env.get(key, "")
    if not value:
        raise CniError(INVALID_ENV, f"{key} is not set", f"CNI_COMMAND {env.get('CNI_COMMAND')} needs {key}")
    return value


def parse_conf(stdin: bytes | str) -> dict[str, Any]:
    """The network configuration (one plugin's, as a runtime hands it): code 6
    when it is not a JSON object, 1 for a version this plugin does not speak, 7
    for a missing or mistyped key, 2 for an ``ipam`` it would ignore."""
    if len(stdin) > _MAX_STDIN:
        raise CniError(DECODE_FAILURE, "network configuration too large", f"{len(stdin)} bytes on stdin")
    try:
        conf = json.loads(stdin or b"")
    except (ValueError, RecursionError) as exc:
        raise CniError(DECODE_FAILURE, "network configuration is not JSON", str(exc)[:200]) from None
    if not isinstance(conf, dict):
        raise CniError(DECODE_FAILURE, "network configuration is not a JSON object", type(conf).__name__)
    version = conf.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise CniError(INVALID_CONFIG, "cniVersion is missing", "the network configuration must name its cniVersion")
    if version not in SUPPORTED_VERSIONS:
        raise CniError(INCOMPATIBLE_VERSION, f"CNI version {version[:20]!r} is not supported",
                       f"supported: {', '.join(SUPPORTED_VERSIONS)}")  # fmt: skip
    name = conf.get("name")
    if not isinstance(name, str) or not _NET_NAME.fullmatch(name):
        raise CniError(INVALID_CONFIG, "name is missing or invalid",
                       "the configuration's name: letters, digits, '_', '.', '-'")  # fmt: skip
    kind = conf.get("type")
    if kind != PLUGIN_TYPE:
        raise CniError(INVALID_CONFIG, f"type must be {PLUGIN_TYPE!r}", f"got {str(kind)[:40]!r}")
    network = conf.get("network")
    if not isinstance(network, str) or not NETWORK_NAME.fullmatch(network):
        raise CniError(INVALID_CONFIG, "network is missing or invalid",
                       f'"network" names the OVN Hub network to attach to ({NETWORK_NAME.pattern}); '
                       f"got {str(network)[:80]!r}")  # fmt: skip
    sock = conf.get("socket", DEFAULT_SOCKET)
    if not isinstance(sock, str) or not sock.startswith("/") or len(sock) > 107:
        raise CniError(INVALID_CONFIG, "socket must be an absolute path", f"got {str(sock)[:120]!r}")
    timeout = conf.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 1 <= timeout <= MAX_TIMEOUT:
        raise CniError(INVALID_CONFIG, "timeout must be a number of seconds, 1 to 3600", f"got {str(timeout)[:40]!r}")
    ipam = conf.get("ipam")
    if isinstance(ipam, dict) and ipam.get("type"):
        raise CniError(UNSUPPORTED_FIELD, "ipam is not supported: addresses come from OVN",
                       "remove the ipam section; a fixed address is the 'ips' capability or CNI_ARGS IP=")  # fmt: skip
    for key in ("runtimeConfig", "prevResult", "args"):
        if key in conf and not isinstance(conf[key], dict):
            raise CniError(INVALID_CONFIG, f"{key} must be an object", f"got {type(conf[key]).__name__}")
    return conf


def parse(env: dict[str, str], stdin: bytes | str) -> dict[str, Any]:
    """One invocation → the request the agent serves (also what it re-checks)."""
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(INVALID_ENV, "CNI_COMMAND is missing or unknown",
                       f"got {command[:20]!r}; one of {', '.join(COMMANDS)}")  # fmt: skip
    conf = parse_conf(stdin)
    req: dict[str, Any] = {"command": command, "conf": conf}
    if command in ("GC", "STATUS"):
        if not version_at_least(conf["cniVersion"], "1.1.0"):
            raise CniError(INCOMPATIBLE_VERSION, f"{command} needs cniVersion 1.1.0",
                           f"the configuration says {conf['cniVersion']}")  # fmt: skip
        return req
    if command == "CHECK" and not version_at_least(conf["cniVersion"], "0.4.0"):
        raise CniError(INCOMPATIBLE_VERSION, "CHECK needs cniVersion 0.4.0 or later",
                       f"the configuration says {conf['cniVersion']}")  # fmt: skip
    cid = _env(env, "CNI_CONTAINERID")
    if not _CONTAINER_ID.fullmatch(cid) or len(cid) > 253:
        raise CniError(INVALID_ENV, "CNI_CONTAINERID is invalid",
                       "it must start with a letter or digit, then letters, digits, '_', '.', '-'")  # fmt: skip
    ifname = _env(env, "CNI_IFNAME")
    if len(ifname) > 15 or ifname in (".", "..") or any(c in ifname for c in "/: \t\n\r\f\v"):
        raise CniError(INVALID_ENV, "CNI_IFNAME is not an interface name",
                       "at most 15 characters, no '/', ':' or whitespace, not '.' or '..'")  # fmt: skip
    netns = env.get("CNI_NETNS", "")
    if command != "DEL":
        netns = _env(env, "CNI_NETNS")
    if netns and not netns.startswith("/"):
        raise CniError(INVALID_ENV, "CNI_NETNS must be an absolute path", f"got {netns[:120]!r}")
    req.update(container_id=cid, ifname=ifname, netns=netns, args=parse_args(env.get("CNI_ARGS", "")))
    return req


def _print(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, indent=1) + "\n")
    sys.stdout.flush()


def call_agent(path: str, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One request to the agent, one answer; CniError 100/101 when it is not there."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise CniError(AGENT_UNREACHABLE, f"the OVN Hub node agent is not listening on {path}",
                           f"{exc.strerror}: is `hubd --role node` running with [cni] enabled, and is this the"
                           " conflist's socket?") from None  # fmt: skip
        except OSError as exc:
            raise CniError(AGENT_UNREACHABLE, f"cannot connect to the node agent on {path}", str(exc)) from None
        sock.sendall(json.dumps(request).encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except TimeoutError:
        raise CniError(AGENT_TIMEOUT, f"the node agent on {path} did not answer within {timeout:.0f} s",
                       "it is connected but busy or stuck; its log (journalctl -u hubd-node) says why") from None
    except OSError as exc:
        raise CniError(AGENT_UNREACHABLE, f"the node agent on {path} dropped the connection", str(exc)) from None
    finally:
        sock.close()
    try:
        answer = json.loads(b"".join(chunks))
    except ValueError:
        raise CniError(AGENT_ERROR, "the node agent's answer is not JSON", f"{len(b''.join(chunks))} bytes") from None
    if not isinstance(answer, dict):
        raise CniError(AGENT_ERROR, "the node agent's answer is not a JSON object", "")
    return answer


def run(env: dict[str, str], stdin: bytes) -> tuple[int, dict[str, Any] | None]:
    """One invocation → (exit status, what goes to stdout)."""
    version = "1.0.0"
    try:
        with_version = json.loads(stdin) if stdin else {}
        if isinstance(with_version, dict) and with_version.get("cniVersion") in SUPPORTED_VERSIONS:
            version = with_version["cniVersion"]
    except (ValueError, RecursionError):
        pass
    try:
        if env.get("CNI_COMMAND") == "VERSION":
            return 0, {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}
        req = parse(env, stdin)
        conf = req["conf"]
        answer = call_agent(conf.get("socket", DEFAULT_SOCKET),
                            {"env": {k: v for k, v in env.items() if k.startswith("CNI_")},
                             "stdin": stdin.decode("utf-8", "replace")},
                            float(conf.get("timeout", DEFAULT_TIMEOUT)) + 5)  # fmt: skip
        err = answer.get("error")
        if isinstance(err, dict):
            return 1, {"cniVersion": version, "code": int(err.get("code", AGENT_ERROR)), "msg": str(err.get("msg", "")),
                       **({"details": str(err["details"])} if err.get("details") else {})}  # fmt: skip
        result = answer.get("result")
        return 0, result if isinstance(result, dict) else None
    except CniError as exc:
        return 1, exc.to_json(version)


def install(directory: str) -> int:
    """``ovn-hub-cni --install DIR``: write ``DIR/ovn-hub`` (the conflist's ``type``), a shim that
    runs this module with this interpreter and without ``site`` (-sS: the venv's start-up files
    cost ~20-30 ms per call, which a runtime pays per ADD)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(directory, PLUGIN_TYPE)
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"#!{sys.executable} -sS\nimport sys\nsys.path.insert(0, {here!r})\n"
                "from hub.cniplugin import main\nsys.exit(main())\n")  # fmt: skip
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    print(f"installed {path}")
    return 0


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--install":
        return install(sys.argv[2])
    try:
        stdin = sys.stdin.buffer.read(_MAX_STDIN + 1) if sys.stdin is not None and not sys.stdin.isatty() else b""
    except OSError as exc:
        _print(CniError(IO_FAILURE, "cannot read the network configuration", str(exc)).to_json("1.0.0"))
        return 1
    status, out = run(dict(os.environ), stdin)
    if out is not None:
        _print(out)
    return status


if __name__ == "__main__":
    sys.exit(main())
