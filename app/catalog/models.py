"""The catalog database's own tables (the outbox tables come from cloudcrm_outbox)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.http.idempotency.models import idempotency_metadata
from cloudcrm_outbox.storage.clock import db_now
from cloudcrm_outbox.storage.tables import NAMING_CONVENTION, outbox_metadata

PRICE_PRECISION = 14
PRICE_SCALE = 2
MAX_STOCK_COUNT = 2_147_483_647  # PostgreSQL's integer


class CatalogBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Product(CatalogBase):
    __tablename__ = "products"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Compared by code point on PostgreSQL (collation "C", migration 0011) as SQLite's
    # BINARY does: the list by name, and its keyset pages, are the same on both.
    name: Mapped[str] = mapped_column(
        String(200).with_variant(String(200, collation="C"), "postgresql")
    )
    price: Mapped[Decimal] = mapped_column(Numeric(PRICE_PRECISION, PRICE_SCALE))
    stock_count: Mapped[int] = mapped_column(Integer)
    # Bumped by every change of the product, stock taken or given back by an order
    # included: its ETag (RFC 9110 §8.8.3), which If-Match compares. A bigint: a hot
    # product's orders would exhaust an int4 in weeks at a thousand a second.
    version: Mapped[int] = mapped_column(BigInteger, default=1, server_default=text("1"))

    __table_args__ = (
        # The last line of defence: whatever a handler does, stock never goes negative.
        CheckConstraint("stock_count >= 0", name="stock_count_non_negative"),
        # PostgreSQL's integer cannot hold more; SQLite's can, so without this the two
        # would differ (a cancel's give-back overflowing succeeds on SQLite).
        CheckConstraint(f"stock_count <= {MAX_STOCK_COUNT}", name="stock_count_within_int4"),
        CheckConstraint("price >= 0", name="price_non_negative"),
        # The listing by name and its keyset pages: read in index order, never a sort.
        Index("ix_products_name_id", "name", "id"),
    )


class ReservationState(enum.StrEnum):
    RESERVED = "reserved"  # the order's quantity was taken from stock
    REJECTED = "rejected"  # nothing was taken (unknown product, too little stock)
    RELEASED = "released"  # taken, then given back when the order was cancelled
    # The cancel arrived before the order (relays publish in parallel): a tombstone, so the
    # late OrderPlaced takes nothing.
    CANCELLED_FIRST = "cancelled_first"


TERMINAL_STATES = ("rejected", "released", "cancelled_first")
TERMINAL = text("state IN ('rejected', 'released', 'cancelled_first')")
LIVE = text("state = 'reserved'")


class StockReservation(CatalogBase):
    """What catalog did for one order: the arbiter between its OrderPlaced and its
    OrderCancelled, whichever arrives first, and the record that stock is given back once."""

    __tablename__ = "stock_reservations"

    order_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    quantity: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))
    # The database's clock: when the row was made and last changed state. Retention
    # deletes terminal rows by ``updated_at`` (see app/catalog/retention.py).
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=db_now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=db_now())

    __table_args__ = (
        CheckConstraint(
            "state IN ('reserved', 'rejected', 'released', 'cancelled_first')",
            name="state_known",
        ),
        # Terminal rows by age, for retention: as small as what may go, never the live ones.
        Index(
            "ix_stock_reservations_terminal_updated_at",
            "updated_at",
            postgresql_where=TERMINAL,
            sqlite_where=TERMINAL,
        ),
        # A product's live reservations (what its stock may still get back), read under
        # the product's row lock by every write of its stock and by its delete.
        Index(
            "ix_stock_reservations_live_product_id",
            "product_id",
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        ),
    )


# Typed handles for Core statements (as cloudcrm_outbox.storage.tables does for its tables).
PRODUCTS: Table = Product.__table__  # type: ignore[assignment]
STOCK_RESERVATIONS: Table = StockReservation.__table__  # type: ignore[assignment]

# Everything Alembic manages in the catalog database.
catalog_metadata = (CatalogBase.metadata, outbox_metadata, idempotency_metadata)
