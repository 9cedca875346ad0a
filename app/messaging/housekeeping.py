"""A service's own periodic jobs, beside the library's outbox and inbox retention:
catalog's finished stock reservations (in its consumer process), ordering's reply
timeouts (in its relay process), and each one's expired idempotency keys (in those same
processes). ``dev`` runs both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC
from typing import Literal

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.settings import Settings
from app.http.idempotency import add_key_expiry
from app.messaging.registry import all_bindings
from app.messaging.wiring import retention_policy
from cloudcrm_outbox.brokers import broker_for
from cloudcrm_outbox.brokers.base import Broker
from cloudcrm_outbox.runtime.process import add_periodic, scheduler_with_retention
from cloudcrm_outbox.storage.engine import make_engine

Role = Literal["relay", "consumer"]


@asynccontextmanager
async def housekeeping(
    settings: Settings, service: str, role: Role, *, broker: Broker | None = None
) -> AsyncIterator[None]:
    """Run the jobs of ``service``'s ``role`` process until the block ends. ``broker``:
    where the reply timeout reads OrderPlaced's queues (``dev`` passes its own; else one
    at BROKER_URL, closed at the end)."""
    engine = make_engine(settings.database_url(service), pool_size=1)
    own = None
    if broker is None and (service, role) == ("ordering", "relay"):
        broker = own = broker_for(settings.broker_url, connect_timeout=10)
    scheduler = _jobs(settings, service, role, engine, broker)
    scheduler.start()
    try:
        yield
    finally:
        scheduler.shutdown(wait=False)
        await engine.dispose()
        if own is not None:
            await own.close()


def _jobs(
    settings: Settings, service: str, role: Role, engine: AsyncEngine, broker: Broker | None
) -> AsyncIOScheduler:
    scheduler = _own_jobs(settings, service, role, engine, broker)
    if (service, role) in KEY_CLEANERS:
        keys = retention_policy(settings, settings.idempotency_key_retention_seconds)
        add_key_expiry(scheduler, engine, keys)
    return scheduler


# The process of each service that deletes its expired idempotency keys.
KEY_CLEANERS = {("ordering", "relay"), ("catalog", "consumer")}


def _own_jobs(
    settings: Settings, service: str, role: Role, engine: AsyncEngine, broker: Broker | None
) -> AsyncIOScheduler:
    if service == "catalog" and role == "consumer":
        from app.catalog.retention import delete_finished_reservations

        retention = retention_policy(settings, settings.reservation_retention_seconds)
        return scheduler_with_retention(retention, engine, delete_finished_reservations)
    scheduler = AsyncIOScheduler(timezone=UTC)
    if service == "ordering" and role == "relay":
        from app.ordering.contracts import OrderPlaced
        from app.ordering.reply_destinations import destinations_on
        from app.ordering.reply_timeouts import ReplyTimeoutPolicy, sweep_and_count

        placed = OrderPlaced.event_name
        queues = [item.topology.queue for item in all_bindings() if placed in item.event_names]
        destinations = None if broker is None else destinations_on(broker, queues)
        policy = ReplyTimeoutPolicy(
            timeout_seconds=settings.order_reply_timeout_seconds,
            max_retries=settings.order_reply_max_retries,
            backoff_max_seconds=settings.order_reply_backoff_max_seconds,
        )
        add_periodic(
            scheduler,
            policy.sweep_interval_seconds,
            lambda: sweep_and_count(engine, policy, destinations=destinations),
            what="reply-timeout sweep",
        )
    return scheduler
