"""products: an index by name and id, for the listing and its keyset pages

Revision ID: 0008_catalog_products_by_name
Revises: 0007_catalog_millisecond_clock
Create Date: 2026-12-07 12:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_catalog_products_by_name"
down_revision: str | None = "0007_catalog_millisecond_clock"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_products_name_id", "products", ["name", "id"])


def downgrade() -> None:
    op.drop_index("ix_products_name_id", table_name="products")
