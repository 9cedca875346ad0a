"""Notify the relay when outbox rows commit (PostgreSQL LISTEN/NOTIFY)

Revision ID: 0002_ordering
Revises: 0001_ordering
Create Date: 2026-11-27 02:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002_ordering"
down_revision: str | None = "0001_ordering"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A statement-level trigger: one notification per inserting statement, and PostgreSQL
# folds identical notifications of one transaction into one, delivered only at COMMIT.
# Nothing here compares clocks, so a long multi-statement transaction still notifies.
CREATE = """
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_pending', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
"""

DROP = """
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
DROP FUNCTION IF EXISTS outbox_notify();
"""


def upgrade() -> None:
    # SQLite has no LISTEN/NOTIFY; the relay's interval poll wakes it there.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CREATE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DROP)
