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

import itertools
import re

import msgspec

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
    is set once the last chunk (``0``) and its trailer were read.

    A chunk that is whole in the buffer (size line, data, CRLF) is cut out with
    two ``find``s and a slice; size lines are parsed once and remembered (the
    BBS writes a few hundred distinct ones).  A chunk split across reads goes
    through the state machine."""

    def __init__(self) -> None:
        self._rest = b""
        self._need = -1  # bytes of chunk data still expected; -1: a size line is next; -2: CRLF after data
        self.done = False

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        buf = self._rest + bytes(data) if self._rest else bytes(data)
        out: list[bytes] = []
        n = len(buf)
        pos = 0
        need = self._need
        sizes = _SIZES
        find = buf.find
        while True:
            if need == -1:
                eol = find(b"\r\n", pos)
                if eol < 0:
                    if n - pos > _MAX_SIZE_LINE:
                        raise FramingError("chunk size line too long")
                    break
                line = buf[pos:eol]
                size = sizes.get(line)
                if size is None:
                    size = _size_line(line)
                pos = eol + 2
                if size == 0:
                    self.done = True  # trailer lines (if any) are not read: the stream is over
                    pos = n
                    break
                end = pos + size
                if end + 2 <= n:  # the whole chunk is here
                    if buf[end : end + 2] != b"\r\n":
                        raise FramingError("chunk data not followed by CRLF")
                    out.append(buf[pos:end])
                    pos = end + 2
                    continue
                need = size
            elif need == -2:
                if n - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise FramingError("chunk data not followed by CRLF")
                pos += 2
                need = -1
            else:
                take = min(need, n - pos)
                if take <= 0:
                    break
                out.append(buf[pos : pos + take])
                pos += take
                need -= take
                if need == 0:
                    need = -2
        self._need = need
        self._rest = buf[pos:] if pos < n else b""
        return b"".join(out)


#: size line → size, for the size lines seen (bounded)
_SIZES: dict[bytes, int] = {}


def _size_line(line: bytes) -> int:
    size_text = line.split(b";", 1)[0].strip()
    if not size_text or len(size_text) > 16:
        raise FramingError(f"bad chunk size line {line[:40]!r}")
    try:
        size = int(size_text, 16)
    except ValueError:
        raise FramingError(f"bad chunk size line {line[:40]!r}") from None
    if size < 0:  # int() takes a sign; a negative size would wedge the stream
        raise FramingError(f"bad chunk size line {line[:40]!r}")
    if size > MAX_CHUNK:
        raise FramingError(f"chunk of {size} bytes is above the {MAX_CHUNK} limit")
    if len(_SIZES) >= 4096:
        _SIZES.clear()
    _SIZES[line] = size
    return size


class Frame(msgspec.Struct, frozen=True):
    """One SSE frame.  ``error`` non-empty: the frame is malformed (the reason, then a colon and the message)."""

    id: str = ""
    event: str = ""
    data: str = ""
    error: str = ""


class SSEParser:
    """SSE body bytes → frames.  Lines end in LF (a CR before it is dropped);
    ``field: value`` (one optional space after the colon); a blank line ends
    the frame; a line starting with ``:`` is a comment; several ``data:`` lines
    join with LF (the BBS never writes more than one).

    Fast path: when no frame is half read, the complete frames in the buffer
    (up to its last blank line) are cut out with one ``rfind``, one decode and
    two ``split``s, provided they are ASCII without CR (what the BBS writes);
    ``id:``/``event:``/``data:`` in that order make a frame directly, any other
    shape takes the general field parse.  Otherwise the buffer is read line by
    line.  Both give the same frames for the same bytes (a test checks)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._lines: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        buf = self._buf
        pos = 0 if self._lines or self._size else _whole_frames(buf, 0, frames)
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
                pos = _whole_frames(buf, pos, frames)
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
            return _TOO_LONG
        if all(raw.startswith(b":") for raw in lines):
            return None
        texts: list[str] = []
        for raw in lines:
            if raw.startswith(b":"):
                continue
            try:
                texts.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                return Frame(error="bad-frame: a line is not UTF-8")
        return _fields_frame(texts)


_TOO_LONG = Frame(error=f"too-long: a frame of more than {MAX_FRAME} bytes")


#: a frame as the BBS writes it: ``id``, ``event`` (not empty), ``data`` (not empty), a blank line
_BBS_FRAME = re.compile(r"id: ([^\n]*)\nevent: ([^\n]+)\ndata: ([^\n]+)\n\n")
_FRAME_FIXED = len("id: \nevent: \ndata: \n\n")


def _whole_frames(buf: bytearray, pos: int, frames: list[Frame]) -> int:
    """Frames of ``buf[pos:]`` up to its last blank line, appended to ``frames``
    when those bytes are ASCII without CR; the position after them (``pos``
    when nothing was taken).  ``pos`` is at a line start with no frame half read."""
    end = buf.rfind(b"\n\n", pos)
    if end < 0:
        return pos
    end += 2
    chunk = buf[pos:end]
    if not chunk.isascii() or b"\r" in chunk:
        return pos
    text = chunk.decode("ascii")
    if len(text) <= MAX_FRAME:  # no frame can be too long
        # every frame "id: …\nevent: …\ndata: …\n\n" (what the BBS writes): one findall; when the matches
        # cover the whole text, nothing lies between them, and they are exactly the frames the loop makes
        found = _BBS_FRAME.findall(text)
        if len(text) == _FRAME_FIXED * len(found) + sum(map(len, itertools.chain.from_iterable(found))):
            frames.extend(itertools.starmap(Frame, found))
            return end
    for piece in text.split("\n\n"):
        if piece.startswith("\n"):  # a blank line after a frame's end: nothing
            piece = piece[1:]
        if not piece:
            continue
        lines = piece.split("\n")
        if len(piece) - len(lines) + 1 > MAX_FRAME:  # the bytes of its lines, as the line reader counts them
            frames.append(_TOO_LONG)
            continue
        if len(lines) == 3:
            ident, event, data = lines
            if ident.startswith("id: ") and event.startswith("event: ") and data.startswith("data: "):
                if len(event) > 7 and len(data) > 6:
                    frames.append(Frame(ident[4:], event[7:], data[6:]))
                    continue
        texts = [line for line in lines if not line.startswith(":")]
        if texts:  # only comments: a keep-alive
            frames.append(_fields_frame(texts))
    return end


def _fields_frame(lines: list[str]) -> Frame:
    """The frame of its (decoded, comment-free, non-empty) lines."""
    fields: dict[str, list[str]] = {}
    for line in lines:
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
