"""Effectively-once processing: the inbox row and the handler's effect commit together.

For a batch of decoded messages, in ONE transaction:

    INSERT INTO inbox (consumer, message_id, outcome) SELECT …, unnest(ids), 'applied'
        ON CONFLICT DO NOTHING RETURNING message_id -- the database decides what is new
    handlers apply the new events                  -- their effects, same transaction
    UPDATE inbox SET outcome = …                   -- only outcomes other than "applied"
    COMMIT                                         -- only then are the messages acked

The insert is the arbiter, never a prior SELECT: two consumers that receive the same
message race on the primary key, the second blocks until the first commits and then
inserts nothing, so it skips the effect. A redelivery after a crash (committed, not yet
acked) finds its row and is skipped the same way.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from itertools import groupby

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cloudcrm_outbox.events import IntegrationEvent
from cloudcrm_outbox.inbox.decoding import Decoded
from cloudcrm_outbox.inbox.key_gate import GIVEN_UP, KeyGate
from cloudcrm_outbox.inbox.parked import watch_parked
from cloudcrm_outbox.inbox.policy import ConsumerPolicy
from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames
from cloudcrm_outbox.observability.tracing import consume_spans
from cloudcrm_outbox.storage.engine import (
    AbortedTransactionError,
    make_sessionmaker,
)
from cloudcrm_outbox.storage.liveness import AnswerDeadline
from cloudcrm_outbox.storage.store import store_for
from cloudcrm_outbox.storage.tables import outbox_tables
from cloudcrm_outbox.subscriptions import APPLIED, Subscription

# The outcome reported for a keyed message that came before its turn: acked, kept in the
# parked table, applied later (key_gate). Never written to the inbox.
PARKED = "parked"

logger = library_logger("cloudcrm_outbox.inbox")

# Rows are inserted as "applied", the usual outcome, and corrected a few statements later
# in the same transaction when a handler concluded otherwise; no other transaction can
# see a row before that (storage's record_inbox_rows and set_inbox_outcomes).


class InboxProcessor:
    """Applies batches of messages for one consumer name, each message at most once."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        consumer: str,
        subscriptions: Mapping[str, Subscription],
        names: MessagingNames = DEFAULT_NAMES,
        answer_timeout: float | None = None,
    ) -> None:
        """``consumer``: the name its inbox rows carry; ``subscriptions`` by event name;
        ``names`` picks the inbox table; ``answer_timeout`` (seconds) bounds a batch's
        transaction, COMMIT included, after which its connection is taken for one that
        stopped answering and dropped (``liveness.AnswerDeadline``)."""
        self._answer_timeout = answer_timeout
        self._engine = engine
        self._names = names
        self._sessions: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
        self._consumer = consumer
        self._subscriptions = subscriptions
        self._store = store_for(engine.dialect)
        tables = outbox_tables(names)
        self._inbox = tables.inbox
        self._gate = KeyGate(self._store, tables, consumer, subscriptions)

    @property
    def gate(self) -> KeyGate:
        """The gate that orders this consumer's keyed messages."""
        return self._gate

    async def process(
        self, messages: Sequence[Decoded], *, lock_timeout: float | None = None
    ) -> dict[uuid.UUID, str]:
        """Apply the new messages among ``messages``; returns their outcomes by id.

        Messages already in the inbox (duplicates) get no entry; keyed messages that came
        before their turn get PARKED (kept, applied later in their key's order), and those
        behind their key's next sequence none (duplicates). ``lock_timeout``
        (seconds): this transaction's instead of the engine's, on PostgreSQL (SQLite has no
        row locks: a writer waits for the whole database, whatever the rows). Raises on any
        database error, with nothing committed.
        """
        traced = [(m.message_id, m.event.event_name, m.traceparent) for m in messages]
        with consume_spans(traced):
            return await self._process(messages, lock_timeout)

    async def record_dead_letter(
        self, key: str, sequence: int, message_id: uuid.UUID | None
    ) -> None:
        """Note, in its own transaction, that ``key``'s message at ``sequence`` was
        dead-lettered (the key waits parked behind it; the operator sees why)."""
        async with self._sessions() as session, session.begin():
            await self._gate.record_dead_letter(session, key, sequence, message_id)

    async def watch_parked(self, stop: asyncio.Event, policy: ConsumerPolicy) -> None:
        """Until ``stop``: release parked messages whose turn came and report gaps, as
        ``policy`` says (``parked.watch_parked``)."""
        await watch_parked(
            self,
            self._engine,
            stop,
            consumer=self._consumer,
            names=self._names,
            interval_seconds=policy.parked_check_seconds,
            gap_alert_seconds=policy.gap_alert_seconds,
            start_keys_after_seconds=policy.start_keys_after_seconds,
        )

    async def start_waiting_keys(self, waited_seconds: float) -> int:
        """Start the keys whose first messages waited longer than ``waited_seconds`` for
        messages this consumer will never receive (``KeyGate.start_waiting_keys``)."""
        async with self._sessions() as session, session.begin():
            return await self._gate.start_waiting_keys(session, waited_seconds)

    async def release_parked(self, limit: int = 100) -> dict[uuid.UUID, str]:
        """Apply the parked messages whose turn has come, of up to ``limit`` keys (and the
        parked ones that follow them), in one transaction; their outcomes by id. A key's
        turn comes in a transaction that could not apply it at once: after a skip
        (``dlq purge --key``), or past the window of parked messages a batch reads."""
        return await self._process((), None, release_limit=limit)

    async def _process(
        self,
        messages: Sequence[Decoded],
        lock_timeout: float | None,
        *,
        release_limit: int | None = None,
    ) -> dict[uuid.UUID, str]:
        # The transaction is SQLAlchemy's from its BEGIN (psycopg's own, before the first
        # statement: an after_begin listener runs inside it) to its COMMIT (flushing staged
        # objects, before_commit hooks, releasing savepoints: all inside it). Sending our
        # own BEGIN or COMMIT saved round trips but let such work escape: tried, dropped.
        # The answer deadline covers the whole block, its COMMIT or ROLLBACK included.
        deadline = AnswerDeadline(self._answer_timeout)
        async with deadline, self._sessions() as session, session.begin():
            await deadline.start(await session.connection())
            if lock_timeout is not None:
                await self._store.set_lock_timeout(session, lock_timeout)
            keyed = [m for m in messages if m.key is not None]
            wake: list[str] = []
            if release_limit:
                await self._gate.resolve_skips(session)
                wake = await self._gate.due_keys(session, release_limit)
            plan = await self._gate.admit(session, keyed, wake=wake)
            # Keyed messages in their keys' order after the unkeyed ones: each key's own
            # order is kept, and no key waits on another.
            ready = [m for m in messages if m.key is None] + plan.ready
            fresh = await self._record(session, ready)
            outcomes = await self._apply(session, fresh)
            transaction = session.get_transaction()
            if transaction is None or not transaction.is_active:
                # A handler rolled back, or went on after a failed flush: committing would
                # record nothing, silently, and the messages would be acked.
                raise AbortedTransactionError("a handler ended the batch's transaction")
            await self._gate.settle(session, plan)
            given_up = [skip.message_id for skip in plan.given_up if skip.message_id]
            if given_up:
                # The operator gave their places up: a copy replayed later is a duplicate.
                await self._store.record_inbox_rows(
                    session, self._inbox, self._consumer, given_up, GIVEN_UP
                )
            corrected = {mid: o for mid, o in outcomes.items() if o != APPLIED}
            outcomes.update((m.message_id, PARKED) for m in plan.parked)
            if not corrected:
                return outcomes
            await self._store.set_inbox_outcomes(session, self._inbox, self._consumer, corrected)
        return outcomes

    async def _record(self, session: AsyncSession, messages: Sequence[Decoded]) -> list[Decoded]:
        """Insert the inbox rows; keep the first delivery of each message that was new."""
        unique: dict[uuid.UUID, Decoded] = {}
        for message in messages:
            unique.setdefault(message.message_id, message)
        if not unique:
            return []
        inserted = await self._store.record_inbox_rows(
            session, self._inbox, self._consumer, list(unique), APPLIED
        )
        return [message for mid, message in unique.items() if mid in inserted]

    async def _apply(self, session: AsyncSession, fresh: Sequence[Decoded]) -> dict[uuid.UUID, str]:
        """Hand each run of same-type events to its handler, runs in delivery order: the
        effects are then those of applying the messages one by one in the order they came
        (an order's cancel delivered after it was placed is handled after it, too)."""
        outcomes: dict[uuid.UUID, str] = {}
        for event_name, run in groupby(fresh, key=lambda message: message.event.event_name):
            group = list(run)
            handled = await _handled(
                self._subscriptions[event_name], session, [message.event for message in group]
            )
            if len(handled) != len(group):
                raise RuntimeError(f"{event_name} handler returned {len(handled)} outcomes")
            outcomes.update(zip((m.message_id for m in group), handled, strict=True))
        return outcomes


class HandlerCancelledError(RuntimeError):
    """A handler raised ``asyncio.CancelledError`` while its consumer was not being
    cancelled (it awaited something another task cancelled): the handler's failure, held
    and retried like any other, not the end of the consumer."""


async def _handled(
    subscription: Subscription, session: AsyncSession, events: list[IntegrationEvent]
) -> Sequence[str]:
    try:
        return await subscription.handle(session, events)
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # this consumer is stopping: the cancel is ours
        raise HandlerCancelledError(
            f"the {subscription.event.event_name} handler raised CancelledError "
            "(it awaited something that was cancelled)"
        ) from exc
