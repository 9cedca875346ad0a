"""Keys that wait: what the operator sees of them, what releases them, and the watch that
applies parked messages whose turn came and reports gaps that last.

A key waits when a message of it is parked (it came before its turn). Usually an earlier
one is only late and the wait is milliseconds. It is a **gap** when the key has waited
longer than the gap alert (``INBOX_GAP_ALERT_SECONDS``) for a message that has not come
and was not dead-lettered: the producer's ``outbox republish --key K`` sends the key's
messages again, and the inbox makes that harmless. It **stops at a dead letter** when the
message it waits for was dead-lettered: ``dlq replay --key K`` applies it and the rest in
order, ``dlq purge --key K --yes`` gives it up and releases the rest.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Select, and_, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox.backoff import sleep_unless
from cloudcrm_outbox.brokers.base import Broker
from cloudcrm_outbox.brokers.dead_letters import DeadLetter, DeadLetterSelection
from cloudcrm_outbox.inbox.key_gate import GivenUpPlace, KeyGate
from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames
from cloudcrm_outbox.observability.metrics import INBOX_KEY_GAPS, INBOX_PARKED, INBOX_PROCESSED
from cloudcrm_outbox.storage.clock import db_now_plus
from cloudcrm_outbox.storage.engine import make_sessionmaker
from cloudcrm_outbox.storage.store import store_for
from cloudcrm_outbox.storage.tables import outbox_tables
from cloudcrm_outbox.times import as_utc, utc_text

logger = library_logger("cloudcrm_outbox.inbox")

DEFAULT_GAP_ALERT_SECONDS = 60.0


@dataclass(frozen=True)
class WaitingKey:
    """One key with parked messages: the ``consumer`` whose, the last sequence it applied
    (``applied_sequence``), the ``next_sequence`` it waits for, how many are ``parked``,
    for how long (``waiting_seconds``, from the oldest), and the dead letter it stops at
    (None: a gap, or only late)."""

    consumer: str
    key: str
    applied_sequence: int
    next_sequence: int
    parked: int
    waiting_seconds: float
    dead_letter_id: uuid.UUID | None
    dead_lettered_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return {
            **asdict(self),
            "dead_letter_id": str(self.dead_letter_id) if self.dead_letter_id else None,
            "dead_lettered_at": utc_text(self.dead_lettered_at) if self.dead_lettered_at else None,
        }


@dataclass(frozen=True)
class KeyStatus:
    """The inbox's keyed figures: ``parked`` messages, ``waiting_keys`` (keys with some),
    ``gaps`` (keys waiting past ``gap_alert_seconds`` for a message not dead-lettered),
    ``dead_lettered_keys`` (keys stopped at a dead letter)."""

    parked: int
    waiting_keys: int
    gaps: int
    dead_lettered_keys: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _waiting_per_key(
    names: MessagingNames, consumer: str | None, key: str | None = None
) -> Select[Any]:
    """One row per key with parked messages (of ``consumer``, or ``key``, when given):
    consumer, key, applied sequence, the earliest predecessor waited for, parked count,
    the oldest parked time, and the dead letter noted on the key."""
    tables = outbox_tables(names)
    parked, keys = tables.parked.c, tables.inbox_keys.c
    query = (
        select(
            parked.consumer,
            parked.message_key,
            keys.applied_sequence,
            func.min(parked.predecessor).label("waits_for"),
            func.count(parked.event_type).label("parked"),
            func.min(parked.parked_at).label("oldest"),
            keys.dead_letter_id,
            keys.dead_lettered_at,
        )
        .join(
            tables.inbox_keys,
            and_(keys.consumer == parked.consumer, keys.message_key == parked.message_key),
        )
        .group_by(
            parked.consumer,
            parked.message_key,
            keys.applied_sequence,
            keys.dead_letter_id,
            keys.dead_lettered_at,
        )
        .having(func.count(parked.event_type) > 0)
    )
    if consumer is not None:
        query = query.where(parked.consumer == consumer)
    if key is not None:
        query = query.where(parked.message_key == key)
    return query


async def waiting_keys(
    engine: AsyncEngine,
    *,
    names: MessagingNames = DEFAULT_NAMES,
    consumer: str | None = None,
    key: str | None = None,
    limit: int = 100,
) -> list[WaitingKey]:
    """The keys with parked messages (of ``consumer``, or ``key``, when given), those
    waiting longest first, at most ``limit``; ages on the database clock."""
    waiting = _waiting_per_key(names, consumer, key).subquery()
    query = select(waiting, db_now_plus(0).label("now")).order_by(waiting.c.oldest).limit(limit)
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [
        WaitingKey(
            consumer=row.consumer,
            key=row.message_key,
            applied_sequence=row.applied_sequence,
            # The parked messages' earliest predecessor: the message missing.
            next_sequence=row.waits_for if row.waits_for is not None else row.applied_sequence + 1,
            parked=row.parked,
            waiting_seconds=round(
                max((as_utc(row.now) - as_utc(row.oldest)).total_seconds(), 0), 3
            ),
            dead_letter_id=row.dead_letter_id,
            dead_lettered_at=as_utc(row.dead_lettered_at) if row.dead_lettered_at else None,
        )
        for row in rows
    ]


async def read_key_status(
    engine: AsyncEngine,
    *,
    names: MessagingNames = DEFAULT_NAMES,
    consumer: str | None = None,
    gap_alert_seconds: float = DEFAULT_GAP_ALERT_SECONDS,
) -> KeyStatus:
    """The figures of ``KeyStatus`` (of ``consumer``'s keys, when given), counted by the
    database (one row per waiting key is grouped there, none comes back)."""
    waiting = _waiting_per_key(names, consumer).subquery()
    late = and_(
        waiting.c.dead_letter_id.is_(None), waiting.c.oldest < db_now_plus(-gap_alert_seconds)
    )
    figures = select(
        func.coalesce(func.sum(waiting.c.parked), 0),
        func.count(),
        func.count().filter(late),
        func.count(waiting.c.dead_letter_id),
    )
    async with engine.connect() as connection:
        parked_count, waiting_count, gaps, dead = (await connection.execute(figures)).one()
    return KeyStatus(
        parked=int(parked_count),
        waiting_keys=int(waiting_count),
        gaps=int(gaps),
        dead_lettered_keys=int(dead),
    )


async def skip_places(
    engine: AsyncEngine,
    *,
    consumer: str,
    key: str,
    places: Mapping[int, GivenUpPlace | None],
    names: MessagingNames = DEFAULT_NAMES,
) -> int:
    """Give up the places of ``key`` for ``consumer`` in ``places`` (sequence → what is
    known of its dead letter: its ``x-key-previous`` table and message id; None: nothing):
    the consumer moves the key past them, records their messages in its inbox as
    ``given_up`` (a copy replayed later is skipped), and applies the key's parked
    messages after them, in order, within a second. Returns the places recorded (those
    the key has not passed yet)."""
    gate = KeyGate(store_for(engine.dialect), outbox_tables(names), consumer, {})
    async with make_sessionmaker(engine)() as session, session.begin():
        return await gate.skip(session, key, places)


@dataclass(frozen=True)
class KeyPurge:
    """What ``purge_key_dead_letters`` did: the dead letters ``purged``, and how many of
    the key's places it gave up in the inbox (``places_given_up``)."""

    purged: list[DeadLetter]
    places_given_up: int


async def purge_key_dead_letters(
    broker: Broker,
    engine: AsyncEngine,
    *,
    service: str,
    selection: DeadLetterSelection,
    consumer: str | None = None,
    names: MessagingNames = DEFAULT_NAMES,
) -> KeyPurge:
    """Purge the dead letters of one message key from ``service``'s dead-letter queue and
    give up their places in its inbox (``engine``'s database; the consumer's name,
    ``consumer``, is the service's by default), so that the consumer applies the key's
    parked messages after them, in order (``skip_places``). The places are given up
    first: a purge that fails half-way leaves dead letters whose copies the inbox then
    skips, never a key waiting for good. ValueError when ``selection`` names no key;
    the broker's errors as ``Broker.purge_dead_letters`` raises them."""
    key = selection.message_key
    if key is None:
        raise ValueError("a purge by key needs selection.message_key")
    chosen = [letter for letter in await broker.dead_letters(service) if selection.matches(letter)]
    places = {
        letter.key_sequence: GivenUpPlace(letter.key_previous, _uuid(letter.message_id))
        for letter in chosen
        if letter.key_sequence is not None
    }
    given_up = await skip_places(
        engine, consumer=consumer or service, key=key, places=places, names=names
    )
    # Only those listed, whose places were given up: one dead-lettered meanwhile stays,
    # for the next purge (or replay) to find with its place.
    listed = [letter.message_id for letter in chosen if letter.message_id is not None]
    if not listed:
        return KeyPurge([], given_up)
    exactly = DeadLetterSelection(listed, selection.reason, key)
    purged = await broker.purge_dead_letters(service, exactly)
    return KeyPurge(purged, given_up)


def _uuid(text: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None


class ParkedReleaser(Protocol):
    """What the watch drives (``InboxProcessor``)."""

    async def release_parked(self, limit: int = 100) -> dict[uuid.UUID, str]: ...

    async def start_waiting_keys(self, waited_seconds: float) -> int: ...


async def watch_parked(
    processor: ParkedReleaser,
    engine: AsyncEngine,
    stop: asyncio.Event,
    *,
    consumer: str,
    names: MessagingNames = DEFAULT_NAMES,
    interval_seconds: float = 1.0,
    gap_alert_seconds: float = DEFAULT_GAP_ALERT_SECONDS,
    start_keys_after_seconds: float | None = None,
) -> None:
    """Until ``stop``: every ``interval_seconds``, apply the parked messages whose turn has
    come; every ``gap_alert_seconds`` / 4 (at least the interval), set the gauges
    ``inbox_parked_messages`` and ``inbox_key_gaps`` and log a warning naming the keys
    whose gap is older than ``gap_alert_seconds``; with ``start_keys_after_seconds``,
    start the keys met mid-way that waited that long (``KeyGate.start_waiting_keys``).
    A database error is logged and tried again next time: the watch never ends the
    consumer."""
    report_every = max(interval_seconds, gap_alert_seconds / 4)
    next_report = 0.0
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            while (released := await processor.release_parked()) and not stop.is_set():
                for outcome in released.values():
                    INBOX_PROCESSED.labels(consumer, outcome).inc()
            if loop.time() >= next_report:
                next_report = loop.time() + report_every
                after = start_keys_after_seconds
                if after is not None and await processor.start_waiting_keys(after):
                    continue  # release what they hold first, then report
                await _report(engine, consumer, names, gap_alert_seconds)
        except Exception as exc:  # the database away: the consumer says so; retry later
            logger.warning("parked messages could not be checked", extra={"error": repr(exc)[:300]})
        await sleep_unless(stop, interval_seconds)


async def _report(
    engine: AsyncEngine, consumer: str, names: MessagingNames, gap_alert_seconds: float
) -> None:
    status = await read_key_status(
        engine, names=names, consumer=consumer, gap_alert_seconds=gap_alert_seconds
    )
    INBOX_PARKED.labels(consumer).set(status.parked)
    INBOX_KEY_GAPS.labels(consumer).set(status.gaps)
    if status.gaps:
        # The longest waiting first: the log names a few, the gauge counts them all.
        waiting = await waiting_keys(engine, names=names, consumer=consumer, limit=50)
        gaps = [k for k in waiting
                if k.dead_letter_id is None and k.waiting_seconds > gap_alert_seconds]  # fmt: skip
        logger.warning(
            "keys wait for a message that has not come (one that `message failed` errors "
            "name is being retried until its delivery limit; any other was lost: republish "
            "the key from the producer's outbox)",
            extra={
                "consumer": consumer,
                "gaps": status.gaps,
                "keys": ", ".join(f"{k.key[:80]}@{k.next_sequence}" for k in gaps[:5]),
                "longest_s": max((k.waiting_seconds for k in gaps), default=None),
            },
        )
