"""Waking the relay: PostgreSQL LISTEN/NOTIFY for latency, an interval poll as the fallback."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from cloudcrm_outbox.backoff import Backoff, first_of
from cloudcrm_outbox.errors import is_expected_fault
from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.names import DEFAULT_NAMES
from cloudcrm_outbox.storage.liveness import AnswerDeadline

if TYPE_CHECKING:
    import psycopg

logger = library_logger(__name__)


class Wakeup:
    """ "There may be work", handed to the workers of one relay.

    An idle worker is woken alone: with several idle, waking all would have each run a
    claim that only one can win, and on a small machine the losers' round trips delay the
    winner's. With none idle, every busy worker is told to look again when its batch is
    done, so rows committed meanwhile never wait for the poll. A worker that claims a full
    batch calls ``notify`` itself, which brings in an idle one to share the backlog.
    """

    def __init__(self) -> None:
        self._events: list[asyncio.Event] = []
        self._idle: list[asyncio.Event] = []  # in the order they went idle

    def subscribe(self) -> asyncio.Event:
        event = asyncio.Event()
        self._events.append(event)
        return event

    def notify(self) -> None:
        if self._idle:
            self._idle.pop(0).set()
            return
        for event in self._events:
            event.set()

    async def wait(self, event: asyncio.Event, stop: asyncio.Event) -> None:
        """Idle until ``event`` (this worker's) or ``stop`` is set."""
        if event.is_set():
            return
        self._idle.append(event)
        try:
            await first_of(event, stop)
        finally:
            if event in self._idle:
                self._idle.remove(event)


def libpq_dsn(database_url: str) -> str | None:
    """The libpq DSN of a PostgreSQL SQLAlchemy URL; None for other databases."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def listen_for_outbox_inserts(
    dsn: str,
    wakeup: Wakeup,
    *,
    max_backoff: float,
    channel: str = DEFAULT_NAMES.notify_channel,
    connect_args: Mapping[str, Any] | None = None,
    answer_timeout: float | None = None,
) -> None:
    """Notify ``wakeup`` whenever an outbox insert commits (the trigger of schema step 2
    notifies ``channel``); reconnect forever on errors. ``connect_args``: psycopg's
    (libpq's keepalives, say). ``answer_timeout`` (seconds): every so often the
    connection must answer a query within it, else it is dropped and made again (a
    connection gone dark delivers no notification, and says nothing); None: never asked.

    NOTIFY is delivered at COMMIT, never for a rolled-back transaction, and the trigger
    fires inside the writer's own transaction, so no clock is compared: a row written
    after other statements in a long transaction still wakes the relay when it commits.
    A lost notification (listener reconnecting) costs at most one poll interval.
    """
    backoff = Backoff(max_backoff)
    while True:
        try:
            import psycopg  # LISTEN is PostgreSQL only: the library runs without psycopg

            connecting = psycopg.AsyncConnection.connect(
                dsn, autocommit=True, **(connect_args or {})
            )
            async with await connecting as connection:
                await connection.execute(f"LISTEN {channel}")  # a checked SQL name
                logger.info("listening for outbox inserts", extra={"channel": channel})
                backoff.succeeded()
                # Rows may have committed while nobody listened.
                wakeup.notify()
                while True:
                    async for _ in connection.notifies(timeout=answer_timeout):
                        wakeup.notify()
                    await _still_answering(connection, answer_timeout)
        except Exception as exc:  # psycopg.Error, OSError, or anything unexpected: retry
            delay = backoff.next_delay()
            logger.warning(
                "outbox listener lost its connection; polling covers the gap",
                exc_info=not is_expected_fault(exc),
                extra={"error": repr(exc)[:300], "retry_in_s": round(delay, 2)},
            )
            await asyncio.sleep(delay)


async def _still_answering(connection: psycopg.AsyncConnection[Any], seconds: float | None) -> None:
    # Notifications that come meanwhile wait in psycopg's backlog for the next notifies().
    async with AnswerDeadline(seconds) as deadline:
        deadline.start_on(connection)
        await connection.execute("SELECT 1")
