"""Where an OVSDB session goes: remotes, TLS, and the choice of a cluster member.

A remote is ``unix:PATH``, ``tcp:HOST:PORT`` or ``ssl:HOST:PORT`` (IPv6 hosts in
brackets), the forms ovsdb-server and ovn-nbctl take.  A *remote list* is several
of them separated by commas: the members of a clustered (RAFT) database, as
``ovn-nbctl --db=`` takes them.

**TLS** is OVS's model, not the web's: both sides present a certificate signed
by the CA each trusts (``ovn.ca_cert``), and neither checks a host name (OVS
peers are addressed by IP and trusted by CA; ``ovn-nbctl`` and ovn-controller do
the same).  A server whose certificate another CA signed is refused, and the
error says which file the client trusted.

**Which member.** Locks and the freshest view live on the leader only (locks are
per ovsdb-server process and RAFT does not replicate them; a follower may be
behind or cut off), so a client that writes connects to the leader.
:func:`member_ok` reads ``_Server.Database`` as the Python IDL does
(``_Server`` checks in ``ovs/db/idl.py``): a member is left when it is not
connected to the cluster, is not the leader (when the leader is required), or
reports a raft index below the highest this client has seen (it would hand out
an older database than one already read).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Address = str | tuple[str, int]


@dataclass(frozen=True)
class Tls:
    """The three PEM files of an ``ssl:`` session (``ovn.private_key``,
    ``ovn.certificate``, ``ovn.ca_cert``)."""

    private_key: str
    certificate: str
    ca_cert: str

    def context(self) -> ssl.SSLContext:
        """A client context: our certificate, the server's checked against the CA only."""
        files = (("private_key", self.private_key), ("certificate", self.certificate), ("ca_cert", self.ca_cert))
        missing = [label for label, path in files if not path]
        if missing:
            raise TlsError(f"an ssl: remote needs {', '.join(missing)}")
        for label, path in files:
            if not Path(path).is_file():
                raise TlsError(f"{label} {path!r} is not a readable file")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = False  # OVS peers trust the CA, not a name (see the module doc)
        ctx.verify_mode = ssl.CERT_REQUIRED
        try:
            ctx.load_verify_locations(cafile=self.ca_cert)
            ctx.load_cert_chain(self.certificate, self.private_key)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise TlsError(f"cannot load the TLS files ({self.certificate}, {self.private_key}, "
                           f"{self.ca_cert}): {exc}") from None  # fmt: skip
        return ctx


class TlsError(ValueError):
    """The TLS configuration cannot be used (a missing or unreadable file)."""


def parse_remote(remote: str) -> tuple[str, Address]:
    """``unix:/path``, ``tcp:host:port`` or ``ssl:host:port`` → (kind, address)."""
    if remote.startswith("unix:") and len(remote) > 5:
        return "unix", remote[5:]
    for kind in ("tcp", "ssl"):
        if remote.startswith(f"{kind}:"):
            host, sep, port = remote[len(kind) + 1 :].rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                break
            return kind, (host.strip("[]"), int(port))
    raise ValueError(f"OVSDB remote {remote!r} must be unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT")


def split_remotes(remotes: str) -> list[str]:
    """A comma-separated remote list → its remotes, each checked by :func:`parse_remote`."""
    out = [r.strip() for r in remotes.split(",") if r.strip()]
    if not out:
        raise ValueError("no OVSDB remote given")
    for r in out:
        parse_remote(r)
    return out


def needs_tls(remotes: str) -> bool:
    return any(parse_remote(r)[0] == "ssl" for r in split_remotes(remotes))


async def open_stream(
    remote: str, tls: Tls | None = None, *, limit: int = 1 << 24
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open one remote.  A TLS failure becomes a :class:`ConnectionError` that
    says what was trusted; everything else is the OSError it is."""
    kind, addr = parse_remote(remote)
    if kind == "unix":
        assert isinstance(addr, str)
        return await asyncio.open_unix_connection(addr, limit=limit)
    assert isinstance(addr, tuple)
    if kind == "tcp":
        return await asyncio.open_connection(addr[0], addr[1], limit=limit)
    if tls is None:
        raise TlsError(f"{remote}: an ssl: remote needs private_key, certificate and ca_cert")
    try:
        return await asyncio.open_connection(addr[0], addr[1], limit=limit, ssl=tls.context())
    except ssl.SSLCertVerificationError as exc:
        raise ConnectionError(
            f"TLS: the server's certificate is not trusted by ca_cert {tls.ca_cert} ({exc.verify_message})"
        ) from None
    except ssl.SSLError as exc:
        raise ConnectionError(f"TLS handshake failed: {exc.reason or exc}") from None


#: the columns of ``_Server.Database`` the member check reads
SERVER_COLUMNS = ["name", "model", "connected", "leader", "index", "sid", "cid"]


def _scalar(v: Any) -> Any:
    """An OVSDB optional (``["set", []]`` or ``["set", [x]]``) or atom → Python."""
    if isinstance(v, list) and len(v) == 2 and v[0] == "set":
        return v[1][0] if v[1] else None
    if isinstance(v, list) and len(v) == 2 and v[0] == "uuid":
        return v[1]
    return v


@dataclass(frozen=True)
class Member:
    """What ``_Server.Database`` says of one database on the member we reached."""

    model: str
    connected: bool
    leader: bool
    index: int | None
    sid: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Member:
        idx = _scalar(row.get("index"))
        return cls(
            model=str(row.get("model", "standalone")),
            connected=bool(_scalar(row.get("connected", True))),
            leader=bool(_scalar(row.get("leader", True))),
            index=int(idx) if isinstance(idx, int) else None,
            sid=_scalar(row.get("sid")),
        )

    @property
    def clustered(self) -> bool:
        return self.model == "clustered"


def member_ok(member: Member, *, leader_only: bool, min_index: int) -> str | None:
    """Why this member is not to be used (None: use it)."""
    if not member.clustered:
        return None
    if not member.connected:
        return "not connected to its cluster"
    if leader_only and not member.leader:
        return "not the cluster leader"
    if member.index is not None and member.index < min_index:
        return f"behind: raft index {member.index} < {min_index} already seen"
    return None
