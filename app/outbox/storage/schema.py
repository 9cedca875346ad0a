"""Versioned schema steps of the outbox and inbox tables, for any service's Alembic history.

Every service database holds the same outbox and inbox tables. Each step is written once
here, numbered, and called from a service's own revision (its own history, its own
database). Revisions already applied stay as they were written; new ones call these.
A new service calls ``create_latest()`` in its first revision, an existing one the steps it
lacks:

    def upgrade() -> None:
        create_latest()            # or: add_message_keys() after versions 1 to 4

    def downgrade() -> None:
        drop_latest()

Each step takes the service's ``MessagingNames`` (table and channel names; today's by
default), the same it hands to its relay and consumer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa

from alembic import op
from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames
from cloudcrm_outbox.storage import key_sequences
from cloudcrm_outbox.storage.clock import db_now
from cloudcrm_outbox.storage.tables import (
    FAILED,
    JSON_MAP,
    KEYED_UNPUBLISHED,
    MAX_KEY_LENGTH,
    PENDING,
)


def create_outbox_and_inbox(names: MessagingNames = DEFAULT_NAMES) -> None:
    """Version 1: the outbox (with its pending and published indexes) and the inbox."""
    inbox, outbox = names.inbox_table, names.outbox_table
    op.create_table(
        inbox,
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column("outcome", sa.String(length=50), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_id", name=op.f(f"pk_{inbox}")),
    )  # fmt: skip
    op.create_index(f"ix_{inbox}_processed_at", inbox, ["processed_at"])
    now = sa.func.now()
    op.create_table(
        outbox,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=now,
                  nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{outbox}")),
    )  # fmt: skip
    op.create_index(
        f"ix_{outbox}_pending",
        outbox,
        ["next_attempt_at"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.create_index(f"ix_{outbox}_published_at", outbox, ["published_at"])


def drop_outbox_and_inbox(names: MessagingNames = DEFAULT_NAMES) -> None:
    op.drop_table(names.outbox_table)
    op.drop_table(names.inbox_table)


# A statement-level trigger: one notification per inserting statement, and PostgreSQL
# folds identical notifications of one transaction into one, delivered only at COMMIT.
# Nothing here compares clocks, so a long multi-statement transaction still notifies.
# (The names are checked SQL names, see MessagingNames.)
_CREATE_TRIGGER = """
CREATE FUNCTION {outbox}_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{channel}', '');
    RETURN NULL;
END $$;
CREATE TRIGGER {outbox}_notify AFTER INSERT ON {outbox}
    FOR EACH STATEMENT EXECUTE FUNCTION {outbox}_notify();
"""
_DROP_TRIGGER = """
DROP TRIGGER IF EXISTS {outbox}_notify ON {outbox};
DROP FUNCTION IF EXISTS {outbox}_notify();
"""


def create_wakeup_trigger(names: MessagingNames = DEFAULT_NAMES) -> None:
    """Version 2: NOTIFY the relay when outbox rows commit (PostgreSQL; SQLite has no
    LISTEN/NOTIFY and the relay polls there, so nothing is made)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_CREATE_TRIGGER.format(outbox=names.outbox_table, channel=names.notify_channel))


def drop_wakeup_trigger(names: MessagingNames = DEFAULT_NAMES) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_DROP_TRIGGER.format(outbox=names.outbox_table))


def add_unroutable_since(names: MessagingNames = DEFAULT_NAMES) -> None:
    """Version 3: outbox.unroutable_since (when RabbitMQ first returned the row as
    unroutable), and a partial index of failed rows, so that counting them never scans
    the published ones."""
    outbox = names.outbox_table
    op.add_column(outbox, sa.Column("unroutable_since", sa.DateTime(timezone=True)))
    op.create_index(
        f"ix_{outbox}_failed", outbox, ["failed_at"], postgresql_where=FAILED, sqlite_where=FAILED
    )


def drop_unroutable_since(names: MessagingNames = DEFAULT_NAMES) -> None:
    outbox = names.outbox_table
    op.drop_index(f"ix_{outbox}_failed", table_name=outbox)
    # Batch mode: SQLite rebuilds the table; PostgreSQL drops the column in place.
    with op.batch_alter_table(outbox) as batch:
        batch.drop_column("unroutable_since")


def set_clock_defaults(table: str, columns: Sequence[str], *, milliseconds: bool = True) -> None:
    """Make the database clock the default of ``table``'s timestamp ``columns``: to the
    millisecond (``clock.db_now``), or, ``milliseconds=False``, as before (SQLite's
    CURRENT_TIMESTAMP, whole seconds). SQLite only, where the table is rebuilt (it cannot
    change a default in place); PostgreSQL's ``now()`` has microseconds already and stays."""
    if op.get_bind().dialect.name != "sqlite":
        return
    default = db_now() if milliseconds else sa.func.now()
    with op.batch_alter_table(table, recreate="always") as batch:
        for column in columns:
            batch.alter_column(column, server_default=default, existing_nullable=False,
                               existing_type=sa.DateTime(timezone=True))  # fmt: skip


def clock_in_milliseconds(names: MessagingNames = DEFAULT_NAMES) -> None:
    """Version 4: on SQLite, the outbox's and inbox's times default to the database clock
    to the millisecond, as PostgreSQL's have at least (both show milliseconds)."""
    set_clock_defaults(names.outbox_table, ("created_at", "next_attempt_at"))
    set_clock_defaults(names.inbox_table, ("processed_at",))


def clock_in_seconds(names: MessagingNames = DEFAULT_NAMES) -> None:
    set_clock_defaults(names.inbox_table, ("processed_at",), milliseconds=False)
    set_clock_defaults(names.outbox_table, ("created_at", "next_attempt_at"), milliseconds=False)


