"""Noticing a PostgreSQL connection that stopped answering, instead of waiting for ever.

A failover, a killed container or a dropped NAT mapping closes nothing: the client waits
for a reply that never comes (sqlx PR #4355), holding its batch and, on the server, its
locks. Two things notice it:

- the network layer: TCP keepalives and a TCP user timeout on libpq's socket
  (``TcpKeepalives``; libpq's ``keepalives*`` and ``tcp_user_timeout`` connection
  parameters, PostgreSQL docs "Parameter Key Words") end a connection whose peer stopped
  acknowledging, whether the client is sending or waiting;
- a deadline on a unit of work (``AnswerDeadline``): when a peer still acknowledges but
  never answers (a proxy or balancer whose server is gone, a hung server), the connection's
  socket is shut down when the deadline passes. The statement waiting on it then fails at
  once as a lost connection (psycopg ``OperationalError``), which SQLAlchemy invalidates:
  it never goes back to the pool.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from cloudcrm_outbox.logs import library_logger

logger = library_logger(__name__)


@dataclass(frozen=True)
class TcpKeepalives:
    """libpq's TCP settings for every connection (seconds; count: probes).

    Probes start after ``idle_seconds`` of silence, every ``interval_seconds``; the
    connection is dropped after ``count`` unanswered ones, or once data it sent has gone
    unacknowledged for ``user_timeout_seconds`` (0: the system's default). Linux honours
    all of them; libpq ignores those a platform lacks."""

    idle_seconds: float = 10.0
    interval_seconds: float = 5.0
    count: int = 3
    user_timeout_seconds: float = 10.0

    def libpq_parameters(self) -> dict[str, int]:
        """The psycopg ``connect()`` keyword arguments (libpq wants whole seconds, and
        milliseconds for ``tcp_user_timeout``)."""
        return {
            "keepalives": 1,
            "keepalives_idle": max(1, math.ceil(self.idle_seconds)),
            "keepalives_interval": max(1, math.ceil(self.interval_seconds)),
            "keepalives_count": self.count,
            "tcp_user_timeout": round(self.user_timeout_seconds * 1000),
        }


class AnswerDeadline:
    """A deadline on the database work of one unit (a relay's batch, a consumer's
    transaction) on one connection (PostgreSQL through psycopg).

    ``start`` arms it for ``seconds``; if the work has not reached ``stop`` by then, the
    connection's socket is shut down, so that the statement waiting on it fails now
    (psycopg ``OperationalError``, a lost connection, which SQLAlchemy invalidates) rather
    than never. ``paused`` holds it while the unit waits on something else (the relay's
    broker) and re-arms it for a full ``seconds`` after. None, or another database (SQLite
    has no network): no deadline.

    Keep ``seconds`` above the longest the work may legitimately take, the server's own
    timeouts included (``statement_timeout``, ``lock_timeout``), so that a slow statement
    is ended by the server, which answers, and never taken for a silent connection.

    Used as the outer context of the transaction block, which ``stop``s it on the way out
    after the block's COMMIT or ROLLBACK (bounded too)::

        async with deadline, engine.begin() as connection:
            await deadline.start(connection)
    """

    def __init__(self, seconds: float | None) -> None:
        self._seconds = seconds
        self._driver: Any = None
        self._timer: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> AnswerDeadline:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.stop()

    async def start(self, connection: AsyncConnection) -> None:
        """Arm the deadline for the work about to run on ``connection``."""
        if self._seconds is None or connection.dialect.name != "postgresql":
            return
        raw = await connection.get_raw_connection()
        self.start_on(raw.driver_connection)

    def start_on(self, driver: Any) -> None:
        """Arm the deadline for the work about to run on psycopg's ``driver`` connection."""
        if self._seconds is None:
            return
        self._driver = driver
        self._arm()

    def stop(self) -> None:
        """The work is done (or has failed): nothing is shut down any more."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Hold the deadline during the block (time that is not the database's), then
        give the database a full ``seconds`` again, also when the block raises (the
        ROLLBACK on the way out)."""
        self.stop()
        try:
            yield
        finally:
            if self._driver is not None:
                self._arm()

    def _arm(self) -> None:
        assert self._seconds is not None
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._seconds, _shut_down, self._driver, self._seconds)


def _shut_down(driver: Any, seconds: float) -> None:
    try:
        descriptor = driver.pgconn.socket  # psycopg's PGconn: raises once closed
    except Exception:
        return
    logger.warning(
        "the database did not answer in time; dropping the connection",
        extra={"timeout_s": seconds},
    )
    # shutdown() acts on the socket under both descriptors: libpq's next read sees the
    # end of the stream. Closing only our duplicate leaves libpq's descriptor valid (the
    # event loop still watches it); the peer is told nothing more than a FIN.
    with suppress(OSError):
        duplicate = os.dup(descriptor)
        try:
            with socket.socket(fileno=duplicate) as peer:
                duplicate = -1  # the socket object owns (and closes) it now
                peer.shutdown(socket.SHUT_RDWR)
        finally:
            if duplicate >= 0:
                os.close(duplicate)
