"""The fault proxy the reliability tests rely on: it forwards, delays, black-holes, cuts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.support.proxy import TcpProxy


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def round_trip(port: int, payload: bytes, timeout: float = 2.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), timeout)
    finally:
        writer.close()


async def test_forwards_delays_black_holes_and_cuts(echo_port: int) -> None:
    proxy = await TcpProxy("127.0.0.1", echo_port).start()
    try:
        assert await round_trip(proxy.port, b"hello") == b"hello"

        proxy.delay = 0.2
        started = time.monotonic()
        assert await round_trip(proxy.port, b"slow") == b"slow"
        assert time.monotonic() - started >= 0.4  # both directions delayed
        proxy.delay = 0

        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        proxy.block()
        writer.write(b"lost")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(4), 0.3)  # swallowed, not answered
        proxy.cut()
        assert await reader.read(4) == b""  # reset: the connection is gone
        writer.close()
        proxy.unblock()
        assert await round_trip(proxy.port, b"back") == b"back"
    finally:
        await proxy.close()


async def test_going_dark_swallows_open_connections_and_serves_new_ones() -> None:
    # Open connections go dark (a failover, a dropped NAT mapping, a proxy whose server
    # vanished): bytes are swallowed both ways and nothing is closed, not even when one
    # side closes; new connections are served as usual.
    ended: asyncio.Queue[None] = asyncio.Queue()  # one per connection the proxy closed

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        ended.put_nowait(None)
        writer.close()

    async def closed(within: float) -> bool:
        try:
            await asyncio.wait_for(ended.get(), within)
        except TimeoutError:
            return False
        return True

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    proxy = await TcpProxy("127.0.0.1", server.sockets[0].getsockname()[1]).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 2) == b"ping"
        proxy.go_dark()
        writer.write(b"lost")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(4), 0.3)  # swallowed, not answered
        assert await round_trip(proxy.port, b"new") == b"new"  # new connections work
        assert await closed(within=2)  # that one, closed by its client
        writer.close()  # the dark one's client gives up: its server must not learn of it
        assert not await closed(within=0.5)
        proxy.cut()  # only a cut closes it
        assert await closed(within=2)
    finally:
        await proxy.close()
        server.close()
