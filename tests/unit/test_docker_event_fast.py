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


# ---------------------------------------------------------------- event_key and event_container_id
def _old_actor(ev: Any) -> tuple[str, dict[str, Any]]:
    actor = ev.get("Actor")
    if not isinstance(actor, dict):
        return "", {}
    aid = actor.get("ID")
    attrs = actor.get("Attributes")
    return (aid if isinstance(aid, str) else ""), (attrs if isinstance(attrs, dict) else {})


def _old_time_nano(ev: Any) -> int:
    tn = ev.get("timeNano")
    if isinstance(tn, int) and not isinstance(tn, bool):
        return tn
    t = ev.get("time")
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        return int(t * 1_000_000_000)
    return 0


def _old_action(ev: Any) -> str:
    action = ev.get("Action")
    return action.partition(":")[0].strip() if isinstance(action, str) else ""


def _old_event_key(ev: Any) -> tuple[int, str, str, str]:
    """event_key as it was (before its fast path for the usual event)."""
    aid, _ = _old_actor(ev)
    if not aid:
        legacy = ev.get("id")
        aid = legacy if isinstance(legacy, str) else ""
    typ = ev.get("Type")
    return (_old_time_nano(ev), typ if isinstance(typ, str) else "", _old_action(ev), aid)


def _old_event_container_id(ev: Any) -> str | None:
    """event_container_id as it was."""
    typ = ev.get("Type")
    aid, attrs = _old_actor(ev)
    if typ == "container":
        if aid:
            return aid
        legacy = ev.get("id")
        return legacy if isinstance(legacy, str) and legacy else None
    if typ == "network" and _old_action(ev) in ("connect", "disconnect"):
        cid = attrs.get("container")
        return cid if isinstance(cid, str) and cid else None
    return None


def test_event_key_and_container_id_as_before() -> None:
    from adapters.docker.normalize import event_container_id, event_key
    from testkit.fuzz import HOSTILE_VALUES, Mutator

    rng = random.Random(6)
    m = Mutator(rng)
    events = [json.loads(line) for line in LINES]
    cases: list[Any] = list(events)
    for _ in range(3000):
        ev = json.loads(json.dumps(rng.choice(events)))
        for _ in range(rng.choice((1, 1, 2))):
            if not isinstance(ev, dict):
                break
            where = rng.random()
            if where < 0.3 and isinstance(ev.get("Actor"), dict):
                ev["Actor"][rng.choice(("ID", "Attributes"))] = rng.choice((*HOSTILE_VALUES, "", "x", " start "))
            elif where < 0.7:
                ev[rng.choice(("Type", "Action", "Actor", "id", "timeNano", "time"))] = rng.choice(
                    (*HOSTILE_VALUES, "", "container", "network", "connect", " start: x", "start", 1.5, -3, True))
            else:
                ev = m.mutate(ev, 1)
        if isinstance(ev, dict):
            cases.append(ev)
    for ev in cases:
        assert event_key(ev) == _old_event_key(ev), ev
        assert event_container_id(ev) == _old_event_container_id(ev), ev


# ---------------------------------------------------------------- container_event: the typed path of the usual event
def _container_lines() -> list[bytes]:
    """The variants above, and container events with their fields mutated, as bytes."""
    from testkit.fuzz import HOSTILE_STRINGS, HOSTILE_VALUES, Mutator

    rng = random.Random(7)
    m = Mutator(rng)
    out = [v.encode(errors="surrogatepass") if isinstance(v, str) else v for v in _variants()]
    events = [ev for ev in (json.loads(line) for line in LINES) if ev.get("Type") == "container"]
    for _ in range(4000):
        ev = json.loads(json.dumps(rng.choice(events)))
        for _ in range(rng.choice((0, 1, 1, 2))):
            where = rng.random()
            if where < 0.25 and isinstance(ev.get("Actor"), dict):
                ev["Actor"][rng.choice(("ID", "Attributes"))] = rng.choice((*HOSTILE_VALUES, *HOSTILE_STRINGS[:20], "x"))
            elif where < 0.7:
                ev[rng.choice(("Type", "Action", "Actor", "id", "timeNano", "time", "status"))] = rng.choice(
                    (*HOSTILE_VALUES, *HOSTILE_STRINGS[:20], "container", "network", " start", "start ", "exec_start: sh",
                     "health_status: healthy", "start", "die", 1.5, -3, 10**20))  # fmt: skip
            elif where < 0.85:
                ev.pop(rng.choice(("Type", "Action", "Actor", "id", "timeNano", "time")), None)
            else:
                mutated = m.mutate(ev, 1)
                if isinstance(mutated, dict):
                    ev = mutated
        text = m.dumps(ev)
        out.append(m.damage(m.bytes_of(text)) if rng.random() < 0.1 else m.bytes_of(text))
    return out


def test_container_event_as_the_dict_path() -> None:
    from adapters.docker.normalize import container_event, event_container_id, event_key, event_time_nano

    answered = 0
    for line in _container_lines():
        fast = container_event(line)
        if fast is None:
            continue
        answered += 1
        ev = parse_event_line(line)  # never rejects what the typed path answers
        assert ev["Type"] == "container", line[:200]
        assert (fast.key, fast.container, fast.action, fast.time_nano) == (
            event_key(ev), event_container_id(ev), ev["Action"], event_time_nano(ev)), line[:200]  # fmt: skip
    assert answered > 1500
    for line in LINES:  # the fixture's container events take it
        ev = json.loads(line)
        if ev.get("Type") == "container" and ":" not in ev["Action"]:
            assert container_event(line) is not None, line[:200]
