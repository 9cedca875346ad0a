"""The key gate: a keyed message is applied only after its key's previous one.

A keyed message carries its key, its place in the key's order (``x-message-key``,
``x-key-sequence``: 1, 2, … in the order the producer's transactions committed) and its
**predecessor** for this consumer: the latest earlier sequence of an event type the
consumer reads (``x-key-previous``; decoding works it out). A consumer of some of a key's
types thus never waits for messages it will never receive. For each consumer and key,
``{inbox}_keys`` holds the last sequence that consumer applied. In the batch's
transaction the gate sorts each keyed message into one of three:

- **ready**: its predecessor is applied (or ready before it): applied now, with the key's
  parked messages that then follow, in sequence order;
- **parked**: it came early (its predecessor is missing, failing, or dead-lettered): kept
  in ``{inbox}_parked`` with its decoded body, acked, and applied once the key reaches it;
- **stale**: its sequence is not above the key's applied one: a copy of a message applied
  (or given up) before, skipped by its sequence, even once the inbox has forgotten its id.

A key the consumer has never applied anything of, whose first messages wait for long, may
be **started** at them (``start_waiting_keys``, when the consumer is told to): the
messages before were published before this consumer's queue was bound, or before the
producer numbered its types (an upgrade); they are then never applied by it.

The key's row is locked (``SELECT … FOR UPDATE``, keys in sorted order so that two batches
never wait on each other in a cycle) for the transaction, so two consumers of one key,
whatever the broker does, apply its messages one after the other. SQLite has one writer at
a time, which gives the same. Nothing is requeued in a loop: an early message waits in the
database, not in the broker.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cloudcrm_outbox.events import predecessor_of
from cloudcrm_outbox.inbox.decoding import Decoded
from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.storage.clock import db_now, db_now_plus
from cloudcrm_outbox.storage.store import OutboxStore
from cloudcrm_outbox.storage.tables import OutboxTables
from cloudcrm_outbox.subscriptions import Subscription

logger = library_logger(__name__)

# Parked messages read per batch to follow the keys it moved on; the rest follow through
# ``due_keys`` (the consumer's release of parked messages), a batch at a time.
PARKED_WINDOW = 1_000


@dataclass(frozen=True)
class GivenUpPlace:
    """A place of a key the operator gives up (its dead letter purged): the dead letter's
    ``x-key-previous`` table (None: not known) and message id (None: it had none)."""

    previous: Mapping[str, int] | None = None
    message_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Skip:
    """A given-up place as the gate meets it: passed, not applied; its message, when
    known, is recorded in the inbox as GIVEN_UP, so a copy of it is never applied."""

    key: str
    sequence: int
    previous: Mapping[str, int] | None = None
    message_id: uuid.UUID | None = None


# The inbox outcome of a message whose place the operator gave up (dlq purge --key).
GIVEN_UP = "given_up"


@dataclass
class GatePlan:
    """What the gate made of a batch's keyed messages (see the module's docstring).

    ``ready``: to apply now, each key's in sequence order; ``parked``: to keep for later;
    ``stale``: behind their key (copies); ``given_up``: places passed unapplied;
    ``applied_sequence``: each moved key's last applied sequence once ``ready`` is
    applied."""

    ready: list[Decoded] = field(default_factory=list)
    parked: list[Decoded] = field(default_factory=list)
    stale: list[Decoded] = field(default_factory=list)
    given_up: list[Skip] = field(default_factory=list)
    applied_sequence: dict[str, int] = field(default_factory=dict)
    # Moved keys whose parked rows up to their new place must go (none others have any),
    # and those that moved past the dead letter noted on them.
    clear_parked: list[str] = field(default_factory=list)
    clear_dead_letter: list[str] = field(default_factory=list)


class KeyGate:
    """The gate of one consumer's keyed messages, in the tables of ``tables``;
    ``subscriptions``: the consumer's, whose event names say which of a key's messages it
    receives (and so which it waits for)."""

    def __init__(
        self,
        store: OutboxStore,
        tables: OutboxTables,
        consumer: str,
        subscriptions: Mapping[str, Subscription],
    ) -> None:
        self._store = store
        self._keys = tables.inbox_keys
        self._parked = tables.parked
        self._consumer = consumer
        self._subscriptions = subscriptions
        self._noted: dict[str, int] = {}  # dead letters noted on the keys last locked

    async def admit(
        self, session: AsyncSession, messages: Sequence[Decoded], *, wake: Collection[str] = ()
    ) -> GatePlan:
        """Lock the keys of ``messages`` (each has a key, a sequence and a predecessor)
        and of ``wake``, and sort the messages; the keys of ``wake`` also move on through
        their parked messages whose turn has come. Nothing is written: ``settle`` does,
        after the ready messages are applied in the same transaction."""
        plan = GatePlan()
        keys = sorted({m.key for m in messages if m.key is not None} | set(wake))
        if not keys:
            return plan
        applied_of = await self._lock(session, keys)
        arrived: dict[str, dict[int, Decoded]] = {}
        for message in messages:
            assert message.key is not None and message.sequence is not None
            if message.sequence > applied_of[message.key]:
                arrived.setdefault(message.key, {}).setdefault(message.sequence, message)
            else:
                plan.stale.append(message)
        moving = [k for k in keys if k in wake or self._may_move(arrived.get(k), applied_of[k])]
        waiting, unsure = await self._parked_from(session, moving) if moving else ({}, False)
        for key in keys:
            applied = applied_of[key]
            here, there = arrived.get(key, {}), waiting.get(key, {})
            for place in sorted(here.keys() | there.keys()):
                found = here.get(place) or there[place]
                if self._predecessor(found) > applied:
                    break  # an earlier message of this consumer's is missing: wait for it
                if isinstance(found, Decoded):
                    plan.ready.append(found)
                else:
                    plan.given_up.append(found)
                applied = place
            if applied != applied_of[key]:
                plan.applied_sequence[key] = applied
                if there or unsure:
                    plan.clear_parked.append(key)
                if self._noted.get(key, applied + 1) <= applied:
                    plan.clear_dead_letter.append(key)
            plan.parked += [m for place, m in here.items() if place > applied]
        return plan

    def _may_move(self, arrived: Mapping[int, Decoded] | None, applied: int) -> bool:
        """Whether a batch's messages of a key may let it move (one of them is next)."""
        return bool(arrived) and any(
            self._predecessor(message) <= applied for message in (arrived or {}).values()
        )

    def _predecessor(self, found: Decoded | Skip) -> int:
        if isinstance(found, Skip):
            return predecessor_of(found.previous, found.sequence, self._subscriptions)
        assert found.sequence is not None
        return found.sequence - 1 if found.predecessor is None else found.predecessor

    async def settle(self, session: AsyncSession, plan: GatePlan) -> None:
        """Record ``plan``: the keys' new applied sequences (a dead letter they moved past
        forgotten), their parked messages now applied removed, the early ones parked."""
        consumer = self._consumer
        keys = self._keys.c
        if plan.applied_sequence:
            # One statement for the batch's keys, not one per key (a CASE of their places).
            moved = list(plan.applied_sequence)
            place = case(plan.applied_sequence, value=keys.message_key)
            await session.execute(
                update(self._keys)
                .where(keys.consumer == consumer, self._store.one_of(keys.message_key, moved))
                .values(applied_sequence=place)
            )
        if plan.clear_dead_letter:
            await session.execute(
                update(self._keys)
                .where(keys.consumer == consumer)
                .where(self._store.one_of(keys.message_key, plan.clear_dead_letter))
                .values(dead_letter_id=None, dead_letter_sequence=None, dead_lettered_at=None)
            )
        if plan.clear_parked:
            parked = self._parked.c
            places = {key: plan.applied_sequence[key] for key in plan.clear_parked}
            await session.execute(
                delete(self._parked)
                .where(parked.consumer == consumer)
                .where(self._store.one_of(parked.message_key, plan.clear_parked))
                .where(parked.key_sequence <= case(places, value=parked.message_key))
            )
        if plan.parked:
            rows = [
                {
                    "consumer": consumer,
                    "message_key": m.key,
                    "key_sequence": m.sequence,
                    "predecessor": self._predecessor(m),
                    "message_id": m.message_id,
                    "event_type": m.event.event_name,
                    "payload": m.event.model_dump(mode="json", by_alias=True),
                    "traceparent": (m.traceparent or None) and m.traceparent[:200],
                }
                for m in plan.parked
            ]
            await session.execute(self._store.insert_ignoring_conflicts(self._parked), rows)

    async def due_keys(self, session: AsyncSession, limit: int) -> list[str]:
        """Up to ``limit`` keys whose next message is parked (its turn has come: a gap
        filled, or a skip recorded, in a transaction that could not follow it at once)."""
        parked, keys = self._parked.c, self._keys.c
        query = (
            select(parked.message_key)
            .join(
                self._keys,
                and_(
                    keys.consumer == parked.consumer,
                    keys.message_key == parked.message_key,
                    parked.key_sequence > keys.applied_sequence,
                    parked.predecessor <= keys.applied_sequence,
                ),
            )
            .where(parked.consumer == self._consumer)
            .group_by(parked.message_key)
            # In no fixed order: keys that cannot move (a parked message unreadable) never
            # hold the others' turn for good.
            .order_by(func.random())
            .limit(limit)
        )
        return list((await session.scalars(query)).all())

    async def resolve_skips(self, session: AsyncSession, limit: int = 1_000) -> int:
        """Work out the predecessor of given-up places recorded without one (by an
        operator's command, which does not know this consumer's event types), so that
        ``due_keys`` can tell when their turn comes. Returns how many were resolved."""
        parked = self._parked.c
        rows = (
            await session.execute(
                select(parked.message_key, parked.key_sequence, parked.payload)
                .where(parked.consumer == self._consumer)
                .where(parked.event_type.is_(None), parked.predecessor.is_(None))
                .limit(limit)
            )
        ).all()
        if not rows:
            return 0
        resolved = [
            {
                "k": key,
                "s": sequence,
                "p": self._predecessor(
                    Skip(key, sequence, payload if isinstance(payload, dict) else None)
                ),
            }
            for key, sequence, payload in rows
        ]
        await session.execute(
            update(self._parked)
            .where(parked.consumer == self._consumer)
            .where(parked.message_key == bindparam("k"), parked.key_sequence == bindparam("s"))
            .values(predecessor=bindparam("p")),
            resolved,
        )
        return len(resolved)

    async def start_waiting_keys(self, session: AsyncSession, waited_seconds: float) -> int:
        """Start the keys this consumer has applied nothing of and whose parked messages
        have waited longer than ``waited_seconds`` (database clock) at the earliest place
        they wait for: the messages before were never going to reach this consumer (its
        queue was bound after them, or they were applied before the key gate kept count).
        Returns how many keys were started; ``due_keys`` then releases their messages."""
        parked, keys = self._parked.c, self._keys.c
        mine = and_(
            parked.consumer == keys.consumer,
            parked.message_key == keys.message_key,
            parked.event_type.is_not(None),
        )
        started = await session.execute(
            update(self._keys)
            .where(keys.consumer == self._consumer, keys.applied_sequence == 0)
            # Not one stopped at its own dead letter: that is the operator's to release.
            .where(keys.dead_letter_id.is_(None))
            .where(
                exists().where(mine, parked.parked_at < db_now_plus(-waited_seconds)),
            )
            .values(
                applied_sequence=select(func.min(parked.predecessor)).where(mine).scalar_subquery()
            )
            .returning(keys.message_key)
        )
        names = list(started.scalars())
        if names:
            logger.warning(
                "keys started where this consumer first met them: the messages before were "
                "not received (a queue bound after them, or applied before keys were kept)",
                extra={"consumer": self._consumer, "keys": len(names),
                       "first": ", ".join(name[:80] for name in names[:5])},
            )  # fmt: skip
        return len(names)

    async def record_dead_letter(
        self, session: AsyncSession, key: str, sequence: int, message_id: uuid.UUID | None
    ) -> None:
        """Note that the message at ``sequence`` of ``key`` was dead-lettered: the key's
        later messages wait parked behind it, and the operator sees why."""
        await self._ensure_keys(session, [key])
        await session.execute(
            update(self._keys)
            .where(self._keys.c.consumer == self._consumer, self._keys.c.message_key == key)
            .where(self._keys.c.applied_sequence < sequence)
            # The earliest one is what the key stops at: a later one does not replace it.
            .where(
                or_(
                    self._keys.c.dead_letter_sequence.is_(None),
                    self._keys.c.dead_letter_sequence >= sequence,
                )
            )
            .values(
                dead_letter_id=message_id,
                dead_letter_sequence=sequence,
                dead_lettered_at=db_now(),
            )
        )

    async def skip(
        self, session: AsyncSession, key: str, places: Mapping[int, GivenUpPlace | None]
    ) -> int:
        """Give up the places of ``key`` in ``places`` (sequence → what is known of its
        dead letter, purged): the key moves past them, applying nothing, when it reaches
        them. Returns how many were recorded (places already passed are not)."""
        applied = (await self._lock(session, [key]))[key]
        chosen = sorted(place for place in places if place > applied)
        if chosen:
            await session.execute(
                delete(self._parked)
                .where(self._parked.c.consumer == self._consumer)
                .where(self._parked.c.message_key == key)
                .where(self._parked.c.key_sequence.in_(chosen))
            )
            known = {place: places[place] or GivenUpPlace() for place in chosen}
            rows = [
                {
                    "consumer": self._consumer,
                    "message_key": key,
                    "key_sequence": place,
                    "predecessor": None,
                    "message_id": given.message_id or uuid.UUID(int=0),
                    "event_type": None,
                    "payload": None if given.previous is None else dict(given.previous),
                }
                for place, given in known.items()
            ]
            await session.execute(self._parked.insert(), rows)
        return len(chosen)

    async def _ensure_keys(self, session: AsyncSession, keys: Sequence[str]) -> None:
        rows = [{"consumer": self._consumer, "message_key": k, "applied_sequence": 0}
                for k in keys]  # fmt: skip
        await session.execute(self._store.insert_ignoring_conflicts(self._keys), rows)

    async def _lock(self, session: AsyncSession, keys: Sequence[str]) -> dict[str, int]:
        """Each key's applied sequence, its row locked until the transaction ends (made,
        at 0, when the key is new), keys in sorted order (the dead letters noted on them
        kept in ``self._noted`` for ``admit``). The rows that exist are locked first and
        only the missing ones inserted: most batches meet keys they met before."""
        found = await self._locked(session, keys)
        missing = sorted(set(keys) - found.keys())
        if missing:
            await self._ensure_keys(session, missing)
            found.update(await self._locked(session, missing))
        self._noted = {key: noted for key, (_, noted) in found.items() if noted is not None}
        return {key: applied for key, (applied, _) in found.items()}

    async def _locked(
        self, session: AsyncSession, keys: Sequence[str]
    ) -> dict[str, tuple[int, int | None]]:
        query = (
            select(
                self._keys.c.message_key,
                self._keys.c.applied_sequence,
                self._keys.c.dead_letter_sequence,
            )
            .where(self._keys.c.consumer == self._consumer)
            .where(self._store.one_of(self._keys.c.message_key, keys))
            .order_by(self._keys.c.message_key)
            .with_for_update()
        )
        return {key: (applied, noted) for key, applied, noted in await session.execute(query)}

    async def _parked_from(
        self, session: AsyncSession, keys: Sequence[str]
    ) -> tuple[dict[str, dict[int, Decoded | Skip]], bool]:
        """The parked messages of ``keys`` after each key's applied sequence, up to
        PARKED_WINDOW of them in all, read back as messages (or skips); and whether the
        window was full (then a key may have parked rows not read)."""
        parked, known = self._parked.c, self._keys.c
        query = (
            select(self._parked)
            .join(
                self._keys,
                and_(known.consumer == parked.consumer, known.message_key == parked.message_key),
            )
            .where(parked.consumer == self._consumer)
            .where(self._store.one_of(parked.message_key, keys))
            .where(parked.key_sequence > known.applied_sequence)
            .order_by(parked.message_key, parked.key_sequence)
            .limit(PARKED_WINDOW)
        )
        found: dict[str, dict[int, Decoded | Skip]] = {}
        stopped: set[str] = set()
        rows = (await session.execute(query)).all()
        for row in rows:
            if row.message_key in stopped:
                continue
            message = self._read_parked(row)
            if message is None:
                # The key stops there: nothing after it may be applied before it.
                stopped.add(row.message_key)
                continue
            found.setdefault(row.message_key, {})[row.key_sequence] = message
        return found, len(rows) >= PARKED_WINDOW

    def _read_parked(self, row: Any) -> Decoded | Skip | None:
        if row.event_type is None:
            previous = row.payload if isinstance(row.payload, dict) else None
            message_id = row.message_id if row.message_id.int else None
            return Skip(row.message_key, row.key_sequence, previous, message_id)
        subscription = self._subscriptions.get(row.event_type)
        try:
            if subscription is None:
                raise LookupError(f"no subscription to {row.event_type!r} any more")
            body = json.dumps(row.payload).encode()
            event = subscription.event.from_body(body, row.message_id)
        except Exception as exc:
            # Parked by an earlier version of this consumer and unreadable by this one: the
            # key stays where it is (a gap the operator is told of), nothing is dropped.
            logger.error(
                "a parked message cannot be read back; its key waits",
                extra={"message_id": str(row.message_id), "key": row.message_key[:200],
                       "sequence": row.key_sequence, "error": repr(exc)[:300]},
            )  # fmt: skip
            return None
        return Decoded(
            row.message_id,
            event,
            row.traceparent,
            row.message_key,
            row.key_sequence,
            row.predecessor,
        )


def parked_count(tables: OutboxTables) -> Any:
    """``count(*)`` of the parked messages (skips left out), for the gauges."""
    return (
        select(func.count())
        .select_from(tables.parked)
        .where(tables.parked.c.event_type.is_not(None))
    )
