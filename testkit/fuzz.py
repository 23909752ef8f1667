"""Malformed input for fuzzing the hub's doors, cheaply, and a hard per-input time bound.

Most of the value of a fuzz run is in *near-valid* input: a real payload with one
field deleted, one value of the wrong type, a hostile string (NUL, controls,
bidi and zero-width characters, lone surrogates, IPv6 scope ids, whitespace
around an address), a huge or deeply nested value, or its bytes cut at a random
offset or laced with invalid UTF-8.  :class:`Mutator` makes such input from
seed documents (the real fixtures in ``tests/fixtures/``) with a
:class:`random.Random` seeded by the caller: hypothesis draws the seeds
(derandomized, so every CI run sees the same inputs and a failure shrinks to one
seed), this module turns each seed into one input in microseconds, which is
what lets every door see 10,000 inputs within the CI budget.

:class:`Door` runs one input under a hard time bound (``SIGALRM`` through
``setitimer``: a CPU loop cannot ignore it, unlike an asyncio timeout) and keeps
the figures a fuzz run reports: inputs, outcomes by kind, the slowest input.
"""

from __future__ import annotations

import base64
import collections
import json
import random
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["HOSTILE_STRINGS", "HOSTILE_VALUES", "Door", "Mutator", "Stall", "to_toml"]

#: Strings no identifier, address or name may hold (and some that look fine and are not).
HOSTILE_STRINGS: tuple[str, ...] = (
    "", " ", "\x00", "\n", "\r\n", "\t", "\x07", "\x1b[31m", "\x7f", "\u202e", "\u2066", "\u200b", "\u200d",
    "\ufeff", "\u2028", "\ud800", "\udfff", "\U0001f600", "é", "ǅ", "%", "%eth0", "%\x00", "fe80::1%eth0",
    "fe80::1%\x00", "10.0.0.5 ", " 10.0.0.5", "10.0.0.5\n", "10.0.0.256", "010.0.0.1", "1.2.3", "::1",
    "127.0.0.1", "0.0.0.0", "255.255.255.255", "224.0.0.1", "ff02::1", "10.0.0.0/33", "fd00::/129", "10.0.0.5/24",
    "02:00:00:00:00:0G", "01:00:5e:00:00:01", "-1", "0", "65536", "99999999999999999999", "1e309", "NaN", "true",
    "null", "../../../etc/passwd", "/", "\\", "a" * 64, "x" * 254, "y" * 5000, "{", "[", '"', "'", ";", "=",
    "K=V;;=", "a=b=c", "$(id)", "%s%n", "\u0130", "ﬀ", "TCP", "udp ", "SCTP",
)  # fmt: skip

#: Values of every JSON type, and the edges of each.
HOSTILE_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 1, 65535, 65536, -(2**63), 2**63, 2**64 + 1, 10**30, 0.5, -0.0, 1e308, [], {},
    [None], [[]], {"": None}, {"\x00": 1}, [1, "a", None], {"a": {"b": {"c": []}}},
)  # fmt: skip

#: Most characters one mutation adds (a huge value is huge at ~100 KB: past every limit of the model, not a
#: test of how fast a parser reads megabytes).
_MAX_GROWTH = 100_000

_BAD_BYTES: tuple[bytes, ...] = (
    b"\xff", b"\xfe\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x00", b"\x80", b"\xe2\x82",
    b"\x1e", b"\r", b"\n", b"\n\n", b"}", b"]", b'"', b"\\",
)  # fmt: skip


class Stall(BaseException):
    """An input took longer than the door's bound (a BaseException: ``except Exception`` cannot swallow it)."""


def _paths(value: Any, prefix: tuple[Any, ...] = (), out: list[tuple[Any, ...]] | None = None, limit: int = 400) -> list[tuple[Any, ...]]:  # fmt: skip
    """Every path (dict keys and list indexes) into ``value``, the root first."""
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    out.append(prefix)
    if isinstance(value, dict):
        for k, v in value.items():
            if len(out) >= limit:  # stop here, not after a call per remaining child (100k of them in a grown list)
                break
            _paths(v, (*prefix, k), out, limit)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if len(out) >= limit:
                break
            _paths(v, (*prefix, i), out, limit)
    return out


def _copy_text(value: Any) -> str:
    try:
        return json.dumps(value)
    except (RecursionError, ValueError):
        return "[" * 5000


