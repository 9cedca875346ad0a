"""A transactional outbox and inbox for FastAPI + SQLAlchemy services (PostgreSQL or
SQLite; RabbitMQ or an embedded broker). It imports nothing else of ``app/``.

What a service needs, from here alone (see docs/outbox.md):

- publish: ``IntegrationEvent`` contracts, ``add_event`` / ``write_events`` in your own
  transaction, the ``outbox_metadata`` tables in your database (``app.outbox.migrations``
  for Alembic);
- name: ``MessagingNames`` (exchange, queue pattern, tables, notification channel; today's
  by default), one per service, handed to its broker, processes and migrations;
- consume: ``Subscription(event, handle)`` per event, applied once through the inbox;
- run: ``broker_for(url)`` and ``in_process(...)`` in a lifespan, or the ``run_relay`` /
  ``run_consumer`` process entry points, configured by the policies below;
- test: ``app.outbox.testing``.
"""

from importlib.metadata import PackageNotFoundError, version

from app.outbox.broker import (
    Broker,
    EmbeddedBroker,
    RabbitMQBroker,
    UnsupportedBrokerError,
    broker_for,
)
from app.outbox.consumer_policy import ConsumerPolicy
from app.outbox.consumer_process import ConsumerProcessConfig, run_consumer
from app.outbox.database import UnsupportedDatabaseError, make_engine, make_sessionmaker
from app.outbox.dead_letters import DeadLetter, DeadLetterSelection, ReplayResult
from app.outbox.events import IntegrationEvent
from app.outbox.in_process import InProcessConfig, MessagingService, in_process
from app.outbox.liveness import TcpKeepalives
from app.outbox.models import (
    InboxMessage,
    OutboxMessage,
    OutboxRow,
    OutboxTables,
    outbox_metadata,
    outbox_tables,
)
from app.outbox.names import DEFAULT_NAMES, MessagingNames
from app.outbox.process import RetentionPolicy
from app.outbox.relay_policy import RelayPolicy
from app.outbox.relay_process import RelayProcessConfig, run_relay
from app.outbox.subscriptions import APPLIED, Subscription
from app.outbox.topology import QueueBindings, TopologyConflictError
from app.outbox.writer import add_event, write_events

try:
    __version__ = version("cloudcrm-outbox")  # the one place: pyproject.toml
except PackageNotFoundError:  # pragma: no cover - run from a source tree, not installed
    __version__ = "0+unknown"

__all__ = [
    "APPLIED",
    "DEFAULT_NAMES",
    "Broker",
    "ConsumerPolicy",
    "ConsumerProcessConfig",
    "DeadLetter",
    "DeadLetterSelection",
    "EmbeddedBroker",
    "InProcessConfig",
    "InboxMessage",
    "IntegrationEvent",
    "MessagingNames",
    "MessagingService",
    "OutboxMessage",
    "OutboxRow",
    "OutboxTables",
    "QueueBindings",
    "RabbitMQBroker",
    "RelayPolicy",
    "RelayProcessConfig",
    "ReplayResult",
    "RetentionPolicy",
    "Subscription",
    "TcpKeepalives",
    "TopologyConflictError",
    "UnsupportedBrokerError",
    "UnsupportedDatabaseError",
    "add_event",
    "broker_for",
    "in_process",
    "make_engine",
    "make_sessionmaker",
    "outbox_metadata",
    "outbox_tables",
    "run_consumer",
    "run_relay",
    "write_events",
]
