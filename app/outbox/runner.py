"""The relay process: workers, wake-ups, retention, and a clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import make_engine
from app.outbox.amqp import AmqpPublisher
from app.outbox.process import FatalError, scheduler_with_retention, stop_on_signals
from app.outbox.publisher import BrokerUnavailableError, Publisher
from app.outbox.relay import OutboxRelay, RelayPolicy
from app.outbox.retention import delete_published_outbox_rows
from app.outbox.topology import QueueBindings, TopologyConflictError
from app.outbox.waiting import backoff_delay, sleep_unless
from app.outbox.wakeup import Wakeup, libpq_dsn, listen_for_outbox_inserts
from app.settings import Settings
from app.startup import wait_for_broker, wait_for_database

logger = logging.getLogger(__name__)


def relay_policy(settings: Settings) -> RelayPolicy:
    return RelayPolicy(
        batch_size=settings.relay_batch_size,
        max_attempts=settings.relay_max_attempts,
        retry_base_seconds=settings.relay_retry_base_seconds,
        retry_max_seconds=settings.relay_retry_max_seconds,
        unroutable_give_up_seconds=settings.relay_unroutable_give_up_seconds,
    )


class RelayStoppedError(FatalError):
    """The relay cannot go on (RabbitMQ refused its topology)."""


async def run_relay(
    settings: Settings,
    *,
    database_url: str,
    name: str,
    bindings: Sequence[QueueBindings] = (),
) -> None:
    """Relay ``database_url``'s outbox to ``settings.broker_url`` until SIGTERM/SIGINT.

    ``bindings``: the queues consuming what this service publishes, declared before the
    first publish. Raises RelayStoppedError (exit 1) if RabbitMQ refuses them."""
    stop = stop_on_signals()
    await wait_for_database(database_url, within=settings.startup_timeout_seconds)
    await wait_for_broker(settings.broker_url, within=settings.startup_timeout_seconds)
    engine = make_engine(
        database_url,
        pool_size=settings.relay_concurrency + 1,
        pre_ping=False,
        statement_timeout=settings.consumer_statement_timeout_seconds,
    )
    publisher = AmqpPublisher(
        settings.broker_url,
        publish_timeout=settings.relay_publish_timeout_seconds,
        bindings=bindings,
    )
    try:
        await relay_until(
            stop,
            settings=settings,
            engine=engine,
            publisher=publisher,
            listen_dsn=libpq_dsn(database_url),
            name=name,
        )
    finally:
        await publisher.close()
        await engine.dispose()


async def relay_until(
    stop: asyncio.Event,
    *,
    settings: Settings,
    engine: AsyncEngine,
    publisher: Publisher,
    listen_dsn: str | None,
    name: str,
) -> None:
    """Run the relay's workers, wake-ups and retention until ``stop`` is set."""
    relay = OutboxRelay(engine, publisher, relay_policy(settings))
    wakeup = Wakeup()
    scheduler = scheduler_with_retention(
        settings,
        engine,
        delete_published_outbox_rows,
        older_than_seconds=settings.outbox_retention_seconds,
    )
    # The fallback for lost notifications, and the only wake-up on SQLite.
    scheduler.add_job(wakeup.notify, "interval", seconds=settings.relay_poll_interval_seconds)
    background: list[asyncio.Task[None]] = []
    if listen_dsn is not None:
        listener = listen_for_outbox_inserts(
            listen_dsn, wakeup, max_backoff=settings.broker_reconnect_max_seconds
        )
        background.append(asyncio.create_task(listener, name="outbox-listener"))
    workers = [
        asyncio.create_task(
            _work(relay, wakeup, wakeup.subscribe(), stop, settings), name=f"relay-worker-{index}"
        )
        for index in range(settings.relay_concurrency)
    ]
    scheduler.start()
    logger.info(
        "relay started",
        extra={"service": name, "workers": len(workers), "listen": listen_dsn is not None},
    )
    try:
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({stopping, *workers}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        dead = [task for task in workers if task.done()]
        if dead and not stop.is_set():
            # A worker ends only when RabbitMQ refused the topology. The others would
            # meet the same refusal: stop, rather than look alive relaying nothing.
            stop.set()
            raise RelayStoppedError(f"relay of {name} stopped: {dead[0].exception()}")
        logger.info("relay stopping: finishing the batch in flight")
        _, unfinished = await asyncio.wait(workers, timeout=settings.shutdown_grace_seconds)
        # A batch still waiting for confirms is abandoned: cancelling rolls its
        # transaction back, which releases its rows to the next relay unmarked.
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
    finally:
        scheduler.shutdown(wait=False)
        for task in [*background, *workers]:
            task.cancel()
        await asyncio.gather(*background, *workers, return_exceptions=True)
        logger.info("relay stopped", extra={"service": name})


async def _work(
    relay: OutboxRelay,
    wakeup: Wakeup,
    woken: asyncio.Event,
    stop: asyncio.Event,
    settings: Settings,
) -> None:
    """Drain, then sleep until woken; back off (full jitter) while a dependency is down."""
    failures = 0
    while not stop.is_set():
        woken.clear()
        try:
            while not stop.is_set():
                report = await relay.relay_batch()
                if report.claimed < settings.relay_batch_size:
                    break
                wakeup.notify()  # a backlog: bring in an idle worker to share it
            failures = 0
        except TopologyConflictError:
            raise  # refused by the broker: no retry can help (the process exits 1)
        except Exception as exc:
            # A worker never dies: a dependency that is down (broker, database) or an
            # unexpected library error both end in a jittered, capped backoff and a retry.
            failures += 1
            delay = backoff_delay(failures, settings.broker_reconnect_max_seconds)
            expected = isinstance(exc, BrokerUnavailableError | DBAPIError | OSError)
            logger.warning(
                "relay cannot proceed; backing off",
                exc_info=not expected,
                extra={"error": repr(exc)[:300], "retry_in_s": round(delay, 3)},
            )
            await sleep_unless(stop, delay)
            continue
        await wakeup.wait(woken, stop)
