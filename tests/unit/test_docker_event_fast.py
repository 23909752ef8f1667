"""``parse_event_line`` decodes with msgspec first; json.loads (the decoder it had) decides otherwise.

The oracle below is the previous implementation (json.loads only).  Over the
fixture's event lines and hostile variants (NaN, Infinity, lone surrogates,
huge numbers, control characters, record separators, deep nesting around both
decoders' limits, truncations, non-UTF-8), both must accept the same lines with
the same events, and reject the same lines with the same reason.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from adapters.docker.normalize import _check_event, parse_event_line
from core.model import Invalid
from tests.conftest import FIXTURES_DIR

LINES = (FIXTURES_DIR / "docker" / "events.compose-project.deck-chores.jsonl").read_bytes().splitlines()


def _old(line: bytes | str) -> Any:
    """parse_event_line as it was (json.loads only)."""
    if isinstance(line, bytes):
        if len(line) > 1 << 20:
            raise Invalid("too-long", "")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("bad-encoding", "") from None
    else:
        text = line
    text = text.strip().lstrip("\x1e").strip()
    if not text:
        raise Invalid("empty", "")
    try:
        ev = json.loads(text)
    except json.JSONDecodeError:
        raise Invalid("bad-json", "") from None
    except RecursionError:
        raise Invalid("bad-json", "") from None
    return _check_event(ev)


def _verdict(fn: Any, line: bytes | str) -> Any:
    try:
        return ("ok", fn(line))
    except Invalid as exc:
        return ("invalid", exc.reason)


def _variants() -> list[bytes | str]:
    rng = random.Random(15)
    base = LINES[1].decode()
    out: list[bytes | str] = list(LINES)
    subs = ['NaN', 'Infinity', '-Infinity', '1e400', '-1e400', '1e-400', '123456789012345678901234567890', '"\\ud800"',
            '"\\udc00x"', '"\\ud83d\\ude00"', '"a\\u0000b"', '"\\u001f"', '-0', '-0.0', '1.5', 'true', 'null', '[]', '{}',
            '"\t"', '"\x01"', '"é"', '"\\/"', '01', '1.', '.5', '"\\x"', '[1,]']  # fmt: skip
    for sub in subs:
        for key in ('"time":1570389773', '"timeNano":1570389773595226629', '"scope":"local"'):
            k = key.split(":")[0]
            out.append(base.replace(key, f"{k}:{sub}"))
    for depth in (10, 100, 400, 500, 513, 900, 990, 993, 994, 995, 996, 997, 1000, 2000):
        nest = "[" * depth + "]" * depth
        out.append(base[:-1] + f',"x":{nest}}}')
        out.append(f'{{"Type":"container","Action":"start","x":{nest}}}')
    for _ in range(300):
        cut = rng.randrange(len(base))
        out.append(base[:cut])
        out.append(base[:cut] + rng.choice(["\x1e", "\ufeff", "\x00", " ", "}", "]", '"', "\\"]) + base[cut:])
    out += ["\x1e" + base, base + "\n", "  " + base + "  ", b"\xff" + LINES[1], LINES[1] + b"\xc3", "", " ", "\x1e"]
    out += ['{"Type":"container","Action":"start","a":1,"a":2}', '{"Type":"container","Type":"network","Action":"x"}']
    return out


@pytest.mark.parametrize("chunk", range(8))
def test_parse_event_line_as_before(chunk: int) -> None:
    cases = _variants()
    for line in cases[chunk::8]:
        for form in (line, line.encode(errors="surrogatepass") if isinstance(line, str) else line):
            new, old = _verdict(parse_event_line, form), _verdict(_old, form)
            assert repr(new) == repr(old), (form[:120], new, old)