def add_message_keys(names: MessagingNames = DEFAULT_NAMES) -> None:
    """Version 5: keyed events. ``outbox.message_key`` and ``key_sequence`` (rows already
    there stay unkeyed, and pending ones are published as before), the per-key counters
    ``{outbox}_keys``, the insert trigger that numbers keyed rows (storage.key_sequences)
    and the index the relay's claim asks "is an earlier row of this key unpublished?"."""
    outbox = names.outbox_table
    keys = f"{outbox}_keys"
    op.add_column(outbox, sa.Column("message_key", sa.String(length=MAX_KEY_LENGTH)))
    op.add_column(outbox, sa.Column("key_sequence", sa.BigInteger()))
    op.create_table(
        keys,
        sa.Column("message_key", sa.String(length=MAX_KEY_LENGTH), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("message_key", name=op.f(f"pk_{keys}")),
    )
    op.create_index(
        f"ix_{outbox}_key_order",
        outbox,
        ["message_key", "key_sequence"],
        postgresql_where=KEYED_UNPUBLISHED,
        sqlite_where=KEYED_UNPUBLISHED,
    )
    _create_key_trigger(outbox, keys, version=5)


def drop_message_keys(names: MessagingNames = DEFAULT_NAMES) -> None:
    outbox = names.outbox_table
    _drop_key_trigger(outbox)
    op.drop_index(f"ix_{outbox}_key_order", table_name=outbox)
    op.drop_table(f"{outbox}_keys")
    with op.batch_alter_table(outbox) as batch:
        batch.drop_column("key_sequence")
        batch.drop_column("message_key")


def add_inbox_key_order(names: MessagingNames = DEFAULT_NAMES) -> None:
    """Version 6: keyed events, the consumer's side. The outbox's per-type map
    (``{outbox}_keys.last_by_type``, ``outbox.key_previous``, and the trigger that keeps
    them: storage.key_sequences), the inbox's key gate: ``{inbox}_keys`` (the last sequence
    each consumer applied per key) and ``{inbox}_parked`` (keyed messages that came
    before their turn). Rows and messages already there stay as they are; a key met for
    the first time starts from nothing applied."""
    outbox, outbox_keys = names.outbox_table, f"{names.outbox_table}_keys"
    op.add_column(outbox, sa.Column("key_previous", JSON_MAP))
    op.add_column(outbox_keys, sa.Column("last_by_type", JSON_MAP))
    _drop_key_trigger(outbox)
    _create_key_trigger(outbox, outbox_keys, version=6)
    inbox = names.inbox_table
    keys, parked = f"{inbox}_keys", f"{inbox}_parked"
    op.create_table(
        keys,
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("message_key", sa.String(length=MAX_KEY_LENGTH), nullable=False),
        sa.Column("applied_sequence", sa.BigInteger(), nullable=False),
        sa.Column("dead_letter_id", sa.Uuid(), nullable=True),
        sa.Column("dead_letter_sequence", sa.BigInteger(), nullable=True),
        sa.Column("dead_lettered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("consumer", "message_key", name=op.f(f"pk_{keys}")),
    )
    op.create_table(
        parked,
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("message_key", sa.String(length=MAX_KEY_LENGTH), nullable=False),
        sa.Column("key_sequence", sa.BigInteger(), nullable=False),
        sa.Column("predecessor", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("traceparent", sa.String(length=200), nullable=True),
        sa.Column("parked_at", sa.DateTime(timezone=True), server_default=db_now(),
                  nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_key", "key_sequence",
                                name=op.f(f"pk_{parked}")),
    )  # fmt: skip


def drop_inbox_key_order(names: MessagingNames = DEFAULT_NAMES) -> None:
    op.drop_table(f"{names.inbox_table}_parked")
    op.drop_table(f"{names.inbox_table}_keys")
    outbox, outbox_keys = names.outbox_table, f"{names.outbox_table}_keys"
    # The trigger first: SQLite rebuilds the tables, which it refuses while a trigger
    # names one of them.
    _drop_key_trigger(outbox)
    with op.batch_alter_table(outbox_keys) as batch:
        batch.drop_column("last_by_type")
    with op.batch_alter_table(outbox) as batch:
        batch.drop_column("key_previous")
    _create_key_trigger(outbox, outbox_keys, version=5)


def _create_key_trigger(outbox: str, keys: str, *, version: int) -> None:
    """The trigger numbering ``outbox``'s keyed rows, as schema ``version`` made it."""
    for statement in key_sequences.create_statements(_dialect(), outbox, keys, version=version):
        op.execute(statement)


def _drop_key_trigger(outbox: str) -> None:
    for statement in key_sequences.drop_statements(_dialect(), outbox):
        op.execute(statement)


def _dialect() -> str:
    return str(op.get_bind().dialect.name)


Step = tuple[int, Callable[[MessagingNames], None], Callable[[MessagingNames], None]]
STEPS: tuple[Step, ...] = (
    (1, create_outbox_and_inbox, drop_outbox_and_inbox),
    (2, create_wakeup_trigger, drop_wakeup_trigger),
    (3, add_unroutable_since, drop_unroutable_since),
    (4, clock_in_milliseconds, clock_in_seconds),
    (5, add_message_keys, drop_message_keys),
    (6, add_inbox_key_order, drop_inbox_key_order),
)
LATEST = STEPS[-1][0]


def create_latest(names: MessagingNames = DEFAULT_NAMES) -> None:
    """Every step in order: the outbox and inbox of version ``LATEST``."""
    for _, upgrade, _ in STEPS:
        upgrade(names)


def drop_latest(names: MessagingNames = DEFAULT_NAMES) -> None:
    """Every step undone, newest first."""
    for _, _, downgrade in reversed(STEPS):
        downgrade(names)
