"""``core.metrics.observe_many`` counts what one ``observe`` per amount would."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram

from core.metrics import observe_many

BUCKETS = (0.001, 0.01, 0.1, 1.0, 10.0)


def _samples(h: Histogram) -> dict[str, float]:
    return {f"{s.name}{sorted(s.labels.items())}": s.value for m in h.collect() for s in m.samples
            if not s.name.endswith("_created")}  # fmt: skip


def test_observe_many_equals_one_observe_each() -> None:
    rng = random.Random(15)
    for n in (0, 3, 63, 64, 5000):
        amounts = [rng.choice((0.0, 0.001, 0.01, 0.1, 1.0, 10.0, 99.0)) if rng.random() < 0.3 else rng.expovariate(2.0)
                   for _ in range(n)]  # fmt: skip  (bounds themselves: a bound counts in its own bucket)
        one = Histogram("one", "h", buckets=BUCKETS, registry=CollectorRegistry())
        many = Histogram("many", "h", buckets=BUCKETS, registry=CollectorRegistry())
        for a in amounts:
            one.observe(a)
        observe_many(many, amounts)
        got = {k.replace("many", "one", 1): v for k, v in _samples(many).items()}
        want = _samples(one)
        assert got.keys() == want.keys()
        for k, v in want.items():
            assert abs(got[k] - v) <= 1e-9 * max(1.0, abs(v)), (n, k)
