"""Drive ``ovn-trace`` against a sandbox's southbound DB and read its verdict.

Why ovn-trace: it runs the logical flows ovn-northd compiled from what the hub
wrote, so a test proves the *behaviour* (this packet reaches that port, that one
is dropped) rather than the text of ACLs.  ``--ct=new`` is given three times:
a packet meets conntrack up to three times on one switch (ingress
pre-stateful, the load balancer, egress pre-stateful), and ovn-trace answers
"established" for every ct action beyond the ``--ct`` options given, which
would let a new connection skip the ACLs.  ``--no-friendly-names``: ovn-trace
otherwise abbreviates anything that looks like a UUID inside a port name, and
Kubernetes port names carry pod UIDs.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from core.model import Endpoint
from core.names import derived_mac, lsp_name
from hub.sandbox import OvnSandbox

_OUTPUT = re.compile(r'/\* output to "([^"]+)"')
_BACKENDS = re.compile(r"ct_lb_mark\(backends=([^;)]*)\)")


@dataclass
class Trace:
    flow: str
    text: str

    @property
    def outputs(self) -> list[str]:
        """Logical ports the packet leaves through."""
        return _OUTPUT.findall(self.text)

    @property
    def backends(self) -> list[str]:
        """``ct_lb_mark(backends=...)`` the packet went through (load balancing)."""
        return _BACKENDS.findall(self.text)

    def reaches(self, ep: Endpoint) -> bool:
        return lsp_name(ep) in self.outputs


def sync(sb: OvnSandbox, timeout: float = 20) -> None:
    """Return once ovn-northd has turned the current NB into SB flows."""
    sb.nbctl(f"--timeout={int(timeout)}", "--wait=sb", "sync")


def trace(sb: OvnSandbox, datapath: str, flow: str, *extra: str) -> Trace:
    res = subprocess.run(
        ["ovn-trace", f"--db={sb.sb_remote}", "--no-friendly-names", "--ct=new", "--ct=new", "--ct=new", *extra, datapath, flow],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if res.returncode != 0:
        raise AssertionError(f"ovn-trace failed ({res.returncode}): {res.stderr}")
    return Trace(flow, res.stdout)


def mac(ep: Endpoint) -> str:
    return ep.mac or derived_mac(ep)


def tcp(src: Endpoint, dst_ip: str, port: int, dst_mac: str, sport: int = 40000) -> str:
    """A new TCP connection from ``src`` (its own MAC and first IP, so port
    security lets it out) to ``dst_ip:port`` through ``dst_mac``."""
    ip = src.ips[0]
    fam = "ip6" if ":" in ip else "ip4"
    return (
        f'inport == "{lsp_name(src)}" && eth.src == {mac(src)} && eth.dst == {dst_mac} && '
        f"{fam}.src == {ip} && {fam}.dst == {dst_ip} && ip.ttl == 64 && tcp && tcp.src == {sport} && tcp.dst == {port}"
    )


def tcp_to(src: Endpoint, dst: Endpoint, port: int) -> str:
    return tcp(src, dst.ips[0], port, mac(dst))


def arp_request(src: Endpoint, target_ip: str) -> str:
    return (
        f'inport == "{lsp_name(src)}" && eth.src == {mac(src)} && eth.dst == ff:ff:ff:ff:ff:ff && arp.op == 1 && '
        f"arp.sha == {mac(src)} && arp.spa == {src.ips[0]} && arp.tha == 00:00:00:00:00:00 && arp.tpa == {target_ip}"
    )
