"""products.version (the ETag), a stock no larger than an int4 on every backend, and an
index of each product's live reservations

Existing products start at version 1. The CHECK only matters on SQLite (PostgreSQL's
integer column already refuses more); a SQLite row already above it (a cancel's give-back
used to overflow there) is brought back to 2,147,483,647 first, or the table could not be
rebuilt with the constraint.

Revision ID: 0009_catalog_product_version
Revises: 0008_catalog_products_by_name
Create Date: 2026-12-08 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009_catalog_product_version"
down_revision: str | None = "0008_catalog_products_by_name"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MAX_STOCK_COUNT = 2_147_483_647
LIVE = sa.text("state = 'reserved'")


def upgrade() -> None:
    op.execute(
        f"UPDATE products SET stock_count = {MAX_STOCK_COUNT} WHERE stock_count > {MAX_STOCK_COUNT}"
    )
    with op.batch_alter_table("products") as batch:
        batch.add_column(
            sa.Column("version", sa.BigInteger(), server_default=sa.text("1"), nullable=False)
        )
        batch.create_check_constraint(
            op.f("ck_products_stock_count_within_int4"), f"stock_count <= {MAX_STOCK_COUNT}"
        )
    op.create_index(
        "ix_stock_reservations_live_product_id",
        "stock_reservations",
        ["product_id"],
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )


def downgrade() -> None:
    op.drop_index("ix_stock_reservations_live_product_id", table_name="stock_reservations")
    with op.batch_alter_table("products") as batch:
        batch.drop_constraint(op.f("ck_products_stock_count_within_int4"), type_="check")
        batch.drop_column("version")
