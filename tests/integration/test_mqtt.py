"""The MQTT mirror against a real mosquitto: retained state, deletes, broker
outage during 1,000 changes, hubd restart (no stale state), Last Will, auth and
TLS refusals, ``hubctl events``.  hubd runs the static adapter.  The mirror
without a broker (config, topics, schemas, queues) is in tests/unit/test_mqtt.py."""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from core.model import Endpoint as Ep
from core.model import LBRule, Network, Policy, Rule, Selector, Service, encode
from hub.config import MqttSection
from hub.mqttwire import client_kwargs, read_retained
from hub.sandbox import OvnSandbox
from testkit.hubd import BIN, Hubd
from testkit.mosquitto import Mosquitto
from testkit.wait import sync_wait_until, wait_until
from tests.integration.test_hubd import config, ports
from tests.unit.test_mqtt import BASE, HUB, SRC


@pytest.fixture
def broker(tmpdir_short: Path) -> Iterator[Mosquitto]:
    m = Mosquitto(tmpdir_short / "mq")
    m.start()
    try:
        yield m
    finally:
        m.close()


def write(path: Path, uids: list[str], extra: list[bytes] | None = None, ip_base: int = 5) -> None:
    lines = [encode(Network(source=SRC, name="blue", subnets=("10.0.0.0/8",)))]
    for n, uid in enumerate(uids):
        lines.append(encode(Ep(source=SRC, uid=uid, namespace="lab", name=f"vm-{uid}", kind="vm", network="blue",
                               ips=(f"10.{ip_base}.{n // 250}.{n % 250 + 2}",))))
    path.write_bytes(b"\n".join(lines + (extra or [])) + b"\n")


def hub_config(ovn: OvnSandbox, workdir: Path, data: Path, url: str, **mqtt: Any) -> str:
    text = config(ovn, workdir, {"a": data})
    text += f'[mqtt]\nenabled = true\nurl = "{url}"\n'
    for k, v in mqtt.items():
        text += f"{k} = {json.dumps(v)}\n"
    return text


async def retained(url: str, **cfg: Any) -> dict[str, dict[str, Any]]:
    async with aiomqtt.Client(**client_kwargs(MqttSection(url=url, **cfg)), timeout=10) as c:
        st, _ = await read_retained(c, BASE, timeout=10)
    return {t: json.loads(p) for t, p in st.items()}


