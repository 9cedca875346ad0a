"""Schema steps of the outbox and inbox tables, for each service's Alembic history.

Every service database holds the same outbox and inbox tables; a step is written once
here and called from each service's revision (its own history, its own database).
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

FAILED = sa.text("failed_at IS NOT NULL")


def add_unroutable_since() -> None:
    """outbox.unroutable_since: when RabbitMQ first returned the row as unroutable; and a
    partial index of failed rows, so that counting them never scans published ones."""
    op.add_column("outbox", sa.Column("unroutable_since", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_outbox_failed", "outbox", ["failed_at"], postgresql_where=FAILED, sqlite_where=FAILED
    )


def drop_unroutable_since() -> None:
    op.drop_index("ix_outbox_failed", table_name="outbox")
    # Batch mode: SQLite rebuilds the table; PostgreSQL drops the column in place.
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("unroutable_since")
