"""A breakable proxy: put it between an adapter and its (fake) orchestrator.

:class:`BreakableProxy` forwards a loopback TCP port or a unix socket to a
target address.  :meth:`~BreakableProxy.break_connection` aborts every open
connection (no clean end: like a crashed server or a cut cable) and stops
listening, so reconnects are refused; :meth:`~BreakableProxy.restore_connection`
listens again on the same address.  It lets a fake orchestrator implement the
conformance kit's ``break_connection``/``restore_connection`` without knowing
anything about the protocol it carries.

Two more faults, also protocol-blind: :meth:`~BreakableProxy.black_hole` (the
server accepts and never answers: open connections fall silent, new ones are
accepted and never get a byte, list calls included; :meth:`~BreakableProxy.heal`
serves new connections again and leaves the silent ones silent, so a client
must time out by itself) and :meth:`~BreakableProxy.cut_mid_record` (the next
piece of data a server sends is forwarded by half, then that connection is
aborted: a stream cut in the middle of a record, frame or chunk).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

#: Rewrites a piece of what a client sends (e.g. an HTTP request head); see BreakableProxy.rewrite.
Rewriter = Callable[[bytes], bytes]
#: Given a piece a client sent, the filter for what the server sends back on that connection from then on (or None).
FilterFactory = Callable[[bytes], "Callable[[bytes], bytes] | None"]


class BreakableProxy:
    """Forward ``listen`` to ``target``.

    Both are ``"unix:/path"`` or ``"127.0.0.1:PORT"`` (PORT 0 for ``listen``:
    pick a free port; :attr:`address` tells which, and stays the same across
    breaks).
    """

    def __init__(self, target: str, listen: str = "127.0.0.1:0") -> None:
        self.target = target
        self.listen = listen
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        #: Connections accepted so far (tests wait on it).
        self.accepted = 0
        self._hole = False
        self._cut_armed = False
        #: Streams cut by :meth:`cut_mid_record`; connections swallowed by :meth:`black_hole`.
        self.cuts = 0
        self.swallowed = 0
        self.silenced = 0
        self._cut_done: asyncio.Event | None = None
        #: Protocol-aware faults a test plugs in: ``rewrite`` changes what clients send,
        #: ``filters`` picks a filter for a connection's answers from a request (the last match wins).
        self.rewrite: Rewriter | None = None
        self.filters: FilterFactory | None = None

    @property
    def address(self) -> str:
        if self.listen.startswith("unix:"):
            return self.listen
        return f"127.0.0.1:{self.port}"

    @property
    def broken(self) -> bool:
        return self._server is None

    async def start(self) -> None:
        if self._server is not None:
            return
        if self.listen.startswith("unix:"):
            path = self.listen[5:]
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            self._server = await asyncio.start_unix_server(self._serve, path=path)
        else:
            host, _, port = self.listen.rpartition(":")
            if host not in ("127.0.0.1", "::1", "localhost"):
                raise ValueError(f"BreakableProxy listens on loopback only, not {host!r}")
            self._server = await asyncio.start_server(self._serve, host, self.port or int(port))
            self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self.break_connection()

    async def break_connection(self) -> None:
        """Abort every connection and refuse new ones until :meth:`restore_connection`."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
        for t in list(self._conns):
            t.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        self._conns.clear()
        if server is not None:
            await server.wait_closed()
        if self.listen.startswith("unix:"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.listen[5:])

    async def restore_connection(self) -> None:
        await self.start()

    def black_hole(self) -> None:
        """From now on nothing answers: open connections fall silent (both ways),
        new ones are accepted and never get a byte.  Until :meth:`heal`."""
        self._hole = True

    def cut_mid_record(self) -> None:
        """Arm a cut: the next data a server sends is forwarded by half, then
        its connection is aborted (the client sees a record end early)."""
        self._cut_armed = True
        self._cut_done = asyncio.Event()

    async def wait_cut(self, timeout: float = 10.0) -> bool:
        """Wait (at most ``timeout`` seconds) until the armed cut happened; whether it did."""
        if self._cut_done is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._cut_done.wait()
        return not self._cut_armed and self.cuts > 0

    def heal(self) -> None:
        """New connections are served again; connections that fell into the
        black hole stay silent (the client must give up on them), an unfired cut
        is disarmed."""
        self._hole = False
        self._cut_armed = False
        if self._cut_done is not None:
            self._cut_done.set()

    async def _open_target(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.target.startswith("unix:"):
            return await asyncio.open_unix_connection(self.target[5:])
        host, _, port = self.target.rpartition(":")
        return await asyncio.open_connection(host, int(port))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.accepted += 1
        self._conns.add(task)
        self._writers.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            if self._hole:
                self.swallowed += 1
                await asyncio.Event().wait()  # accepted, never answered; ends with break_connection()/stop()
            up_reader, up_writer = await self._open_target()
            self._writers.add(up_writer)
            state: list[Callable[[bytes], bytes] | None] = [None]  # this connection's answer filter
            await asyncio.gather(
                self._pump(reader, up_writer, False, state), self._pump(up_reader, writer, True, state)
            )
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # a refused target, a reset, or break_connection(): the connection just ends
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    self._writers.discard(w)
                    w.transport.abort()
            self._conns.discard(task)

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, downstream: bool,
        state: list[Callable[[bytes], bytes] | None],
    ) -> None:  # fmt: skip
        cut = False
        try:
            while data := await src.read(65536):
                if self._hole:
                    self.silenced += 1
                    await asyncio.Event().wait()  # fell silent: the bytes are never delivered
                if not downstream:
                    if self.rewrite is not None:
                        data = self.rewrite(data)
                    if self.filters is not None and (f := self.filters(data)) is not None:
                        state[0] = f
                elif state[0] is not None:
                    data = state[0](data)
                if downstream and self._cut_armed:
                    self._cut_armed = False
                    dst.write(data[: len(data) // 2])
                    with contextlib.suppress(ConnectionError):
                        await dst.drain()
                    self.cuts += 1
                    cut = True
                    if self._cut_done is not None:
                        self._cut_done.set()
                    raise ConnectionAbortedError("cut mid-record")  # _serve aborts both sides
                dst.write(data)
                await dst.drain()
        finally:
            if not cut and dst.can_write_eof() and not dst.transport.is_closing():
                with contextlib.suppress(OSError):
                    dst.write_eof()
