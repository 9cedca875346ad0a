"""The ordering database's own tables (the outbox tables come from app.outbox)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Enum, Integer, MetaData, String, Uuid, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.outbox.models import NAMING_CONVENTION, outbox_metadata


class OrderState(enum.StrEnum):
    """Placed -> Confirmed | Rejected (catalog's reply); Placed | Confirmed -> Cancelled."""

    PLACED = "Placed"
    CONFIRMED = "Confirmed"
    REJECTED = "Rejected"
    CANCELLED = "Cancelled"


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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (CheckConstraint("quantity >= 1", name="quantity_positive"),)


# Everything Alembic manages in the ordering database.
ordering_metadata = (OrderingBase.metadata, outbox_metadata)
