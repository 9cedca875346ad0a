"""Where the embedded broker's queues live: one SQLite file, the truth at start.

A message is confirmed to the relay only once its row is committed here, and it stays
until the consumer acks it (after the consumer's own commit). Each row records whether a
delivery of it is outstanding, so a process killed mid-delivery counts that delivery as
returned on restart, as RabbitMQ does when a consumer's connection dies.

Durability: WAL with ``synchronous=NORMAL``. A commit is then written to the WAL file
(``write()``, no ``fsync``), which survives the death of the process, ``kill -9``
included; only an OS crash or a power loss can take the last commits back. That is the
failure this embedded, one-process broker is for; RabbitMQ is the answer to the others.

The calls are synchronous, on the event loop: each is one small transaction on a local
file without ``fsync`` (tens of microseconds). A thread hop would cost more than it saves,
and would let a delivery reach the consumer before its record is written.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    position INTEGER NOT NULL,      -- order within the queue
    returned INTEGER NOT NULL,      -- earlier deliveries that came back
    outstanding INTEGER NOT NULL,   -- 1 while delivered and neither acked nor returned
    body BLOB NOT NULL,
    message_id TEXT, type TEXT, routing_key TEXT, content_type TEXT, correlation_id TEXT,
    timestamp TEXT,
    headers TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_in_order ON messages (queue, position);
"""
_COLUMNS = "body, message_id, type, routing_key, content_type, correlation_id, timestamp, headers"


@dataclass(frozen=True)
class Envelope:
    """One message in a queue; ``row`` is its row in the queue file (0 before insert)."""

    body: bytes
    message_id: str | None
    type: str | None
    routing_key: str | None
    content_type: str | None = "application/json"
    correlation_id: str | None = None
    timestamp: datetime | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    user_id: str | None = None  # no accounts in the embedded broker
    returned: int = 0  # the next delivery's x-delivery-count
    row: int = 0


@dataclass(frozen=True)
class Move:
    """A returned or dead-lettered envelope: where it goes (``queue``; None drops it) and
    whether it goes to the back of that queue (a new position) or keeps its place."""

    envelope: Envelope
    queue: str | None
    to_back: bool


class QueueFileError(ValueError):
    """The embedded broker's file cannot be opened as its queues' database."""


def check_queue_file(path: str) -> None:
    """Open the file as the broker would (its folder made if need be), then close it:
    QueueFileError, in words, when it cannot be."""
    QueueFile(path).close()


class QueueFile:
    """The queues' rows in SQLite; ``path=None`` is a private in-memory database."""

    def __init__(self, path: str | None) -> None:
        """Open (or make, with its folder) the file at ``path``. Raises QueueFileError, in
        words, for a path SQLite cannot open as a database of its own (a directory, a file
        of something else)."""
        try:
            if path is not None:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(":memory:" if path is None else path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # see the module docstring
            with self._db:
                self._db.executescript(_SCHEMA)
            [(last,)] = self._db.execute("SELECT coalesce(max(position), 0) FROM messages")
        except (sqlite3.DatabaseError, OSError) as exc:
            raise QueueFileError(
                f"the embedded broker cannot keep its queues in {path!r}: {exc} (it needs a "
                "SQLite file of its own, or a name for a new one)"
            ) from exc
        self._position = int(last)

    def load(self, queue: str) -> list[tuple[Envelope, bool]]:
        """``queue``'s envelopes in queue order, each with True when a delivery of it was
        outstanding (the process died before it was acked or returned)."""
        rows = self._db.execute(
            f"SELECT id, returned, outstanding, {_COLUMNS} FROM messages"
            " WHERE queue = ? ORDER BY position",
            (queue,),
        ).fetchall()
        return [(_envelope(row), bool(row[2])) for row in rows]

    def insert(self, queued: Sequence[tuple[str, Envelope]]) -> list[Envelope]:
        """Add envelopes at the back of their queues, in one transaction; the same
        envelopes, with their rows, once committed (sqlite3.Error: nothing was added)."""
        stored: list[Envelope] = []
        with self._db:
            for queue, envelope in queued:
                cursor = self._db.execute(
                    f"INSERT INTO messages (queue, position, returned, outstanding, {_COLUMNS})"
                    " VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (queue, self._next_position(), envelope.returned, *_values(envelope)),
                )
                stored.append(replace(envelope, row=cursor.lastrowid or 0))
        return stored

    def delivered(self, rows: Sequence[int]) -> None:
        """Mark deliveries outstanding, in one transaction."""
        with self._db:
            self._db.executemany(
                "UPDATE messages SET outstanding = 1 WHERE id = ?", [(row,) for row in rows]
            )

    def settled(self, rows: Sequence[int]) -> None:
        """Delete acked messages, in one transaction."""
        with self._db:
            self._db.executemany("DELETE FROM messages WHERE id = ?", [(row,) for row in rows])

    def moved(self, moves: Sequence[Move]) -> None:
        """Record returns and dead letters (count, headers, queue, place), in one transaction."""
        with self._db:
            for move in moves:
                envelope = move.envelope
                if move.queue is None:
                    self._db.execute("DELETE FROM messages WHERE id = ?", (envelope.row,))
                    continue
                self._db.execute(
                    "UPDATE messages SET queue = ?, returned = ?, outstanding = 0, headers = ?,"
                    " position = coalesce(?, position) WHERE id = ?",
                    (
                        move.queue,
                        envelope.returned,
                        json.dumps(dict(envelope.headers), default=str),
                        self._next_position() if move.to_back else None,
                        envelope.row,
                    ),
                )

    def close(self) -> None:
        self._db.close()

    def _next_position(self) -> int:
        self._position += 1
        return self._position


def _values(envelope: Envelope) -> tuple[Any, ...]:
    stamp = envelope.timestamp.isoformat() if envelope.timestamp is not None else None
    return (
        envelope.body,
        envelope.message_id,
        envelope.type,
        envelope.routing_key,
        envelope.content_type,
        envelope.correlation_id,
        stamp,
        json.dumps(dict(envelope.headers), default=str),
    )


def _envelope(row: tuple[Any, ...]) -> Envelope:
    row_id, returned, _, body, message_id, kind, key, content, correlation, stamp, headers = row
    return Envelope(
        body=bytes(body),
        message_id=message_id,
        type=kind,
        routing_key=key,
        content_type=content,
        correlation_id=correlation,
        timestamp=datetime.fromisoformat(stamp) if stamp is not None else None,
        headers=json.loads(headers),
        returned=returned,
        row=row_id,
    )
