"""The insert trigger that numbers keyed outbox rows, per database.

A row written with a message key gets ``key_sequence`` = its key's counter + 1, raised in
the writing transaction (an upsert on ``{outbox}_keys``). The counter row stays locked
until that transaction ends, so a second writer of the same key waits for the first's
commit (or rollback) before it takes the next number: a key's sequence is the order its
transactions commit in, whatever their ids or clocks say. SQLite has one writer at a time,
so there the order is given anyway. Rows without a key are left alone (the trigger's WHEN).

The counter row also keeps, per event type of the key, its last two sequences
(``last_by_type``: ``{"OrderPlaced": [3, 1], …}``), and the row gets that map as it stands
once numbered (``key_previous``). A consumer that reads only some of a key's event types
learns from it which earlier sequence of *its* types comes just before (the relay sends it
as ``x-key-previous``): it waits for that one, not for messages it will never receive.

PostgreSQL sets the number before the row is written (a BEFORE trigger may change NEW);
SQLite cannot change NEW, so its AFTER trigger updates the row it just inserted.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, event

# (The names are checked SQL names, see MessagingNames.)
_POSTGRES_CREATE = (
    """
CREATE FUNCTION {outbox}_key_sequence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {keys} AS counter (message_key, last_sequence) VALUES (NEW.message_key, 1)
    ON CONFLICT (message_key) DO UPDATE SET last_sequence = counter.last_sequence + 1
    RETURNING counter.last_sequence INTO NEW.key_sequence;
    RETURN NEW;
END $$
""",
    """
CREATE TRIGGER {outbox}_key_sequence BEFORE INSERT ON {outbox}
    FOR EACH ROW WHEN (NEW.message_key IS NOT NULL)
    EXECUTE FUNCTION {outbox}_key_sequence()
""",
)
_POSTGRES_DROP = (
    "DROP TRIGGER IF EXISTS {outbox}_key_sequence ON {outbox}",
    "DROP FUNCTION IF EXISTS {outbox}_key_sequence()",
)
_SQLITE_CREATE = (
    """
CREATE TRIGGER {outbox}_key_sequence AFTER INSERT ON {outbox}
FOR EACH ROW WHEN NEW.message_key IS NOT NULL
BEGIN
    INSERT INTO {keys} (message_key, last_sequence) VALUES (NEW.message_key, 1)
    ON CONFLICT (message_key) DO UPDATE SET last_sequence = last_sequence + 1;
    UPDATE {outbox} SET key_sequence =
        (SELECT last_sequence FROM {keys} WHERE message_key = NEW.message_key)
    WHERE id = NEW.id;
END
""",
)
_SQLITE_DROP = ("DROP TRIGGER IF EXISTS {outbox}_key_sequence",)

# Version 6: the per-type map too. In ON CONFLICT's SET, "counter" is the row as it was.
_POSTGRES_CREATE_6 = (
    """
CREATE FUNCTION {outbox}_key_sequence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {keys} AS counter (message_key, last_sequence, last_by_type)
    VALUES (NEW.message_key, 1, jsonb_build_object(NEW.event_type, jsonb_build_array(1, NULL)))
    ON CONFLICT (message_key) DO UPDATE SET
        last_sequence = counter.last_sequence + 1,
        last_by_type = coalesce(counter.last_by_type, '{{}}'::jsonb) || jsonb_build_object(
            NEW.event_type,
            jsonb_build_array(counter.last_sequence + 1,
                              counter.last_by_type -> NEW.event_type -> 0))
    RETURNING counter.last_sequence, counter.last_by_type
    INTO NEW.key_sequence, NEW.key_previous;
    RETURN NEW;
END $$
""",
    _POSTGRES_CREATE[1],
)
_SQLITE_CREATE_6 = (
    """
CREATE TRIGGER {outbox}_key_sequence AFTER INSERT ON {outbox}
FOR EACH ROW WHEN NEW.message_key IS NOT NULL
BEGIN
    INSERT INTO {keys} (message_key, last_sequence, last_by_type)
    VALUES (NEW.message_key, 1, json_object(NEW.event_type, json_array(1, NULL)))
    ON CONFLICT (message_key) DO UPDATE SET
        last_sequence = last_sequence + 1,
        last_by_type = json_patch(coalesce(last_by_type, '{{}}'), json_object(
            NEW.event_type,
            json_array(last_sequence + 1, (
                SELECT json_extract(value, '$[0]') FROM json_each(coalesce(last_by_type, '{{}}'))
                WHERE key = NEW.event_type))));
    UPDATE {outbox} SET
        key_sequence = (SELECT last_sequence FROM {keys} WHERE message_key = NEW.message_key),
        key_previous = (SELECT last_by_type FROM {keys} WHERE message_key = NEW.message_key)
    WHERE id = NEW.id;
END
""",
)

CREATE = {"postgresql": _POSTGRES_CREATE_6, "sqlite": _SQLITE_CREATE_6}
CREATE_5 = {"postgresql": _POSTGRES_CREATE, "sqlite": _SQLITE_CREATE}
DROP = {"postgresql": _POSTGRES_DROP, "sqlite": _SQLITE_DROP}


def create_statements(dialect: str, outbox: str, keys: str, *, version: int = 6) -> list[str]:
    """The statements that make the trigger on ``outbox`` (counters in ``keys``) for the
    database ``dialect`` (``"postgresql"`` or ``"sqlite"``; ValueError otherwise), as
    schema ``version`` 5 (numbers only) or 6 (numbers and the per-type map) made it."""
    chosen = CREATE_5 if version == 5 else CREATE
    return [statement.format(outbox=outbox, keys=keys) for statement in _known(chosen, dialect)]


def drop_statements(dialect: str, outbox: str) -> list[str]:
    """The statements that remove the trigger from ``outbox``."""
    return [statement.format(outbox=outbox) for statement in _known(DROP, dialect)]


def _known(table: dict[str, tuple[str, ...]], dialect: str) -> tuple[str, ...]:
    if dialect not in table:
        raise ValueError(f"keyed events need PostgreSQL or SQLite, not {dialect}")
    return table[dialect]


def sequence_keys_on_create(outbox: Table, keys: Table) -> None:
    """Make ``metadata.create_all`` add the trigger whenever it creates ``outbox`` (the
    schema steps add it for Alembic histories); on a database other than PostgreSQL and
    SQLite the table is made without it, and keyed rows stay unnumbered."""

    def create_trigger(_table: Table, connection: Connection, **_: Any) -> None:
        if connection.dialect.name in CREATE:
            for statement in create_statements(connection.dialect.name, outbox.name, keys.name):
                connection.exec_driver_sql(statement)

    event.listen(outbox, "after_create", create_trigger)
