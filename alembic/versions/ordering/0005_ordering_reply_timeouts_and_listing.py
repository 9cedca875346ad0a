"""Reply timeouts (the saga's timeout) and the listing's index

Revision ID: 0005_ordering
Revises: 0004_ordering
Create Date: 2026-11-30 10:00:00

Orders gain the OrderPlaced row's id, a retry count, a due time for the next retry and an
unanswered mark. Placed orders found here get their OrderPlaced row's id from the outbox
(an order whose row retention already deleted gets a new one when it is republished:
catalog's reservation, keyed by the order, makes that copy a no-op if the first arrived).
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005_ordering"
down_revision: str | None = "0004_ordering"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AWAITING_FIRST_REPLY = sa.text(
    "state = 'Placed' AND reply_retries = 0 AND reply_due_at IS NULL AND unanswered_since IS NULL"
)
RETRIED = sa.text("state = 'Placed' AND reply_due_at IS NOT NULL")
UNANSWERED = sa.text("state = 'Placed' AND unanswered_since IS NOT NULL")

BACKFILL = {
    "postgresql": [
        "UPDATE orders AS o SET placed_message_id = x.id FROM outbox AS x "
        "WHERE o.state = 'Placed' AND x.event_type = 'OrderPlaced' "
        "AND x.payload->>'orderId' = o.id::text",
    ],
    # SQLite keeps a uuid as 32 hex digits, and timestamps as text.
    "sqlite": [
        "UPDATE orders SET placed_message_id = (SELECT x.id FROM outbox AS x "
        "WHERE x.event_type = 'OrderPlaced' "
        "AND replace(json_extract(x.payload, '$.orderId'), '-', '') = orders.id) "
        "WHERE state = 'Placed'",
    ],
}


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("placed_message_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("reply_due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("reply_retries", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch.add_column(sa.Column("unanswered_since", sa.DateTime(timezone=True), nullable=True))
    for statement in BACKFILL[op.get_bind().dialect.name]:
        op.execute(statement)
    op.create_index("ix_orders_created_at_id", "orders", ["created_at", "id"])
    op.create_index(
        "ix_orders_awaiting_reply", "orders", ["created_at"],
        postgresql_where=AWAITING_FIRST_REPLY, sqlite_where=AWAITING_FIRST_REPLY,
    )  # fmt: skip
    op.create_index(
        "ix_orders_reply_due", "orders", ["reply_due_at"],
        postgresql_where=RETRIED, sqlite_where=RETRIED,
    )  # fmt: skip
    op.create_index(
        "ix_orders_unanswered", "orders", ["unanswered_since"],
        postgresql_where=UNANSWERED, sqlite_where=UNANSWERED,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_orders_unanswered", table_name="orders")
    op.drop_index("ix_orders_reply_due", table_name="orders")
    op.drop_index("ix_orders_awaiting_reply", table_name="orders")
    op.drop_index("ix_orders_created_at_id", table_name="orders")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("unanswered_since")
        batch.drop_column("reply_retries")
        batch.drop_column("reply_due_at")
        batch.drop_column("placed_message_id")
