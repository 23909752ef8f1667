"""``python -m bench summary FILE...``: one table over the JSON files the benches wrote.

Each row: the figure, the hub's number, the baseline measured in the same run,
their ratio, the target and whether it was met.  ``make bench`` writes every
bench's JSON to ``bench/out/`` and ends with this table.  A bench whose JSON
this module does not know (a new one, or a file cut short) still gets a row
with its ``target_met``; a figure missing from a file is shown as ``-``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Row = tuple[str, str, str, str, str, str]


def dig(d: Any, path: str) -> Any:
    """``d["a"]["b"][0]`` for ``"a.b.0"``; None when any step is missing."""
    for part in path.split("."):
        if isinstance(d, dict):
            d = d.get(part)
        elif isinstance(d, list) and part.isdigit() and int(part) < len(d):
            d = d[int(part)]
        else:
            return None
    return d


def num(x: Any, unit: str = "", digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if not isinstance(x, int | float):
        return str(x)
    v = float(x)
    if unit == "/s":
        return f"{v / 1000:.1f}k/s" if v >= 10000 else f"{v:.0f}/s"
    text = f"{v:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + unit


def met(x: Any) -> str:
    return "-" if x is None else ("yes" if x else "NO")


def _bulk(d: dict[str, Any]) -> Iterator[Row]:
    for res in d.get("results", []):
        n = res.get("n")
        yield (f"bulk {n} endpoints → empty NB", num(dig(res, "hub.seconds"), " s"), f"raw {num(dig(res, 'raw.seconds'), ' s')}",
               num(res.get("ratio_vs_raw")) + "x raw rate", f"≥ {res.get('target_ratio')}x", met(res.get("target_met")))  # fmt: skip


def _resync(d: dict[str, Any]) -> Iterator[Row]:
    """``bench resync``: per N, per restart (clean, crash; ``NAME:`` variants of --hubd-src)."""
    for res in d.get("results") or []:
        n, nb = res.get("n"), res.get("nb", "standalone")
        raw = dig(res, "raw_read.seconds")
        for key in res.get("target_met") or {}:
            c = res.get(key) or {}
            how = f"{key}, {nb} NB"
            yield (f"restart over {n} ports ({how}): READY", num(c.get("ready_seconds"), " s"), f"raw read {num(raw, ' s')}",
                   num(c.get("ratio")) + "x", f"≤ {dig(c, 'targets.ratio')}x", met(dig(c, "target_met.ratio")))  # fmt: skip
            yield (f"  writes before READY ({n}, {key})", num(c.get("writes_during_resync")), "-", "-", "0",
                   met(dig(c, "target_met.writes_during_resync")))  # fmt: skip
            yield (f"  RSS at READY ({n}, {key})", num(c.get("rss_mb"), " MB"),
                   f"interpreter {num(dig(d, 'interpreter_baseline.rss_mb'), ' MB')}", "-", f"≤ {dig(c, 'targets.rss_mb')} MB",
                   met(dig(c, "target_met.rss_mb")))  # fmt: skip
            yield (f"  HWM / RSS ({n}, {key})", num(c.get("hwm_mb"), " MB"), "-", num(c.get("hwm_over_rss")) + "x",
                   f"≤ {dig(c, 'targets.hwm_over_rss')}x", met(dig(c, "target_met.hwm_over_rss")))  # fmt: skip


def _rate_row(figure: str, hub: Any, base_name: str, base: Any, ratio: Any, target: Any, ok: Any) -> Row:
    return (figure, num(hub, "/s"), f"{base_name} {num(base, '/s')}", "-" if ratio is None else f"{num(ratio)}x",
            f"≥ {num(target, '/s')}", met(ok))  # fmt: skip


def _k8s(d: dict[str, Any]) -> Iterator[Row]:
    nr = d.get("normalize_rate")
    if nr:
        yield _rate_row("k8s pod watch events normalized, one core", nr.get("events_per_cpu_s") or nr.get("events_per_s"),
                        "bare msgspec decode", dig(nr, "rates_per_cpu_s.msgspec_decode"),
                        nr.get("ratio_msgspec_normalize_vs_msgspec_decode"), nr.get("target_events_per_s"), nr.get("target_met"))  # fmt: skip
    ps = d.get("pods_services")
    if ps:
        yield ("k8s pods + services via the fake API server → NB", num(dig(ps, "hub.seconds"), " s"),
               f"raw {num(dig(ps, 'raw.seconds'), ' s')}", num(ps.get("ratio_raw_vs_hub")) + "x", "report", "-")  # fmt: skip
    pol = d.get("policies_500")
    if pol:
        yield ("500 NetworkPolicies over 5k pods", num(pol.get("hub_seconds"), " s"), "-", "-", "report", "-")


def _mesos(d: dict[str, Any]) -> Iterator[Row]:
    p = d.get("parse_normalize")
    if p:
        yield _rate_row("Mesos events: RecordIO + normalize, one core", p.get("events_per_cpu_s") or p.get("events_per_s"),
                        "split + msgspec", None, p.get("ratio_vs_split_msgspec_decode_cpu"), p.get("target_events_per_s"),
                        p.get("target_met"))  # fmt: skip
    s = d.get("subscribed")
    if s:
        yield ("Mesos SUBSCRIBED → NB", num(dig(s, "hub.seconds"), " s"), f"raw {num(dig(s, 'raw.seconds'), ' s')}",
               num(s.get("ratio_raw_vs_hub")) + "x", "report", "-")  # fmt: skip


def _cloudfoundry(d: dict[str, Any]) -> Iterator[Row]:
    r = d.get("decode_rate")
    if r:
        yield _rate_row("Cloud Foundry LRP events decoded + normalized, one core", r.get("events_per_cpu_second"),
                        "base64 + protobuf", dig(r, "baseline_b64_protobuf_only.events_per_cpu_second"),
                        r.get("ratio_to_baseline"), r.get("target_events_per_second"), r.get("meets_target"))  # fmt: skip
    rl = d.get("relist")
    if rl:
        yield (f"Cloud Foundry relist of {rl.get('instances')} → NB", num(dig(rl, "hub.seconds"), " s"),
               f"raw {num(dig(rl, 'raw_transaction.seconds'), ' s')}", num(rl.get("ratio_hub_to_raw")) + "x raw time",
               "report", "-")  # fmt: skip


def _normalize(d: dict[str, Any]) -> Iterator[Row]:
    for key, label in (("docker_events", "Docker events normalized, one core"), ("static_file", "static file lines, one core")):
        r = d.get(key)
        if not r:
            continue
        bases = [k.removeprefix("ratio_to_") for k in r if k.startswith("ratio_to_") and not k.endswith(("_range", "_wall"))]
        # The baseline that decodes the same bytes as the hub (the Docker hub decodes the event and the inspect body).
        b = max(bases, key=len) if bases else ""
        yield _rate_row(label, r.get("events_per_cpu_second"), b.removeprefix("baseline_").replace("_", " "),
                        dig(r, f"{b}.events_per_cpu_second") if b else None, r.get(f"ratio_to_{b}") if b else None,
                        r.get("target_events_per_cpu_second"), r.get("target_met"))  # fmt: skip
        pre = dig(r, "parse_normalize_predecoded.events_per_cpu_second")
        ev = dig(r, "baseline_msgspec_decode_event.events_per_cpu_second")
        if key == "docker_events" and pre:
            target = r.get("target_events_per_cpu_second")
            yield _rate_row("Docker events normalized, inspect body decoded beforehand", pre, "msgspec decode event", ev,
                            round(ev / pre, 2) if ev else None, target, pre >= target if target else None)  # fmt: skip


def _churn(d: dict[str, Any]) -> Iterator[Row]:
    def sec(run: dict[str, Any], q: str) -> Any:  # (bench churn reports milliseconds: <q>_ms)
        v = run.get(f"{q}_ms")
        return v / 1000 if isinstance(v, int | float) else run.get(f"{q}_seconds", run.get(q))

    base = sec(dig(d, "raw_one_event.port_update") or {}, "p50") or d.get("raw_event_seconds")
    for run in d.get("rates", d.get("runs", [])):
        rate = run.get("rate")
        p99 = sec(run, "p99")
        yield (f"churn at {num(rate)} events/s (50k endpoints): p50 / p99", f"{num(sec(run, 'p50'), ' s', 3)} / "
               f"{num(p99, ' s', 3)}", f"raw txn of one port update {num(base * 1000 if base else None, ' ms', 3)}", "-", "p99 ≤ 0.1 s",
               met(p99 <= 0.1 if isinstance(p99, int | float) else None))  # fmt: skip
    if "max_rate_p99_under_100ms" in d:
        yield ("churn: highest rate with p99 ≤ 100 ms", num(d.get("max_rate_p99_under_100ms"), "/s"), "-", "-", "report", "-")


def _fabric(d: dict[str, Any]) -> Iterator[Row]:
    yield (f"fabric: {d.get('networks')} networks x {d.get('endpoints_per_network')} endpoints → NB",
           num(d.get("hub_seconds"), " s"), f"raw {num(d.get('raw_seconds'), ' s')}", num(d.get("ratio_vs_raw")) + "x raw rate",
           "report", "-")  # fmt: skip


def _cni(d: dict[str, Any]) -> Iterator[Row]:
    b = d.get("burst_add") or {}
    yield (f"CNI ADD burst of {d.get('n')}: p50", num(dig(b, "hub.p50"), " s"),
           f"bridge + host-local {num(dig(b, 'bridge_host_local.p50'), ' s')}", num(b.get("ratio_p50")) + "x time", "report", "-")  # fmt: skip


EXTRACT: dict[str, Callable[[dict[str, Any]], Iterator[Row]]] = {
    "bulk": _bulk, "resync": _resync, "k8s": _k8s, "mesos": _mesos, "cloudfoundry": _cloudfoundry,
    "normalize": _normalize, "churn": _churn, "fabric": _fabric, "cni": _cni,
}  # fmt: skip


def rows(doc: dict[str, Any], name: str) -> list[Row]:
    kind = str(doc.get("bench") or doc.get("benchmark") or name)
    fn = EXTRACT.get(kind)
    if fn is None:
        return [(f"{kind}: targets", "-", "-", "-", "see its JSON", met(doc.get("target_met", doc.get("all_targets_met"))))]
    try:
        return list(fn(doc))
    except (TypeError, ValueError, AttributeError) as exc:  # a file of another version: say so, go on
        return [(f"{kind}: unreadable summary ({exc})", "-", "-", "-", "-", "-")]


def table(all_rows: list[Row]) -> str:
    head: Row = ("figure", "hub", "baseline (same run)", "ratio", "target", "met")
    widths = [max(len(r[i]) for r in [head, *all_rows]) for i in range(6)]

    def line(r: Row) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, all_rows)])


def main(args: argparse.Namespace) -> int:
    out: list[Row] = []
    for f in args.files:
        p = Path(f)
        try:
            text = p.read_text().strip().splitlines()
            doc = json.loads(text[-1]) if text else {}
        except (OSError, ValueError) as exc:
            out.append((f"{p.name}: not read ({exc})", "-", "-", "-", "-", "-"))
            continue
        out += rows(doc, p.stem)
    print(table(out))
    return 0


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("files", nargs="+", help="JSON files written by the benches (the last line of each is read)")
