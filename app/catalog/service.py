"""Catalog's use cases. They never commit: the caller's boundary does (STYLE rule 2)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Product


async def create_product(
    session: AsyncSession, *, name: str, price: Decimal, stock_count: int
) -> Product:
    """Add a product."""
    product = Product(id=uuid.uuid4(), name=name, price=price, stock_count=stock_count)
    session.add(product)
    await session.flush()
    return product


async def list_products(session: AsyncSession, *, skip: int, limit: int) -> Sequence[Product]:
    """Products by name."""
    query = select(Product).order_by(Product.name, Product.id).offset(skip).limit(limit)
    return (await session.scalars(query)).all()


async def get_product(session: AsyncSession, *, product_id: uuid.UUID) -> Product | None:
    """One product, or None."""
    return await session.get(Product, product_id)


async def replace_product(
    session: AsyncSession,
    *,
    product_id: uuid.UUID,
    name: str,
    price: Decimal,
    stock_count: int,
) -> Product | None:
    """Overwrite a product's fields; None when it does not exist."""
    # Lock the row: a concurrent stock decrement must not be overwritten by a stale read.
    product = await session.get(Product, product_id, with_for_update=True)
    if product is None:
        return None
    product.name, product.price, product.stock_count = name, price, stock_count
    await session.flush()
    return product


async def delete_product(session: AsyncSession, *, product_id: uuid.UUID) -> bool:
    """Remove a product; False when it did not exist."""
    product = await session.get(Product, product_id)
    if product is None:
        return False
    await session.delete(product)
    await session.flush()
    return True


async def products_by_ids(
    session: AsyncSession, *, product_ids: Sequence[uuid.UUID]
) -> Sequence[Product]:
    """The products among ``product_ids`` that exist (unknown ids are left out)."""
    if not product_ids:
        return []
    query = select(Product).where(Product.id.in_(set(product_ids))).order_by(Product.id)
    return (await session.scalars(query)).all()
