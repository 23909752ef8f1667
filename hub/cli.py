"""``hubctl``: the operator's tool.

Talks to hubd's admin API (``--api``, ``$OVN_HUB_API``, the config's
``api.listen``, or the default unix socket).  ``normalize`` and ``schema`` work
offline; ``events`` reads the MQTT mirror (the config's ``[mqtt]``).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp

from core.model import Invalid, Source, encode, json_schema, validate_source
from hub.config import DEFAULT_API, DEFAULT_PATH, Config, ConfigError, load, parse_listen
from hub.plugins import NORMALIZER_GROUP, PluginError, available, normalizer


def _api_address(args: argparse.Namespace) -> str:
    if args.api:
        return str(args.api)
    if os.environ.get("OVN_HUB_API"):
        return os.environ["OVN_HUB_API"]
    cfg_path = Path(args.config) if args.config else DEFAULT_PATH
    if cfg_path.exists():
        try:
            return load(cfg_path).api.listen
        except ConfigError:
            pass
    return DEFAULT_API


async def _get(api: str, path: str) -> Any:
    return (await _get_status(api, path))[1]


async def _get_status(
    api: str, path: str, params: dict[str, str] | None = None, timeout: float = 30, method: str = "GET"
) -> tuple[int, Any]:
    kind, addr = parse_listen(api)
    if kind == "unix":
        assert isinstance(addr, str)
        connector: aiohttp.BaseConnector = aiohttp.UnixConnector(path=addr)
        base = "http://hubd"
    else:
        assert isinstance(addr, tuple)
        connector = aiohttp.TCPConnector()
        base = f"http://{addr[0]}:{addr[1]}"
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as s:
        async with s.request(method, base + path, params=params) as r:
            return r.status, await r.json()


def _fetch(args: argparse.Namespace, path: str) -> Any:
    api = _api_address(args)
    try:
        return asyncio.run(_get(api, path))
    except (aiohttp.ClientError, OSError) as exc:
        raise SystemExit(f"hubctl: cannot reach hubd at {api}: {exc}") from None


def cmd_status(args: argparse.Namespace) -> int:
    st = _fetch(args, "/v1/status")
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    nb = st["nb"]
    role = st["nb"].get("role", "active")
    role_text = "" if role == "active" else f", {role.upper()} (another hubd of this hub id writes NB)"
    print(f"hub {st['hub']}: {'ready' if st['ready'] else 'NOT READY'}{role_text}, up {st['uptime']}s")
    conn = ("connected" if nb["connected"] else "DISCONNECTED") + (f" via {nb['member']}" if nb.get("member")
                                                                  and nb["member"] != nb["remote"] else "")
    print(f"NB {nb['remote']} {conn}: {nb['switches']} switches, {nb['ports']} ports, {nb['dirty']} dirty")
    if nb.get("ports_from_cache") or nb.get("ports_read"):
        print(f"  ports loaded at connect: {nb.get('ports_from_cache', 0)} from the restart cache,"
              f" {nb.get('ports_read', 0)} read from NB ({nb.get('ports_load') or 'how unknown'})")
    for name, why in nb["failed"].items():
        print(f"  failed {name}: {why}")
    more = nb.get("failed_count", len(nb["failed"])) - len(nb["failed"])
    if more > 0:
        print(f"  ... and {more} more failed rows")
    if nb.get("session_drops"):
        print(f"  NB sessions lost inside a transaction: {nb['session_drops']} (rows committed apart)")
    print(f"endpoints: {st['endpoints']}")
    fab = st.get("fabric") or {}
    for r in fab.get("routers", []):
        ext = f", out through {r['external']}" if r["external"] else ""
        print(f"router {r['name']}: {len(r['networks'])} networks ({', '.join(r['networks'][:6])}"
              f"{', ...' if len(r['networks']) > 6 else ''}){ext}")
    for why in fab.get("problems", []):
        print(f"  fabric: {why}")
    rej = st.get("rejections") or {}
    if rej.get("distinct"):
        reasons = ", ".join(f"{r} {n}" for r, n in rej["by_reason"].items())
        print(f"rejected: {rej['distinct']} distinct ({reasons})")
        for r in rej["recent"][-5:]:
            ref = f" {r['ref']}" if r["ref"] else ""
            print(f"  {r['source']}{ref} [{r['reason']}]: {r['message']}")
    for a in st["adapters"]:
        err = f"  last error: {a['last_error']}" if a["last_error"] else ""
        print(f"adapter {a['name']} ({a['type']}/{a['cluster']}): {a['state']}, {a['snapshots']} snapshots, {a['restarts']} restarts{err}")
    return 0 if st["ready"] else 1


def cmd_pause(args: argparse.Namespace) -> int:
    """Hand the hub's NB lock over (``pause``) or contend for it again (``resume``)."""
    api = _api_address(args)
    path = "/v1/pause" if args.cmd == "pause" else "/v1/resume"
    try:
        code, body = asyncio.run(_get_status(api, path, method="POST"))
    except (aiohttp.ClientError, OSError) as exc:
        raise SystemExit(f"hubctl: cannot reach hubd at {api}: {exc}") from None
    if code != 200:
        print(f"hubctl: {args.cmd}: {body.get('error', code)}", file=sys.stderr)
        return 1
    role = body["role"]
    print(f"NB writer {role}" + {"paused": " (a standby of this hub id takes over)",
                                 "standby": " (another hubd of this hub id holds the lock)"}.get(role, ""))  # fmt: skip
    return 0


