"""The consumer process: the loop, inbox retention, and a clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import make_engine
from app.outbox.consumer import ConsumerPolicy, InboxConsumer
from app.outbox.inbox import InboxProcessor, delete_old_inbox_rows
from app.outbox.subscriptions import Subscription, by_event_name
from app.settings import Settings

logger = logging.getLogger(__name__)


def consumer_policy(settings: Settings) -> ConsumerPolicy:
    return ConsumerPolicy(
        prefetch=settings.consumer_prefetch,
        batch_size=settings.consumer_batch_size,
        batch_window_seconds=settings.consumer_batch_window_seconds,
        delivery_limit=settings.consumer_delivery_limit,
        reconnect_max_seconds=settings.broker_reconnect_max_seconds,
        database_reconnect_max_seconds=settings.database_reconnect_max_seconds,
    )


async def run_consumer(
    settings: Settings,
    *,
    service: str,
    database_url: str,
    subscriptions: Sequence[Subscription],
) -> None:
    """Consume ``service``'s queue into its database until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    index = by_event_name(subscriptions)
    engine = make_engine(database_url, pool_size=2)
    consumer = InboxConsumer(
        broker_url=settings.broker_url,
        service=service,
        processor=InboxProcessor(engine, consumer=service, subscriptions=index),
        subscriptions=index,
        policy=consumer_policy(settings),
    )
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(
        _retention,
        "interval",
        args=(settings, engine),
        seconds=settings.retention_interval_seconds,
        next_run_time=datetime.now(UTC),
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    consuming = asyncio.create_task(consumer.run(stop), name="consumer")
    logger.info("consumer started", extra={"service": service, "events": sorted(index)})
    try:
        await stop.wait()
        logger.info("consumer stopping: finishing the batch in flight")
        try:
            await asyncio.wait_for(consuming, timeout=settings.shutdown_grace_seconds)
        except TimeoutError:
            # Unacked messages return to the queue when the connection closes; their
            # inbox rows (if committed) make the redelivery a skip.
            logger.warning("consumer did not finish in time; its deliveries are requeued")
    finally:
        consuming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consuming
        scheduler.shutdown(wait=False)
        await engine.dispose()
        logger.info("consumer stopped", extra={"service": service})


async def _retention(settings: Settings, engine: AsyncEngine) -> None:
    try:
        deleted = await delete_old_inbox_rows(
            engine,
            older_than_seconds=settings.inbox_retention_seconds,
            batch_size=settings.retention_batch_size,
        )
    except DBAPIError as exc:
        logger.warning("inbox retention failed; next run retries", extra={"error": repr(exc)})
        return
    if deleted:
        logger.info("inbox retention", extra={"deleted": deleted})
