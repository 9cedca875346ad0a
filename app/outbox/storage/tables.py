"""The outbox and inbox tables. Every service database has both, from one definition.

``outbox_tables(names)`` builds them under the names a service chose; the default names'
tables live on ``outbox_metadata``, so that each service's Alembic history includes them
without ``cloudcrm_outbox`` knowing any service. ``OutboxMessage`` and ``InboxMessage`` map the
default tables for ORM queries.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import registry

from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames
from cloudcrm_outbox.storage.clock import db_now
from cloudcrm_outbox.storage.key_sequences import sequence_keys_on_create

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Rows the relay still has to publish. The partial index stays as small as the backlog,
# however many published rows are retained.
PENDING = text("published_at IS NULL AND failed_at IS NULL")
FAILED = text("failed_at IS NOT NULL")
# Keyed rows not yet published (failed ones included: they hold their key's later rows).
KEYED_UNPUBLISHED = text("message_key IS NOT NULL AND published_at IS NULL")
# The longest message key (the column's length; add_event refuses a longer one).
MAX_KEY_LENGTH = 200
# A key's per-type map (storage.key_sequences): jsonb on PostgreSQL, whose || merges.
JSON_MAP = JSON().with_variant(JSONB(), "postgresql")


def outbox_table(metadata: MetaData, name: str = "outbox") -> Table:
    """The outbox table ``name`` on ``metadata``: one row per event to publish; its id is
    the AMQP message_id."""
    return Table(
        name,
        metadata,
        Column("id", Uuid, nullable=False),
        Column("event_type", String(200), nullable=False),
        Column("payload", JSON, nullable=False),
        Column("headers", JSON, nullable=False, default=dict),
        # The database clock, not the writer's: several writers' clocks never agree.
        Column("created_at", DateTime(timezone=True), server_default=db_now(), nullable=False),
        Column("published_at", DateTime(timezone=True)),
        Column("attempts", Integer, default=0, server_default=text("0"), nullable=False),
        Column(
            "next_attempt_at", DateTime(timezone=True), server_default=db_now(), nullable=False
        ),
        Column("last_error", Text),
        # Set when the row gave up after the maximum attempts; kept for replay.
        Column("failed_at", DateTime(timezone=True)),
        # Since when RabbitMQ has returned the row as unroutable (no queue bound to its
        # event); such a row is retried for a long time, not failed after a few attempts.
        Column("unroutable_since", DateTime(timezone=True)),
        # Keyed events (add_event(key=…)): rows of one key are published, and applied, in
        # key_sequence order, which the database sets at insert (keys_table) = the order
        # the writing transactions commit in.
        Column("message_key", String(MAX_KEY_LENGTH)),
        Column("key_sequence", BigInteger),
        # The key's per-type map once this row was numbered: {event type: [its last
        # sequence, the one before]}; the relay sends what came before it (x-key-previous).
        Column("key_previous", JSON_MAP),
        PrimaryKeyConstraint("id"),
        Index(f"ix_{name}_pending", "next_attempt_at", postgresql_where=PENDING,
              sqlite_where=PENDING),
        # Retention deletes old published rows in batches by age.
        Index(f"ix_{name}_published_at", "published_at"),
        # Failed rows, for status and replay: as small as the failures, never a scan.
        Index(f"ix_{name}_failed", "failed_at", postgresql_where=FAILED, sqlite_where=FAILED),
        # The claim's test "no earlier row of this key is unpublished".
        Index(f"ix_{name}_key_order", "message_key", "key_sequence",
              postgresql_where=KEYED_UNPUBLISHED, sqlite_where=KEYED_UNPUBLISHED),
    )  # fmt: skip


def keys_table(metadata: MetaData, outbox_name: str = "outbox") -> Table:
    """The per-key counters of the outbox ``outbox_name`` (``{outbox_name}_keys``): the last
    sequence given to each message key. The insert trigger (storage.key_sequences) raises
    it in the writing transaction; its row lock makes a second writer of the key wait for
    the first's commit, so a key's sequence is the order its transactions commit in."""
    return Table(
        f"{outbox_name}_keys",
        metadata,
        Column("message_key", String(MAX_KEY_LENGTH), nullable=False),
        Column("last_sequence", BigInteger, nullable=False),
        Column("last_by_type", JSON_MAP),
        PrimaryKeyConstraint("message_key"),
    )


def inbox_table(metadata: MetaData, name: str = "inbox") -> Table:
    """The inbox table ``name`` on ``metadata``: a message a consumer has handled; the
    primary key (consumer, message_id) makes a second handling impossible."""
    return Table(
        name,
        metadata,
        Column("consumer", String(100), nullable=False),
        Column("message_id", Uuid, nullable=False),
        Column("processed_at", DateTime(timezone=True), server_default=db_now(),
               nullable=False),
        Column("outcome", String(50), nullable=False),
        PrimaryKeyConstraint("consumer", "message_id"),
        Index(f"ix_{name}_processed_at", "processed_at"),
    )  # fmt: skip


def inbox_keys_table(metadata: MetaData, inbox_name: str = "inbox") -> Table:
    """Where each consumer stands in each message key (``{inbox_name}_keys``): the last
    sequence it applied (0 for a key it has not met). The inbox's key gate locks a key's
    row while it applies the key's messages, so two consumers never apply one key at once.
    ``dead_letter_*``: the message of the key that was dead-lettered last and not applied
    since (the key's later messages wait parked behind it), for the operator."""
    return Table(
        f"{inbox_name}_keys",
        metadata,
        Column("consumer", String(100), nullable=False),
        Column("message_key", String(MAX_KEY_LENGTH), nullable=False),
        Column("applied_sequence", BigInteger, nullable=False),
        Column("dead_letter_id", Uuid),
        Column("dead_letter_sequence", BigInteger),
        Column("dead_lettered_at", DateTime(timezone=True)),
        PrimaryKeyConstraint("consumer", "message_key"),
    )


def inbox_parked_table(metadata: MetaData, inbox_name: str = "inbox") -> Table:
    """Keyed messages that arrived before their turn (``{inbox_name}_parked``): acked,
    kept here with their decoded body, and applied by the key gate once the key's
    applied sequence reaches their predecessor. A row without an ``event_type`` is a skip:
    the operator purged that sequence's dead letter, so the key moves past it without
    applying anything."""
    return Table(
        f"{inbox_name}_parked",
        metadata,
        Column("consumer", String(100), nullable=False),
        Column("message_key", String(MAX_KEY_LENGTH), nullable=False),
        Column("key_sequence", BigInteger, nullable=False),
        # The sequence of the key's message this consumer applies just before it (None
        # for a skip: worked out from ``payload``, the dead letter's x-key-previous).
        Column("predecessor", BigInteger),
        Column("message_id", Uuid, nullable=False),
        Column("event_type", String(200)),
        Column("payload", JSON),
        Column("traceparent", String(200)),
        Column("parked_at", DateTime(timezone=True), server_default=db_now(), nullable=False),
        # One message per place of a key: a second copy of one (a redelivery, a republish)
        # parks nothing more.
        PrimaryKeyConstraint("consumer", "message_key", "key_sequence"),
    )


class OutboxRow:
    """An outbox row as the ORM maps it (``add_event`` returns one); ``id`` is the
    event's id and the AMQP message_id."""

    id: uuid.UUID
    event_type: str
    payload: dict[str, Any]
    headers: dict[str, Any]
    created_at: datetime
    published_at: datetime | None
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    failed_at: datetime | None
    unroutable_since: datetime | None
    message_key: str | None
    key_sequence: int | None

    def __init__(self, **columns: Any) -> None:
        for name, value in columns.items():
            setattr(self, name, value)


class OutboxMessage(OutboxRow):
    """A row of the default outbox table, for ORM queries (``select(OutboxMessage)``)."""


class InboxMessage:
    """An inbox row of the default table, for ORM queries."""

    consumer: str
    message_id: uuid.UUID
    processed_at: datetime
    outcome: str

    def __init__(self, **columns: Any) -> None:
        for name, value in columns.items():
            setattr(self, name, value)


@dataclass(frozen=True)
class OutboxTables:
    """One service's outbox and inbox tables, the metadata holding them (for
    ``metadata.create_all`` or Alembic's ``target_metadata``) and the ORM class of an
    outbox row."""

    outbox: Table
    inbox: Table
    metadata: MetaData
    row: type[OutboxRow]
    keys: Table
    inbox_keys: Table
    parked: Table


_mapper = registry()


def _map_outbox_rows(row: type[OutboxRow], table: Table) -> type[OutboxRow]:
    # The writer never reads the server defaults back (created_at, next_attempt_at): no
    # RETURNING on the INSERT, so the row costs the caller's transaction as little as it can.
    _mapper.map_imperatively(row, table, eager_defaults=False)
    return row


outbox_metadata = MetaData(naming_convention=NAMING_CONVENTION)
OUTBOX = outbox_table(outbox_metadata)
INBOX = inbox_table(outbox_metadata)
OUTBOX_KEYS = keys_table(outbox_metadata)
INBOX_KEYS = inbox_keys_table(outbox_metadata)
INBOX_PARKED = inbox_parked_table(outbox_metadata)
sequence_keys_on_create(OUTBOX, OUTBOX_KEYS)
_map_outbox_rows(OutboxMessage, OUTBOX)
_mapper.map_imperatively(InboxMessage, INBOX)


def outbox_tables(names: MessagingNames = DEFAULT_NAMES) -> OutboxTables:
    """The tables named by ``names`` (the same objects for the same table names)."""
    return _tables(names.outbox_table, names.inbox_table)


@functools.cache
def _tables(outbox_name: str, inbox_name: str) -> OutboxTables:
    if (outbox_name, inbox_name) == (OUTBOX.name, INBOX.name):
        return OutboxTables(
            OUTBOX, INBOX, outbox_metadata, OutboxMessage, OUTBOX_KEYS, INBOX_KEYS, INBOX_PARKED
        )
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    outbox = outbox_table(metadata, outbox_name)
    keys = keys_table(metadata, outbox_name)
    sequence_keys_on_create(outbox, keys)
    # A class of its own per table: one class maps one table.
    row = _map_outbox_rows(type(f"OutboxRow_{outbox.name}", (OutboxRow,), {}), outbox)
    return OutboxTables(
        outbox,
        inbox_table(metadata, inbox_name),
        metadata,
        row,
        keys,
        inbox_keys_table(metadata, inbox_name),
        inbox_parked_table(metadata, inbox_name),
    )
