"""A transactional outbox and inbox for FastAPI + SQLAlchemy services (PostgreSQL or
SQLite; RabbitMQ or an embedded broker).

What a service needs, from here alone :

- publish: ``IntegrationEvent`` contracts, ``add_event`` / ``write_events`` in your own
  transaction, the ``outbox_metadata`` tables in your database (``cloudcrm_outbox.storage.schema``
  for Alembic);
- name: ``MessagingNames`` (exchange, queue pattern, tables, notification channel; today's
  by default), one per service, handed to its broker, processes and migrations;
- consume: ``Subscription(event, handle)`` per event, applied once through the inbox;
- run: ``broker_for(url)`` and ``in_process(...)`` in a lifespan, or the ``run_relay`` /
  ``run_consumer`` process entry points, configured by the policies below;
- test: ``cloudcrm_outbox.testing``.
"""

# One process never holds two copies of the library's classes: its source folder (app/outbox
# in the repository) is importable only under the name the build gives it.
if __name__ != "cloudcrm_outbox":  # pragma: no cover - a wrong sys.path, not a code path
    raise ImportError(
        f"the outbox library must be imported as cloudcrm_outbox, not {__name__}: "
        "install it (pip install -e . in the repository) and import cloudcrm_outbox"
    )

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("cloudcrm-outbox")  # the one place: pyproject.toml
except PackageNotFoundError:  # pragma: no cover - run from a source tree, not installed
    __version__ = "0+unknown"

# The face is lazy (PEP 562): ``import cloudcrm_outbox`` loads no broker client, web server,
# scheduler or metrics library; each name's module is imported when the name is first used.
_FACE: dict[str, str] = {
    "broker_for": "cloudcrm_outbox.brokers",
    "Broker": "cloudcrm_outbox.brokers.base",
    "UnsupportedBrokerError": "cloudcrm_outbox.brokers.base",
    "DeadLetter": "cloudcrm_outbox.brokers.dead_letters",
    "DeadLetterSelection": "cloudcrm_outbox.brokers.dead_letters",
    "ReplayResult": "cloudcrm_outbox.brokers.dead_letters",
    "EmbeddedBroker": "cloudcrm_outbox.brokers.embedded.broker",
    "RabbitMQBroker": "cloudcrm_outbox.brokers.rabbitmq.broker",
    "TopologyConflictError": "cloudcrm_outbox.errors",
    "IntegrationEvent": "cloudcrm_outbox.events",
    "ConsumerPolicy": "cloudcrm_outbox.inbox.policy",
    "DEFAULT_NAMES": "cloudcrm_outbox.names",
    "MessagingNames": "cloudcrm_outbox.names",
    "QueueBindings": "cloudcrm_outbox.names",
    "RelayPolicy": "cloudcrm_outbox.relay.policy",
    "ConsumerProcessConfig": "cloudcrm_outbox.runtime.consumer_process",
    "run_consumer": "cloudcrm_outbox.runtime.consumer_process",
    "InProcessConfig": "cloudcrm_outbox.runtime.in_process",
    "MessagingService": "cloudcrm_outbox.runtime.in_process",
    "in_process": "cloudcrm_outbox.runtime.in_process",
    "RetentionPolicy": "cloudcrm_outbox.runtime.process",
    "RelayProcessConfig": "cloudcrm_outbox.runtime.relay_process",
    "run_relay": "cloudcrm_outbox.runtime.relay_process",
    "AbortedTransactionError": "cloudcrm_outbox.storage.engine",
    "UnsupportedDatabaseError": "cloudcrm_outbox.storage.engine",
    "make_engine": "cloudcrm_outbox.storage.engine",
    "make_sessionmaker": "cloudcrm_outbox.storage.engine",
    "TcpKeepalives": "cloudcrm_outbox.storage.liveness",
    "InboxMessage": "cloudcrm_outbox.storage.tables",
    "OutboxMessage": "cloudcrm_outbox.storage.tables",
    "OutboxRow": "cloudcrm_outbox.storage.tables",
    "OutboxTables": "cloudcrm_outbox.storage.tables",
    "outbox_metadata": "cloudcrm_outbox.storage.tables",
    "outbox_tables": "cloudcrm_outbox.storage.tables",
    "APPLIED": "cloudcrm_outbox.subscriptions",
    "Subscription": "cloudcrm_outbox.subscriptions",
    "add_event": "cloudcrm_outbox.writer",
    "write_events": "cloudcrm_outbox.writer",
}

