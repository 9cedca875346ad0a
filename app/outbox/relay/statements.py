"""The relay's SQL for one outbox table (the claim and the marks, built once per relay), and
the claimed rows as messages."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Select,
    Table,
    Text,
    bindparam,
    case,
    cast,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.dml import ReturningUpdate, Update

from cloudcrm_outbox.brokers.publisher import NACKED_PREFIX, OutgoingMessage
from cloudcrm_outbox.events import KEY_HEADER, PREVIOUS_HEADER, SEQUENCE_HEADER
from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames
from cloudcrm_outbox.storage.clock import db_now_plus


def claim_statement(outbox: Table, batch_size: int) -> Select[Any]:
    """The oldest due pending rows, at most ``batch_size``, locked (SKIP LOCKED).

    A keyed row is claimed only when no earlier row of its key is unpublished (pending,
    being published by another relay, waiting for its retry, or failed; but not one the
    broker returned unroutable, which no consumer waits for): so a key's rows
    go out one at a time, each after the one before it was confirmed and marked, and a
    batch holds at most one row per key. Rows of other keys, and unkeyed rows, are not
    held. A relay killed mid-batch rolls back: its rows, the earliest of their keys,
    are claimed again before any later one."""
    earlier = outbox.alias("earlier")
    no_earlier_unpublished = ~exists().where(
        earlier.c.message_key == outbox.c.message_key,
        earlier.c.key_sequence < outbox.c.key_sequence,
        earlier.c.published_at.is_(None),
        # Returned unroutable: no queue is bound to its event, so no consumer can be
        # waiting for it; the key's later rows go on (each consumer waits only for the
        # earlier messages of the types it reads, x-key-previous). If a queue is bound
        # later, the row is published then, and that consumer applies it first.
        earlier.c.unroutable_since.is_(None),
    )
    return (
        select(
            outbox.c.id,
            outbox.c.event_type,
            # The JSON text as stored: published as-is, not parsed and re-serialised.
            cast(outbox.c.payload, Text).label("body"),
            # As text too, read by outgoing_messages: a row whose JSON the driver could
            # not read (nested deeper than Python recurses) failed the whole claim.
            cast(outbox.c.headers, Text).label("headers"),
            outbox.c.created_at,
            outbox.c.attempts,
            outbox.c.next_attempt_at,
            outbox.c.unroutable_since,
            # Nacked at its last attempt (see retry_later): its next nack waits longer.
            outbox.c.last_error.like(f"{NACKED_PREFIX}%").label("nacked_before"),
            outbox.c.message_key,
            outbox.c.key_sequence,
            cast(outbox.c.key_previous, Text).label("key_previous"),
        )
        .where(
            outbox.c.published_at.is_(None),
            outbox.c.failed_at.is_(None),
            outbox.c.next_attempt_at <= db_now_plus(0),
            or_(outbox.c.message_key.is_(None), no_earlier_unpublished),
        )
        .order_by(outbox.c.next_attempt_at)
        .limit(batch_size)
        # SKIP LOCKED: rows another relay is publishing are not waited for, just skipped.
        .with_for_update(skip_locked=True)
    )


@dataclass(frozen=True)
class RelayStatements:
    """The claim, and the marks for confirmed, rejected, nacked and unroutable rows.

    ``mark_published_pg`` is ``mark_published`` as the relay sends it on PostgreSQL, with
    COMMIT in the same message: one uuid[] parameter (one array literal, bound by psycopg's
    client-side cursor), whatever the batch size.
    """

    claim: Select[Any]
    mark_published: Update
    mark_published_pg: str
    reject: ReturningUpdate[Any]
    unroutable: ReturningUpdate[Any]
    unroutable_give_up: ReturningUpdate[Any]
    retry_later: Update

    def claim_sql(self, dialect: Dialect) -> str:
        """The claim as SQL text, its parameters inlined (they are constants)."""
        compiled = self.claim.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        return str(compiled)


def relay_statements(outbox: Table, *, batch_size: int, max_attempts: int) -> RelayStatements:
    """The relay's statements on ``outbox``."""
    return RelayStatements(
        claim=claim_statement(outbox, batch_size),
        mark_published=(
            update(outbox)
            .where(outbox.c.id.in_(bindparam("ids", expanding=True)))
            .values(published_at=db_now_plus(0), last_error=None)
        ),
        mark_published_pg=(
            f"UPDATE {outbox.name} SET published_at = statement_timestamp(), last_error = NULL "
            "WHERE id = ANY(%(ids)s)"
        ),
        reject=_record_rejection(outbox, max_attempts),
        unroutable=_record_unroutable(outbox, give_up=False),
        unroutable_give_up=_record_unroutable(outbox, give_up=True),
        # A nacked row: not its fault (see PublishResult), so no attempt is counted; it
        # was routed (a queue nacked it), so it is no longer unroutable.
        retry_later=(
            update(outbox)
            .where(outbox.c.id == bindparam("row_id"))
            .values(
                last_error=bindparam("error"),
                next_attempt_at=db_now_plus(bindparam("delay")),
                unroutable_since=None,
            )
        ),
    )


