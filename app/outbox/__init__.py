"""Service-agnostic transactional outbox and inbox. Imports no service (ARCHITECTURE.md)."""

from app.outbox.events import IntegrationEvent
from app.outbox.models import InboxMessage, OutboxMessage, outbox_metadata
from app.outbox.writer import add_event, write_events

__all__ = [
    "InboxMessage",
    "IntegrationEvent",
    "OutboxMessage",
    "add_event",
    "outbox_metadata",
    "write_events",
]
