"""Catalog's use cases. They never commit: the caller's boundary does (STYLE rule 2)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, Uuid, func, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import STOCK_RESERVATIONS, Product, ReservationState


async def create_product(
    session: AsyncSession, *, name: str, price: Decimal, stock_count: int
) -> Product:
    """Add a product."""
    product = Product(id=uuid.uuid4(), name=name, price=price, stock_count=stock_count)
    session.add(product)
    await session.flush()
    return product


def products_page(
    *,
    skip: int = 0,
    limit: int,
    after: uuid.UUID | None = None,
    before: uuid.UUID | None = None,
) -> Select[Any]:
    """The query of one page of ``list_products`` (``before``: in descending order, which
    the caller reverses). Every one reads ``ix_products_name_id`` in order."""
    key = tuple_(Product.name, Product.id)
    cursor = after if after is not None else before
    if cursor is None:
        return select(Product).order_by(Product.name, Product.id).offset(skip).limit(limit)
    # The database compares its own values, with the collation its ORDER BY uses.
    named = select(Product.name).where(Product.id == cursor).scalar_subquery()
    at = tuple_(named, literal(cursor, Uuid))
    if before is not None:
        query = select(Product).where(key < at).order_by(Product.name.desc(), Product.id.desc())
    else:
        query = select(Product).where(key > at).order_by(Product.name, Product.id)
    return query.offset(skip).limit(limit)


class UnknownCursorError(Exception):
    """``after`` or ``before`` names no product (deleted since, or never one)."""


async def list_products(
    session: AsyncSession,
    *,
    skip: int,
    limit: int,
    after: uuid.UUID | None = None,
    before: uuid.UUID | None = None,
) -> Sequence[Product]:
    """Products by name (ties by id): ``limit`` of them after skipping ``skip``, from the
    start, after the product ``after`` or just before the product ``before`` (keyset
    pages: each costs its rows, however deep). Raises UnknownCursorError when the cursor
    names no product."""
    query = products_page(skip=skip, limit=limit, after=after, before=before)
    products = (await session.scalars(query)).all()
    if before is not None:
        products = products[::-1]
    cursor = after if after is not None else before
    if cursor is not None and not products and await session.get(Product, cursor) is None:
        raise UnknownCursorError(
            f"no product {cursor}: deleted since, or never one; start again from the first "
            "page (without after or before)"
        )
    return products


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


class ProductReservedError(Exception):
    """A product some live order has stock reserved of: deleting it would leave the
    order's later cancel giving stock back to nothing."""


async def delete_product(session: AsyncSession, *, product_id: uuid.UUID) -> bool:
    """Remove a product; False when it did not exist. Raises ProductReservedError while an
    order holds a reservation of it.

    The product row is locked first: the consumer takes stock with an UPDATE of the same
    row, so either its reservation commits before this check sees it, or it waits for
    the delete and then finds no product (and rejects the order as unknown_product)."""
    product = await session.get(Product, product_id, with_for_update=True)
    if product is None:
        return False
    live = select(func.count()).where(
        STOCK_RESERVATIONS.c.product_id == product_id,
        STOCK_RESERVATIONS.c.state == ReservationState.RESERVED.value,
    )
    reserved = (await session.execute(live)).scalar_one()
    if reserved:
        raise ProductReservedError(
            f"product {product_id} has {reserved} live reservation(s): its orders may still "
            "be cancelled and give their stock back; cancel or wait for them first"
        )
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