def cmd_endpoints(args: argparse.Namespace) -> int:
    rows = _fetch(args, "/v1/endpoints")
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    head = ("SOURCE", "NAMESPACE", "NAME", "NETWORK", "IPS", "MAC", "PORT", "STATE")
    table = [head]
    for r in rows:
        state = "error" if r["error"] else ("up" if r["up"] else ("programmed" if r["programmed"] else "pending"))
        ips = ",".join(r["ips"]) + (" (OVN)" if r.get("allocated") else "") if r["ips"] else "dynamic"  # (OVN): its IPAM's
        table.append((r["source"], r["namespace"], r["name"], r["network"], ips, r["mac"] or "-", r["port"], state))
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    ops = _fetch(args, "/v1/plan")
    if args.json:
        print(json.dumps(ops, indent=2))
        return 0
    if not ops:
        print("NB equals the desired state: nothing to write")
        return 0
    sign = {"insert": "+", "update": "~", "delete": "-"}
    for op in ops:
        cols = " ".join(f"{k}={json.dumps(v, sort_keys=True)}" for k, v in op["columns"].items() if k != "name")
        print(f"{sign.get(op['op'], '?')} {op['table']} {op['name']} {cols}".rstrip())
    return 0


TRACE_EPILOG = """\
SRC is an endpoint: <orchestrator>/<cluster>/<namespace>/<name>, or one of its IPs.
DST is an endpoint, a Service (its first VIP; --port and --proto default to its
first rule's) or any IP address (an endpoint's, a VIP, or outside).  An endpoint
on several networks: --network picks SRC's (default: the first); DST's is the one
on SRC's switch, else on SRC's router, else its first.  hubd runs ovn-trace for a
new connection (tcp/udp from port 40000, icmp echo) against the Southbound DB and
names what decided it: ACL and Policy, load balancer and Service, route, NAT.

exit status:
  0  delivered
  1  dropped (or not sent: the router has to resolve the next hop's MAC first)
  2  usage: SRC or DST not found, an option that does not fit
  3  no trace: hubd unreachable, ovn-trace missing or failed, the SB unreachable
"""


def _party_text(p: dict[str, Any]) -> str:
    if p["kind"] == "endpoint":
        return f"{p['name']} ({p['ip']} on {p['network']})"
    if p["kind"] == "service":
        return f"{p['name']} (Service, VIP {p['ip']})"
    return str(p["ip"])


