"""Noticing a PostgreSQL connection that stopped answering (sqlx PR #4355), on the real
server through the test's proxy."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from cloudcrm_outbox.storage.engine import driver_connection, make_engine
from cloudcrm_outbox.storage.liveness import AnswerDeadline, TcpKeepalives
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.postgres


@pytest.fixture
async def proxied(outbox_db: str) -> AsyncIterator[tuple[str, TcpProxy]]:
    """``outbox_db`` through a proxy the test owns: (its URL, the proxy)."""
    port = urlsplit(outbox_db.replace("postgresql+psycopg", "postgresql")).port or 5432
    proxy = await TcpProxy("127.0.0.1", port).start()
    try:
        yield outbox_db.replace(f":{port}/", f":{proxy.port}/"), proxy
    finally:
        await proxy.close()


async def test_connections_carry_keepalives_a_user_timeout_and_the_session_bounds(
    outbox_db: str,
) -> None:
    keepalives = TcpKeepalives(idle_seconds=7, interval_seconds=3, count=4, user_timeout_seconds=9)
    engine = make_engine(outbox_db, keepalives=keepalives, idle_in_transaction_timeout=2.5)
    try:
        async with engine.connect() as connection:
            driver = await driver_connection(connection)
            with socket.socket(fileno=driver.pgconn.socket) as sock:
                try:
                    options = {
                        name: sock.getsockopt(level, option)
                        for name, level, option in (
                            ("keepalive", socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                            ("idle", socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                            ("interval", socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                            ("count", socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                            ("user_timeout_ms", socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
                        )
                    }
                finally:
                    sock.detach()  # libpq's descriptor: not ours to close
            idle_in_transaction = await connection.scalar(
                text("SHOW idle_in_transaction_session_timeout")
            )
    finally:
        await engine.dispose()
    assert options == {
        "keepalive": 1,
        "idle": 7,
        "interval": 3,
        "count": 4,
        "user_timeout_ms": 9000,
    }
    assert idle_in_transaction == "2500ms"


async def test_a_connection_gone_dark_is_dropped_at_the_deadline(
    proxied: tuple[str, TcpProxy],
) -> None:
    url, proxy = proxied
    engine = make_engine(url, pre_ping=False)
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT 1")) == 1
            proxy.go_dark()
            deadline = AnswerDeadline(0.5)
            await deadline.start(connection)
            try:
                async with deadline.paused():  # not the database's time: not counted
                    await asyncio.sleep(0.8)
                with pytest.raises(DBAPIError) as failed:
                    # Without the deadline: no answer, ever.
                    await asyncio.wait_for(connection.execute(text("SELECT 1")), timeout=10)
            finally:
                deadline.stop()
            assert failed.value.connection_invalidated  # never back to the pool
        # The next connection is a new one, and answers.
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT 2")) == 2
    finally:
        await engine.dispose()
