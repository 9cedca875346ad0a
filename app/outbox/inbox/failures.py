"""When a batch fails: find the failing message, let the others commit, and hold that one
(parked when it was not its fault, requeued after a spaced delay when it was)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from cloudcrm_outbox.backoff import Backoff, spaced_delay
from cloudcrm_outbox.brokers.connection import Delivery
from cloudcrm_outbox.inbox.batches import delivery_count
from cloudcrm_outbox.inbox.decoding import Decoded
from cloudcrm_outbox.inbox.holding import Holding
from cloudcrm_outbox.inbox.policy import (
    ALONE_CONFLICT_RETRIES,
    CONFLICT_BACKOFF_MAX_SECONDS,
    PARK_BASE_SECONDS,
    REDELIVERY_BASE_SECONDS,
    BatchProcessor,
    ConsumerPolicy,
)
from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.storage.data_errors import data_error_reason
from cloudcrm_outbox.storage.faults import is_blocked, is_environment_fault, is_retryable_conflict

logger = library_logger("cloudcrm_outbox.inbox")  # the consumer's own log lines

DeadLetterer = Callable[[Delivery, str], Awaitable[None]]
"""Dead-letters a delivery with a reason (``InboxConsumer._dead_letter``)."""


async def one_by_one(
    valid: list[tuple[Delivery, Decoded]],
    batch_error: Exception | None,
    *,
    processor: BatchProcessor,
    holding: Holding,
    policy: ConsumerPolicy,
    dead_letter: DeadLetterer,
) -> tuple[list[tuple[Delivery, Decoded]], dict[uuid.UUID, str]]:
    """Isolate the failing message: the others commit alone and are acked. Returns those
    applied (acked) and their outcomes. One that fails alone with a deterministic data
    error is handed to ``dead_letter`` with that error as its reason; others are held.
    ``batch_error``: what failed their batch (None: they failed before, and are tried
    alone from the start)."""
    if batch_error is not None:
        logger.warning(
            "batch failed; retrying its messages one by one",
            extra={"error": repr(batch_error)[:300], "size": len(valid)},
        )
    applied: list[tuple[Delivery, Decoded]] = []
    outcomes: dict[uuid.UUID, str] = {}
    # Once a lock is known to be held for long (the batch, or one message, waited out a
    # lock timeout), the rest are tried with the short one: each blocked message then
    # costs the others that, not a whole lock timeout in turn (ABP #20020: 20 blocked
    # messages kept every other product waiting 20 lock timeouts).
    probing = (batch_error is not None and is_blocked(batch_error)) or holding.blocked
    for message, decoded in valid:
        lock_timeout = policy.blocked_lock_timeout_seconds if probing else None
        try:
            outcomes.update(await _process_alone(processor, decoded, lock_timeout))
        except Exception as exc:
            reason = data_error_reason(exc)
            if reason is not None:
                # Its own values fail it, alone, and would on every redelivery: dead-letter
                # it now with the database's words rather than at the delivery limit.
                await dead_letter(message, reason)
                continue
            probing = probing or is_blocked(exc)
            failures = delivery_count(message) + 1
            if _its_own(exc) and failures >= policy.delivery_limit:
                # Its last allowed delivery failed too: dead-letter it now, not after one
                # more pause and a redelivery that would only be refused unhandled.
                reason = (
                    f"delivery limit: failed {failures} times (limit {policy.delivery_limit})"
                    f"; last error: {exc!r:.300}"
                )
                await dead_letter(message, reason)
                continue
            _hold(message, exc, holding, policy)
        else:
            async with asyncio.timeout(policy.connect_timeout_seconds):
                await message.ack()
            applied.append((message, decoded))
    return applied, outcomes


def _its_own(exc: Exception) -> bool:
    """Whether ``exc`` is the message's own failure (not a lock held elsewhere, not the
    database away): what counts against its delivery limit."""
    return not (is_blocked(exc) or is_environment_fault(exc))


def _hold(message: Delivery, exc: Exception, holding: Holding, policy: ConsumerPolicy) -> None:
    """Keep a message that failed alone: parked when it was not its fault (a lock
    held elsewhere, the database away), requeued after a spaced delay otherwise."""
    count = delivery_count(message)
    extra = {"message_id": str(message.message_id)[:100], "error": repr(exc)[:300]}
    holding.remember_failure(str(message.message_id), repr(exc)[:300])
    if is_blocked(exc) or is_environment_fault(exc):
        delay = holding.park(
            message,
            base=PARK_BASE_SECONDS,
            cap=policy.database_reconnect_max_seconds,
            blocked=is_blocked(exc),
        )
        logger.warning(
            "message blocked (a lock held elsewhere, or the database); parked for a retry",
            extra={**extra, "retry_in_s": round(delay, 3)},
        )
        return
    delay = spaced_delay(count, base=REDELIVERY_BASE_SECONDS, cap=policy.redelivery_max_seconds)
    # Requeued: the quorum queue counts the delivery, and the consumer dead-letters
    # the message once it has failed ``delivery_limit`` times.
    logger.error(
        "message failed; requeued after a pause",
        extra={**extra, "deliveries": count + 1, "requeue_in_s": round(delay, 3)},
    )
    holding.requeue_later(message, delay)


async def _process_alone(
    processor: BatchProcessor, decoded: Decoded, lock_timeout: float | None
) -> dict[uuid.UUID, str]:
    """One message in its own transaction. A deadlock or serialization failure is
    another transaction's timing, not the message's fault: it is retried here rather
    than requeued, which would spend the message's delivery budget on it."""
    conflicts = Backoff(CONFLICT_BACKOFF_MAX_SECONDS)
    while True:
        try:
            return await processor.process([decoded], lock_timeout=lock_timeout)
        except Exception as exc:
            if not is_retryable_conflict(exc) or conflicts.failures >= ALONE_CONFLICT_RETRIES:
                raise
            await conflicts.pause()
