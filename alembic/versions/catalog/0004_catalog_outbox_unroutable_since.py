"""outbox.unroutable_since: unroutable rows are retried for long, not failed in minutes

Revision ID: 0004_catalog
Revises: 0003_catalog
Create Date: 2026-11-30 02:00:00
"""

from collections.abc import Sequence

from cloudcrm_outbox.storage.schema import add_unroutable_since, drop_unroutable_since

revision: str = "0004_catalog"
down_revision: str | None = "0003_catalog"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_unroutable_since()


def downgrade() -> None:
    drop_unroutable_since()
