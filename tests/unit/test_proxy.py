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
