"""A canonical Policy rule that asks for ACL logging (``Rule.log``, for Cloud
Foundry's ASG ``"log": true``): its ACLs get ``log``, ``name`` and ``severity``;
every other ACL keeps exactly the columns and identity it had before."""

from __future__ import annotations

from core.model import Endpoint, Peer, Policy, PolicyPort, Rule, Selector, Source, decode_object, encode
from core.nb.tables.policy import ACL, ACL_NAME_MAX, LOG_SEVERITY, policy_rows

SRC = Source("cloudfoundry", "prod")


def ep(i: int) -> Endpoint:
    return Endpoint(
        source=SRC, uid=f"i{i}", namespace="org/space", name=f"app/web/{i}", kind="app-instance", network="apps",
        ips=(f"10.255.0.{i}",), labels={"app": "a"},
    )  # fmt: skip


def pol(log: bool, name: str = "asg-running") -> Policy:
    rule = Rule(peers=(Peer(cidr="172.16.0.0/24"),), ports=(PolicyPort(port=443),), log=log)
    plain = Rule(peers=(Peer(cidr="10.255.0.0/16"),))
    return Policy(
        source=SRC, uid="p1", namespace="org/space", name=name, pod_selector=Selector(), egress=(plain, rule)
    )


def acls(p: Policy) -> list[dict[str, object]]:
    rows = policy_rows(SRC, [ep(1), ep(2)], {}, [p], "hub")
    return [r.columns for r in rows if r.table == ACL]


def test_a_logged_rule_logs_and_the_others_do_not() -> None:
    cols = acls(pol(True))
    logged = [c for c in cols if c.get("log") is True]
    assert len(logged) == 1 and "tcp.dst == 443" in str(logged[0]["match"])
    assert logged[0]["name"] == "asg-running" and logged[0]["severity"] == LOG_SEVERITY
    others = [c for c in cols if c not in logged]
    assert others and all(not ({"log", "name", "severity"} & set(c)) for c in others)


def test_logging_changes_the_acl_identity_only_of_its_rule() -> None:
    keys = lambda p: {c["external_ids"]["ovn-hub:acl"] for c in acls(p)}  # type: ignore[index]  # noqa: E731
    on, off = keys(pol(True)), keys(pol(False))
    assert len(on - off) == 1 and len(off - on) == 1  # the logged rule's ACL is a new row; the rest stay


def test_the_acl_name_is_cut_to_ovns_limit() -> None:
    cols = [c for c in acls(pol(True, name="x" * 200)) if c.get("log")]
    assert cols[0]["name"] == "x" * ACL_NAME_MAX


def test_log_round_trips_and_old_payloads_decode() -> None:
    p = pol(True)
    assert decode_object(encode(p)) == p
    old = encode(pol(False)).replace(b',"log":false', b"")
    assert b'"log"' not in old and decode_object(old) == pol(False)
