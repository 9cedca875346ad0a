"""Run services' relays and consumers until what they wrote has been published and applied.

Drained means, read from the databases (and the broker's dead letters): no outbox row the
relay can publish is left unpublished, and every published event a service subscribes to
is in that service's inbox (its handler's transaction committed) or among its dead
letters. Rows no queue is bound to (returned unroutable) and rows the relay gave up on
are not waited for; ``Drained`` counts them, for the test to assert on.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox.brokers.base import Broker
from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames
from cloudcrm_outbox.runtime.in_process import InProcessConfig, MessagingService, in_process
from cloudcrm_outbox.runtime.relay_process import RelayProcessConfig
from cloudcrm_outbox.storage.tables import outbox_tables

# Relays poll often: on SQLite (no LISTEN) the poll is the only wake-up, and a test should
# not wait the production second for each batch.
TEST_CONFIG = InProcessConfig(relay=RelayProcessConfig(poll_interval_seconds=0.05))


@dataclass(frozen=True)
class Drained:
    """Where the outboxes and inboxes stood once drained (counts of rows).

    ``published``: outbox rows published; ``unroutable``: unpublished rows the broker
    returned because no queue is bound to their event; ``failed``: rows the relay gave up
    on; ``applied``: per consuming service, the published events it subscribes to that its
    inbox holds (whatever the handler's outcome); ``dead_lettered``: per consuming service,
    those in its dead-letter queue instead; ``parked``: per consuming service, keyed events
    parked behind an earlier one of their key that is not applied (dead-lettered, or
    missing)."""

    published: int
    unroutable: int
    failed: int
    applied: Mapping[str, int]
    dead_lettered: Mapping[str, int]
    parked: Mapping[str, int] = field(default_factory=dict)


class NotDrainedError(AssertionError):
    """The relays and consumers did not drain within the time given; the message says
    what was still outstanding."""


async def drain(
    broker: Broker,
    services: Sequence[MessagingService],
    *,
    # On expiry the error names what is outstanding, which asyncio.timeout would not.
    timeout: float = 10.0,  # noqa: ASYNC109
    config: InProcessConfig = TEST_CONFIG,
) -> Drained:
    """Run ``services``' relays and consumers on ``broker`` (``in_process``) until drained
    (see the module), then stop them. ``timeout`` in seconds; raises NotDrainedError when
    it passes first, and what ``in_process`` raises (TopologyConflictError)."""
    async with in_process(broker, services, config=config):
        return await wait_drained(services, broker=broker, timeout=timeout)


async def wait_drained(
    services: Sequence[MessagingService],
    *,
    broker: Broker | None = None,
    names: MessagingNames | None = None,
    timeout: float = 10.0,  # noqa: ASYNC109 - as drain's
    poll_seconds: float = 0.05,
) -> Drained:
    """Wait until relays and consumers already running (an application's lifespan with
    ``in_process``) have drained ``services`` (see the module); check every
    ``poll_seconds``, give up after ``timeout`` seconds with NotDrainedError.

    ``broker``: its dead letters count as settled (None: only the inboxes do); ``names``:
    the tables' (default: the broker's, else today's defaults)."""
    names = names or (broker.names if broker is not None else DEFAULT_NAMES)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        state = await _look(services, broker, names)
        if state.settled:
            return state.drained
        if asyncio.get_running_loop().time() >= deadline:
            raise NotDrainedError(f"not drained within {timeout}s: {state.outstanding()}")
        await asyncio.sleep(poll_seconds)


@dataclass(frozen=True)
class _Look:
    drained: Drained
    unpublished: int  # rows the relay can still publish
    missing: Mapping[str, int]  # per consuming service: published, neither applied nor dead

    @property
    def settled(self) -> bool:
        return self.unpublished == 0 and not any(self.missing.values())

    def outstanding(self) -> str:
        waiting = [f"{n} published event(s) not yet in the inbox of {service!r}"
                   for service, n in self.missing.items() if n]  # fmt: skip
        return "; ".join([f"{self.unpublished} outbox row(s) unpublished", *waiting])


@dataclass(frozen=True)
class _Outbox:
    published: dict[uuid.UUID, str]  # id -> event type
    unpublished: int
    unroutable: int
    failed: int


async def _look(
    services: Sequence[MessagingService], broker: Broker | None, names: MessagingNames
) -> _Look:
    # Services may share one engine (one database); each database is read once.
    engines = list({id(service.engine): service.engine for service in services}.values())
    outboxes = [await _outbox(engine, names) for engine in engines]
    published = {mid: kind for outbox in outboxes for mid, kind in outbox.published.items()}
    applied: dict[str, int] = {}
    dead: dict[str, int] = {}
    parked: dict[str, int] = {}
    missing: dict[str, int] = {}
    for service in services:
        if not service.subscriptions:
            continue
        wanted = {s.name for s in service.subscriptions}
        expected = {mid for mid, kind in published.items() if kind in wanted}
        held = expected & await _inbox(service, names)
        lacking = expected - held
        waiting = lacking & await _parked(service, names) if lacking else set()
        lacking -= waiting
        dead_letters = lacking & await _dead_letters(broker, service.name) if lacking else set()
        applied[service.name], dead[service.name] = len(held), len(dead_letters)
        parked[service.name] = len(waiting)
        missing[service.name] = len(lacking - dead_letters)
    drained = Drained(
        published=len(published),
        unroutable=sum(outbox.unroutable for outbox in outboxes),
        failed=sum(outbox.failed for outbox in outboxes),
        applied=applied,
        dead_lettered=dead,
        parked=parked,
    )
    return _Look(drained, sum(outbox.unpublished for outbox in outboxes), missing)


async def _outbox(engine: AsyncEngine, names: MessagingNames) -> _Outbox:
    table = outbox_tables(names).outbox
    query = select(table.c.id, table.c.event_type, table.c.published_at, table.c.failed_at,
                   table.c.unroutable_since)  # fmt: skip
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    pending = [row for row in rows if row.published_at is None and row.failed_at is None]
    returned = sum(1 for row in pending if row.unroutable_since is not None)
    return _Outbox(
        published={row.id: row.event_type for row in rows if row.published_at is not None},
        unpublished=len(pending) - returned,
        unroutable=returned,
        failed=sum(1 for row in rows if row.failed_at is not None),
    )


async def _inbox(service: MessagingService, names: MessagingNames) -> set[uuid.UUID]:
    table = outbox_tables(names).inbox
    query = select(table.c.message_id).where(table.c.consumer == service.name)
    async with service.engine.connect() as connection:
        return set((await connection.execute(query)).scalars())


async def _parked(service: MessagingService, names: MessagingNames) -> set[uuid.UUID]:
    """The messages parked behind a key that is stuck (its earliest parked message waits
    for one not applied): settled, as far as draining goes. A key about to move (its
    earliest parked message's turn has come, or a place given up comes first) is not."""
    tables = outbox_tables(names)
    parked, keys = tables.parked.c, tables.inbox_keys.c
    query = (
        select(parked.message_key, parked.key_sequence, parked.predecessor, parked.event_type,
               parked.message_id, keys.applied_sequence)
        .join(tables.inbox_keys, (keys.consumer == parked.consumer)
              & (keys.message_key == parked.message_key))
        .where(parked.consumer == service.name)
        .order_by(parked.message_key, parked.key_sequence)
    )  # fmt: skip
    async with service.engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    stuck: set[uuid.UUID] = set()
    first_of: dict[str, bool] = {}
    for key, _, predecessor, event_type, message_id, applied in rows:
        if key not in first_of:
            first_of[key] = event_type is not None and predecessor > applied
        if first_of[key] and event_type is not None:
            stuck.add(message_id)
    return stuck


async def _dead_letters(broker: Broker | None, service: str) -> set[uuid.UUID]:
    # Listed only when something is missing and the queue holds any: on RabbitMQ every
    # look at a dead letter counts as a delivery.
    if broker is None or not (await broker.dead_letter_summary(service)).depth:
        return set()
    return {
        mid for letter in await broker.dead_letters(service) if (mid := _uuid(letter.message_id))
    }


def _uuid(text: str | None) -> uuid.UUID | None:
    """A dead letter's message id, None when it has none or one no outbox wrote."""
    try:
        return uuid.UUID(text) if text is not None else None
    except ValueError:
        return None
