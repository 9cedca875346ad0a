"""Waiting at start for PostgreSQL and RabbitMQ: bounded, logged, and a clear exit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy import text

from cloudcrm_outbox import urls as broker_nodes
from cloudcrm_outbox.backoff import Backoff
from cloudcrm_outbox.observability.redaction import safe_url
from cloudcrm_outbox.runtime.process import FatalError
from cloudcrm_outbox.storage.engine import make_engine

if TYPE_CHECKING:  # the probes' web server is not needed to wait for a database
    from cloudcrm_outbox.observability.probes import ProcessHealth

logger = logging.getLogger(__name__)


class DependencyUnavailableError(FatalError):
    """A dependency never came up within the start-up timeout, or refused us for good."""


# Answers no wait can change: PostgreSQL's (SQLSTATE class 28, invalid authorization;
# 3D000 invalid catalog name: no such database) and RabbitMQ's 403 ACCESS_REFUSED (bad
# credentials).
_PERMANENT_WORDS = (
    "password authentication failed",
    "authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "ACCESS_REFUSED",
)
# RabbitMQ answering connection.open with connection.close: 530 NOT_ALLOWED, for a vhost
# that does not exist — or one still starting, or over its connection limit. aiormq keeps
# only this text of the frame, so such a refusal ends the start once it has lasted
# REFUSAL_GRACE_SECONDS.
_REFUSAL_WORDS = ("NOT_ALLOWED", "['Connection.OpenOk'], got <Connection.Close")
REFUSAL_GRACE_SECONDS = 10.0
VHOST_HINT = (
    " (RabbitMQ answers so for a vhost that does not exist or that the account has no "
    "permissions on: `rabbitmqctl add_vhost VHOST`, `rabbitmqctl set_permissions -p VHOST "
    "USER '.*' '.*' '.*'`)"
)


def is_permanent(exc: BaseException) -> bool:
    """True when ``exc`` is a refusal waiting cannot change (wrong credentials, no such
    database): the process should exit at once, saying so."""
    sqlstate = getattr(getattr(exc, "orig", exc), "sqlstate", None) or ""
    if sqlstate.startswith("28") or sqlstate == "3D000":
        return True
    if type(exc).__name__ in {"ProbableAuthenticationError", "AuthenticationError"}:
        return True
    return any(word in repr(exc) for word in _PERMANENT_WORDS)


def is_refusal(exc: BaseException) -> bool:
    """True for a refusal that may pass (a vhost starting) or may not (none by that name)."""
    return any(word in repr(exc) for word in _REFUSAL_WORDS)


async def _wait(
    name: str,
    where: str,
    attempt: Callable[[], Awaitable[None]],
    within: float,
    attempt_seconds: float = 5.0,
) -> None:
    deadline = time.monotonic() + within
    # Short pauses (at most 2 s): a dependency starting beside this process (compose)
    # is usually up within seconds.
    backoff = Backoff(cap=2.0, base=0.2)
    refused_since: float | None = None
    while True:
        try:
            await asyncio.wait_for(attempt(), timeout=attempt_seconds)
            if backoff.failures:
                logger.info("%s is up", name, extra={"at": where, "tries": backoff.failures + 1})
            return
        except Exception as exc:
            if not is_refusal(exc):
                refused_since = None
            elif refused_since is None:
                refused_since = time.monotonic()
            lasting = refused_since is not None and (
                time.monotonic() - refused_since >= REFUSAL_GRACE_SECONDS
            )
            # A refusal still inside its grace when the start's time is up is reported as
            # what it is: the server answered, it is no unreachable one.
            if (
                is_permanent(exc)
                or lasting
                or (refused_since is not None and time.monotonic() >= deadline)
            ):
                raise DependencyUnavailableError(
                    f"{name} at {where} refused this process ({exc!r:.300}); waiting cannot "
                    "help: check the URL's user, password and database or vhost"
                    + (VHOST_HINT if refused_since is not None else "")
                ) from exc
            if time.monotonic() >= deadline:
                raise DependencyUnavailableError(
                    f"{name} at {where} is not reachable after {within:.0f}s ({exc!r:.200})"
                ) from exc
            if refused_since is not None:
                logger.warning(
                    "%s refused the connection: no such vhost, or the account may not use "
                    "it; waiting up to %.0fs in case it is starting", name,
                    REFUSAL_GRACE_SECONDS, extra={"at": where},
                )  # fmt: skip
            else:
                logger.warning(
                    "waiting for %s", name, extra={"at": where, "error": repr(exc)[:200]}
                )
            await backoff.pause()


STARTING = "starting: waiting for the database and the broker"


async def started(
    stop: asyncio.Event,
    health: ProcessHealth,
    database_url: str,
    broker_url: str,
    *,
    within: float,
    check_database: Callable[[], Awaitable[None]] | None,
) -> bool:
    """A relay's or consumer's start: not ready (``health``) while it waits for its database
    and broker, then ``check_database`` (the caller's schema check, which raises to stop
    it). False when ``stop`` was set meanwhile."""
    health.failing("start", STARTING)
    if not await dependencies_up(stop, database_url, broker_url, within=within):
        return False
    if check_database is not None:
        await check_database()
    health.recovered("start")
    return True


async def dependencies_up(
    stop: asyncio.Event, database_url: str, broker_url: str, *, within: float
) -> bool:
    """Wait for the database, then the broker; False when ``stop`` was set meanwhile (a
    SIGTERM during the wait ends the process cleanly, not after the timeout). Raises
    DependencyUnavailableError as the waits do."""
    waiting = asyncio.ensure_future(_both(database_url, broker_url, within))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not waiting.done():
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        return False
    failure = waiting.result()
    if failure is not None:
        raise failure
    return True


async def _both(database_url: str, broker_url: str, within: float) -> BaseException | None:
    # The failure is returned, not raised: it is a SystemExit (FatalError), which asyncio
    # will not keep inside a task.
    try:
        await wait_for_database(database_url, within=within)
        await wait_for_broker(broker_url, within=within)
    except DependencyUnavailableError as failure:
        return failure
    return None


async def wait_for_database(url: str, *, within: float) -> None:
    """Return once ``SELECT 1`` works on the database at ``url``."""
    engine = make_engine(url, pool_size=1)

    async def ping() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    try:
        where = safe_url(url)
        await _wait("the database", where, ping, within)
    finally:
        await engine.dispose()


async def wait_for_broker(url: str, *, within: float) -> None:
    """Return once an AMQP connection to ``url`` opens."""

    async def ping() -> None:
        connection = await broker_nodes.connect(url, node_timeout=5)
        await connection.close()

    # Each node gets its 5 s within one attempt: a node that accepts and never answers
    # must not use up the attempt before the next node is tried.
    attempt_seconds = 5.0 * broker_nodes.node_count(url) + 1
    await _wait("RabbitMQ", broker_nodes.where(url), ping, within, attempt_seconds)
