"""The fuzz input generator's own bound: a mutated document is at most a few
hundred KB of JSON whatever the seed (testkit/fuzz.py).  A list multiplied by
reference once let a later mutation inside one shared element grow a document
by its multiplier: gigabytes to write out, which stalled the fuzz doors at
10,000 inputs."""

from __future__ import annotations

import json
import random

from testkit.fuzz import _MAX_GROWTH, Mutator

SEED_DOC = {
    "items": [{"name": "a", "ports": [{"port": 80, "protocol": "TCP"}], "labels": {"app": "x"}} for _ in range(3)],
    "meta": {"list": [1, 2, 3], "nested": [[{"k": [1]}]]},
}


def test_mutations_never_grow_a_document_past_their_bound() -> None:
    base = len(json.dumps(SEED_DOC))
    worst = 0
    for s in range(3000):
        m = Mutator(random.Random(s))
        doc = m.mutate(SEED_DOC, 3)
        worst = max(worst, len(m.dumps(doc)))
    # Three mutations, each adding at most ~_MAX_GROWTH characters (a deep value is ~5 KB per level of sharing).
    assert worst <= base + 4 * _MAX_GROWTH, worst


def test_a_multiplied_list_holds_copies_not_references() -> None:
    for s in range(2000):
        m = Mutator(random.Random(s))
        v = m.hostile_value([{"a": [1]}, {"b": 2}])
        if isinstance(v, list) and len(v) > 2 and all(isinstance(x, dict) for x in v):
            assert len({id(x) for x in v}) == len(v)
            return
    raise AssertionError("no multiplied list drawn in 2,000 seeds")
