"""An outbox's figures in its Prometheus gauges, read at scrape time."""

from __future__ import annotations

import asyncio
import math

from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames
from cloudcrm_outbox.observability.metrics import (
    OUTBOX_FAILED,
    OUTBOX_OLDEST_PENDING_AGE,
    OUTBOX_PENDING,
)
from cloudcrm_outbox.ops.status import read_status

logger = library_logger(__name__)

GAUGE_READ_TIMEOUT_SECONDS = 2.0


async def refresh_outbox_gauges(
    engine: AsyncEngine, service: str, names: MessagingNames = DEFAULT_NAMES
) -> None:
    """Read ``service``'s outbox into its gauges (at scrape time, through the partial
    indexes); when it cannot be read within GAUGE_READ_TIMEOUT_SECONDS they are NaN, not
    the last values (a stale backlog of 0 would look healthy)."""
    gauges = (OUTBOX_PENDING, OUTBOX_FAILED, OUTBOX_OLDEST_PENDING_AGE)
    try:
        async with asyncio.timeout(GAUGE_READ_TIMEOUT_SECONDS):
            status = await read_status(engine, names=names)
    except Exception as exc:  # the other figures are still worth reading
        for gauge in gauges:
            gauge.labels(service).set(math.nan)
        logger.warning("metrics: %s's outbox could not be read: %r", service, exc)
        return
    OUTBOX_PENDING.labels(service).set(status.pending)
    OUTBOX_FAILED.labels(service).set(status.failed)
    OUTBOX_OLDEST_PENDING_AGE.labels(service).set(status.oldest_pending_age_seconds or 0)
