"""A TCP proxy the test owns: cut or black-hole one process's connection to a server,
without touching the shared server itself."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target``; ``cut()`` resets every connection,
    ``block()`` refuses new ones and silently drops bytes on open ones (a black hole),
    ``go_dark()`` makes the open ones dark and serves new ones, ``delay`` slows every
    chunk down."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()
        self.blocked = False
        self.connections = 0
        self.port = 0
        self.upstream_bytes = 0
        self.delay = 0.0  # seconds added before every forwarded chunk (a slow network)
        self._cut_at: int | None = None
        self._accepted = 0  # connections served, numbered from 0 in order
        self._dark_below = 0  # connections numbered below this are dark

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1  # attempts, refused ones included
        if self.blocked:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        number, self._accepted = self._accepted, self._accepted + 1
        for source, sink, upstream in (
            (reader, upstream_writer, True),
            (upstream_reader, writer, False),
        ):
            task = asyncio.create_task(self._pump(source, sink, upstream=upstream, number=number))
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        *,
        upstream: bool,
        number: int,
    ) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await source.read(65536):
                if self.blocked or number < self._dark_below:
                    continue  # black hole: swallow the bytes, keep the socket open
                if self.delay:
                    await asyncio.sleep(self.delay)
                sink.write(data)
                await sink.drain()
                if upstream:
                    self.upstream_bytes += len(data)
                    if self._cut_at is not None and self.upstream_bytes >= self._cut_at:
                        self._cut_at = None
                        self.cut()
        if number < self._dark_below:
            return  # dark: the other side never learns that this one closed (cut() does)
        sink.transport.abort()
        self._writers.discard(sink)

    def cut(self) -> None:
        """Reset every open connection (new ones are still accepted)."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def cut_after(self, upstream_bytes: int) -> None:
        """Reset every connection once ``upstream_bytes`` more have been forwarded."""
        self._cut_at = self.upstream_bytes + upstream_bytes

    def go_dark(self) -> None:
        """Every connection open now goes dark, as after a failover, a killed container or
        a dropped NAT mapping: bytes are swallowed both ways and nothing is closed, even
        when one side closes (``cut()`` still resets them). New connections are served."""
        self._dark_below = self._accepted

    def block(self) -> None:
        self.blocked = True

    def unblock(self) -> None:
        self.blocked = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._pumps):
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
