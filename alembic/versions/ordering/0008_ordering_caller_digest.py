"""idempotency_keys.caller: the SHA-256 (hex) of the token's whole subject

A subject longer than 200 characters was cut to its first 200 (two such callers shared
their keys), and one holding NUL could not be stored on PostgreSQL. Existing rows get the
digest of what they hold.

Revision ID: 0008_ordering_caller_digest
Revises: 0007_ordering_millisecond_clock
Create Date: 2026-12-09 10:00:00
"""

from collections.abc import Sequence

from app.http.idempotency.migrations import callers_as_digests, callers_as_subjects

revision: str = "0008_ordering_caller_digest"
down_revision: str | None = "0007_ordering_millisecond_clock"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    callers_as_digests()


def downgrade() -> None:
    callers_as_subjects()
