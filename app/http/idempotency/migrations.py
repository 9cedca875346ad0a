"""The idempotency keys' schema steps both services' Alembic histories share."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from alembic import op


def _digest(subject: str) -> str:
    # Frozen here as the migration wrote it: app.auth.tokens.identity_of at the time.
    return hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()


def callers_as_digests() -> None:
    """``idempotency_keys.caller``: from the token's subject (cut to 200 characters) to
    the SHA-256 (hex) of it, in a 64-character column. A key kept from before belongs to
    the same caller after, unless its subject was longer than 200 characters (only its
    first 200 were kept: a retry of such a key is a new request)."""
    keys = sa.table("idempotency_keys", sa.column("caller", sa.String))
    connection = op.get_bind()
    # Few callers, however many keys: one UPDATE per caller.
    callers = connection.execute(sa.select(keys.c.caller).distinct()).scalars().all()
    for caller in callers:
        connection.execute(
            keys.update().where(keys.c.caller == caller).values(caller=_digest(caller))
        )
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.alter_column(
            "caller", existing_type=sa.String(200), type_=sa.String(64), existing_nullable=False
        )


def callers_as_subjects() -> None:
    """Back to a 200-character column. The digests stay (a subject cannot be recovered from
    one): a key kept across the downgrade no longer finds its caller, and its retry within
    the retention is a new request."""
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.alter_column(
            "caller", existing_type=sa.String(64), type_=sa.String(200), existing_nullable=False
        )
