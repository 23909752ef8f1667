"""A breakable proxy: put it between an adapter and its (fake) orchestrator.

:class:`BreakableProxy` forwards a loopback TCP port or a unix socket to a
target address.  :meth:`~BreakableProxy.break_connection` aborts every open
connection (no clean end: like a crashed server or a cut cable) and stops
listening, so reconnects are refused; :meth:`~BreakableProxy.restore_connection`
listens again on the same address.  It lets a fake orchestrator implement the
conformance kit's ``break_connection``/``restore_connection`` without knowing
anything about the protocol it carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import os


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
            up_reader, up_writer = await self._open_target()
            self._writers.add(up_writer)
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # a refused target, a reset, or break_connection(): the connection just ends
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    self._writers.discard(w)
                    w.transport.abort()
            self._conns.discard(task)


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    finally:
        if dst.can_write_eof() and not dst.transport.is_closing():
            with contextlib.suppress(OSError):
                dst.write_eof()
