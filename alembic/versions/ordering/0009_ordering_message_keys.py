"""Keyed events: outbox.message_key and key_sequence, the per-key counters, the trigger
that numbers keyed rows

Revision ID: 0009_ordering_message_keys
Revises: 0008_ordering_caller_digest
Create Date: 2026-12-08 00:00:00

Rows already in the outbox stay unkeyed: pending ones are published as before.
"""

from collections.abc import Sequence

from cloudcrm_outbox.storage.schema import add_message_keys, drop_message_keys

revision: str = "0009_ordering_message_keys"
down_revision: str | None = "0008_ordering_caller_digest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_message_keys()


def downgrade() -> None:
    drop_message_keys()
