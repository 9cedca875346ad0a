"""idempotency_keys: each POST's Idempotency-Key, its request's fingerprint and first answer

Revision ID: 0006_catalog_idempotency_keys
Revises: 0005_catalog
Create Date: 2026-12-07 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from cloudcrm_outbox.storage.clock import db_now

revision: str = "0006_catalog_idempotency_keys"
down_revision: str | None = "0005_catalog"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("caller", sa.String(length=200), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=db_now(),
                  nullable=False),
        sa.PrimaryKeyConstraint("caller", "idempotency_key", name=op.f("pk_idempotency_keys")),
    )  # fmt: skip
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