__all__ = sorted(_FACE)


def __getattr__(name: str) -> Any:
    """PEP 562: import the module that defines ``name`` on first use, then keep the value."""
    module = _FACE.get(name)
    if module is None:
        raise AttributeError(f"module 'cloudcrm_outbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_FACE])


if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, eagerly
    from cloudcrm_outbox.brokers import broker_for as broker_for
    from cloudcrm_outbox.brokers.base import Broker as Broker
    from cloudcrm_outbox.brokers.base import UnsupportedBrokerError as UnsupportedBrokerError
    from cloudcrm_outbox.brokers.dead_letters import DeadLetter as DeadLetter
    from cloudcrm_outbox.brokers.dead_letters import DeadLetterSelection as DeadLetterSelection
    from cloudcrm_outbox.brokers.dead_letters import ReplayResult as ReplayResult
    from cloudcrm_outbox.brokers.embedded.broker import EmbeddedBroker as EmbeddedBroker
    from cloudcrm_outbox.brokers.rabbitmq.broker import RabbitMQBroker as RabbitMQBroker
    from cloudcrm_outbox.errors import TopologyConflictError as TopologyConflictError
    from cloudcrm_outbox.events import IntegrationEvent as IntegrationEvent
    from cloudcrm_outbox.inbox.policy import ConsumerPolicy as ConsumerPolicy
    from cloudcrm_outbox.names import DEFAULT_NAMES as DEFAULT_NAMES
    from cloudcrm_outbox.names import MessagingNames as MessagingNames
    from cloudcrm_outbox.names import QueueBindings as QueueBindings
    from cloudcrm_outbox.relay.policy import RelayPolicy as RelayPolicy
    from cloudcrm_outbox.runtime.consumer_process import (
        ConsumerProcessConfig as ConsumerProcessConfig,
    )
    from cloudcrm_outbox.runtime.consumer_process import run_consumer as run_consumer
    from cloudcrm_outbox.runtime.in_process import InProcessConfig as InProcessConfig
    from cloudcrm_outbox.runtime.in_process import MessagingService as MessagingService
    from cloudcrm_outbox.runtime.in_process import in_process as in_process
    from cloudcrm_outbox.runtime.process import RetentionPolicy as RetentionPolicy
    from cloudcrm_outbox.runtime.relay_process import RelayProcessConfig as RelayProcessConfig
    from cloudcrm_outbox.runtime.relay_process import run_relay as run_relay
    from cloudcrm_outbox.storage.engine import AbortedTransactionError as AbortedTransactionError
    from cloudcrm_outbox.storage.engine import UnsupportedDatabaseError as UnsupportedDatabaseError
    from cloudcrm_outbox.storage.engine import make_engine as make_engine
    from cloudcrm_outbox.storage.engine import make_sessionmaker as make_sessionmaker
    from cloudcrm_outbox.storage.liveness import TcpKeepalives as TcpKeepalives
    from cloudcrm_outbox.storage.tables import InboxMessage as InboxMessage
    from cloudcrm_outbox.storage.tables import OutboxMessage as OutboxMessage
    from cloudcrm_outbox.storage.tables import OutboxRow as OutboxRow
    from cloudcrm_outbox.storage.tables import OutboxTables as OutboxTables
    from cloudcrm_outbox.storage.tables import outbox_metadata as outbox_metadata
    from cloudcrm_outbox.storage.tables import outbox_tables as outbox_tables
    from cloudcrm_outbox.subscriptions import APPLIED as APPLIED
    from cloudcrm_outbox.subscriptions import Subscription as Subscription
    from cloudcrm_outbox.writer import add_event as add_event
    from cloudcrm_outbox.writer import write_events as write_events
