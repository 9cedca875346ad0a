"""The ordering database's own tables (the outbox tables come from cloudcrm_outbox)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Enum,
    Index,
    Integer,
    MetaData,
    String,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.http.idempotency.models import idempotency_metadata
from cloudcrm_outbox.storage.clock import db_now
from cloudcrm_outbox.storage.tables import NAMING_CONVENTION, outbox_metadata


class OrderState(enum.StrEnum):
    """Placed -> Confirmed | Rejected (catalog's reply); Placed | Confirmed -> Cancelled."""

    PLACED = "Placed"
    CONFIRMED = "Confirmed"
    REJECTED = "Rejected"
    CANCELLED = "Cancelled"


# The partial indexes' predicates (SQL text: PostgreSQL uses a partial index only when it
# can prove the query implies the predicate).
AWAITING_FIRST_REPLY = text(
    "state = 'Placed' AND reply_retries = 0 AND reply_due_at IS NULL AND unanswered_since IS NULL"
)
RETRIED = text("state = 'Placed' AND reply_due_at IS NOT NULL")
UNANSWERED = text("state = 'Placed' AND unanswered_since IS NOT NULL")

# States a customer may still cancel from.
CANCELLABLE = (OrderState.PLACED, OrderState.CONFIRMED)


class OrderingBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Order(OrderingBase):
    __tablename__ = "orders"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    customer_name: Mapped[str] = mapped_column(String(200))
    product_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    state: Mapped[OrderState] = mapped_column(
        Enum(
            OrderState,
            name="order_state",
            native_enum=False,
            create_constraint=True,
            length=20,
            values_callable=lambda states: [state.value for state in states],
        ),
        default=OrderState.PLACED,
    )
    # Catalog's reason when the order is Rejected (unknown_product, insufficient_stock).
    rejection_reason: Mapped[str | None] = mapped_column(String(50), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=db_now())
    # The saga's reply timeout (app/ordering/reply_timeouts.py): the OrderPlaced outbox
    # row's id (its AMQP message_id, republished as is), how often it was republished and
    # when it is due again (the database clock; None before the first republish, which is
    # due ORDER_REPLY_TIMEOUT_SECONDS after created_at), and since when the order is
    # reported as unanswered instead of retried.
    placed_message_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    reply_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    reply_retries: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    unanswered_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)

    __table_args__ = (
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        # The listing, newest first, and its keyset pages: read in index order (scanned
        # backwards), never a sort of the whole table.
        Index("ix_orders_created_at_id", "created_at", "id"),
        # The reply-timeout sweep reads the overdue orders only: those never republished by
        # age, the others by their due time.
        Index("ix_orders_awaiting_reply", "created_at", postgresql_where=AWAITING_FIRST_REPLY,
              sqlite_where=AWAITING_FIRST_REPLY),
        Index("ix_orders_reply_due", "reply_due_at", postgresql_where=RETRIED,
              sqlite_where=RETRIED),
        # Orders reported unanswered, counted for the metric and status.
        Index("ix_orders_unanswered", "unanswered_since", postgresql_where=UNANSWERED,
              sqlite_where=UNANSWERED),
    )  # fmt: skip


# Everything Alembic manages in the ordering database.
ordering_metadata = (OrderingBase.metadata, outbox_metadata, idempotency_metadata)
