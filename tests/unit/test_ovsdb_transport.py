"""Remotes, TLS settings, the choice of a cluster member, and the insert guards (no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.model import Network
from core.names import ACL_KEY, OWNER
from core.nb import Programmer
from core.nb.kinds import KINDS, ByExternalId
from core.nb.txn import build
from core.ovsdb import Tls, TlsError, needs_tls, parse_remote, split_remotes
from core.ovsdb.transport import Member, member_ok
from hub.config import ConfigError, loads, ovn_tls
from tests.unit.test_services_policies import SRC, pod, snap, web_policy


@pytest.mark.parametrize(
    ("remote", "want"),
    [
        ("unix:/run/ovn/ovnnb_db.sock", ("unix", "/run/ovn/ovnnb_db.sock")),
        ("tcp:127.0.0.1:6641", ("tcp", ("127.0.0.1", 6641))),
        ("ssl:10.0.0.5:6641", ("ssl", ("10.0.0.5", 6641))),
        ("ssl:[fd00::5]:6641", ("ssl", ("fd00::5", 6641))),
    ],
)
def test_remote_forms(remote: str, want: tuple[str, Any]) -> None:
    assert parse_remote(remote) == want


@pytest.mark.parametrize("remote", ["unix:", "tcp:host", "ssl:1.2.3.4:0", "ssl:1.2.3.4:70000", "tls:1.2.3.4:6641",
                                    "tcp::6641", "ssl:1.2.3.4:66x41", "/run/ovn/nb.sock"])  # fmt: skip
def test_bad_remotes_are_refused_with_the_forms(remote: str) -> None:
    with pytest.raises(ValueError, match="must be unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT"):
        parse_remote(remote)


def test_remote_lists() -> None:
    assert split_remotes("ssl:10.0.0.1:6641, ssl:10.0.0.2:6641,ssl:10.0.0.3:6641") == [
        "ssl:10.0.0.1:6641", "ssl:10.0.0.2:6641", "ssl:10.0.0.3:6641"]  # fmt: skip
    assert needs_tls("tcp:10.0.0.1:6641,ssl:10.0.0.2:6641")
    assert not needs_tls("unix:/a,tcp:1.2.3.4:5")
    with pytest.raises(ValueError, match="no OVSDB remote"):
        split_remotes(" , ")
    with pytest.raises(ValueError, match="'tcp:x'"):
        split_remotes("tcp:1.2.3.4:5,tcp:x")


def test_tls_files_are_checked_before_any_connect(tmp_path: Path) -> None:
    with pytest.raises(TlsError, match="needs ca_cert"):
        Tls("/k", "/c", "").context()
    with pytest.raises(TlsError, match="private_key '/nonexistent' is not a readable file"):
        Tls("/nonexistent", "/c", "/a").context()
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(TlsError, match="cannot load the TLS files"):
        Tls(str(junk), str(junk), str(junk)).context()


def row(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "OVN_Northbound", "model": "clustered", "connected": True, "leader": True,
                            "index": ["set", [7]], "sid": ["uuid", "5b1c"]}  # fmt: skip
    base.update(kw)
    return base


def test_member_choice_follows_server_database() -> None:
    leader = Member.from_row(row())
    assert (leader.clustered, leader.leader, leader.index, leader.sid) == (True, True, 7, "5b1c")
    assert member_ok(leader, leader_only=True, min_index=7) is None
    assert member_ok(Member.from_row(row(leader=False)), leader_only=True, min_index=0) == "not the cluster leader"
    assert member_ok(Member.from_row(row(leader=False)), leader_only=False, min_index=0) is None
    assert member_ok(Member.from_row(row(connected=False)), leader_only=False, min_index=0) == "not connected to its cluster"
    assert "behind: raft index 7 < 9" in str(member_ok(leader, leader_only=True, min_index=9))
    standalone = Member.from_row({"name": "OVN_Northbound", "model": "standalone", "connected": True, "leader": True,
                                  "index": ["set", []]})  # fmt: skip
    assert standalone.index is None and member_ok(standalone, leader_only=True, min_index=99) is None


def test_ssl_remotes_need_the_three_files_in_config() -> None:
    with pytest.raises(ConfigError, match=r"ovn\.private_key: ovn\.nb is an ssl: remote"):
        loads('[ovn]\nnb = "ssl:10.0.0.1:6641,ssl:10.0.0.2:6641"\n')
    with pytest.raises(ConfigError, match=r"ovn\.ca_cert: 'ca\.pem' must be an absolute path"):
        loads('[ovn]\nnb = "ssl:10.0.0.1:6641"\nprivate_key = "/k"\ncertificate = "/c"\nca_cert = "ca.pem"\n')
    with pytest.raises(ConfigError, match=r"ovn\.nb: OVSDB remote 'tcp:nowhere' must be"):
        loads('[ovn]\nnb = "unix:/a,tcp:nowhere"\n')
    cfg = loads('[ovn]\nnb = "ssl:10.0.0.1:6641,ssl:10.0.0.2:6641,ssl:10.0.0.3:6641"\n'
                'private_key = "/etc/ovn/k.pem"\ncertificate = "/etc/ovn/c.pem"\nca_cert = "/etc/ovn/ca.pem"\n')  # fmt: skip
    assert ovn_tls(cfg) == Tls("/etc/ovn/k.pem", "/etc/ovn/c.pem", "/etc/ovn/ca.pem")
    assert ovn_tls(loads("")) is None


def test_inserts_keyed_by_an_external_id_are_guarded_by_a_wait_on_it() -> None:
    """Tables without a unique index: a second commit of the same insert (a
    clustered NB's at-least-once retry) must fail instead of making a twin."""
    guarded = {t for t, k in KINDS.items() if isinstance(k.key, ByExternalId)}
    assert {"ACL", "NAT", "DNS", "Logical_Router_Static_Route", "HA_Chassis"} <= guarded
    p = Programmer("unix:/nonexistent", "hub1")
    p.apply(snap(Network(source=SRC, name="pods", subnets=("10.0.0.0/24",)), pod(1, app="web"),
                 pod(2, role="client"), web_policy()))  # fmt: skip
    units = [u for u in p.plan() if u.table in ("Port_Group", "ACL")]
    ops, inserts = build(p.view, units)
    acl_inserts = [i for i, op in enumerate(ops) if op["op"] == "insert" and op["table"] == "ACL"]
    assert acl_inserts
    for i in acl_inserts:
        wait = ops[i - 1]
        key = ops[i]["row"]["external_ids"][1]
        key = dict(key)[ACL_KEY]
        assert wait == {"op": "wait", "table": "ACL", "columns": ["external_ids"], "until": "==", "rows": [],
                        "timeout": 0,
                        "where": [["external_ids", "includes", ["map", [[OWNER, "hub1"], [ACL_KEY, key]]]]]}  # fmt: skip
    # a named table with a unique index (Port_Group) is not guarded: its index refuses the twin
    assert not any(op["op"] == "wait" and op["table"] == "Port_Group" for op in ops)
    assert all(ops[i]["op"] == "insert" for i in inserts)