def trace_lines(t: dict[str, Any]) -> list[str]:
    """``hubctl trace``'s text: the verdict, the path, what decided it."""
    what = t["proto"] + (f"/{t['port']}" if t.get("port") else "")
    lines = [f"trace {_party_text(t['src'])} -> {_party_text(t['dst'])}, {what}"]
    if t["verdict"] == "delivered":
        for d in t["delivered"]:
            if d["endpoint"]:
                lines.append(f"delivered to {d['endpoint']} (port {d['port']} on {d['datapath']})")
            elif d["type"] == "localnet":
                lines.append(f"delivered out of {d['datapath']} (localnet port {d['port']}: the provider network)")
            else:
                lines.append(f"delivered to port {d['port']} (type {d['type'] or 'VIF'}, on {d['datapath']})")
    elif t["verdict"] == "arp":
        hop = next((d.get("nexthop") or t["dst"]["ip"] for d in reversed(t["decisions"]) if d["kind"] == "route"), t["dst"]["ip"])
        out = ", ".join(f"{m['port']} on {m['datapath']}" for m in t["made"] if m["type"] != "patch")
        asks = {"arp": "an ARP request", "nd_ns": "an IPv6 neighbor solicitation"}.get(t["made"][0]["packet"], "a request")
        lines.append(f"NOT SENT: the router knows no MAC for {hop}, so it sends {asks} instead (out of {out or '?'});"
                     " packets follow once that is answered")
    else:
        for d in t["drops"]:
            lines.append(f"DROPPED at {d['where']}: {d['why']}")
        for m in t["made"]:  # a reject: the packet is answered instead (a TCP reset, an ICMP error)
            lines.append(f"DROPPED, answered with {m['packet']} (out of {m['port']} on {m['datapath']})")
        if not t["drops"] and not t["made"]:
            lines.append("DROPPED: the trace ends without an output (see --raw)")
    if t["path"]:
        lines.append("path: " + " -> ".join(t["path"]))
    if t["decisions"]:
        lines.append("decided by:")
        lines += [f"  {d['text']}" for d in t["decisions"]]
    if t["notes"]:
        lines.append("notes:")
        lines += [f"  {n}" for n in t["notes"]]
    lines.append(f"microflow: {t['microflow']}")
    return lines


def cmd_trace(args: argparse.Namespace) -> int:
    api = _api_address(args)
    params = {"src": args.src, "dst": args.dst}
    for key in ("port", "proto", "network"):
        if getattr(args, key) is not None:
            params[key] = str(getattr(args, key))
    try:
        status, body = asyncio.run(_get_status(api, "/v1/trace", params, timeout=60))
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        print(f"hubctl: cannot reach hubd at {api}: {exc}", file=sys.stderr)
        return 3
    if status != 200:
        err = body.get("error", body) if isinstance(body, dict) else body
        print(f"hubctl: trace: {err}", file=sys.stderr)
        return 2 if 400 <= status < 500 else 3
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        print("\n".join(trace_lines(body)))
        if args.raw:
            print("\n" + body["trace"].rstrip())
    return 0 if body["verdict"] == "delivered" else 1


NORMALIZE_EPILOG = """\
Every input object is accounted for: it becomes canonical JSON lines on stdout,
or one line on stderr -
  FILE: rejected (REASON): MESSAGE   bad input (hubd would emit Rejected)
  FILE: skipped (REASON): MESSAGE    valid, but yields no canonical object, and why
                                     (a container without an attachment, a hostNetwork
                                     pod, an EndpointSlice whose Service is not in the
                                     input, a Node no NodePort Service uses, ...)

exit status:
  0  nothing rejected, and at least one canonical object or delete written
  1  something was rejected or a file could not be read (the rest is still written)
  2  usage: unknown --from, bad --cluster, no files
  3  nothing rejected, but nothing written either: every object was skipped
"""


def _accepts_on_skip(fn: Any) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "on_skip" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def cmd_normalize(args: argparse.Namespace) -> int:
    try:
        fn = normalizer(args.source_type)
    except PluginError as exc:
        print(f"hubctl: {exc}", file=sys.stderr)
        return 2
    try:
        source = Source(args.source_type if "/" not in args.cluster else args.cluster.split("/")[0], args.cluster.split("/")[-1])
        validate_source(source)
    except Invalid as exc:
        print(f"hubctl: --cluster: {exc}", file=sys.stderr)
        return 2
    bad = written = 0
    out, err = sys.stdout, sys.stderr
    accounts = _accepts_on_skip(fn)  # a third-party normalizer may not report skips
    for f in args.files:
        try:
            text = sys.stdin.read() if f == "-" else Path(f).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            print(f"{f}: cannot read: {exc.strerror}", file=err)
            bad += 1
            continue

        def skipped(reason: str, message: str, f: str = f) -> None:
            print(f"{f}: skipped ({reason}): {message}", file=err)

        kwargs: dict[str, Any] = {"on_skip": skipped} if accounts else {}
        try:
            for item in fn(text, source, **kwargs):
                if isinstance(item, Invalid):
                    bad += 1
                    print(f"{f}: rejected ({item.reason}): {item}", file=err)
                else:
                    out.write(encode(item).decode() + "\n")
                    written += 1
        except BrokenPipeError:
            raise
        except Exception as exc:  # noqa: BLE001 - a normalizer bug must not print a traceback
            bad += 1
            print(f"{f}: rejected (internal): {type(exc).__name__}: {exc}", file=err)
    if bad:
        return 1
    return 0 if written else 3


