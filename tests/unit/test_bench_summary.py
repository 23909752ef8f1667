"""``python -m bench summary``: one table over the benches' JSON (no bench is run here)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bench import summary


def test_summary_rows_from_bench_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bulk = {"bench": "bulk", "results": [{"n": 50000, "hub": {"seconds": 3.0}, "raw": {"seconds": 2.4},
                                          "ratio_vs_raw": 0.8, "target_ratio": 0.8, "target_met": True}]}  # fmt: skip
    cf = {"benchmark": "cloudfoundry", "decode_rate": {"events_per_cpu_second": 99700.0, "ratio_to_baseline": 9.4,
          "baseline_b64_protobuf_only": {"events_per_cpu_second": 940000.0}, "target_events_per_second": 100000,
          "meets_target": False}}  # fmt: skip
    odd = {"bench": "newthing", "target_met": True}
    files = []
    for name, doc in (("bulk", bulk), ("cf", cf), ("odd", odd)):
        p = tmp_path / f"{name}.json"
        p.write_text("progress lines do not go here\n" + json.dumps(doc) + "\n")
        files.append(str(p))
    (tmp_path / "cut.json").write_text('{"bench": "bulk", "res')
    files.append(str(tmp_path / "cut.json"))
    assert summary.main(argparse.Namespace(files=files)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| figure ") and "| met" in out[0]
    bulk_row = next(x for x in out if "bulk 50000" in x)
    assert "3 s" in bulk_row and "raw 2.4 s" in bulk_row and "0.8x raw rate" in bulk_row and bulk_row.rstrip(" |").endswith("yes")
    cf_row = next(x for x in out if "Cloud Foundry" in x)
    assert "99.7k/s" in cf_row and "940.0k/s" in cf_row and cf_row.rstrip(" |").endswith("NO")
    assert any("newthing: targets" in x and x.rstrip(" |").endswith("yes") for x in out)
    assert any("cut.json: not read" in x for x in out)


def test_summary_reads_churn_in_milliseconds_and_docker_at_both_boundaries(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    churn = {"bench": "churn", "runs": [{"rate": 200.0, "p50_ms": 14.0, "p99_ms": 38.0},
                                        {"rate": 1000.0, "p50_ms": 50.0, "p99_ms": 111.0}],
             "max_rate_p99_under_100ms": 500.0, "raw_one_event": {"port_update": {"p50_ms": 0.139}}}  # fmt: skip
    docker = {"benchmark": "normalize", "docker_events": {
        "events_per_cpu_second": 82800.0, "target_events_per_cpu_second": 100000, "target_met": False,
        "baseline_msgspec_decode_event": {"events_per_cpu_second": 830000.0},
        "ratio_to_baseline_msgspec_decode_event": 10.0,
        "baseline_msgspec_decode_event_and_inspect": {"events_per_cpu_second": 89000.0},
        "ratio_to_baseline_msgspec_decode_event_and_inspect": 1.07,
        "parse_normalize_predecoded": {"events_per_cpu_second": 140000.0}}}  # fmt: skip
    files = []
    for name, doc in (("churn", churn), ("docker", docker)):
        p = tmp_path / f"{name}.json"
        p.write_text(json.dumps(doc) + "\n")
        files.append(str(p))
    assert summary.main(argparse.Namespace(files=files)) == 0
    out = capsys.readouterr().out.splitlines()
    r200 = next(x for x in out if "churn at 200 events/s" in x)
    assert "0.014 s / 0.038 s" in r200 and "0.139 ms" in r200 and r200.rstrip(" |").endswith("yes")
    assert next(x for x in out if "churn at 1000 events/s" in x).rstrip(" |").endswith("NO")
    assert any("highest rate" in x and "500/s" in x for x in out)
    body = next(x for x in out if "Docker events normalized, one core" in x)
    assert "82.8k/s" in body and "event and inspect 89.0k/s" in body and body.rstrip(" |").endswith("NO")
    pre = next(x for x in out if "decoded beforehand" in x)
    assert "140.0k/s" in pre and pre.rstrip(" |").endswith("yes")


def test_summary_reads_resync_per_n_and_restart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The shape ``bench resync`` writes: per N, one entry per restart (and per --hubd-src variant)."""

    def restart(ready: float, ratio: float, target: float, hwm: float, ok: bool) -> dict[str, object]:
        return {"ready_seconds": ready, "ratio": ratio, "writes_during_resync": 0, "rss_mb": 97.1, "hwm_mb": hwm,
                "hwm_over_rss": round(hwm / 97.1, 3),
                "targets": {"ratio": target, "writes_during_resync": 0, "rss_mb": 100.0, "hwm_over_rss": 1.2},
                "target_met": {"ratio": ok, "writes_during_resync": True, "rss_mb": True, "hwm_over_rss": hwm / 97.1 <= 1.2}}  # fmt: skip

    doc = {"bench": "resync", "interpreter_baseline": {"rss_mb": 31.4}, "results": [{
        "n": 50000, "nb": "clustered (1 member)", "raw_read": {"seconds": 2.8},
        "clean": restart(1.2, 0.43, 0.5, 115.9, True), "old:crash": restart(4.3, 1.54, 1.5, 112.0, False),
        "target_met": {"clean": True, "old:crash": False}}]}  # fmt: skip
    p = tmp_path / "resync.json"
    p.write_text(json.dumps(doc) + "\n")
    assert summary.main(argparse.Namespace(files=[str(p)])) == 0
    out = capsys.readouterr().out.splitlines()
    clean = next(x for x in out if "restart over 50000 ports (clean, clustered (1 member) NB)" in x)
    assert "1.2 s" in clean and "raw read 2.8 s" in clean and "0.43x" in clean and clean.rstrip(" |").endswith("yes")
    crash = next(x for x in out if "(old:crash, clustered" in x)
    assert "1.54x" in crash and crash.rstrip(" |").endswith("NO")
    hwm = next(x for x in out if "HWM / RSS (50000, clean)" in x)
    assert "115.9 MB" in hwm and "1.19x" in hwm and hwm.rstrip(" |").endswith("yes")
    assert any("RSS at READY (50000, old:crash)" in x and "interpreter 31.4 MB" in x for x in out)