def _record_rejection(outbox: Table, max_attempts: int) -> ReturningUpdate[Any]:
    attempts = outbox.c.attempts + 1
    return (
        update(outbox)
        .where(outbox.c.id == bindparam("row_id"))
        .values(
            attempts=attempts,
            last_error=bindparam("error"),
            next_attempt_at=db_now_plus(bindparam("delay")),
            failed_at=case((attempts >= max_attempts, db_now_plus(0)), else_=None),
            unroutable_since=None,
        )
        .returning(outbox.c.failed_at)
    )


def _record_unroutable(outbox: Table, *, give_up: bool) -> ReturningUpdate[Any]:
    # ``unroutable_since`` keeps the first NO_ROUTE (on the database clock); attempts are
    # not counted, since no attempt of the row's own failed.
    return (
        update(outbox)
        .where(outbox.c.id == bindparam("row_id"))
        .values(
            unroutable_since=func.coalesce(outbox.c.unroutable_since, db_now_plus(0)),
            last_error=bindparam("error"),
            next_attempt_at=db_now_plus(bindparam("delay")),
            failed_at=db_now_plus(0) if give_up else None,
        )
        .returning(outbox.c.failed_at)
    )


def outgoing_messages(
    rows: Sequence[Any], names: MessagingNames = DEFAULT_NAMES
) -> tuple[list[OutgoingMessage], dict[uuid.UUID, str]]:
    """The rows as messages (routed as ``names.routing_key`` says), and the reasons of
    those that cannot be read as one (a row is data: one written by hand or by another
    version must fail alone)."""
    messages: list[OutgoingMessage] = []
    unreadable: dict[uuid.UUID, str] = {}
    for row in rows:
        headers = _headers(row.headers)
        if isinstance(headers, _Unreadable):
            unreadable[row.id] = f"unpublishable: headers unreadable: {headers.why}"
        elif not isinstance(headers, dict) or not all(isinstance(k, str) for k in headers):
            unreadable[row.id] = f"unpublishable: headers are not a JSON object: {headers!r:.200}"
        elif row.body is None:
            unreadable[row.id] = "unpublishable: the row has no payload"
        else:
            if row.message_key is not None:
                # The columns, not what the writer's headers may say: the key's order is
                # the database's numbering.
                headers[KEY_HEADER] = row.message_key
                headers[SEQUENCE_HEADER] = row.key_sequence
                previous = previous_by_type(row.key_previous, row.key_sequence)
                if previous is not None:
                    headers[PREVIOUS_HEADER] = previous
            messages.append(
                OutgoingMessage(
                    message_id=row.id,
                    event_type=row.event_type,
                    body=row.body.encode(),
                    headers=headers,
                    created_at=row.created_at,
                    routing_key=names.routing_key(row.event_type, row.message_key),
                )
            )
    return messages, unreadable


def previous_by_type(stored: str | None, sequence: int) -> dict[str, int] | None:
    """The ``x-key-previous`` table from a row's ``key_previous`` map (its JSON text,
    ``{type: [last, the one before]}``, as the row was numbered): each type's last
    sequence before ``sequence``. None when the row has no map (numbered before there was
    one): the consumer then waits for every earlier sequence, as it did."""
    if stored is None:
        return None
    previous: dict[str, int] = {}
    try:
        for event_type, places in json.loads(stored).items():
            last, before = places[0], places[1]
            place = before if last == sequence else last
            if place is not None:
                previous[str(event_type)] = int(place)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None  # not the trigger's map: the consumer waits for every earlier one
    return previous


@dataclass(frozen=True)
class _Unreadable:
    why: str


def _headers(text: str | None) -> Any:
    """A row's headers from their JSON text ({} for none: JSON null, as SQLAlchemy's JSON
    type stores None), or why they cannot be read."""
    if text is None:
        return {}
    try:
        headers = json.loads(text)
    except RecursionError:
        return _Unreadable("nested too deeply")
    except ValueError as exc:  # not JSON: only a hand-made row (the column is json)
        return _Unreadable(f"{exc}"[:200])
    return {} if headers is None else headers
