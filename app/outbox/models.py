"""The outbox and inbox tables. Every service database has both, from one definition.

They live on their own metadata so that each service's Alembic history includes them
without ``app.outbox`` knowing any service.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

outbox_metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Rows the relay still has to publish. The partial index stays as small as the backlog,
# however many published rows are retained.
PENDING = text("published_at IS NULL AND failed_at IS NULL")


class OutboxBase(DeclarativeBase):
    metadata = outbox_metadata


class OutboxMessage(OutboxBase):
    """One event waiting to be (or already) published. Its id is the AMQP message_id."""

    __tablename__ = "outbox"
    # The writer never reads the server defaults back (created_at, next_attempt_at): no
    # RETURNING on the INSERT, so the row costs the caller's transaction as little as it can.
    __mapper_args__ = {"eager_defaults": False}  # noqa: RUF012 - SQLAlchemy's mapping hook

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    event_type: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The database clock, not the writer's: several writers' clocks never agree.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_error: Mapped[str | None] = mapped_column(Text)
    # Set when the row gave up after the maximum attempts; kept for replay.
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Since when RabbitMQ has returned the row as unroutable (no queue bound to its event);
    # such a row is retried for a long time, not failed after a few attempts.
    unroutable_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "next_attempt_at",
            postgresql_where=PENDING,
            sqlite_where=PENDING,
        ),
        # Retention deletes old published rows in batches by age.
        Index("ix_outbox_published_at", "published_at"),
        # Failed rows, for status and replay: as small as the failures, never a scan.
        Index(
            "ix_outbox_failed",
            "failed_at",
            postgresql_where=text("failed_at IS NOT NULL"),
            sqlite_where=text("failed_at IS NOT NULL"),
        ),
    )


class InboxMessage(OutboxBase):
    """A message a consumer has handled; the primary key makes a second handling impossible."""

    __tablename__ = "inbox"

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    outcome: Mapped[str] = mapped_column(String(50))

    __table_args__ = (Index("ix_inbox_processed_at", "processed_at"),)


# The Core tables, typed, for the relay's and the consumer's set-based statements.
OUTBOX: Table = OutboxMessage.__table__  # type: ignore[assignment]
INBOX: Table = InboxMessage.__table__  # type: ignore[assignment]
