"""In-process HTTP: an app under test through ASGI, or on a real port through uvicorn."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn
from fastapi import FastAPI

from app.core.settings import Settings
from app.http.serving import uvicorn_config
from tests.support.auth import HEADERS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def asgi_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client talking to ``app`` in-process, with the app's lifespan running."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            headers=HEADERS, transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as c,
    ):
        yield c


@asynccontextmanager
async def serving(app: FastAPI, *, settings: Settings | None = None) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yields its base URL. With
    ``settings``: as the commands serve it (app.http.serving.uvicorn_config)."""
    port = free_port()
    if settings is None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None)
    else:
        config = uvicorn_config(app, "127.0.0.1", port, settings)
    config.lifespan = "on"
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if not server.started:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """A TCP server that accepts connections and never answers (a hung dependency)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
