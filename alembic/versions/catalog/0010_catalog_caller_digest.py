"""idempotency_keys.caller: the SHA-256 (hex) of the token's whole subject

A subject longer than 200 characters was cut to its first 200 (two such callers shared
their keys), and one holding NUL could not be stored on PostgreSQL. Existing rows get the
digest of what they hold.

Revision ID: 0010_catalog_caller_digest
Revises: 0009_catalog_product_version
Create Date: 2026-12-09 10:00:00
"""

from collections.abc import Sequence

from app.http.idempotency.migrations import callers_as_digests, callers_as_subjects

revision: str = "0010_catalog_caller_digest"
down_revision: str | None = "0009_catalog_product_version"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    callers_as_digests()


def downgrade() -> None:
    callers_as_subjects()
