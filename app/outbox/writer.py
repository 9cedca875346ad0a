"""Publishing an event = adding an outbox row to the caller's session (the
caller commits both, or neither)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from cloudcrm_outbox.events import VERSION_HEADER, IntegrationEvent
from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames
from cloudcrm_outbox.observability.tracing import current_traceparent, traceparent_of_cause
from cloudcrm_outbox.storage.store import NewOutboxRow, store_for
from cloudcrm_outbox.storage.tables import MAX_KEY_LENGTH, OutboxRow, outbox_tables

# AMQP's short strings (the routing key, correlation_id) hold at most 255 bytes; the
# outbox's event_type column 200 characters.
_SHORT_STRING_BYTES = 255
_EVENT_NAME_LENGTH = 200


def _check_publishable(
    event: IntegrationEvent, correlation_id: str | None, *, keyed: bool = False
) -> None:
    """ValueError (TypeError for a non-str) for what no broker could take, before anything
    is staged: a row that can never be published would only fail hours later. ``keyed``:
    its routing key is the name and a partition (``.p63`` at most), which must fit too."""
    name = event.event_name
    if not isinstance(name, str) or not 1 <= len(name) <= _EVENT_NAME_LENGTH:
        raise ValueError(f"an event_name has 1 to {_EVENT_NAME_LENGTH} characters: {name!r:.80}")
    room = _SHORT_STRING_BYTES - (len(".p63") if keyed else 0)
    if len(name.encode()) > room:
        raise ValueError(
            f"an event_name takes at most {room} bytes (AMQP"
            + ("; keyed: the routing key adds its partition)" if keyed else ")")
        )
    if correlation_id is None:
        return
    if not isinstance(correlation_id, str):
        raise TypeError(f"a correlation_id is a str, not {type(correlation_id).__name__}")
    if len(correlation_id.encode()) > _SHORT_STRING_BYTES:
        raise ValueError(f"a correlation_id takes at most {_SHORT_STRING_BYTES} bytes (AMQP)")


def _headers(
    event: IntegrationEvent,
    correlation_id: str | None,
    traceparent: str | None,
    *,
    keyed: bool = False,
) -> dict[str, str]:
    _check_publishable(event, correlation_id, keyed=keyed)
    headers: dict[str, str] = {VERSION_HEADER: str(event.event_version)}
    if correlation_id is not None:
        headers["correlation_id"] = correlation_id
    if traceparent is not None:
        headers["traceparent"] = traceparent
    return headers


def message_key(event: IntegrationEvent, key: str | None = None) -> str | None:
    """The message key ``event`` is written under: ``key`` when given, else the value of
    the event's ``key_field`` as text, else None (unkeyed).

    A key is 1 to ``MAX_KEY_LENGTH`` (200) characters of valid Unicode without control
    characters (it travels as an AMQP header and shows in logs and pages); ValueError
    otherwise, and
    TypeError for a ``key`` that is not a str."""
    if key is None:
        if event.key_field is None:
            return None
        value = getattr(event, event.key_field)
        if value is None:
            return None
        key = str(value)
    elif not isinstance(key, str):
        raise TypeError(f"a message key is a str, not {type(key).__name__}")
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise ValueError(f"a message key has 1 to {MAX_KEY_LENGTH} characters, not {len(key)}")
    if any(ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F for char in key):
        raise ValueError(f"a message key holds no control characters: {key!r:.80}")
    try:
        key.encode()
    except UnicodeEncodeError:  # a lone surrogate: no database or broker can take it
        raise ValueError(f"a message key is valid Unicode text: {key!r:.80}") from None
    return key


def add_event(
    session: AsyncSession,
    event: IntegrationEvent,
    *,
    key: str | None = None,
    correlation_id: str | None = None,
    traceparent: str | None = None,
    names: MessagingNames = DEFAULT_NAMES,
) -> OutboxRow:
    """Stage ``event`` in the caller's transaction; it is published only if that commits.

    No I/O and no flush here: the row is written by the caller's commit, on the caller's
    connection, so the event and the state change are one atomic write. ``key`` (or the
    event's ``key_field``, see ``message_key``) keys the event: the events of one key are
    published and applied in the order their transactions committed (the database numbers
    them at insert). ``names`` picks the outbox table; ``traceparent`` defaults to the
    current trace context (so an event written while serving a traced request continues
    its trace). Returns the staged row (``.id`` is the message id). Raises ValueError or
    TypeError for a bad key (``message_key``).
    """
    if traceparent is None:
        traceparent = current_traceparent()
    chosen = message_key(event, key)
    row = outbox_tables(names).row(
        id=event.event_id,
        event_type=event.event_name,
        payload=event.body(),
        headers=_headers(event, correlation_id, traceparent, keyed=chosen is not None),
        attempts=0,
        message_key=chosen,
    )
    session.add(row)
    return row


# PostgreSQL: the whole batch as five array parameters, so the statement text is the same
# for any number of events and is prepared once; sent in binary (%b), so no element is
# escaped into array text.
async def write_events(
    session: AsyncSession,
    events: Sequence[IntegrationEvent],
    *,
    names: MessagingNames = DEFAULT_NAMES,
    caused_by: Sequence[IntegrationEvent] | None = None,
    keys: Sequence[str | None] | None = None,
) -> None:
    """Write many events' outbox rows at once, in the caller's transaction (a consumer's
    handler replying to a batch). Same atomicity as ``add_event``; the INSERT runs now,
    as one statement, instead of one ORM object per event at flush. ``caused_by[i]``: the
    incoming event ``events[i]`` answers, whose trace it continues; ``keys[i]``: the key of
    ``events[i]`` (None: its ``key_field``'s, see ``message_key``). Events of one key are
    numbered in the order given; rows are inserted keys first, in key order (a stable sort:
    each key's own order kept), so two writers of the same keys lock their counters in the
    same order instead of deadlocking. ValueError when a list's length differs from
    ``events``' or a key is bad; TypeError when ``keys`` is a str."""
    if not events:
        return
    if caused_by is not None and len(caused_by) != len(events):
        raise ValueError(f"{len(events)} events but {len(caused_by)} causes")
    if isinstance(keys, str):
        raise TypeError("keys is a sequence of keys, one per event, not a str")
    if keys is not None and len(keys) != len(events):
        raise ValueError(f"{len(events)} events but {len(keys)} keys")
    given = keys if keys is not None else [None] * len(events)
    chosen = [message_key(event, key) for event, key in zip(events, given, strict=True)]
    current = current_traceparent()
    traces = [
        traceparent_of_cause(cause.event_id) or current for cause in caused_by
    ] if caused_by is not None else [current] * len(events)  # fmt: skip
    table = outbox_tables(names).outbox
    connection = await session.connection()
    rows = [
        NewOutboxRow(
            event.event_id,
            event.event_name,
            event.body(),
            _headers(event, None, trace, keyed=key is not None),
            key,
        )
        for event, trace, key in zip(events, traces, chosen, strict=True)
    ]
    rows.sort(key=lambda row: (row.message_key is None, row.message_key or ""))
    await store_for(connection.dialect).insert_outbox_rows(connection, table, rows)
