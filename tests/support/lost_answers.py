"""A TCP proxy in front of PostgreSQL that loses the answer to one COMMIT: the server
receives it and commits, the client's connection is closed before the answer reaches it,
so the client cannot know whether its transaction committed (dotnet/efcore #22904)."""

from __future__ import annotations

import asyncio
import contextlib

# How psycopg sends COMMIT: a simple-query message ('Q', its length, the text, a NUL).
COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"


class LostCommitAnswerProxy:
    """Forwards 127.0.0.1:<port> to ``target``. Once ``arm(after)`` is called, the first
    connection whose client sends COMMIT after having sent bytes containing ``after``
    (say ``b"INSERT INTO orders"``: the COMMIT of an order's transaction) has that COMMIT
    forwarded, and then, when the server answers, is closed on the client's side without
    the answer. Every other connection, and every later one, passes untouched."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._after: bytes | None = None
        self.port = 0
        self.lost = asyncio.Event()  # set once an answer was lost

    async def start(self) -> LostCommitAnswerProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def arm(self, after: bytes) -> None:
        self._after = after

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        losing = asyncio.Event()  # this connection's COMMIT went out: lose its answer
        for pump in (
            self._requests(reader, server_writer, losing),
            self._answers(server_reader, writer, losing),
        ):
            task = asyncio.create_task(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _requests(
        self, client: asyncio.StreamReader, server: asyncio.StreamWriter, losing: asyncio.Event
    ) -> None:
        seen_after = False
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await client.read(65536):
                after = self._after
                seen_after = seen_after or (after is not None and after in data)
                if seen_after and after is not None and COMMIT in data:
                    self._after = None  # once
                    losing.set()
                server.write(data)
                await server.drain()
        server.transport.abort()

    async def _answers(
        self, server: asyncio.StreamReader, client: asyncio.StreamWriter, losing: asyncio.Event
    ) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await server.read(65536):
                if losing.is_set():
                    self.lost.set()
                    break  # the server answered the COMMIT: the client never hears it
                client.write(data)
                await client.drain()
        client.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
