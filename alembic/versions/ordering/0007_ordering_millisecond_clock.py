"""The database clock to the millisecond on SQLite (orders, outbox, inbox)

Revision ID: 0007_ordering_millisecond_clock
Revises: 0006_ordering_idempotency_keys
Create Date: 2026-12-07 12:00:00

SQLite's CURRENT_TIMESTAMP has whole seconds; the defaults become its clock to the
millisecond, so that both databases show the same precision (PostgreSQL's now() has
microseconds: nothing changes there). SQLite rebuilds the tables; rows keep their times.
"""

from collections.abc import Sequence

from cloudcrm_outbox.storage.schema import (
    clock_in_milliseconds,
    clock_in_seconds,
    set_clock_defaults,
)

revision: str = "0007_ordering_millisecond_clock"
down_revision: str | None = "0006_ordering_idempotency_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    set_clock_defaults("orders", ("created_at",))
    clock_in_milliseconds()


def downgrade() -> None:
    clock_in_seconds()
    set_clock_defaults("orders", ("created_at",), milliseconds=False)
