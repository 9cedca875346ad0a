"""The consumer loop: batch deliveries, apply them through the inbox, then ack.

Ack ordering: a message is acked only after the transaction holding its inbox row and its
effect has committed. A crash between the two redelivers it, and the inbox skips it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from app.outbox.consumer_connection import ConnectionOpener, ConsumerConnection, Delivery
from app.outbox.decoding import Decoded, Poison, decode
from app.outbox.holding import Holding
from app.outbox.subscriptions import Subscription
from app.outbox.topology import TopologyConflictError
from app.outbox.transient import (
    is_blocked,
    is_environment_fault,
    is_expected_fault,
    is_retryable_conflict,
)
from app.outbox.waiting import Backoff, sleep_unless, spaced_delay

logger = logging.getLogger(__name__)


class BatchProcessor(Protocol):
    """Applies decoded messages through the inbox and commits (``InboxProcessor``)."""

    async def process(self, messages: Sequence[Decoded]) -> dict[uuid.UUID, str]:
        """Apply the new ones among ``messages`` in one committed transaction; their
        outcomes by message id (duplicates get none). Raises with nothing committed."""
        ...


CONFLICT_RETRIES = 3  # for a batch; then its messages are handled one by one
ALONE_CONFLICT_RETRIES = 10  # for one message on its own
CONFLICT_BACKOFF_MAX_SECONDS = 0.5
PARK_BASE_SECONDS = 0.5  # a parked message's first retry; doubles up to the policy's cap
REDELIVERY_BASE_SECONDS = 0.1  # a failed message's first requeue delay; doubles


@dataclass(frozen=True)
class ConsumerPolicy:
    """How a consumer takes, retries and gives up on messages (times in seconds).

    ``delivery_limit``: deliveries of one message (the quorum queue's ``x-delivery-count``
    plus this one) after which it is dead-lettered unhandled; ``redelivery_max_seconds``:
    cap of the spaced delay before a failed message is requeued.
    """

    prefetch: int = 500
    batch_size: int = 200
    batch_window_seconds: float = 0.0
    delivery_limit: int = 20
    reconnect_max_seconds: float = 30.0
    database_reconnect_max_seconds: float = 30.0
    connect_timeout_seconds: float = 10.0
    redelivery_max_seconds: float = 30.0


class InboxConsumer:
    """Consumes one service's queue until ``stop`` is set; reconnects forever."""

    def __init__(
        self,
        *,
        open_connection: ConnectionOpener,
        queue: str,
        processor: BatchProcessor,
        subscriptions: Mapping[str, Subscription],
        policy: ConsumerPolicy,
    ) -> None:
        """``open_connection`` opens a broker connection consuming ``queue`` (its name is
        for the logs); ``subscriptions`` by event name."""
        self._open_connection = open_connection
        self._queue = queue
        self._processor = processor
        self._subscriptions = subscriptions
        self._policy = policy
        self.ready = asyncio.Event()  # set while a connection is consuming
        self._connection: ConsumerConnection
        self._holding = Holding()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, reconnecting with backoff whatever happens, but
        a refused declaration (TopologyConflictError, raised: no retry can help)."""
        backoff = Backoff(self._policy.reconnect_max_seconds)
        while not stop.is_set():
            try:
                await self._consume_until_stopped(stop)
                return
            except TopologyConflictError:
                raise  # the broker refuses our queues: retrying cannot help
            except Exception as exc:  # the broker went away, or worse: never die
                self.ready.clear()
                delay = backoff.next_delay()
                logger.warning(
                    "consumer lost its connection; reconnecting",
                    exc_info=not is_expected_fault(exc),
                    extra={"error": repr(exc)[:300], "retry_in_s": round(delay, 3)},
                )
                await sleep_unless(stop, delay)

    async def _consume_until_stopped(self, stop: asyncio.Event) -> None:
        async with self._open_connection() as connection:
            self._connection = connection
            self._holding = Holding()
            self.ready.set()
            logger.info("consuming", extra={"queue": self._queue})
            try:
                while not stop.is_set():
                    batch = await self._next_batch(connection.inbound, stop, connection.lost)
                    if batch:
                        await self._handle(batch, stop)
                # Stop taking deliveries, then finish what was already delivered.
                await connection.stop_receiving()
                while not connection.inbound.empty():
                    await self._handle(_take(connection.inbound, self._policy.batch_size), stop)
            finally:
                self.ready.clear()
                self._holding.drop()

    async def _next_batch(
        self,
        inbound: asyncio.Queue[Delivery],
        stop: asyncio.Event,
        closed: asyncio.Future[Any],
    ) -> list[Delivery]:
        if closed.done():
            raise ConnectionError("the broker closed the connection or cancelled the consumer")
        parked = self._holding.due(self._policy.batch_size)
        if parked:
            return parked + _take(inbound, self._policy.batch_size - len(parked))
        first = asyncio.ensure_future(inbound.get())
        stopping = asyncio.ensure_future(stop.wait())
        waits: set[asyncio.Future[Any]] = {first, stopping, closed}
        await asyncio.wait(
            waits, timeout=self._holding.seconds_to_next(), return_when=asyncio.FIRST_COMPLETED
        )
        stopping.cancel()
        if not first.done():
            first.cancel()
            return []  # stopping, the connection is gone, or a parked message is due
        batch = [first.result()]
        deadline = time.monotonic() + self._policy.batch_window_seconds
        while len(batch) < self._policy.batch_size:
            batch += _take(inbound, self._policy.batch_size - len(batch))
            remaining = deadline - time.monotonic()
            if len(batch) >= self._policy.batch_size or remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(inbound.get(), timeout=remaining))
            except TimeoutError:
                break
        return batch

    async def _handle(self, batch: list[Delivery], stop: asyncio.Event) -> None:
        valid: list[tuple[Delivery, Decoded]] = []
        for message in batch:
            deliveries = _delivery_count(message) + 1
            if deliveries > self._policy.delivery_limit:
                reason = (
                    f"delivery limit: failed {deliveries - 1} times "
                    f"(limit {self._policy.delivery_limit})"
                )
                await self._dead_letter(message, reason)
                continue
            decoded = decode(
                message_id=message.message_id,
                event_type=message.type,
                content_type=message.content_type,
                body=message.body,
                subscriptions=self._subscriptions,
                headers=message.headers,
            )
            if isinstance(decoded, Poison):
                await self._dead_letter(message, decoded.reason)
            else:
                valid.append((message, decoded))
        if valid:
            await self._apply(valid, stop)

    async def _apply(self, valid: list[tuple[Delivery, Decoded]], stop: asyncio.Event) -> None:
        started = time.perf_counter()
        outages = Backoff(self._policy.database_reconnect_max_seconds)
        conflicts = Backoff(CONFLICT_BACKOFF_MAX_SECONDS)
        while True:
            try:
                outcomes = await self._processor.process([decoded for _, decoded in valid])
                break
            except Exception as exc:
                if is_environment_fault(exc) and not stop.is_set():
                    # The database is away, not migrated, or refuses us: hold the
                    # messages (unacked, so nothing is lost) and retry. Requeueing would
                    # spend their delivery budget on a fault that is none of theirs.
                    delay = outages.next_delay()
                    logger.warning(
                        "database unavailable; holding the batch",
                        extra={"error": repr(exc)[:300], "retry_in_s": round(delay, 3)},
                    )
                    await sleep_unless(stop, delay)
                    continue
                if is_retryable_conflict(exc) and conflicts.failures < CONFLICT_RETRIES:
                    # A deadlock with another consumer's batch: a short jittered pause,
                    # so the two do not collide again in step.
                    await conflicts.pause()
                    continue
                # A message's own failure, or a row locked past the lock timeout: find
                # which message, and let the others commit without it.
                await self._one_by_one(valid, exc)
                return
        await self._ack([message for message, _ in valid])
        _log_batch(len(valid), outcomes, time.perf_counter() - started)

    async def _ack(self, messages: list[Delivery]) -> None:
        """One ack for the batch when nothing earlier is held; else one per message.

        "multiple" is safe because batches are taken in delivery order and handled one at
        a time: every earlier delivery on this channel is settled, except those held on
        purpose (parked, or waiting to be requeued), which it would settle too."""
        last = max(messages, key=lambda m: m.delivery_tag or 0)
        held = self._holding.lowest_tag()
        async with asyncio.timeout(self._policy.connect_timeout_seconds):
            if held is None or held > (last.delivery_tag or 0):
                await last.ack(multiple=True)
                return
            for message in messages:
                await message.ack()

    async def _one_by_one(
        self, valid: list[tuple[Delivery, Decoded]], batch_error: Exception
    ) -> None:
        """Isolate the failing message: the others commit alone and are acked."""
        logger.warning(
            "batch failed; retrying its messages one by one",
            extra={"error": repr(batch_error)[:300], "size": len(valid)},
        )
        for message, decoded in valid:
            try:
                await self._process_alone(decoded)
            except Exception as exc:
                self._hold(message, exc)
            else:
                async with asyncio.timeout(self._policy.connect_timeout_seconds):
                    await message.ack()

    def _hold(self, message: Delivery, exc: Exception) -> None:
        """Keep a message that failed alone: parked when it was not its fault (a lock
        held elsewhere, the database away), requeued after a spaced delay otherwise."""
        count = _delivery_count(message)
        extra = {"message_id": str(message.message_id)[:100], "error": repr(exc)[:300]}
        if is_blocked(exc) or is_environment_fault(exc):
            delay = self._holding.park(
                message, base=PARK_BASE_SECONDS, cap=self._policy.database_reconnect_max_seconds
            )
            logger.warning(
                "message blocked (a lock held elsewhere, or the database); parked for a retry",
                extra={**extra, "retry_in_s": round(delay, 3)},
            )
            return
        delay = spaced_delay(
            count, base=REDELIVERY_BASE_SECONDS, cap=self._policy.redelivery_max_seconds
        )
        # Requeued: the quorum queue counts the delivery, and the consumer dead-letters
        # the message once it has failed ``delivery_limit`` times.
        logger.error(
            "message failed; requeued after a pause",
            extra={**extra, "deliveries": count + 1, "requeue_in_s": round(delay, 3)},
        )
        self._holding.requeue_later(message, delay)

    async def _process_alone(self, decoded: Decoded) -> None:
        """One message in its own transaction. A deadlock or serialization failure is
        another transaction's timing, not the message's fault: it is retried here rather
        than requeued, which would spend the message's delivery budget on it."""
        conflicts = Backoff(CONFLICT_BACKOFF_MAX_SECONDS)
        while True:
            try:
                await self._processor.process([decoded])
                return
            except Exception as exc:
                if not is_retryable_conflict(exc) or conflicts.failures >= ALONE_CONFLICT_RETRIES:
                    raise
                await conflicts.pause()

    async def _dead_letter(self, message: Delivery, reason: str) -> None:
        async with asyncio.timeout(self._policy.connect_timeout_seconds):
            await self._connection.dead_letter(message, reason)
        logger.warning(
            "dead-lettered a poison message",
            extra={"message_id": str(message.message_id)[:100], "reason": reason},
        )


def _delivery_count(message: Delivery) -> int:
    """Earlier deliveries of ``message`` that were returned (RabbitMQ quorum queues'
    ``x-delivery-count`` header; absent on a first delivery from other queues)."""
    if not getattr(message, "redelivered", True):
        # A first delivery has failed nowhere, whatever a publisher put in the header.
        return 0
    count = (message.headers or {}).get("x-delivery-count", 0)
    return count if isinstance(count, int) and count >= 0 else 0


def _take(inbound: asyncio.Queue[Delivery], limit: int) -> list[Delivery]:
    taken: list[Delivery] = []
    while len(taken) < limit and not inbound.empty():
        taken.append(inbound.get_nowait())
    return taken


def _log_batch(size: int, outcomes: dict[uuid.UUID, str], seconds: float) -> None:
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    logger.info(
        "consumed batch",
        extra={
            "messages": size,
            "duplicates": size - len(outcomes),
            "outcomes": counts,
            "duration_ms": round(seconds * 1000, 1),
        },
    )
