"""How a consumer takes, retries and gives up on messages, and what applies them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from cloudcrm_outbox.checks import require_counts, require_seconds
from cloudcrm_outbox.inbox.decoding import Decoded


class BatchProcessor(Protocol):
    """Applies decoded messages through the inbox and commits (``InboxProcessor``)."""

    async def process(
        self, messages: Sequence[Decoded], *, lock_timeout: float | None = None
    ) -> dict[uuid.UUID, str]:
        """Apply the new ones among ``messages`` in one committed transaction; their
        outcomes by message id (duplicates get none). ``lock_timeout`` (seconds): this
        transaction's, instead of the engine's (PostgreSQL). Raises with nothing committed."""
        ...


@runtime_checkable
class KeyedProcessor(Protocol):
    """A processor that also keeps keyed messages in order (``InboxProcessor``): the
    consumer tells it of a keyed dead letter, and runs its watch of parked messages."""

    async def record_dead_letter(
        self, key: str, sequence: int, message_id: uuid.UUID | None
    ) -> None: ...

    async def watch_parked(self, stop: asyncio.Event, policy: ConsumerPolicy) -> None: ...


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

    ``blocked_lock_timeout_seconds``: the lock timeout of the transactions tried while a
    row is known to be held for long (a message was found blocked: it waited out the
    engine's whole lock timeout). Messages are then tried with this shorter one, so that
    each blocked message costs the others this long, not a whole lock timeout (PostgreSQL
    ``lock_timeout``, set per transaction with ``SET LOCAL``); one whose row is merely busy
    for longer is parked too and comes back after a backoff, no delivery spent.

    ``answer_timeout_seconds``: a batch's transaction (COMMIT included) that has not
    finished by then is taken for a connection that stopped answering: it is dropped and
    the batch retried on another (``liveness.AnswerDeadline``; None: no deadline). Keep it
    above the engine's statement timeout.
    """

    prefetch: int = 500
    batch_size: int = 200
    batch_window_seconds: float = 0.0
    delivery_limit: int = 20
    reconnect_max_seconds: float = 30.0
    database_reconnect_max_seconds: float = 30.0
    connect_timeout_seconds: float = 10.0
    redelivery_max_seconds: float = 30.0
    blocked_lock_timeout_seconds: float = 0.1
    answer_timeout_seconds: float | None = 12.0
    # Event name → the broker account (AMQP user_id, validated by RabbitMQ) its owner's
    # relay publishes as; an event of a listed name from anyone else is dead-lettered
    # ("unexpected publisher"). Empty: not checked.
    publishers: Mapping[str, str] = field(default_factory=dict)
    # Keyed messages: a key waiting longer than this for a message that has not come is a
    # gap, reported (log line, inbox_key_gaps); parked messages whose turn came (after an
    # operator's purge) are looked for this often.
    gap_alert_seconds: float = 60.0
    parked_check_seconds: float = 1.0
    # A key this consumer has applied nothing of, waiting this long at its first messages,
    # is started there (None: never; the gap is reported and waits for the operator).
    start_keys_after_seconds: float | None = None

    def __post_init__(self) -> None:
        require_counts(
            "ConsumerPolicy",
            prefetch=self.prefetch,
            batch_size=self.batch_size,
            delivery_limit=self.delivery_limit,
        )
        require_seconds(
            "ConsumerPolicy",
            connect_timeout_seconds=self.connect_timeout_seconds,
            blocked_lock_timeout_seconds=self.blocked_lock_timeout_seconds,
            answer_timeout_seconds=self.answer_timeout_seconds,
            gap_alert_seconds=self.gap_alert_seconds,
            parked_check_seconds=self.parked_check_seconds,
            start_keys_after_seconds=self.start_keys_after_seconds,
        )
        require_seconds(
            "ConsumerPolicy",
            zero_allowed=True,
            batch_window_seconds=self.batch_window_seconds,
            reconnect_max_seconds=self.reconnect_max_seconds,
            database_reconnect_max_seconds=self.database_reconnect_max_seconds,
            redelivery_max_seconds=self.redelivery_max_seconds,
        )
