"""Order lifecycle: Confirmed, Rejected (with catalog's reason) and Cancelled

Revision ID: 0003_ordering
Revises: 0002_ordering
Create Date: 2026-11-27 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003_ordering"
down_revision: str | None = "0002_ordering"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _states(*names: str) -> sa.Enum:
    return sa.Enum(*names, name="order_state", native_enum=False, create_constraint=True, length=20)


OLD_STATES = _states("Placed")
NEW_STATES = _states("Placed", "Confirmed", "Rejected", "Cancelled")


def upgrade() -> None:
    # Batch mode: SQLite rebuilds the table; PostgreSQL alters it in place. Both swap the
    # state column's CHECK constraint for one that admits the new states.
    with op.batch_alter_table("orders") as batch:
        batch.alter_column("state", existing_type=OLD_STATES, type_=NEW_STATES)
        batch.add_column(sa.Column("rejection_reason", sa.String(length=50), nullable=True))


def downgrade() -> None:
    # Orders past Placed cannot be expressed in the old schema, and deleting them would
    # lose orders whose stock catalog holds: refuse instead.
    later = op.get_bind().execute(sa.text("SELECT count(*) FROM orders WHERE state <> 'Placed'"))
    if later.scalar_one():
        raise RuntimeError(
            "cannot downgrade: orders exist in Confirmed, Rejected or Cancelled, which the "
            "previous schema cannot hold"
        )
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("rejection_reason")
        batch.alter_column("state", existing_type=NEW_STATES, type_=OLD_STATES)
