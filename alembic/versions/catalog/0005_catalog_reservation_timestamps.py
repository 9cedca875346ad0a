"""stock_reservations.created_at / updated_at, and an index of terminal rows by age

Rows made before this revision get the time of the upgrade for both: their real age is
unknown, and counting them as new only delays their retention by one retention period.

Revision ID: 0005_catalog
Revises: 0004_catalog
Create Date: 2026-11-30 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005_catalog"
down_revision: str | None = "0004_catalog"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TERMINAL = sa.text("state IN ('rejected', 'released', 'cancelled_first')")


def upgrade() -> None:
    # A server default fills existing rows too (the backfill), on PostgreSQL and SQLite.
    with op.batch_alter_table("stock_reservations") as batch:
        for column in ("created_at", "updated_at"):
            batch.add_column(
                sa.Column(column, sa.DateTime(timezone=True), server_default=sa.func.now(),
                          nullable=False)
            )  # fmt: skip
    op.create_index(
        "ix_stock_reservations_terminal_updated_at",
        "stock_reservations",
        ["updated_at"],
        postgresql_where=TERMINAL,
        sqlite_where=TERMINAL,
    )


def downgrade() -> None:
    op.drop_index("ix_stock_reservations_terminal_updated_at", table_name="stock_reservations")
    with op.batch_alter_table("stock_reservations") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("created_at")
