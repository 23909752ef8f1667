"""The two stream framings of the Mesos adapter, as incremental pure readers.

* **RecordIO** (the master's ``SUBSCRIBE`` body, ``docs/recordio.md``):
  ``<decimal byte length>\\n<bytes>`` repeated, nothing between records.  Proxies
  and the master's own chunked encoding split the bytes anywhere: a record over
  several chunks, several records in one, a length prefix cut from its record or
  in two.  :class:`RecordIOReader` takes chunks as they come and returns every
  record completed so far.  A framing error (a prefix that is not a decimal
  number, a record above the limit) cannot be resynchronised - the next length
  is unknowable - so it raises :class:`FramingError` and the stream is given up.
* **Server-sent events** (Marathon's ``/v2/events``, the WHATWG ``EventSource``
  format): lines ended by CR, LF or CRLF (also split across chunks), ``event:``,
  ``data:`` (several joined by LF), ``id:``, ``retry:``, ``:`` comments; a blank
  line dispatches the event.  :class:`SSEReader` returns ``(event, data)`` pairs.

Both have a size bound, so a hostile or broken peer cannot make them buffer
without limit.
"""

from __future__ import annotations

import codecs

__all__ = ["FramingError", "RecordIOReader", "SSEReader", "recordio_frame"]

#: More digits than this in a length prefix is not a length (10^20 bytes).
_MAX_DIGITS = 20


class FramingError(ValueError):
    """The stream's framing is broken: it cannot be read any further."""


def recordio_frame(record: bytes) -> bytes:
    """``record`` framed as RecordIO."""
    return b"%d\n%s" % (len(record), record)


class RecordIOReader:
    """Incremental RecordIO parser: :meth:`feed` chunks, get whole records."""

    __slots__ = ("_buf", "_need", "max_record", "records")

    def __init__(self, max_record: int = 256 << 20) -> None:
        self.max_record = max_record
        self._buf = bytearray()
        self._need = -1  # the length of the record being read; -1: reading its length prefix
        #: records returned so far
        self.records = 0

    @property
    def pending(self) -> int:
        """Bytes held that belong to no complete record yet."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """The records that ``data`` completes (maybe none); raises :class:`FramingError`."""
        buf = self._buf
        if buf:
            buf += data
            src: bytes | bytearray = buf
        else:
            src = bytes(data)  # the usual case: nothing left over, parse the chunk itself
        out: list[bytes] = []
        pos = 0
        end = len(src)
        need = self._need
        while True:
            if need < 0:
                nl = src.find(b"\n", pos, pos + _MAX_DIGITS + 2)
                if nl < 0:
                    if end - pos > _MAX_DIGITS + 1:
                        raise FramingError(f"record length prefix {bytes(src[pos:pos + 24])!r} is not a number")
                    break
                head = src[pos:nl]
                if head.endswith(b"\r"):
                    head = head[:-1]
                if not head.isdigit():
                    raise FramingError(f"record length prefix {bytes(head[:24])!r} is not a number")
                need = int(head)
                if need > self.max_record:
                    raise FramingError(f"record of {need} bytes is longer than {self.max_record}")
                pos = nl + 1
            if end - pos < need:
                break
            out.append(bytes(src[pos : pos + need]))
            pos += need
            need = -1
        self._need = need
        if buf:
            del buf[:pos]
        elif pos < end:
            buf += src[pos:]
        self.records += len(out)
        return out


class SSEReader:
    """Incremental ``text/event-stream`` parser: :meth:`feed` chunks, get ``(event, data)``."""

    def __init__(self, max_event: int = 16 << 20) -> None:
        self.max_event = max_event
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._line = ""  # an unfinished line
        self._cr = False  # the last chunk ended in CR: an LF first in the next one ends nothing
        self._event = ""
        self._data: list[str] = []
        self._size = 0
        self._bom = True
        #: the last ``id:`` seen (Marathon sends none)
        self.last_id = ""

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        text = self._decoder.decode(data)
        if self._bom:
            if not text:
                return []
            self._bom = False
            text = text.removeprefix("\ufeff")
        if self._cr and text.startswith("\n"):
            text = text[1:]
        self._cr = text.endswith("\r")
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = (self._line + text).split("\n")
        self._line = lines.pop()
        if len(self._line) > self.max_event:
            raise FramingError(f"event-stream line longer than {self.max_event} characters")
        out: list[tuple[str, str]] = []
        for line in lines:
            if not line:
                if self._data:
                    out.append((self._event or "message", "\n".join(self._data)))
                self._event, self._data, self._size = "", [], 0
                continue
            if line.startswith(":"):
                continue  # a comment (a keep-alive)
            field, sep, value = line.partition(":")
            if sep and value.startswith(" "):
                value = value[1:]
            if field == "data":
                self._size += len(value)
                if self._size > self.max_event:
                    raise FramingError(f"event-stream event longer than {self.max_event} characters")
                self._data.append(value)
            elif field == "event":
                self._event = value
            elif field == "id" and "\0" not in value:
                self.last_id = value
        return out
