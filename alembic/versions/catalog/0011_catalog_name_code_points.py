"""products.name: compared by code point (collation "C") on PostgreSQL, as on SQLite

The products list is sorted by name. Without a collation of its own the column took the
database's default (en_US.utf8 in the postgres image: "apple" < "Banana"), while SQLite
compares by code point ("Banana" < "apple"): the two backends listed, and paged, the same
products in different orders. ALTER ... TYPE rebuilds ix_products_name_id in the new order.

Revision ID: 0011_catalog_name_code_points
Revises: 0010_catalog_caller_digest
Create Date: 2026-12-07 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0011_catalog_name_code_points"
down_revision: str | None = "0010_catalog_caller_digest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite's default collation (BINARY) already compares by code point
    op.alter_column(
        "products", "name", type_=sa.String(200, collation="C"), existing_nullable=False
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column(
        "products",
        "name",
        type_=sa.String(200, collation="default"),
        existing_type=sa.String(200, collation="C"),
        existing_nullable=False,
    )
