"""The operations themselves, shared by the CLI and the admin API: JSON-ready results in,
and every change logged once at WARNING with who made it, what and how many."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox.brokers.base import Broker
from cloudcrm_outbox.brokers.dead_letters import DeadLetterOperationError, DeadLetterSelection
from cloudcrm_outbox.errors import BrokerUnavailableError
from cloudcrm_outbox.inbox.parked import (
    DEFAULT_GAP_ALERT_SECONDS,
    purge_key_dead_letters,
    read_key_status,
)
from cloudcrm_outbox.inbox.parked import waiting_keys as read_waiting_keys
from cloudcrm_outbox.ops.repair import (
    FailedSelection,
    events_about,
    failed_rows,
    inbox_entry,
    latest_inbox_entries,
    replay_failed,
)
from cloudcrm_outbox.ops.republish import PublishedSelection, republish
from cloudcrm_outbox.ops.status import read_status
from cloudcrm_outbox.times import utc_text

logger = logging.getLogger("app.admin")


@dataclass(frozen=True)
class Actor:
    """Who makes a change, for the log: ``cli:<os user>`` or ``api:<client address>``."""

    name: str


def _changed(actor: Actor, action: str, service: str, count: int, **details: Any) -> None:
    logger.warning(
        "operator %s %s of %s: %d",
        actor.name,
        action,
        service,
        count,
        extra={"actor": actor.name, "action": action, "service": service, "count": count,
               **details},
    )  # fmt: skip


# A figure a service adds to its outbox's status, read from its database.
StatusFigure = Callable[[AsyncEngine], Awaitable[object]]
# The figures some service adds; every status shows each of them, None where a service has
# no such figure (``unanswered_orders``: the orders ordering's reply-timeout sweep gave up on).
SERVICE_FIGURES = ("unanswered_orders",)


async def outbox_status(
    engine: AsyncEngine,
    broker: Broker | None,
    service: str,
    *,
    figures: Mapping[str, StatusFigure] | None = None,
    gap_alert_seconds: float = DEFAULT_GAP_ALERT_SECONDS,
) -> dict[str, Any]:
    """The outbox's figures, the service's own ``figures`` (name → reader; each of
    SERVICE_FIGURES it does not give is None), its consumer's keyed figures (``parked``,
    ``waiting_keys``, ``key_gaps``: waiting past ``gap_alert_seconds`` for a message not
    dead-lettered, ``dead_lettered_keys``) and, when the broker is reachable from here,
    the dead-letter queue's depth (and its oldest age, where the broker can tell without
    delivering); None for what cannot be read. Raises ValueError for a figure not in
    SERVICE_FIGURES."""
    status = (await read_status(engine)).as_dict()
    keys = await read_key_status(engine, consumer=service, gap_alert_seconds=gap_alert_seconds)
    status.update(
        parked=keys.parked,
        waiting_keys=keys.waiting_keys,
        key_gaps=keys.gaps,
        dead_lettered_keys=keys.dead_lettered_keys,
    )
    given = dict(figures or {})
    unknown = set(given) - set(SERVICE_FIGURES)
    if unknown:
        raise ValueError(f"no such status figure: {', '.join(sorted(unknown))}")
    for name in SERVICE_FIGURES:
        read = given.get(name)
        status[name] = await read(engine) if read is not None else None
    status["dead_letters"] = None
    status["oldest_dead_letter_age_seconds"] = None
    if broker is not None:
        try:
            summary = await broker.dead_letter_summary(service)
        except BrokerUnavailableError as exc:
            logger.warning("dead letters not counted: %s", exc)
        else:
            status["dead_letters"] = summary.depth
            status["oldest_dead_letter_age_seconds"] = summary.oldest_age_seconds
    return status


async def outbox_failed(
    engine: AsyncEngine, *, event_type: str | None, limit: int
) -> list[dict[str, Any]]:
    """Failed rows, oldest failure first."""
    return [row.as_dict() for row in await failed_rows(engine, event_type=event_type, limit=limit)]


async def outbox_replay(
    engine: AsyncEngine,
    service: str,
    selection: FailedSelection,
    *,
    dry_run: bool,
    actor: Actor,
) -> dict[str, Any]:
    """Failed rows back to pending in one transaction (``dry_run``: only which)."""
    ids = await replay_failed(engine, selection, dry_run=dry_run)
    if ids and not dry_run:
        _changed(actor, "replayed failed outbox rows", service, len(ids),
                 ids=[str(i) for i in ids[:100]])  # fmt: skip
    return {"replayed": len(ids), "ids": [str(i) for i in ids], "dry_run": dry_run}


async def outbox_republish(
    engine: AsyncEngine,
    service: str,
    selection: PublishedSelection,
    *,
    dry_run: bool,
    actor: Actor,
) -> dict[str, Any]:
    """Published rows back to pending in one transaction (``dry_run``: only how many)."""
    count = await republish(engine, selection, dry_run=dry_run)
    if count and not dry_run:
        _changed(actor, "republished outbox rows", service, count,
                 since=utc_text(selection.since) if selection.since else None,
                 until=utc_text(selection.until) if selection.until else None,
                 event_type=selection.event_type, key=selection.message_key)  # fmt: skip
    return {"republished": count, "dry_run": dry_run}


async def outbox_events_of_order(
    engine: AsyncEngine, order_id: uuid.UUID, *, limit: int
) -> list[dict[str, Any]]:
    """The outbox rows about one order (their ids are the messages' ids), oldest first."""
    found = await events_about(engine, field="orderId", value=str(order_id), limit=limit)
    return [event.as_dict() for event in found]


async def dlq_list(broker: Broker, service: str, *, limit: int) -> dict[str, Any]:
    """The dead letters (oldest death first) and how many there are per reason."""
    letters = await broker.dead_letters(service, limit=limit)
    return {
        "dead_letters": [letter.as_dict() for letter in letters],
        "summary": dict(Counter(letter.reason for letter in letters).most_common()),
    }


async def dlq_replay(
    broker: Broker,
    service: str,
    selection: DeadLetterSelection,
    *,
    dry_run: bool,
    actor: Actor,
) -> dict[str, Any]:
    """Republish the selected dead letters to the service's queue (confirmed, then
    removed); ``dry_run``: only which."""
    if dry_run:
        chosen = [
            letter for letter in await broker.dead_letters(service) if selection.matches(letter)
        ]
        return {"replayed": len(chosen), "ids": [letter.message_id for letter in chosen],
                "left": [], "dry_run": True}  # fmt: skip
    try:
        result = await broker.replay_dead_letters(service, selection)
    except DeadLetterOperationError as exc:
        _changed(actor, "replayed dead letters (then the broker failed)", service,
                 len(exc.done), ids=[letter.message_id for letter in exc.done][:100])  # fmt: skip
        raise
    ids = [letter.message_id for letter in result.replayed]
    left = [{"id": letter.message_id, "why": why} for letter, why in result.left]
    if ids or left:
        _changed(actor, "replayed dead letters", service, len(ids), ids=ids[:100],
                 left=len(left))  # fmt: skip
    return {"replayed": len(ids), "ids": ids, "left": left, "dry_run": False,
            **await _afterwards(broker, service, selection, ids)}  # fmt: skip


async def dlq_purge(
    broker: Broker,
    service: str,
    selection: DeadLetterSelection,
    *,
    actor: Actor,
    engine: AsyncEngine | None = None,
) -> dict[str, Any]:
    """Delete the selected dead letters for good. With a message key, the key's places
    they held are given up first in ``service``'s inbox (``engine``'s database, required
    then): its parked messages after them are applied, in order, within a second."""
    released = 0
    try:
        if selection.message_key is None:
            purged = await broker.purge_dead_letters(service, selection)
        else:
            if engine is None:
                raise ValueError("a purge by message key needs the service's database")
            done = await purge_key_dead_letters(
                broker, engine, service=service, selection=selection
            )
            purged, released = done.purged, done.places_given_up
            if released:
                _changed(actor, "gave up a key's places (its dead letters purged)", service,
                         released, key=selection.message_key)  # fmt: skip
    except DeadLetterOperationError as exc:
        _changed(actor, "purged dead letters (then the broker failed)", service,
                 len(exc.done), ids=[letter.message_id for letter in exc.done][:100])  # fmt: skip
        raise
    ids = [letter.message_id for letter in purged]
    if ids:
        _changed(actor, "purged dead letters", service, len(ids), ids=ids[:100],
                 key=selection.message_key)  # fmt: skip
    return {"purged": len(ids), "ids": ids, "released_places": released,
            **await _afterwards(broker, service, selection, ids)}  # fmt: skip


async def _afterwards(
    broker: Broker, service: str, selection: DeadLetterSelection, done: list[str | None]
) -> dict[str, Any]:
    """What the operator should know after a replay or purge: the ids asked for and not
    found, and how many dead letters remain (None when the broker cannot say)."""
    asked = set(selection.message_ids) if selection.message_ids is not None else set()
    try:
        remaining: int | None = (await broker.dead_letter_summary(service)).depth
    except BrokerUnavailableError:  # the work is done; only the count is unknown
        remaining = None
    return {"not_found": sorted(asked - set(done)), "remaining": remaining}


async def inbox_waiting_keys(
    engine: AsyncEngine, service: str, *, key: str | None = None, limit: int
) -> list[dict[str, Any]]:
    """``service``'s consumer's keys with parked messages, waiting longest first."""
    found = await read_waiting_keys(engine, consumer=service, key=key, limit=limit)
    return [waiting.as_dict() for waiting in found]


async def inbox_latest(engine: AsyncEngine, service: str, *, limit: int) -> list[dict[str, Any]]:
    """``service``'s consumer's most recent outcomes, newest first."""
    entries = await latest_inbox_entries(engine, consumer=service, limit=limit)
    return [entry.as_dict() for entry in entries]


async def inbox_show(
    engine: AsyncEngine, service: str, message_id: uuid.UUID
) -> dict[str, Any] | None:
    """What ``service``'s consumer did with ``message_id``; None when it has no row."""
    entry = await inbox_entry(engine, consumer=service, message_id=message_id)
    return None if entry is None else entry.as_dict()
