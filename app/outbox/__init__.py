"""Service-agnostic transactional outbox and inbox. Imports no service (ARCHITECTURE.md)."""

from importlib.metadata import PackageNotFoundError, version

from app.outbox.events import IntegrationEvent
from app.outbox.models import InboxMessage, OutboxMessage, outbox_metadata
from app.outbox.writer import add_event, write_events

try:
    __version__ = version("cloudcrm-outbox")  # the one place: pyproject.toml
except PackageNotFoundError:  # pragma: no cover - run from a source tree, not installed
    __version__ = "0+unknown"

__all__ = [
    "InboxMessage",
    "IntegrationEvent",
    "OutboxMessage",
    "add_event",
    "outbox_metadata",
    "write_events",
]
