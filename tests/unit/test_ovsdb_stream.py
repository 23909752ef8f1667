"""The reader's streamed selects (``OvsdbClient.transact_rows(on_row=…)``):
rows handed over as the reply arrives must be exactly the reply's rows, in
order, whatever the read sizes, and the messages around the reply unchanged.
Strings hold the bytes the row splitter looks for (``},{``, braces, quotes,
backslashes) and non-ASCII."""

from __future__ import annotations

import random
from typing import Any

import msgspec

from core.ovsdb.client import _raw_rows, _StreamParser

_ENC = msgspec.json.Encoder()
_PIECES = ["a", "},{", "{", "}", '"', "\\", ",", "[", "]", "x", "é", '},{"', '"rows":[']


def _text(rnd: random.Random) -> str:
    return "".join(rnd.choice(_PIECES) for _ in range(rnd.randint(0, 8)))


def _update(rnd: random.Random) -> dict[str, Any]:
    return {"id": None, "method": "update2", "params": ["x", {"T": {"u": {"modify": {"a": _text(rnd)}}}}]}


def test_streamed_rows_are_the_replys_rows_whatever_the_reads() -> None:
    rnd = random.Random(1)
    streamed_trials = 0
    for trial in range(1500):
        got: list[msgspec.Raw] = []
        parser = _StreamParser({7: got.append})
        rows = [{"name": _text(rnd), "_uuid": ["uuid", str(i)], "external_ids": ["map", [[_text(rnd), _text(rnd)]]]}
                for i in range(rnd.choice([0, 1, 2, 5, 50, 300]))]  # fmt: skip
        before = [_update(rnd)] if rnd.random() < 0.5 else []
        if rnd.random() < 0.3:
            before.append({"id": 3, "result": [{"rows": rows[:3]}], "error": None})  # not streamed: another id
        failed = rnd.random() < 0.2
        reply = {"id": 7, "result": [{"error": "x", "details": _text(rnd)}] if failed else [{"rows": rows}], "error": None}
        after = [_update(rnd)] if rnd.random() < 0.5 else []
        msgs = [*before, reply, *after]
        data = b"".join(_ENC.encode(m) for m in msgs)
        out = []
        i = 0
        while i < len(data):
            n = rnd.choice([1, 7, 50, 200, 1000, 5000, 100000])
            out += parser.feed(data[i : i + n])
            i += n
            if rnd.random() < 0.1:
                out += parser.flush()
        out += parser.flush()
        assert len(out) == len(msgs), trial
        streamed_trials += bool(got)
        for m, o in zip(msgs, out, strict=True):
            if o.id == 7:
                res = _raw_rows(o.result)
                if failed:
                    assert not got and res[0]["error"] == "x", trial
                else:
                    rest = [msgspec.json.decode(r) for r in res[0]["rows"]]
                    assert [msgspec.json.decode(r) for r in got] + rest == rows, trial
            elif o.method:
                assert msgspec.json.decode(o.params) == m["params"], trial
            else:
                assert msgspec.json.decode(o.result) == m["result"], trial
    assert streamed_trials > 100  # the streamed path ran (not only the whole reply's decode)