def _load_config(args: argparse.Namespace) -> Config:
    cfg_path = Path(args.config) if args.config else DEFAULT_PATH
    try:
        return load(cfg_path)
    except ConfigError as exc:
        raise SystemExit(f"hubctl: {exc}") from None


def _matches(filters: list[str], item: dict[str, Any]) -> bool:
    if not filters:
        return True
    src = str(item.get("source", ""))
    attrs = {str(item.get("event", "")), str(item.get("kind", "")), src, src.partition("/")[0]}
    return any(f in attrs for f in filters)


def _state_line(topic: str, st: dict[str, Any]) -> str:
    obj = st.get("object", {})
    kind = str(obj.get("type", "?"))
    src = f"{obj.get('source', {}).get('orchestrator', '?')}/{obj.get('source', {}).get('cluster', '?')}"
    flags = ["programmed" if st.get("programmed") else "pending"] + (["ready"] if st.get("ready") else [])
    if st.get("error"):
        flags.append(f"error={st['error']}")
    where = f" network={obj.get('network')} port={st.get('port')}" if kind == "endpoint" else (f" row={st['row']}" if st.get("row") else "")
    return f"{kind} {src} {obj.get('namespace')}/{obj.get('name')} uid={obj.get('uid')}{where} {' '.join(flags)}"


def _event_line(ev: dict[str, Any]) -> str:
    what = f"{ev.get('namespace')}/{ev.get('name')}" if ev.get("name") else ""
    parts = [f"#{ev.get('seq')}", str(ev.get("event")), str(ev.get("kind") or "-"), str(ev.get("source")), what,
             f"key={ev['key']}" if ev.get("key") else "", f"row={ev['row']}" if ev.get("row") else "",
             "deleted" if ev.get("deleted") else "",
             f"reason={ev['reason']}: {ev.get('message', '')}" if ev.get("reason") else ""]
    return " ".join(p for p in parts if p)


