"""Waiting at start for PostgreSQL and RabbitMQ: bounded, logged, and a clear exit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import aio_pika
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.outbox.database import make_engine
from app.outbox.process import FatalError
from app.outbox.waiting import Backoff

logger = logging.getLogger(__name__)


class DependencyUnavailableError(FatalError):
    """A dependency never came up within the start-up timeout, or refused us for good."""


# Answers no wait can change: PostgreSQL's (SQLSTATE class 28, invalid authorization;
# 3D000 invalid catalog name: no such database) and RabbitMQ's (403 ACCESS_REFUSED: bad
# credentials; 530 NOT_ALLOWED: no such vhost or no access to it).
_PERMANENT_WORDS = (
    "password authentication failed",
    "authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "ACCESS_REFUSED",
    "NOT_ALLOWED",
    "vhost",
    # aiormq, when RabbitMQ answers connection.open with connection.close (530: no such
    # vhost, or no access to it); it keeps only this text of the frame.
    "['Connection.OpenOk'], got <Connection.Close",
)


def is_permanent(exc: BaseException) -> bool:
    """True when ``exc`` is a refusal waiting cannot change (wrong credentials, no such
    database or vhost): the process should exit at once, saying so."""
    sqlstate = getattr(getattr(exc, "orig", exc), "sqlstate", None) or ""
    if sqlstate.startswith("28") or sqlstate == "3D000":
        return True
    if type(exc).__name__ in {"ProbableAuthenticationError", "AuthenticationError"}:
        return True
    return any(word in repr(exc) for word in _PERMANENT_WORDS)


async def _wait(
    name: str, where: str, attempt: Callable[[], Awaitable[None]], within: float
) -> None:
    deadline = time.monotonic() + within
    # Short pauses (at most 2 s): a dependency starting beside this process (compose)
    # is usually up within seconds.
    backoff = Backoff(cap=2.0, base=0.2)
    while True:
        try:
            await asyncio.wait_for(attempt(), timeout=5)
            if backoff.failures:
                logger.info("%s is up", name, extra={"at": where, "tries": backoff.failures + 1})
            return
        except Exception as exc:
            if is_permanent(exc):
                raise DependencyUnavailableError(
                    f"{name} at {where} refused this process ({exc!r:.300}); waiting cannot "
                    "help: check the URL's user, password and database or vhost"
                ) from exc
            if time.monotonic() >= deadline:
                raise DependencyUnavailableError(
                    f"{name} at {where} is not reachable after {within:.0f}s ({exc!r:.200})"
                ) from exc
            logger.warning("waiting for %s", name, extra={"at": where, "error": repr(exc)[:200]})
            await backoff.pause()


async def wait_for_database(url: str, *, within: float) -> None:
    """Return once ``SELECT 1`` works on the database at ``url``."""
    engine = make_engine(url, pool_size=1)

    async def ping() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    try:
        where = make_url(url).render_as_string(hide_password=True)
        await _wait("the database", where, ping, within)
    finally:
        await engine.dispose()


async def wait_for_broker(url: str, *, within: float) -> None:
    """Return once an AMQP connection to ``url`` opens."""

    async def ping() -> None:
        connection = await aio_pika.connect(url, timeout=5)
        await connection.close()

    where = url.split("@")[-1]
    await _wait("RabbitMQ", where, ping, within)