def endpoints(st: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {v["object"]["uid"]: v for t, v in st.items() if t.startswith(f"{BASE}/endpoints/")}


async def converged(url: str, uids: set[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Wait until the retained endpoints are exactly ``uids``, all programmed."""
    last: dict[str, dict[str, Any]] = {}

    async def check() -> bool:
        nonlocal last
        try:
            last = await retained(url)
        except aiomqtt.MqttError:
            return False
        eps = endpoints(last)
        return set(eps) == uids and all(v["programmed"] for v in eps.values())

    try:
        await wait_until(check, timeout, "retained endpoints to converge", interval=0.3)
    except AssertionError:
        eps = endpoints(last)
        raise AssertionError(f"retained: {len(eps)} endpoints, missing {sorted(uids - set(eps))[:5]}, "
                             f"extra {sorted(set(eps) - uids)[:5]}, unprogrammed "
                             f"{[u for u, v in eps.items() if not v['programmed']][:5]}") from None
    return last


# ---------------------------------------------------------------- against mosquitto
async def test_late_subscriber_gets_state_and_delete_clears(ovn: OvnSandbox, tmpdir_short: Path, hubd_factory: Any,
                                                          broker: Mosquitto) -> None:
    data = tmpdir_short / "a.jsonl"
    svc = Service(source=SRC, uid="svc-1", namespace="lab", name="web", network="blue",
                  rules=(LBRule(vip="10.96.0.10", port=80, backends=("10.5.0.2:8080",)),))
    pol = Policy(source=SRC, uid="pol-1", namespace="lab", name="deny", pod_selector=Selector(), ingress=(Rule(),))
    uids = [f"e{i}" for i in range(20)]
    write(data, uids, [encode(svc), encode(pol)])
    h: Hubd = hubd_factory(hub_config(ovn, tmpdir_short, data, broker.url))
    h.wait_ready(30)
    st = await converged(broker.url, set(uids), 30)
    ep = st[f"{BASE}/endpoints/static/a/lab/vm-e3/blue/e3"]
    assert ep["port"] == "static/a/blue/e3" and ep["object"]["ips"] == ["10.5.0.5"] and ep["hub"] == HUB
    assert f"{BASE}/services/static/a/lab/web/svc-1" in st and f"{BASE}/policies/static/a/lab/deny/pol-1" in st
    status = st[f"{BASE}/status"]
    assert status["state"] == "online" and status["hub"] == HUB

    # a live subscriber on the events topic sees the delete, in seq order
    async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5, timeout=10) as c:
        await c.subscribe(f"{BASE}/events", qos=1)
        write(data, [u for u in uids if u != "e3"], [encode(pol)])  # e3 and the service go
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(20):
            async for msg in c.messages:
                assert msg.properties is not None and msg.properties.ContentType == "application/json"
                assert getattr(msg.properties, "MessageExpiryInterval", 0) > 0
                seen.append(json.loads(msg.payload))  # type: ignore[arg-type]
                if any(e["event"] == "programmed" and e.get("deleted") and e["key"] == "blue/e3" for e in seen):
                    break
    assert [e["seq"] for e in seen] == sorted(e["seq"] for e in seen)
    deleted = {(e["kind"], e["key"]) for e in seen if e["event"] == "deleted"}
    assert deleted == {("endpoint", "blue/e3"), ("service", "svc-1")}
    st = await retained(broker.url)
    assert f"{BASE}/endpoints/static/a/lab/vm-e3/blue/e3" not in st and len(endpoints(st)) == 19
    assert not any("/services/" in t for t in st) and any("/policies/" in t for t in st)


async def test_broker_outage_during_1000_changes(ovn: OvnSandbox, tmpdir_short: Path, hubd_factory: Any,
                                                 broker: Mosquitto) -> None:
    data = tmpdir_short / "a.jsonl"
    first = [f"a{i}" for i in range(1000)]
    write(data, first)
    h: Hubd = hubd_factory(hub_config(ovn, tmpdir_short, data, broker.url, queue_size=500))
    h.wait_ready(60)
    await converged(broker.url, set(first), 60)
    broker.kill()
    down = time.monotonic()
    second = [f"b{i}" for i in range(1000)]
    write(data, second, ip_base=6)  # 1,000 endpoints go, 1,000 come
    want = {f"static/a/blue/{u}" for u in second}
    # OVN programming does not wait for the broker
    sync_wait_until(lambda: {p for p in ports(ovn) if p.startswith("static/a/")} == want, 30, "NB programmed while the broker is down")
    mq = json.loads(h.ctl("status", "--json").stdout)["mqtt"]
    assert mq["connected"] is False and mq["dropped_events"] > 0, mq  # 4,000 events > queue_size 500
    await asyncio.sleep(max(0.0, 10 - (time.monotonic() - down)))  # the broker stays away 10 s
    broker.start()  # no persistence: every retained message is gone
    st = await converged(broker.url, set(second), 60)
    assert st[f"{BASE}/status"]["state"] == "online"
    def mirror() -> dict[str, Any]:
        return dict(json.loads(h.ctl("status", "--json").stdout)["mqtt"])

    sync_wait_until(lambda: mirror()["pending"] == 0, 20, "nothing left to publish")
    mq = mirror()
    assert mq["connected"] and mq["connects"] >= 2 and mq["topics"] == 1000, mq


async def test_restart_clears_stale_and_lwt_after_kill9(ovn: OvnSandbox, tmpdir_short: Path, hubd_factory: Any,
                                                        broker: Mosquitto) -> None:
    data = tmpdir_short / "a.jsonl"
    write(data, [f"e{i}" for i in range(10)])
    cfg = hub_config(ovn, tmpdir_short, data, broker.url)
    h: Hubd = hubd_factory(cfg)
    h.wait_ready(30)
    await converged(broker.url, {f"e{i}" for i in range(10)}, 30)
    h.signal(signal.SIGTERM)
    assert h.wait(30) == 0
    st = await retained(broker.url)
    assert st[f"{BASE}/status"]["state"] == "offline" and st[f"{BASE}/status"]["reason"] == "stopped"
    assert len(endpoints(st)) == 10  # state stays retained while hubd is down
    # while hubd is down, half the endpoints go and one comes
    now = {f"e{i}" for i in range(5)} | {"new"}
    write(data, sorted(now))
    h2: Hubd = hubd_factory(cfg)
    h2.wait_ready(30)
    await converged(broker.url, now, 30)
    await wait_until(lambda: _online(broker.url), 10, "status online again")
    h2.kill9()
    # the broker sees the socket close and publishes the Last Will (retained)
    await wait_until(lambda: _offline(broker.url), 15, "Last Will offline status")
    st = await retained(broker.url)
    assert st[f"{BASE}/status"]["reason"] == "connection lost"


async def _online(url: str) -> bool:
    return (await retained(url)).get(f"{BASE}/status", {}).get("state") == "online"


async def _offline(url: str) -> bool:
    return (await retained(url)).get(f"{BASE}/status", {}).get("state") == "offline"


async def test_wrong_password_and_missing_client_cert_refused(tmpdir_short: Path, caplog: pytest.LogCaptureFixture) -> None:
    m = Mosquitto(tmpdir_short / "mq", users={"hub": "s3cret"}, tls=True)
    m.start()
    try:
        pw = tmpdir_short / "pw"
        pw.write_text("wrong\n")
        with pytest.raises(aiomqtt.MqttError, match="Not authorized"):
            await retained(m.url, username="hub", password_file=str(pw))
        with pytest.raises(aiomqtt.MqttError, match="Not authorized"):
            await retained(m.url)  # anonymous
        pw.write_text("s3cret\n")
        assert await retained(m.url, username="hub", password_file=str(pw)) == {}
        assert m.certs is not None
        # require_certificate: the broker ends the TLS 1.3 session with a "certificate required"
        # alert (paho logs it; aiomqtt then reports the CONNACK that never came)
        with pytest.raises((aiomqtt.MqttError, OSError)):
            await retained(m.tls_url, ca_file=str(m.certs.ca))
        assert "certificate required" in caplog.text
        ok = await retained(m.tls_url, ca_file=str(m.certs.ca), cert_file=str(m.certs.client_cert), key_file=str(m.certs.client_key))
        assert ok == {}
    finally:
        m.close()


@pytest.mark.parametrize("via", ["password", "tls"])
async def test_hubd_with_password_file_or_client_cert(ovn: OvnSandbox, tmpdir_short: Path, hubd_factory: Any, via: str) -> None:
    m = Mosquitto(tmpdir_short / "mq", users={"hub": "s3cret"}, tls=via == "tls")
    m.start()
    try:
        pw = tmpdir_short / "pw"
        pw.write_text("s3cret\n")
        pw.chmod(0o600)
        data = tmpdir_short / "a.jsonl"
        write(data, ["e1", "e2"])
        if via == "tls":
            assert m.certs is not None
            opts: dict[str, Any] = {"ca_file": str(m.certs.ca), "cert_file": str(m.certs.client_cert), "key_file": str(m.certs.client_key)}
            url = m.tls_url
        else:
            opts, url = {"username": "hub", "password_file": str(pw)}, m.url
        h: Hubd = hubd_factory(hub_config(ovn, tmpdir_short, data, url, **opts))
        h.wait_ready(30)

        async def ok() -> bool:
            st = await retained(m.url, username="hub", password_file=str(pw))
            return len(endpoints(st)) == 2
        await wait_until(ok, 30, "state via an authenticated broker")
    finally:
        m.close()


_BUFS: dict[int, bytearray] = {}


def _read_lines(proc: subprocess.Popen[bytes], until: str, timeout: float) -> list[str]:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    buf = _BUFS.setdefault(fd, bytearray())
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            while b"\n" in buf:
                line, _, rest = bytes(buf).partition(b"\n")
                buf[:] = rest
                lines.append(line.decode())
                if until in lines[-1]:
                    return lines
            if sel.select(max(0.0, deadline - time.monotonic())):
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                buf += chunk
    finally:
        sel.close()
    raise AssertionError(f"no {until!r} from hubctl events within {timeout}s; got {lines}")


def test_hubctl_events_state_and_follow(ovn: OvnSandbox, tmpdir_short: Path, hubd_factory: Any, broker: Mosquitto) -> None:
    data = tmpdir_short / "a.jsonl"
    write(data, ["e1", "e2"])
    h: Hubd = hubd_factory(hub_config(ovn, tmpdir_short, data, broker.url))
    h.wait_ready(30)
    asyncio.run(converged(broker.url, {"e1", "e2"}, 30))
    ctl = [str(BIN / "hubctl"), "--config", str(h.config_path), "events"]
    out = subprocess.run(ctl, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "endpoint static/a lab/vm-e1 uid=e1 network=blue port=static/a/blue/e1 programmed" in out.stdout, out.stdout
    assert f"hub {HUB} online ready" in out.stdout
    js = subprocess.run([*ctl, "--json", "--filter", "endpoint"], capture_output=True, text=True, timeout=30)
    rows = [json.loads(x) for x in js.stdout.splitlines()]
    assert sorted(r["object"]["uid"] for r in rows) == ["e1", "e2"]
    proc = subprocess.Popen([*ctl, "--follow", "--filter", "endpoint"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        # the state first; hubctl subscribed to the events before it read the state (read_retained)
        _read_lines(proc, "uid=e2", 20)
        write(data, ["e1", "e2", "e3"])
        lines = _read_lines(proc, "programmed endpoint static/a lab/vm-e3 key=blue/e3", 20)
        assert any(" observed endpoint static/a lab/vm-e3 key=blue/e3" in x for x in lines), lines
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        if proc.stdout:
            _BUFS.pop(proc.stdout.fileno(), None)
            proc.stdout.close()
