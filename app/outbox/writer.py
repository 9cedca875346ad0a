"""Publishing an event = adding an outbox row to the caller's session (STYLE rule 3)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.outbox.events import IntegrationEvent
from app.outbox.models import OutboxMessage


def add_event(
    session: AsyncSession,
    event: IntegrationEvent,
    *,
    correlation_id: str | None = None,
    traceparent: str | None = None,
) -> OutboxMessage:
    """Stage ``event`` in the caller's transaction; it is published only if that commits.

    No I/O and no flush here: the row is written by the caller's commit, on the caller's
    connection, so the event and the state change are one atomic write.
    """
    headers: dict[str, str] = {"event_version": str(event.event_version)}
    if correlation_id is not None:
        headers["correlation_id"] = correlation_id
    if traceparent is not None:
        headers["traceparent"] = traceparent
    row = OutboxMessage(
        id=event.event_id,
        event_type=event.event_name,
        payload=event.body(),
        headers=headers,
        attempts=0,
    )
    session.add(row)
    return row
