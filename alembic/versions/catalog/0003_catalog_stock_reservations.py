"""Stock reservations: what catalog did for each order, so a cancel gives stock back once

Revision ID: 0003_catalog
Revises: 0002_catalog
Create Date: 2026-11-27 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003_catalog"
down_revision: str | None = "0002_catalog"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stock_reservations",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.CheckConstraint(
            "state IN ('reserved', 'rejected', 'released', 'cancelled_first')",
            name=op.f("ck_stock_reservations_state_known"),
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_stock_reservations")),
    )


def downgrade() -> None:
    op.drop_table("stock_reservations")
