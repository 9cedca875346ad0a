"""Demo products for the tutorial flow of ``python -m app dev``."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Product

# Fixed ids, so the tutorial's curl examples work on every machine.
_NAMESPACE = uuid.UUID("6f1d5e4e-6a44-4a55-9b8b-8f2f1f1c0a53")
DEMO_PRODUCTS = (
    ("Product A", Decimal("9.99"), 53),
    ("Product B", Decimal("24.50"), 10),
    ("Product C", Decimal("3.75"), 100),
)


def demo_product_id(name: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, name)


async def seed_demo_products(session: AsyncSession) -> int:
    """Add the demo products if the catalog is empty; returns how many were added."""
    if await session.scalar(select(func.count()).select_from(Product)):
        return 0
    for name, price, stock in DEMO_PRODUCTS:
        session.add(Product(id=demo_product_id(name), name=name, price=price, stock_count=stock))
    await session.flush()
    return len(DEMO_PRODUCTS)