async def _events(cfg: Config, args: argparse.Namespace) -> int:
    import aiomqtt  # local: only this command needs it

    from hub.mqttwire import PREFIX, client_kwargs, read_retained

    base = f"{PREFIX}/{cfg.hub.id}"
    out = sys.stdout
    last = 0

    def show_event(payload: bytes) -> None:
        nonlocal last
        ev = json.loads(payload)
        seq = int(ev.get("seq", 0))
        if seq <= last:
            return  # a duplicate (overlapping subscriptions) or a hub restart's replay
        if last and seq > last + 1:
            print(f"hubctl: gap: {seq - last - 1} events missed before #{seq}", file=sys.stderr)
        last = seq
        if _matches(args.filter, ev):
            out.write((json.dumps(ev, sort_keys=True) if args.json else _event_line(ev)) + "\n")
            out.flush()

    async with aiomqtt.Client(**client_kwargs(cfg.mqtt), timeout=args.timeout) as client:
        state, early = await read_retained(client, base, timeout=args.timeout, follow_events=args.follow)
        for topic in sorted(state):
            try:
                st = json.loads(state[topic])
            except ValueError:
                continue
            if topic == f"{base}/status":
                if not args.filter or "status" in args.filter:
                    line = json.dumps({"topic": topic, **st}, sort_keys=True) if args.json else (
                        f"hub {st.get('hub')} {st.get('state')}{' ready' if st.get('ready') else ''}"
                        f"{' (' + st['reason'] + ')' if st.get('reason') else ''}")
                    out.write(line + "\n")
                continue
            obj = st.get("object", {})
            item = {"kind": obj.get("type"), "source": f"{obj.get('source', {}).get('orchestrator')}/{obj.get('source', {}).get('cluster')}"}
            if _matches(args.filter, item):
                out.write((json.dumps({"topic": topic, **st}, sort_keys=True) if args.json else _state_line(topic, st)) + "\n")
        out.flush()
        if not args.follow:
            return 0
        last = 0
        for payload in early:
            show_event(payload)
        async for msg in client.messages:
            if msg.topic.value == f"{base}/events" and isinstance(msg.payload, bytes):
                show_event(msg.payload)
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    import aiomqtt

    cfg = _load_config(args)
    if args.mqtt:
        cfg.mqtt.url = args.mqtt
    try:
        return asyncio.run(_events(cfg, args))
    except KeyboardInterrupt:
        return 0
    except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
        print(f"hubctl: MQTT broker {cfg.mqtt.url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hubctl", description="Operate OVN Hub")
    ap.add_argument("--api", help="hubd admin API: unix:PATH or 127.0.0.1:PORT")
    ap.add_argument("--config", "-c", help=f"hubd config to read api.listen from (default {DEFAULT_PATH})")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("status", help="hub, NB and adapter state")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_status)
    p = sub.add_parser("pause", help="stop writing NB and hand the hub's lock to a standby hubd")
    p.set_defaults(fn=cmd_pause)
    p = sub.add_parser("resume", help="contend for the hub's NB lock again (active at once if it is free)")
    p.set_defaults(fn=cmd_pause)
    p = sub.add_parser("endpoints", help="canonical endpoints and their logical ports")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_endpoints)
    p = sub.add_parser("plan", help="what hubd would write to NB now (writes nothing)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_plan)
    p = sub.add_parser(
        "trace",
        help="ovn-trace of one new connection, in canonical terms",
        description="Trace a new connection from SRC to DST through OVN's logical flows (hubd runs ovn-trace).",
        epilog=TRACE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("src", metavar="SRC", help="<orchestrator>/<cluster>/<namespace>/<name> or an endpoint's IP")
    p.add_argument("dst", metavar="DST", help="an endpoint, a Service (same form) or an IP address")
    p.add_argument("--port", type=int, help="destination port (tcp/udp)")
    p.add_argument("--proto", choices=("tcp", "udp", "icmp"), help="default: the Service's, tcp with --port, else icmp")
    p.add_argument("--network", help="SRC's network when it is on several (name, or <orchestrator>/<cluster>/<network>)")
    p.add_argument("--json", action="store_true", help="hubd's answer as JSON (with ovn-trace's own output)")
    p.add_argument("--raw", action="store_true", help="print ovn-trace's detailed output after the summary")
    p.set_defaults(fn=cmd_trace)
    p = sub.add_parser(
        "normalize",
        help="raw orchestrator payloads → canonical JSON lines",
        description="Normalize raw orchestrator payloads offline, as the adapter would (no hubd, no network).",
        epilog=NORMALIZE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--from", dest="source_type", required=True, help=f"one of: {', '.join(available(NORMALIZER_GROUP))}")
    p.add_argument("--cluster", default="local", help="cluster name for the canonical source (default local)")
    p.add_argument("files", nargs="+", help="files (or - for stdin)")
    p.set_defaults(fn=cmd_normalize)
    p = sub.add_parser("events", help="MQTT mirror: retained current state, then (--follow) lifecycle events")
    p.add_argument("--follow", "-f", action="store_true", help="after the state, print events as they come")
    p.add_argument("--filter", nargs="+", default=[], metavar="KIND|SOURCE",
                   help="only these event types (observed, programmed, ready, deleted, rejected), object kinds, "
                        "sources (docker/local) or orchestrators (docker)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--mqtt", help="broker URL (default: the config's mqtt.url)")
    p.add_argument("--timeout", type=float, default=10.0, help="connect / state read timeout, seconds")
    p.set_defaults(fn=cmd_events)
    p = sub.add_parser("schema", help="print the JSON Schema of the canonical model")
    p.set_defaults(fn=cmd_schema)
    args = ap.parse_args(argv)
    try:
        return int(args.fn(args))
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