def _copy(value: Any) -> Any:
    """A copy that shares nothing with ``value``.  A value too deep to copy (made so by an earlier
    mutation; how deep is too deep depends on the caller's stack) becomes a fresh deep value: returning
    ``value`` itself once let mutations write into the seed documents, which then grew input after input."""
    try:
        return json.loads(json.dumps(value))
    except (RecursionError, ValueError):
        return Mutator._deep(3000)


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        value = value[p]
    return value


class Mutator:
    """Near-valid and random input from seed documents, driven by one ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    # ------------------------------------------------------------ values
    def hostile_string(self, base: str = "") -> str:
        r = self.rng
        bad = r.choice(HOSTILE_STRINGS)
        how = r.randrange(5)
        if how == 0 or not base:
            return bad
        if how == 1:
            i = r.randrange(len(base) + 1)
            return base[:i] + bad + base[i:]
        if how == 2:
            return base + bad
        if how == 3:
            return base[: r.randrange(len(base) + 1)]
        return (base * r.choice((2, 50, 3000)))[:_MAX_GROWTH]

    def hostile_value(self, old: Any = None) -> Any:
        r = self.rng
        how = r.randrange(8)
        if how == 0 and isinstance(old, str):
            return self.hostile_string(old)
        if how == 1:
            return self.hostile_string()
        if how == 2 and isinstance(old, (dict, list)):
            return [old] if isinstance(old, dict) else {str(i): v for i, v in enumerate(old)}  # type swap
        if how == 3 and isinstance(old, (int, float)) and not isinstance(old, bool):
            return r.choice((str(old), -old, old + 1, old * 2**40, float(old) + 0.5, [old]))
        if how == 4:
            depth = r.choice((3, 40, 600, 3000))
            return json.loads("[" * depth + "]" * depth) if depth < 900 else self._deep(depth)
        if how == 5 and isinstance(old, list) and old:
            size = len(_copy_text(old))
            # Copied, not ``old * n``: n references to the same elements would let a later mutation inside one
            # of them grow the document n-fold (a 100 KB change times 3,000: gigabytes of JSON to write out).
            return _copy(old * max(1, min(r.choice((2, 100, 3000)), _MAX_GROWTH // max(size, 1))))
        if how == 6 and isinstance(old, str) and old:
            return {"value": old} if r.random() < 0.5 else [old]
        return r.choice(HOSTILE_VALUES)

    @staticmethod
    def _deep(depth: int) -> Any:
        v: Any = []
        for _ in range(depth):
            v = [v]
        return v

    # ------------------------------------------------------------ documents
    def mutate(self, doc: Any, ops: int | None = None) -> Any:
        """A copy of ``doc`` (JSON-shaped) with 1-3 mutations at random paths."""
        r = self.rng
        doc = _copy(doc)
        for _ in range(ops if ops is not None else r.choice((1, 1, 1, 2, 3))):
            paths = _paths(doc)
            path = r.choice(paths)
            if not path:
                if r.random() < 0.3:
                    doc = self.hostile_value(doc)
                continue
            parent, key = _get(doc, path[:-1]), path[-1]
            how = r.randrange(6)
            if how == 0:  # delete
                del parent[key]
            elif how == 1 and isinstance(parent, dict):  # an unknown or hostile key
                parent[self.hostile_string(str(key)) if r.random() < 0.5 else "zz"] = self.hostile_value()
            elif how == 2 and isinstance(parent, list):  # duplicate an element
                parent.insert(r.randrange(len(parent) + 1), _copy(parent[key]))
            else:
                parent[key] = self.hostile_value(parent[key])
        return doc

    def dumps(self, doc: Any) -> str:
        r = self.rng
        try:
            text = json.dumps(doc, ensure_ascii=r.random() < 0.3)
            if r.random() < 0.2 and len(text) < 20_000 and text.count("[") < 200:  # pretty-printed, not megabytes of it
                text = json.dumps(doc, ensure_ascii=r.random() < 0.3, indent=1)
            return text
        except (RecursionError, ValueError):
            return "[" * 5000 + "]" * 5000

    def bytes_of(self, text: str) -> bytes:
        """``text`` as UTF-8 (lone surrogates kept as their invalid 3-byte form)."""
        return text.encode("utf-8", "surrogatepass")

    def damage(self, data: bytes) -> bytes:
        """Byte-level damage: cut, invalid UTF-8, a flipped or duplicated slice; or none."""
        r = self.rng
        how = r.randrange(8)
        n = len(data)
        if how == 0 and n:
            return data[: r.randrange(n)]
        if how == 1:
            i = r.randrange(n + 1)
            return data[:i] + r.choice(_BAD_BYTES) + data[i:]
        if how == 2 and n:
            i = r.randrange(n)
            return data[:i] + bytes([r.randrange(256)]) + data[i + 1 :]
        if how == 3 and n:
            i, j = sorted((r.randrange(n), r.randrange(n)))
            return data[:j] + data[i:j] + data[j:]
        return data

    def text_damage(self, text: str) -> str:
        """Text-level damage of a non-JSON document (YAML, TOML, SSE, RecordIO): lines dropped,
        doubled or cut, hostile strings spliced in."""
        r = self.rng
        lines = text.split("\n")
        for _ in range(r.choice((1, 1, 2, 3))):
            if not lines:
                break
            i = r.randrange(len(lines))
            how = r.randrange(5)
            if how == 0:
                del lines[i]
            elif how == 1:
                lines.insert(i, lines[i])
            elif how == 2:
                lines[i] = lines[i][: r.randrange(len(lines[i]) + 1)]
            else:
                lines[i] = self.hostile_string(lines[i])
        return "\n".join(lines)

    def noise(self) -> bytes:
        r = self.rng
        how = r.randrange(4)
        if how == 0:
            return r.randbytes(r.randrange(64))
        if how == 1:
            return self.bytes_of(self.dumps(self.hostile_value()))
        if how == 2:
            return self.bytes_of(self.hostile_string())
        return base64.b64encode(r.randbytes(r.randrange(48)))

    def pick(self, seq: Sequence[Any]) -> Any:
        return self.rng.choice(seq)


def to_toml(table: Any) -> str:
    """A TOML document of ``table`` (nested tables as ``[a.b]`` headers; strings
    JSON-escaped, which TOML basic strings read the same way)."""
    lines: list[str] = []

    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v) if isinstance(v, int) or v == v else "nan"
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(str(k))} = {scalar(x)}" for k, x in v.items()) + "}"
        return '""'  # None: TOML has no null

    def emit(t: dict[str, Any], path: list[str]) -> None:
        subs = [(k, v) for k, v in t.items() if isinstance(v, dict) and v]
        for k, v in t.items():
            if not (isinstance(v, dict) and v):
                lines.append(f"{json.dumps(str(k), ensure_ascii=False)} = {scalar(v)}")
        for k, v in subs:
            lines.append("")
            lines.append("[" + ".".join(json.dumps(str(p), ensure_ascii=False) for p in [*path, k]) + "]")
            emit(v, [*path, k])

    try:
        emit(table if isinstance(table, dict) else {"hub": table}, [])
    except RecursionError:  # a value nested too deep to write out: what such a file looks like
        return "a = " + "[" * 5000 + "]" * 5000 + "\n"
    return "\n".join(lines) + "\n"


class Door:
    """One door's figures and its per-input bound.  Use :meth:`armed` around a
    batch (installs the ``SIGALRM`` handler once) and :meth:`bounded` around
    each input."""

    def __init__(self, name: str, bound: float = 5.0) -> None:
        self.name = name
        self.bound = bound
        self.inputs = 0
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.max_seconds = 0.0
        self.seconds = 0.0

    @contextmanager
    def armed(self) -> Iterator[None]:
        def alarm(_sig: int, _frame: FrameType | None) -> None:
            raise Stall(f"{self.name}: an input took more than {self.bound} s")

        old = signal.signal(signal.SIGALRM, alarm)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)

    @contextmanager
    def bounded(self) -> Iterator[None]:
        """One input: counted, timed, and interrupted by :class:`Stall` past the bound."""
        t0 = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, self.bound)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            dt = time.perf_counter() - t0
            self.inputs += 1
            self.seconds += dt
            self.max_seconds = max(self.max_seconds, dt)

    def outcome(self, kind: str, n: int = 1) -> None:
        self.outcomes[kind] += n

    def report(self) -> dict[str, Any]:
        return {"door": self.name, "inputs": self.inputs, "outcomes": dict(sorted(self.outcomes.items())),
                "max_ms": round(self.max_seconds * 1000, 2), "total_s": round(self.seconds, 2)}  # fmt: skip

