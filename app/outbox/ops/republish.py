"""Published rows back to pending: the repair for messages the broker lost after it had
confirmed them (a queue deleted and declared again, a broker restored from a backup).

Safe to over-select: every copy keeps its row's id as the AMQP ``message_id``, so a
consumer whose inbox still holds that id skips it (docs/operate.md). Not safe
beyond the consumers' inbox retention: a copy of a message the inbox has forgotten is
applied again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Table, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import Update

from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames
from cloudcrm_outbox.ops.repair import restarted
from cloudcrm_outbox.storage.store import store_for
from cloudcrm_outbox.storage.tables import outbox_tables
from cloudcrm_outbox.times import utc_text


@dataclass(frozen=True)
class PublishedSelection:
    """Rows published at or after ``since`` and before ``until`` (aware datetimes; None:
    no bound), of ``event_type`` and of message key ``message_key`` when given. ValueError
    when neither ``since`` nor ``message_key`` is given (every row ever published is
    never what an operator means)."""

    since: datetime | None = None
    until: datetime | None = None
    event_type: str | None = None
    message_key: str | None = None

    def __post_init__(self) -> None:
        if self.since is None and self.message_key is None:
            raise ValueError("give since, or a message key")
        for moment in (self.since, self.until):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("since and until must carry a time zone")
        if self.until is not None and self.since is not None and self.until <= self.since:
            raise ValueError(f"until ({utc_text(self.until)}) is not after since")
        # As UTC: SQLite keeps timestamps as zone-less UTC text and would compare the wall
        # clock of another offset (PostgreSQL converts by itself).
        if self.since is not None:
            object.__setattr__(self, "since", self.since.astimezone(UTC))
        if self.until is not None:
            object.__setattr__(self, "until", self.until.astimezone(UTC))


async def republish(
    engine: AsyncEngine,
    selection: PublishedSelection,
    *,
    dry_run: bool = False,
    names: MessagingNames = DEFAULT_NAMES,
) -> int:
    """Put the selected published rows back to pending (attempts 0, due now), in one
    transaction, through the ``published_at`` index (a key alone reads the published rows
    the outbox retains); returns how many. ``dry_run``: only count them. A key's rows are
    published again in their key's order, and the consumers' inboxes skip what they
    applied: what heals a key's gap."""
    outbox = outbox_tables(names).outbox
    store = store_for(engine.dialect)
    # Compared as the database clock stores them (to the millisecond): --since a shown time
    # keeps the row published at that very millisecond.
    conditions: list[ColumnElement[bool]] = []
    if selection.since is not None:
        published, since = store.timestamp_bound(outbox.c.published_at, selection.since)
        conditions.append(published >= since)
    if selection.message_key is not None:
        conditions.append(outbox.c.message_key == selection.message_key)
    if selection.until is not None:
        published, until = store.timestamp_bound(outbox.c.published_at, selection.until)
        conditions.append(published < until)
    if selection.event_type is not None:
        conditions.append(outbox.c.event_type == selection.event_type)
    where = and_(*conditions)
    async with engine.begin() as connection:
        if dry_run:
            return int((await connection.execute(select(func.count()).where(where))).scalar_one())
        return int((await connection.execute(back_to_pending(outbox, where))).rowcount)


def back_to_pending(outbox: Table, where: ColumnElement[bool]) -> Update:
    """``UPDATE`` the published rows of ``outbox`` matching ``where`` back to pending
    (``repair.restarted``); their ids, and so their message ids, unchanged."""
    return (
        update(outbox)
        .where(where, outbox.c.published_at.is_not(None))
        .values(published_at=None, **restarted())
    )
