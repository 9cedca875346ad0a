"""The inbox's key gate: each consumer's next sequence per message key, and the keyed
messages parked until their turn

Revision ID: 0010_ordering_inbox_key_order
Revises: 0009_ordering_message_keys
Create Date: 2026-12-08 02:00:00

Messages already applied stay as they are; a key met for the first time starts at 1.
"""

from collections.abc import Sequence

from cloudcrm_outbox.storage.schema import add_inbox_key_order, drop_inbox_key_order

revision: str = "0010_ordering_inbox_key_order"
down_revision: str | None = "0009_ordering_message_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_inbox_key_order()


def downgrade() -> None:
    drop_inbox_key_order()
