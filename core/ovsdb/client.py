"""A small asyncio OVSDB (RFC 7047) JSON-RPC client: transact + conditional monitor.

Why not ovsdbapp's IDL here: the hub keeps only *its own* rows and only the
columns it writes, and it must hold 50k ports in well under 150 MB and resync
them in about the time a raw read takes.  ovsdbapp replicates whole tables in
Python IDL objects (measured here: 10-14 s and +245-327 MB for 50k ports) and
commits through a thread; the bench (`bench/bulk.py`) runs it as a baseline.
This client asks ovsdb-server for ``monitor_cond`` with a condition on the
hub's owner tag, so foreign rows never reach the process, and decodes with
msgspec.

One connection carries both the monitor and the transactions; the programmer
does not rely on the order of a transaction's reply and the notifications it
causes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import msgspec

from core.gcpause import gc_paused
from core.ovsdb.transport import SERVER_COLUMNS, Member, Tls, TlsError, member_ok, open_stream, split_remotes

log = logging.getLogger("ovn_hub.ovsdb")
_enc = msgspec.json.Encoder()
_NULL = msgspec.Raw(b"null")


class _Msg(msgspec.Struct, gc=False):
    """One JSON-RPC message, its payload left undecoded (a zero-copy view of the
    read buffer): a reply is decoded by the decoder its request asked for, so a
    big select can hand over its rows one by one (:meth:`OvsdbClient.transact_rows`) instead of as one tree of objects."""

    id: Any = None
    method: str | None = None
    params: msgspec.Raw = _NULL
    result: msgspec.Raw = _NULL
    error: Any = None


class _OpResult(msgspec.Struct, gc=False):
    """One operation's result in a transaction reply, a select's rows undecoded."""

    rows: list[msgspec.Raw] | None = None
    uuid: Any = None
    count: Any = None
    error: Any = None
    details: Any = None


_msg_decoder = msgspec.json.Decoder(_Msg)
_raw_rows_decoder = msgspec.json.Decoder(list[_OpResult] | None)


def _raw_rows(result: msgspec.Raw) -> Any:
    """A transaction's result with every select's rows as :class:`msgspec.Raw`
    (each one JSON object, decoded by the caller as it goes)."""
    ops = _raw_rows_decoder.decode(result)
    if ops is None:
        return None
    out: list[dict[str, Any]] = []
    for op in ops:
        d: dict[str, Any] = {}
        for f in op.__struct_fields__:
            v = getattr(op, f)
            if v is not None:
                d[f] = v
        out.append(d)
    return out


class OvsdbError(Exception):
    """An RPC or transaction error reported by ovsdb-server."""

    def __init__(self, message: str, details: Any = None, index: int | None = None) -> None:
        super().__init__(message)
        self.details = details
        self.index = index


class ConnectionLost(OvsdbError):
    pass


class NoUsableServer(ConnectionLost):
    """No member of the remote list could be used (each one's reason is in the message)."""


class Refused(OvsdbError):
    """A request this client will not send: ovsdb-server would drop the whole
    session on it instead of failing one operation (a NUL character in a
    string: "null bytes not supported"), or it is not encodable (a lone
    surrogate).  Raised before anything is written, so the session stays up
    and the caller can bisect to the row that carries it."""


class _StreamParser:
    """Splits a byte stream into JSON-RPC messages (ovsdb-server sends them
    back to back, without delimiters) and decodes them with msgspec.

    msgspec has no streaming mode, so framing is done here: every message is a
    JSON object, and a running count of ``{`` minus ``}`` (computed per chunk in
    C by ``bytes.count``) says when one may be complete.  Braces inside strings
    can fool the count; then a decode is still tried when the buffer ends in
    ``}`` and has doubled since the last try, or when the stream goes idle
    (:meth:`flush`), so the parser can be slow on odd data but never stalls.
    Measured on a 22.6 MB initial monitor reply (50k ports): 0.9 s and +141 MB
    against 1.5 s and +329 MB for the ovs C parser.
    """

    def __init__(self, streams: dict[int, Callable[[msgspec.Raw], None]] | None = None) -> None:
        self._buf = bytearray()
        self._depth = 0
        self._tried_at = 0
        #: rows callbacks of selects streamed as they arrive, by request id (:meth:`OvsdbClient.transact_rows`)
        self._streams: dict[int, Callable[[msgspec.Raw], None]] = {} if streams is None else streams
        #: the streamed reply's start, up to its ``rows`` array (which ``_buf`` then starts with, the
        #: rows handed over cut out): the message is decoded as ``_head + _buf``
        self._head = b""
        self._on_row: Callable[[msgspec.Raw], None] | None = None

    @property
    def pending(self) -> bool:
        return bool(self._buf)

    def feed(self, data: bytes) -> list[_Msg]:
        fresh = not self._buf
        self._buf += data
        self._depth += data.count(b"{") - data.count(b"}")
        if self._streams:
            if fresh and self._on_row is None:
                self._start_stream()
            if self._on_row is not None:
                self._stream_rows()
        buf = self._buf
        # the last non-blank byte, without copying the buffer (a 50k-port reply
        # comes in ~1 MB reads: bytearray.rstrip() would copy all of it each time)
        tail = buf[-64:].rstrip() or buf.rstrip()
        if not tail.endswith(b"}"):
            return []
        if self._depth != 0 and len(buf) < 2 * self._tried_at:
            return []
        return self._decode()

    def flush(self) -> list[_Msg]:
        """The stream is idle: decode whatever is buffered if it is complete."""
        return self._decode() if self._buf.strip() else []

    def _decode(self) -> list[_Msg]:
        with gc_paused():
            return self._decode_all()

    def _decode_all(self) -> list[_Msg]:
        out: list[_Msg] = []
        while self._buf:
            buf: bytes | bytearray = self._buf
            if self._head:  # a streamed reply: the rows not handed over yet (at most a read or two)
                buf = self._head + buf
            try:
                out.append(_msg_decoder.decode(buf))
            except msgspec.DecodeError as exc:
                text = str(exc)
                m = _TRAILING.search(text)
                if m is not None:
                    n = int(m.group(1)) - 1  # msgspec counts bytes from 1
                    out.append(_msg_decoder.decode(memoryview(buf)[:n]))  # no copy of a big reply
                    rest = bytes(buf[n:]).lstrip()
                    self._buf = bytearray(rest)
                    self._depth = rest.count(b"{") - rest.count(b"}")
                    self._tried_at = 0
                    self._end_stream()
                    if self._streams:
                        self._start_stream()
                    continue
                if "truncated" in text:
                    self._tried_at = len(self._buf)
                    return out
                raise OvsdbError(f"malformed JSON from server: {text}") from None
            self._buf = bytearray()
            self._depth = 0
            self._tried_at = 0
            self._end_stream()
        return out

    def _start_stream(self) -> None:
        """At a message's start: a reply whose rows are streamed (a select of
        ``_streams``) is cut after its header, its rows array left in ``_buf``."""
        m = _STREAM_HEAD.match(self._buf)
        if m is None:
            return
        on_row = self._streams.get(int(m.group(1)))
        if on_row is None:
            return
        cut = m.end() - 1  # the rows array's "["
        self._head = bytes(self._buf[:cut])
        del self._buf[:cut]
        self._on_row = on_row

    def _end_stream(self) -> None:
        self._head = b""
        self._on_row = None

    def _stream_rows(self) -> None:
        """Hand over the complete rows at the front of a streamed reply (``_buf``
        starts with its rows array's ``[``), one at a time, and cut them out:
        a big select then costs what the socket holds, not its whole reply.

        A row is a JSON object whose values hold no object, so ``},{`` outside
        a string is the end of a row; the last one in the buffer is tried: a
        prefix that ends inside a string does not decode (the rows wait for
        the next read, or for the reply's own decode)."""
        buf = self._buf
        k = buf.rfind(b"},{")
        if k <= 0:
            return
        chunk = buf[: k + 1]
        chunk.append(0x5D)  # "]"
        try:
            rows = _stream_rows_decoder.decode(chunk)
        except msgspec.DecodeError:
            return
        buf[k + 1] = 0x5B  # the "," after the last row handed over becomes the rest's "["
        del buf[: k + 1]
        del chunk
        # the header opens two objects; the rest (a row at most) is counted again, not the chunk
        self._depth = 2 + buf.count(b"{") - buf.count(b"}")
        self._tried_at = 0
        on_row = self._on_row
        assert on_row is not None
        with gc_paused():
            for row in rows:
                on_row(row)
        del rows


#: The stream reader's buffer limit: it stops reading the socket at twice this
#: while the loop is busy, so a big reply is not held twice (there and in the
#: parser's buffer).  Only ``read`` is used: no line length depends on it.
_LIMIT = 1 << 21
#: what a streamed request (:meth:`OvsdbClient.transact_stream`) may hold in the transport
_STREAM_BUFFER = 4 << 20

_TRAILING = re.compile(r"trailing characters \(byte (\d+)\)")
#: the start of a reply to a transaction of one select, up to its rows array (as ovsdb-server writes it)
_STREAM_HEAD = re.compile(rb'\{"id":(\d+),"result":\[\{"rows":\[')
_stream_rows_decoder = msgspec.json.Decoder(list[msgspec.Raw])


ZERO_UUID = "00000000-0000-0000-0000-000000000000"


def _since(result: Any) -> tuple[bool, str, dict[str, Any]]:
    """A ``monitor_cond_since`` reply: [found, last-txn-id, table-updates2]."""
    if not (isinstance(result, list) and len(result) == 3 and isinstance(result[0], bool)
            and isinstance(result[1], str) and isinstance(result[2], dict)):  # fmt: skip
        raise OvsdbError(f"malformed monitor_cond_since reply: {str(result)[:200]}")
    return result[0], result[1], result[2]


def _encode(msg: dict[str, Any] | list[dict[str, Any]]) -> bytes:
    """JSON of one request, or :class:`Refused` for bytes ovsdb-server drops
    the session on.  The NUL check is one scan in C over the encoded request
    (msgspec writes U+0000 as ``\\u0000``); text that literally spells
    ``\\u0000`` is refused too, which costs only its row."""
    try:
        data = _enc.encode(msg)
    except (UnicodeEncodeError, TypeError, OverflowError, ValueError) as exc:
        raise Refused(f"not encodable as JSON: {type(exc).__name__}: {exc}") from None
    if b"\\u0000" in data:
        raise Refused("a string holds a NUL character (ovsdb-server would drop the session)")
    return data

def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


UpdateHandler = Callable[[dict[str, Any]], None]


class OvsdbClient:
    """One JSON-RPC session to ovsdb-server.

    ``on_update`` receives the ``table-updates2`` dict of every ``update2``
    notification (initial contents included); ``on_disconnect`` is awaited when
    the session drops.
    """

    def __init__(
        self, remote: str, database: str = "OVN_Northbound", *, tls: Tls | None = None, leader_only: bool = False
    ) -> None:
        #: the remote list as given (``core.ovsdb.transport``: one remote, or a cluster's members)
        self.remotes = remote
        #: the member this session reached (the first of the list until connected)
        self.remote = split_remotes(remote)[0]
        self.database = database
        self.tls = tls
        #: on a clustered database, use the leader only (locks live there: ``transport``)
        self.leader_only = leader_only
        #: what ``_Server`` said of the member in use (None: not read yet)
        self.member: Member | None = None
        #: the highest raft index any member reported to this client
        self.min_index = 0
        self._next = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reply_hooks: dict[int, Callable[[Any], None]] = {}
        self._decoders: dict[int, Callable[[msgspec.Raw], Any]] = {}
        #: selects whose rows are handed over as they arrive (the read loop's parser holds this dict)
        self._streams: dict[int, Callable[[msgspec.Raw], None]] = {}
        self._reader_task: asyncio.Task[None] | None = None
        #: while a request is streamed (:meth:`transact_stream`): the other messages written meanwhile
        self._held: list[bytes] | None = None
        self._streaming = asyncio.Lock()
        self.on_update: UpdateHandler | None = None
        #: ids of the ``monitor_cond_since`` queries (:meth:`changes_since`): their updates are dropped
        self._queries: set[str] = set()
        #: ``locked``/``stolen`` notifications of an OVSDB lock: (lock name, held now)
        self.on_lock: Callable[[str, bool], None] | None = None
        self.closed = asyncio.Event()

    async def connect(self, timeout: float = 10.0) -> None:
        """Open a session to the first usable member of the remote list,
        starting after the last one used.  A member is left when it does not
        answer or ``_Server`` says it is unusable (:func:`member_ok`); the error
        after the last one names every member and why."""
        remotes = split_remotes(self.remotes)
        why: list[str] = []
        self._held = None
        for i in range(len(remotes)):
            at = (self._next + i) % len(remotes)
            self.remote = remotes[at]
            try:
                async with asyncio.timeout(timeout):
                    self._reader, self._writer = await open_stream(self.remote, self.tls, limit=_LIMIT)
            except (OSError, TimeoutError, TlsError) as exc:
                why.append(f"{self.remote}: {_why(exc)}")
                continue
            self.closed.clear()
            self._reader_task = asyncio.create_task(self._read_loop(), name=f"ovsdb-reader {self.remote}")
            try:
                async with asyncio.timeout(timeout):
                    reason = await self._check_member() if self.leader_only or len(remotes) > 1 else None
            except (OvsdbError, OSError, TimeoutError) as exc:
                reason = f"_Server: {_why(exc)}"
            if reason is None:
                self._next = at
                return
            log.info("OVSDB %s: leaving %s: %s", self.database, self.remote, reason)
            why.append(f"{self.remote}: {reason}")
            await self.close()
        self._next = (self._next + 1) % len(remotes)
        raise NoUsableServer(f"no usable {self.database} server: " + "; ".join(why))

    async def _check_member(self) -> str | None:
        """Read ``_Server.Database`` of our database, refuse the member or keep
        watching it: a member that stops being usable ends the session."""
        reply = await self.call("transact", ["_Server", {
            "op": "select", "table": "Database", "where": [["name", "==", self.database]], "columns": SERVER_COLUMNS,
        }], timeout=10.0)  # fmt: skip
        rows = reply[0].get("rows", []) if reply and isinstance(reply[0], dict) else []
        if not rows:
            return f"it serves no {self.database}"
        member = Member.from_row(rows[0])
        reason = member_ok(member, leader_only=self.leader_only, min_index=self.min_index)
        if reason is not None:
            return reason
        self.member = member
        if member.index is not None:
            self.min_index = max(self.min_index, member.index)
        if member.clustered:
            cols = [c for c in SERVER_COLUMNS if c != "index"]  # the index moves with every commit
            await self.call("monitor_cond", ["_Server", "_server", {"Database": [
                {"where": [["name", "==", self.database]], "columns": cols}]}], timeout=10.0)  # fmt: skip
        return None

    def _server_update(self, updates: dict[str, Any]) -> None:
        for change in updates.get("Database", {}).values():
            row = change.get("modify") or change.get("insert") or change.get("initial")
            if row is None:
                if "delete" in change:
                    self.drop(f"{self.database} left {self.remote}", next_member=True)
                continue
            if self.member is None:
                continue
            merged = {k: getattr(self.member, k) for k in ("model", "connected", "leader", "index", "sid")}
            merged.update({k: v for k, v in row.items() if k in merged})
            self.member = Member.from_row(merged)
            reason = member_ok(self.member, leader_only=self.leader_only, min_index=0)
            if reason is not None:
                self.drop(f"{self.remote} is {reason}", next_member=True)

    def drop(self, why: str, *, next_member: bool = False) -> None:
        """End the session from inside (the member became unusable, or the
        owner wants a fresh one): the owner sees ``closed`` and reconnects,
        ``next_member`` first to the member after this one."""
        log.warning("OVSDB %s: %s; reconnecting", self.database, why)
        if next_member:
            self._next += 1
        self._fail_pending(ConnectionLost(why))
        self.closed.set()
        if self._writer is not None:
            self._writer.close()

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        self._fail_pending(ConnectionLost("connection closed"))
        self.closed.set()

    def _fail_pending(self, exc: Exception) -> None:
        self._held = None  # (writes held behind a stream: the session is over)
        self._reply_hooks.clear()
        self._streams.clear()
        self._decoders.clear()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()

    async def _read_loop(self) -> None:
        assert self._reader is not None
        parser = _StreamParser(self._streams)
        try:
            while True:
                if parser.pending:
                    try:
                        data = await asyncio.wait_for(self._reader.read(1 << 20), 0.05)
                    except TimeoutError:
                        self._dispatch_all(parser.flush())
                        continue
                else:
                    data = await self._reader.read(1 << 20)
                if not data:
                    raise ConnectionLost(f"{self.remote}: connection closed by server")
                self._dispatch_all(parser.feed(data))
                del data  # do not pin a large message while idle
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure ends the session
            if self.closed.is_set():  # ended from inside (``drop``), already said why
                return
            log.warning("OVSDB session to %s lost: %s", self.remote, exc)
            self._fail_pending(exc if isinstance(exc, OvsdbError) else ConnectionLost(str(exc)))
            self.closed.set()
            if self._writer is not None:  # our end of the socket too (no transport left for the collector)
                self._writer.close()

    def _dispatch_all(self, msgs: list[_Msg] | list[dict[str, Any]]) -> None:
        while msgs:
            self._dispatch(msgs.pop(0))  # popped: a big reply is not pinned while the next one runs

    def _dispatch(self, msg: _Msg | dict[str, Any]) -> None:
        if isinstance(msg, dict):  # (tests hand over decoded messages)
            msg = _Msg(id=msg.get("id"), method=msg.get("method"), error=msg.get("error"),
                       params=msgspec.Raw(_enc.encode(msg.get("params"))),
                       result=msgspec.Raw(_enc.encode(msg.get("result"))))  # fmt: skip
        method = msg.method
        if method is None:
            rid = msg.id if isinstance(msg.id, int) else -1
            fut = self._pending.pop(rid, None)
            hook = self._reply_hooks.pop(rid, None)
            self._streams.pop(rid, None)
            decoder = self._decoders.pop(rid, None)
            if fut is not None and not fut.done():
                if msg.error is not None:
                    fut.set_exception(OvsdbError(str(msg.error), msg.error))
                else:
                    result = decoder(msg.result) if decoder is not None else msgspec.json.decode(msg.result)
                    if hook is not None:
                        hook(result)
                    fut.set_result(result)
        elif method == "echo":
            self._send({"id": msg.id, "result": msgspec.json.decode(msg.params) or [], "error": None})
        elif method in ("locked", "stolen") and self.on_lock is not None:
            self.on_lock(str(msgspec.json.decode(msg.params)[0]), method == "locked")
        elif method == "update2" and bytes(memoryview(msg.params)[:10]) == b'["_server"':  # the _Server monitor
            self._server_update(msgspec.json.decode(msg.params)[1])
        elif method == "update2" and self.on_update is not None:
            self.on_update(msgspec.json.decode(msg.params)[1])
        elif method == "update3" and self.on_update is not None:
            params = msgspec.json.decode(msg.params)
            if params[0] not in self._queries:  # (a query's monitor lives until its cancel is answered)
                self.on_update(params[2])

    def _send(self, msg: dict[str, Any]) -> None:
        self._write(_encode(msg))

    def _write(self, data: bytes) -> None:
        if self._writer is None or self.closed.is_set():
            raise ConnectionLost(f"{self.remote}: not connected")
        if self._held is not None:  # a request is being streamed: this one follows it
            self._held.append(data)
            return
        self._writer.write(data)

    async def call(
        self,
        method: str,
        params: list[Any],
        timeout: float | None = 120.0,
        on_reply: Callable[[Any], None] | None = None,
        decode: Callable[[msgspec.Raw], Any] | None = None,
        on_row: Callable[[msgspec.Raw], None] | None = None,
    ) -> Any:
        """One request.  ``on_reply`` (if given) runs on a successful result
        inside the reader, in stream order: before any later notification is
        dispatched (a monitor's initial contents must precede its updates).
        ``decode`` turns the result's raw JSON into the value returned (default:
        plain JSON).  ``on_row``: see :meth:`transact_rows`."""
        rid = next(self._ids)
        data = _encode({"id": rid, "method": method, "params": params})  # may raise Refused: nothing sent
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        if on_reply is not None:
            self._reply_hooks[rid] = on_reply
        if decode is not None:
            self._decoders[rid] = decode
        if on_row is not None:
            self._streams[rid] = on_row
        try:
            self._write(data)
            del data
            assert self._writer is not None
            await self._writer.drain()
        except OSError as exc:  # the server went away while we were sending: the session is over
            self._forget(rid, fut)
            raise ConnectionLost(f"{self.remote}: {exc}") from None
        except BaseException:
            self._forget(rid, fut)
            raise
        try:
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            del fut  # a large reply must not outlive its caller's use of it

    async def lock(self, name: str) -> bool:
        """Ask for the OVSDB lock ``name`` (RFC 7047 §4.1.8): True if held now;
        else the server queues us and a ``locked`` notification comes when it is
        ours.  Locks live in one ovsdb-server process: on a cluster, the leader's."""
        reply = await self.call("lock", [name], timeout=30.0)
        return bool(isinstance(reply, dict) and reply.get("locked"))

    async def unlock(self, name: str) -> None:
        """Give the lock up (or leave its queue); the next waiter gets ``locked``."""
        await self.call("unlock", [name], timeout=30.0)

    async def drained(self) -> None:
        """Return once what was written has left this process's buffer (a big
        request is then with the server: work done now overlaps its work)."""
        if self._writer is not None and not self.closed.is_set():
            with contextlib.suppress(OSError, ConnectionError):
                await self._writer.drain()

    def _forget(self, rid: int, fut: asyncio.Future[Any] | None = None) -> None:
        """A request given up before its reply was awaited.  Its future is
        settled too: the reader may already have failed it (the session ended
        while the request was being sent), and an exception nobody retrieves is
        logged with a traceback when the future is collected."""
        self._pending.pop(rid, None)
        self._streams.pop(rid, None)
        self._reply_hooks.pop(rid, None)
        self._decoders.pop(rid, None)
        if fut is not None:
            if fut.done():
                if not fut.cancelled():
                    fut.exception()  # (retrieved: the caller raises its own error)
            else:
                fut.cancel()

    async def monitor_cond(
        self, tables: dict[str, Any], monitor_id: str = "hub", decode: Callable[[msgspec.Raw], Any] | None = None
    ) -> None:
        """Start a conditional monitor; ``on_update`` receives the initial
        contents, in stream order (before any update that follows them).
        ``decode``: the initial contents' decoder (default: plain JSON)."""

        def initial(result: Any) -> None:
            if self.on_update is not None and result:
                self.on_update(result)

        await self.call("monitor_cond", [self.database, monitor_id, tables], on_reply=initial, decode=decode)

    async def last_txn_id(self, timeout: float | None = 30.0) -> str | None:
        """The id of the last transaction this member applied, or None where NB
        keeps no transaction history (a standalone ovsdb-server; clustered and
        relay databases do).  Answered in stream order: every update sent
        before it is already handed to ``on_update``."""
        got = await self.changes_since({}, ZERO_UUID, timeout=timeout)  # (a monitor of no table: any database)
        return got[1] if got[1] != ZERO_UUID else None

    async def changes_since(
        self,
        tables: dict[str, Any],
        last_id: str,
        on_reply: Callable[[tuple[bool, str, dict[str, Any]]], None] | None = None,
        monitor_id: str | None = None,
        timeout: float | None = 120.0,
    ) -> tuple[bool, str, dict[str, Any]]:
        """What changed in ``tables`` (``monitor_cond_since`` requests) after
        the transaction ``last_id``: (found, the last transaction's id, the
        changes as ``table-updates2``).  Not found (NB's history no longer
        holds it, or has none): no changes, whatever the ``select`` says of
        ``initial``.  A query, not a monitor: it is cancelled at once and its
        updates are never handed to ``on_update``.  ``on_reply`` runs in
        stream order, like :meth:`call`'s.  Each query has a monitor id of its
        own (``monitor_id``, default ``hub-since-<n>``): two at once do not clash."""
        if monitor_id is None:
            monitor_id = f"hub-since-{next(self._ids)}"
        hook: Callable[[Any], None] | None = None
        if on_reply is not None:
            def hook(result: Any) -> None:
                with contextlib.suppress(OvsdbError):  # (malformed: raised to the caller below)
                    on_reply(_since(result))

        self._queries.add(monitor_id)  # (left there if the cancel fails: the session is then lost anyway)
        result = await self.call("monitor_cond_since", [self.database, monitor_id, tables, last_id],
                                 timeout=timeout, on_reply=hook)  # fmt: skip
        await self.call("monitor_cancel", [monitor_id], timeout=timeout)
        self._queries.discard(monitor_id)
        return _since(result)

    async def transact(
        self,
        ops: list[dict[str, Any]],
        timeout: float | None = 300.0,
        on_reply: Callable[[list[Any]], None] | None = None,
    ) -> list[Any]:
        """Run one transaction; raise :class:`OvsdbError` (with ``index`` of the
        failing operation) if any operation failed.  ``on_reply`` gets the
        result of a successful transaction in stream order (see :meth:`call`):
        rows a select returns are then installed before any later update."""
        return await self._transact(ops, timeout, on_reply, None)

    async def transact_rows(
        self,
        ops: list[dict[str, Any]],
        timeout: float | None = 300.0,
        on_reply: Callable[[list[Any]], None] | None = None,
        on_row: Callable[[msgspec.Raw], None] | None = None,
    ) -> list[Any]:
        """:meth:`transact`, a select's ``rows`` left raw (:class:`msgspec.Raw`,
        one JSON object each) for the caller to decode one at a time: a
        50k-row reply then costs its bytes, not ~150 MB of objects at once.

        ``on_row`` (a transaction of one select): rows are handed to it as
        the reply arrives, in the reader and in stream order, so the reply is
        never held whole (a 50k-port select is ~23 MB); ``on_reply`` and the
        result then have only the rows not handed over yet.  A failing
        transaction hands over none."""
        stream = on_row if len(ops) == 1 and ops[0].get("op") == "select" else None
        return await self._transact(ops, timeout, on_reply, _raw_rows, stream)

    async def transact_stream(
        self,
        chunks: Iterable[list[dict[str, Any]]],
        timeout: float | None = 300.0,
        on_sent: Callable[[], None] | None = None,
    ) -> list[Any]:
        """:meth:`transact` of the operations ``chunks`` yields, each chunk
        encoded and written as soon as it is yielded: ovsdb-server parses a
        request as its bytes arrive, so a big transaction is parsed there
        while the rest of it is still being built here.  ``on_sent``: called
        once the last byte is handed to the transport.

        A chunk that cannot be sent (:class:`Refused`) ends the request with
        an ``abort`` operation, so nothing of it commits and the session stays
        up, and raises :class:`Refused`.  Other messages written meanwhile
        (an ``echo`` reply, another call) go after the request; a stream
        broken off (cancelled, or the session lost) ends the session."""
        async with self._streaming:  # (one stream at a time: a second waits, it is no lost session)
            return await self._transact_stream(chunks, timeout, on_sent)

    async def _transact_stream(
        self, chunks: Iterable[list[dict[str, Any]]], timeout: float | None, on_sent: Callable[[], None] | None
    ) -> list[Any]:
        writer = self._writer
        if writer is None or self.closed.is_set():
            raise ConnectionLost(f"{self.remote}: not connected")
        rid = next(self._ids)
        head = _enc.encode({"id": rid, "method": "transact", "params": [self.database]})
        assert head.endswith(b"]}")
        sent = 0  # operations written
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        clean = False  # the reply names no error (one scan of its bytes, not a look at each of 50k results)

        def decode(raw: msgspec.Raw) -> Any:
            nonlocal clean
            clean = b'"error"' not in bytes(raw)
            return msgspec.json.decode(raw)

        self._decoders[rid] = decode
        refused: Refused | None = None
        transport = writer.transport
        limits = transport.get_write_buffer_limits()
        try:
            self._held = []
            transport.set_write_buffer_limits(high=_STREAM_BUFFER)
            async with asyncio.timeout(timeout):  # (a server that stops reading: the session is dropped)
                writer.write(head[:-2])
                for ops in chunks:
                    if not ops:
                        continue
                    try:
                        data = _encode(ops)
                    except Refused as exc:
                        refused = exc
                        break
                    writer.write(b"," + data[1:-1])  # (a list's items, without its brackets)
                    sent += len(ops)
                    del data
                    # the loop hands what is written to the socket while the next chunk is built;
                    # at most _STREAM_BUFFER is kept here when the server reads slower
                    await asyncio.sleep(0)
                    await writer.drain()
                    if self.closed.is_set():
                        raise ConnectionLost(f"{self.remote}: connection lost while sending")
                writer.write(b',{"op":"abort"}]}' if refused is not None else b"]}")
        except BaseException as exc:
            self._held = None
            self._forget(rid, fut)
            if not self.closed.is_set():  # half a request is on the wire: nothing else can follow it
                self.drop(f"a streamed request was broken off ({type(exc).__name__})")
            if isinstance(exc, OSError):
                raise ConnectionLost(f"{self.remote}: {exc}") from None
            raise
        finally:
            if not transport.is_closing():
                transport.set_write_buffer_limits(high=limits[1], low=limits[0])
        held, self._held = self._held, None
        for data in held:
            writer.write(data)
        if refused is not None:
            self._forget(rid, fut)  # (its reply: the aborted transaction's, dropped by the reader)
            raise refused
        if on_sent is not None:
            on_sent()
        try:
            async with asyncio.timeout(timeout):
                result = await fut
        finally:
            del fut
        if not isinstance(result, list):
            raise OvsdbError(f"malformed transact reply: {str(result)[:200]}")
        for i, r in enumerate(() if clean else result):
            if isinstance(r, dict) and r.get("error"):
                raise OvsdbError(f"{r['error']}: {r.get('details', '')}", r, index=i)
        if len(result) > sent:  # commit error appended after the ops
            extra = result[sent]
            raise OvsdbError(f"{extra.get('error')}: {extra.get('details', '')}", extra)
        return result

    async def _transact(
        self,
        ops: list[dict[str, Any]],
        timeout: float | None,
        on_reply: Callable[[list[Any]], None] | None,
        decode: Callable[[msgspec.Raw], Any] | None,
        on_row: Callable[[msgspec.Raw], None] | None = None,
    ) -> list[Any]:
        def hook(result: Any) -> None:
            if on_reply is None or not isinstance(result, list) or len(result) > len(ops):
                return
            if any(isinstance(r, dict) and r.get("error") for r in result):
                return
            on_reply(result)

        result = await self.call(
            "transact", [self.database, *ops], timeout=timeout, on_reply=hook, decode=decode, on_row=on_row
        )
        for i, r in enumerate(result):
            if isinstance(r, dict) and r.get("error"):
                raise OvsdbError(f"{r['error']}: {r.get('details', '')}", r, index=i)
        if len(result) > len(ops):  # commit error appended after the ops
            extra = result[len(ops)]
            raise OvsdbError(f"{extra.get('error')}: {extra.get('details', '')}", extra)
        return list(result)


async def wait_for_server(
    remote: str, timeout: float = 10.0, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, tls: Tls | None = None
) -> None:
    """Poll until ovsdb-server accepts a connection on ``remote``."""
    async with asyncio.timeout(timeout):
        while True:
            client = OvsdbClient(remote, tls=tls)
            try:
                await client.connect(timeout=1.0)
                await client.call("list_dbs", [], timeout=2.0)
                return
            except (OSError, OvsdbError, TimeoutError):
                await sleep(0.05)
            finally:
                await client.close()
