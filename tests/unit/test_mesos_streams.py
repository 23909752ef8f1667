"""The Mesos adapter's framings (adapters/mesos/streams.py): RecordIO and SSE,
under arbitrary re-chunking (hypothesis) and on the repo's fixtures."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.mesos.streams import FramingError, RecordIOReader, SSEReader, recordio_frame
from tests.conftest import FIXTURES_DIR

FIX = FIXTURES_DIR / "mesos"


def rechunk(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` split at the (sorted, deduplicated) offsets ``cuts``."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in [*points, len(data)]:
        out.append(data[last:p])
        last = p
    return out


def read_all(chunks: list[bytes], reader: RecordIOReader | None = None) -> list[bytes]:
    r = reader or RecordIOReader()
    out: list[bytes] = []
    for c in chunks:
        out += r.feed(c)
    assert r.pending == 0, "a whole stream leaves nothing behind"
    return out


# ------------------------------------------------------------------ RecordIO
def test_the_framed_fixture_is_three_real_events() -> None:
    data = (FIX / "recordio-stream.framed-real-events.txt").read_bytes()
    records = read_all([data])
    assert [json.loads(r)["type"] for r in records] == ["TASK_ADDED", "TASK_UPDATED", "HEARTBEAT"]
    assert records[2] == b'{"type":"HEARTBEAT"}'
    assert b"".join(recordio_frame(r) for r in records) == data  # and framing them again gives the file


def test_a_record_over_chunks_several_in_one_and_a_prefix_cut_from_its_record() -> None:
    recs = [b'{"type":"HEARTBEAT"}', b"{}", b'{"a":"' + b"x" * 300 + b'"}']
    data = b"".join(map(recordio_frame, recs))
    r = RecordIOReader()
    assert r.feed(data[:5]) == [] and r.pending == 2  # "20\n" and the first two bytes of its record
    # the rest of it, the whole second record, and the first digit of the third's prefix
    assert r.feed(data[5:28]) == recs[:2] and r.pending == 1
    assert r.feed(data[28:29]) == [] and r.pending == 2  # "30": the prefix still cut from its "8\n"
    assert r.feed(data[29:]) == [recs[2]] and r.pending == 0
    assert r.feed(b"") == [] and r.records == 3
    assert read_all([data[i : i + 1] for i in range(len(data))]) == recs, "byte by byte"
    assert read_all([data]) == recs, "all in one chunk"
    assert read_all([b"1", b"0\n0123", b"456789"]) == [b"0123456789"], "a length prefix in two"


@settings(max_examples=300, deadline=None)
@given(
    records=st.lists(st.binary(max_size=200), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=40),
)
def test_any_rechunking_gives_the_same_records(records: list[bytes], cuts: list[int]) -> None:
    data = b"".join(recordio_frame(r) for r in records)
    assert read_all(rechunk(data, cuts)) == records


@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=20000), max_size=60))
def test_the_fixture_rechunked_anywhere(cuts: list[int]) -> None:
    data = (FIX / "recordio-stream.framed-real-events.txt").read_bytes()
    assert len(read_all(rechunk(data, cuts))) == 3


@pytest.mark.parametrize(
    "data",
    [b"12a\n{}", b"-1\n", b" 2\n{}", b"1" * 30, b"0x10\n", b"\n{}"],
)
def test_a_prefix_that_is_not_a_length_breaks_the_stream(data: bytes) -> None:
    with pytest.raises(FramingError, match="not a number"):
        RecordIOReader().feed(data)


def test_the_doc_example_is_not_recordio() -> None:
    """docs/recordio.md's example writes "\\n" literally and miscounts: not a stream."""
    with pytest.raises(FramingError):
        read_all([(FIX / "recordio-stream.doc.txt").read_bytes()])


def test_a_record_above_the_limit_and_a_crlf_prefix() -> None:
    with pytest.raises(FramingError, match="longer than 100"):
        RecordIOReader(max_record=100).feed(b"101\n")
    assert RecordIOReader().feed(b"2\r\n{}") == [b"{}"]


# ------------------------------------------------------------------ SSE
def sse_all(chunks: list[bytes]) -> list[tuple[str, str]]:
    r = SSEReader()
    out: list[tuple[str, str]] = []
    for c in chunks:
        out += r.feed(c)
    return out


def test_the_marathon_capture() -> None:
    events = sse_all([(FIX / "marathon-sse-stream.doc-capture.txt").read_bytes()])
    assert [e for e, _ in events] == ["event_stream_attached", "status_update_event", "status_update_event"]
    assert [json.loads(d)["eventType"] for _, d in events] == [e for e, _ in events]


@settings(max_examples=200, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=40),
    eol=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_sse_under_any_rechunking_and_line_ending(cuts: list[int], eol: str) -> None:
    text = (FIX / "marathon-sse-stream.doc-capture.txt").read_text()
    data = text.replace("\n", eol).encode()
    want = sse_all([(FIX / "marathon-sse-stream.doc-capture.txt").read_bytes()])
    assert sse_all(rechunk(data, cuts)) == want


def test_sse_fields_comments_multiline_data_and_utf8_split() -> None:
    snow = "☃".encode()
    data = b": keepalive\n\nevent: a\ndata: one\ndata:two\nid: 7\nretry: 10\n\ndata: " + snow + b"\n\n"
    r = SSEReader()
    out = r.feed(data[: len(data) - 4]) + r.feed(data[len(data) - 4 :])  # the snowman cut in two
    assert out == [("a", "one\ntwo"), ("message", "☃")]
    assert r.last_id == "7"
    with pytest.raises(FramingError):
        SSEReader(max_event=10).feed(b"data: " + b"x" * 20 + b"\n")
