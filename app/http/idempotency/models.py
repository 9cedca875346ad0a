"""The idempotency keys' table: one per service database (ordering's and catalog's), from
one definition, as the outbox tables are."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
)

from cloudcrm_outbox.storage.clock import db_now
from cloudcrm_outbox.storage.tables import NAMING_CONVENTION

MAX_KEY_LENGTH = 255  # as Stripe's; the IETF draft sets no bound
CALLER_LENGTH = 64  # SHA-256 in hex of the token's whole subject (app.auth.tokens.identity_of)

idempotency_metadata = MetaData(naming_convention=NAMING_CONVENTION)

IDEMPOTENCY_KEYS = Table(
    "idempotency_keys",
    idempotency_metadata,
    # Whose key: the digest of the token's whole subject, so that two clients' keys never
    # meet, however long their subjects or whatever they hold (NUL: PostgreSQL text
    # cannot, SQLite can).
    Column("caller", String(CALLER_LENGTH), nullable=False),
    Column("idempotency_key", String(MAX_KEY_LENGTH), nullable=False),
    # SHA-256 (hex) of the method, the path and the JSON body: the same key with another
    # request is refused, not answered with the first request's result.
    Column("request_hash", String(64), nullable=False),
    # The first answer, written in the transaction that did the work (so a committed key
    # always has one); a retry gets it back as it was.
    Column("status_code", Integer),
    Column("response_body", JSON),
    # The database clock; housekeeping deletes keys older than the retention by it.
    Column("created_at", DateTime(timezone=True), server_default=db_now(), nullable=False),
    PrimaryKeyConstraint("caller", "idempotency_key"),
    Index("ix_idempotency_keys_created_at", "created_at"),
)
