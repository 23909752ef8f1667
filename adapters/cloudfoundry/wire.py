"""The BBS event stream's framing: pure, incremental, no I/O.

The BBS hijacks the connection and writes the chunked body itself
(``shared/reference/cf-bbs-protocol.md`` §3.3): per event a size line of
lower-case hex, ``;`` and CRLF (``1a4;\\r\\n``), the SSE frame, CRLF; at the end
``0\\r\\n\\r\\n``.  :class:`ChunkDecoder` turns such bytes (in any split) into
the body's bytes; :class:`SSEParser` turns body bytes (in any split, frames
across chunk boundaries) into :class:`Frame` s: ``id:``, ``event:``, ``data:``
lines, LF-terminated, a blank line ending each frame (§3.4).

Hostile input: a size line that is not hex, is too long, or announces a chunk
above :data:`MAX_CHUNK`, or a chunk not followed by CRLF, is a
:class:`FramingError` - the byte stream cannot be resynchronised, so the
connection is dropped (and the adapter relists).  A frame's own problems
(no data, not UTF-8, an unknown field, too long) are the frame's: it comes out
with ``error`` set and the stream goes on.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_CHUNK", "MAX_FRAME", "ChunkDecoder", "Frame", "FramingError", "SSEParser", "encode_chunk", "encode_frame"]

#: Largest chunk accepted (one SSE frame: an ActualLRP event is well under 4 KiB).
MAX_CHUNK = 4 << 20
#: Largest SSE frame accepted.
MAX_FRAME = 4 << 20
_MAX_SIZE_LINE = 64


class FramingError(ValueError):
    """The chunked framing is broken: the connection must be dropped."""


class ChunkDecoder:
    """Hand-chunked bytes → body bytes.  ``feed`` returns what it could decode; ``done``
    is set once the last chunk (``0``) and its trailer were read."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._need = -1  # bytes of chunk data still expected; -1: a size line is next; -2: CRLF after data
        self.done = False

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        self._buf += data
        out = bytearray()
        buf = self._buf
        pos = 0
        while True:
            if self._need == -1:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if len(buf) - pos > _MAX_SIZE_LINE:
                        raise FramingError("chunk size line too long")
                    break
                line = bytes(buf[pos:eol])
                size_text = line.split(b";", 1)[0].strip()
                if not size_text or len(size_text) > 16:
                    raise FramingError(f"bad chunk size line {line[:40]!r}")
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise FramingError(f"bad chunk size line {line[:40]!r}") from None
                if size > MAX_CHUNK:
                    raise FramingError(f"chunk of {size} bytes is above the {MAX_CHUNK} limit")
                pos = eol + 2
                if size == 0:
                    self.done = True  # trailer lines (if any) are not read: the stream is over
                    pos = len(buf)
                    break
                self._need = size
            elif self._need == -2:
                if len(buf) - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise FramingError("chunk data not followed by CRLF")
                pos += 2
                self._need = -1
            else:
                take = min(self._need, len(buf) - pos)
                if take <= 0:
                    break
                out += buf[pos : pos + take]
                pos += take
                self._need -= take
                if self._need == 0:
                    self._need = -2
        del buf[:pos]
        return bytes(out)


@dataclass(frozen=True, slots=True)
class Frame:
    """One SSE frame.  ``error`` non-empty: the frame is malformed (the reason, then a colon and the message)."""

    id: str = ""
    event: str = ""
    data: str = ""
    error: str = ""


class SSEParser:
    """SSE body bytes → frames.  Lines end in LF (a CR before it is dropped);
    ``field: value`` (one optional space after the colon); a blank line ends
    the frame; a line starting with ``:`` is a comment; several ``data:`` lines
    join with LF (the BBS never writes more than one)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._lines: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        buf = self._buf
        pos = 0
        while True:
            eol = buf.find(b"\n", pos)
            if eol < 0:
                break
            line = bytes(buf[pos:eol])
            pos = eol + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if line:
                self._size += len(line)
                if self._size <= MAX_FRAME:
                    self._lines.append(line)
                continue
            if self._lines or self._size:
                frame = self._frame()
                if frame is not None:
                    frames.append(frame)
        del buf[:pos]
        if len(buf) > MAX_FRAME:  # a line that never ends: drop it, and say so once the frame ends
            self._size += len(buf)
            buf.clear()
        return frames

    def _frame(self) -> Frame | None:
        """The frame the lines make (None: only comments, a keep-alive)."""
        lines, size = self._lines, self._size
        self._lines, self._size = [], 0
        if size > MAX_FRAME:
            return Frame(error=f"too-long: a frame of more than {MAX_FRAME} bytes")
        if all(raw.startswith(b":") for raw in lines):
            return None
        fields: dict[str, list[str]] = {}
        for raw in lines:
            if raw.startswith(b":"):
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                return Frame(error="bad-frame: a line is not UTF-8")
            name, colon, value = line.partition(":")
            if colon and value.startswith(" "):
                value = value[1:]
            fields.setdefault(name, []).append(value)
        unknown = set(fields) - {"id", "event", "data", "retry"}
        ident = fields.get("id", [""])[-1]
        event = fields.get("event", [""])[-1]
        if unknown:
            return Frame(id=ident, event=event, error=f"bad-frame: unknown field {sorted(unknown)[0][:40]!r}")
        if "data" not in fields or not any(fields["data"]):
            return Frame(id=ident, event=event, error="no-data: an event with no data")
        if not event:
            return Frame(id=ident, error="bad-frame: an event with no name")
        return Frame(id=ident, event=event, data="\n".join(fields["data"]))


def encode_frame(ident: int, event: str, data: str) -> bytes:
    """The SSE frame go-sse writes (used by the fake BBS and the benchmark)."""
    return f"id: {ident}\nevent: {event}\ndata: {data}\n\n".encode()


def encode_chunk(payload: bytes) -> bytes:
    """One chunk as the BBS writes it: ``<hex>;\\r\\n<payload>\\r\\n``."""
    return b"%x;\r\n" % len(payload) + payload + b"\r\n"
