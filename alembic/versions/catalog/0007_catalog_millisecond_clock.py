"""The database clock to the millisecond on SQLite (stock reservations, outbox, inbox)

Revision ID: 0007_catalog_millisecond_clock
Revises: 0006_catalog_idempotency_keys
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

revision: str = "0007_catalog_millisecond_clock"
down_revision: str | None = "0006_catalog_idempotency_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RESERVATION_TIMES = ("created_at", "updated_at")


def upgrade() -> None:
    set_clock_defaults("stock_reservations", RESERVATION_TIMES)
    clock_in_milliseconds()


def downgrade() -> None:
    clock_in_seconds()
    set_clock_defaults("stock_reservations", RESERVATION_TIMES, milliseconds=False)
