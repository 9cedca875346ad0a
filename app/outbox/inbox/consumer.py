"""The consumer loop: batch deliveries, apply them through the inbox, then ack.

Ack ordering: a message is acked only after the transaction holding its inbox row and its
effect has committed. A crash between the two redelivers it, and the inbox skips it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from typing import Any

from cloudcrm_outbox.backoff import Backoff, sleep_unless
from cloudcrm_outbox.brokers.connection import (
    ConnectionOpener,
    ConsumerConnection,
    DeadLetterRefusedError,
    Delivery,
)
from cloudcrm_outbox.errors import TopologyConflictError, is_expected_fault
from cloudcrm_outbox.inbox.batches import delivery_count, next_batch, take
from cloudcrm_outbox.inbox.decoding import Decoded, MessageKey, Poison, decode, message_key
from cloudcrm_outbox.inbox.failures import one_by_one
from cloudcrm_outbox.inbox.holding import Holding
from cloudcrm_outbox.inbox.policy import (
    CONFLICT_BACKOFF_MAX_SECONDS,
    CONFLICT_RETRIES,
    PARK_BASE_SECONDS,
    BatchProcessor,
    ConsumerPolicy,
    KeyedProcessor,
)
from cloudcrm_outbox.inbox.reporting import count_applied, log_consumer_batch, reason_kind
from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.observability.metrics import INBOX_DEAD_LETTERED, INBOX_DUPLICATES
from cloudcrm_outbox.storage.faults import is_environment_fault, is_retryable_conflict
from cloudcrm_outbox.subscriptions import Subscription

logger = library_logger(__name__)


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
        name: str | None = None,
    ) -> None:
        """``open_connection`` opens a broker connection consuming ``queue`` (its name is
        for the logs); ``subscriptions`` by event name; ``name``: the consumer's, for its
        metrics (the queue's by default)."""
        self._open_connection = open_connection
        self._queue = queue
        self._name = name or queue
        INBOX_DUPLICATES.labels(self._name)  # 0, not "no data", before the first one
        self._processor = processor
        self._subscriptions = subscriptions
        self._policy = policy
        self.ready = asyncio.Event()  # set while a connection is consuming
        self._database_trouble: str | None = None  # why batches are held (database away)
        self._dead_letter_trouble: str | None = None  # why poison is held (DLQ refusing)
        self._connection: ConsumerConnection
        self._holding = Holding()
        self._retried_parked = False  # the last batch was parked messages tried again

    @property
    def trouble(self) -> str | None:
        """Why messages are held unacked (the database away, or the dead-letter queue
        refusing poison), for readiness; None when nothing is."""
        return self._database_trouble or self._dead_letter_trouble

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, reconnecting with backoff whatever happens, but
        a refused declaration (TopologyConflictError, raised: no retry can help)."""
        watch = None
        if isinstance(self._processor, KeyedProcessor):
            # Parked keyed messages are the database's, not the broker's: watched whether
            # or not a connection is up.
            watch = asyncio.create_task(self._processor.watch_parked(stop, self._policy))
        try:
            await self._consume_reconnecting(stop)
        finally:
            if watch is not None:
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)

    async def _consume_reconnecting(self, stop: asyncio.Event) -> None:
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
            self._dead_letter_trouble = None  # the held poison went back with the last one
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
                    await self._handle(take(connection.inbound, self._policy.batch_size), stop)
            finally:
                self.ready.clear()
                self._holding.drop()

    async def _next_batch(
        self,
        inbound: asyncio.Queue[Delivery],
        stop: asyncio.Event,
        closed: asyncio.Future[Any],
    ) -> list[Delivery]:
        batch = await next_batch(
            inbound, stop, closed, self._holding, self._policy, fresh_first=self._retried_parked
        )
        self._retried_parked = bool(batch) and self._holding.was_parked(batch[0])
        return batch

    async def _handle(self, batch: list[Delivery], stop: asyncio.Event) -> None:
        valid: list[tuple[Delivery, Decoded]] = []
        for message in batch:
            deliveries = delivery_count(message) + 1
            if deliveries > self._policy.delivery_limit:
                reason = (
                    f"delivery limit: failed {deliveries - 1} times "
                    f"(limit {self._policy.delivery_limit})"
                )
                last = self._holding.last_failure(str(message.message_id))
                if last is not None:
                    reason += f"; last error: {last}"
                await self._dead_letter(message, reason)
                continue
            decoded = decode(
                message_id=message.message_id,
                event_type=message.type,
                content_type=message.content_type,
                body=message.body,
                subscriptions=self._subscriptions,
                headers=message.headers,
                user_id=message.user_id,
                publishers=self._policy.publishers,
            )
            if isinstance(decoded, Poison):
                await self._dead_letter(message, decoded.reason)
            else:
                valid.append((message, decoded))
        # A message that failed before is tried alone, first: coming back in a full batch
        # it would fail the batch again, and the batch be redone one message at a time.
        # First, because the batch's single ack would settle its earlier delivery too.
        suspects = [v for v in valid if self._holding.last_failure(str(v[0].message_id))]
        if suspects and len(suspects) < len(valid):
            await self._apply_alone(suspects)
            valid = [v for v in valid if not any(v is suspect for suspect in suspects)]
        if valid:
            await self._apply(valid, stop)

    def _lock_timeout(self, valid: list[tuple[Delivery, Decoded]]) -> float | None:
        """The short lock timeout while a row is known to be held for long (a message is
        parked for it), or for parked messages tried again; else the engine's (None)."""
        if self._holding.blocked or any(self._holding.was_parked(m) for m, _ in valid):
            return self._policy.blocked_lock_timeout_seconds
        return None

    async def _apply(self, valid: list[tuple[Delivery, Decoded]], stop: asyncio.Event) -> None:
        started = time.perf_counter()
        outages = Backoff(self._policy.database_reconnect_max_seconds)
        conflicts = Backoff(CONFLICT_BACKOFF_MAX_SECONDS)
        while True:
            lock_timeout = self._lock_timeout(valid)
            try:
                decoded = [decoded for _, decoded in valid]
                outcomes = await self._processor.process(decoded, lock_timeout=lock_timeout)
                break
            except Exception as exc:
                if is_environment_fault(exc) and not stop.is_set():
                    # The database is away, not migrated, or refuses us: hold the
                    # messages (unacked, so nothing is lost) and retry. Requeueing would
                    # spend their delivery budget on a fault that is none of theirs.
                    delay = outages.next_delay()
                    self._database_trouble = f"the database is unavailable: {exc!r:.200}"
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
                applied, outcomes = await one_by_one(
                    valid,
                    exc,
                    processor=self._processor,
                    holding=self._holding,
                    policy=self._policy,
                    dead_letter=self._dead_letter,
                )
                count_applied(self._name, applied, outcomes, time.perf_counter() - started)
                return
        self._database_trouble = None
        await self._ack([message for message, _ in valid])
        seconds = time.perf_counter() - started
        log_consumer_batch(valid, outcomes, seconds)
        count_applied(self._name, valid, outcomes, seconds)

    async def _apply_alone(self, messages: list[tuple[Delivery, Decoded]]) -> None:
        """Each of ``messages`` in its own transaction (``failures.one_by_one``)."""
        started = time.perf_counter()
        applied, outcomes = await one_by_one(
            messages,
            None,
            processor=self._processor,
            holding=self._holding,
            policy=self._policy,
            dead_letter=self._dead_letter,
        )
        count_applied(self._name, applied, outcomes, time.perf_counter() - started)

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

    async def _dead_letter(self, message: Delivery, reason: str) -> None:
        try:
            async with asyncio.timeout(self._policy.connect_timeout_seconds):
                await self._connection.dead_letter(message, reason)
        except DeadLetterRefusedError as exc:
            # The broker's fault, not the message's: park it, unacked on this channel, so
            # no delivery is spent (a reconnect would return every prefetched message and
            # spend theirs too), and try again later; the messages after it flow.
            delay = self._holding.park(
                message, base=PARK_BASE_SECONDS, cap=self._policy.reconnect_max_seconds
            )
            self._dead_letter_trouble = f"{exc} (run `python -m app broker declare`?)"
            logger.warning(
                "poison message held: its dead letter was refused; retrying later",
                extra={"error": str(exc)[:300], "reason": reason, "retry_in_s": round(delay, 3)},
            )
            return
        self._dead_letter_trouble = None
        INBOX_DEAD_LETTERED.labels(self._name, reason_kind(reason)).inc()
        read = message_key(message.headers)
        keyed = read if isinstance(read, MessageKey) else None
        logger.warning(
            "dead-lettered a poison message",
            extra={
                "message_id": str(message.message_id)[:100],
                "reason": reason,
                **({"key": keyed.key[:200], "sequence": keyed.sequence} if keyed else {}),
            },
        )
        if keyed is not None:
            await self._record_keyed_dead_letter(message, keyed)

    async def _record_keyed_dead_letter(self, message: Delivery, keyed: MessageKey) -> None:
        """Note which message the key's later ones now wait behind. Only for the operator:
        the wait itself needs no note (the key's next sequence stays where it is), so a
        failure here is logged, never retried."""
        if not isinstance(self._processor, KeyedProcessor):
            return
        try:
            message_id = uuid.UUID(str(message.message_id))
        except ValueError:
            message_id = None
        try:
            await self._processor.record_dead_letter(keyed.key, keyed.sequence, message_id)
        except Exception as exc:
            logger.warning(
                "the dead letter's key could not be noted",
                extra={"key": keyed.key[:200], "error": repr(exc)[:300]},
            )
