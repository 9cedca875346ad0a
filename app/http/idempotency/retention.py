"""Expired idempotency keys, deleted by each service's housekeeping (ordering's relay,
catalog's consumer; ``dev`` runs both): a key is kept at least
IDEMPOTENCY_KEY_RETENTION_SECONDS after its first use, then deleted within
RETENTION_INTERVAL_SECONDS. A retry after that is a new request."""

from __future__ import annotations

from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncEngine

from app.http.idempotency.models import IDEMPOTENCY_KEYS
from cloudcrm_outbox.runtime.process import RetentionPolicy, add_periodic
from cloudcrm_outbox.storage.clock import db_now_plus
from cloudcrm_outbox.storage.retention import delete_in_batches

keys = IDEMPOTENCY_KEYS


async def delete_expired_keys(
    engine: AsyncEngine,
    *,
    older_than_seconds: float,
    batch_size: int,
    pause_seconds: float = 0.0,
    **_: Any,
) -> int:
    """Delete keys first used more than ``older_than_seconds`` ago (the database clock),
    ``batch_size`` per transaction, oldest first (through ``ix_idempotency_keys_created_at``);
    returns how many."""
    return await delete_in_batches(
        engine,
        keys,
        keys=[keys.c.caller, keys.c.idempotency_key],
        condition=keys.c.created_at < db_now_plus(-older_than_seconds),
        age=keys.c.created_at,
        batch_size=batch_size,
        pause_seconds=pause_seconds,
    )


def add_key_expiry(
    scheduler: AsyncIOScheduler, engine: AsyncEngine, policy: RetentionPolicy
) -> None:
    """Run ``delete_expired_keys`` on ``scheduler`` every ``policy.interval_seconds`` (not
    at all when ``policy.enabled`` is false: another process cleans)."""
    if not policy.enabled:
        return

    async def expire() -> int:
        return await delete_expired_keys(
            engine,
            older_than_seconds=policy.older_than_seconds,
            batch_size=policy.batch_size,
            pause_seconds=policy.pause_seconds,
        )

    add_periodic(scheduler, policy.interval_seconds, expire, what="idempotency key expiry")
