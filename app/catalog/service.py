"""Catalog's use cases. They never commit: the caller's boundary does (the request's
transaction in ``app.http.service_app``, or the consumer's batch), so one transaction
holds a use case and its outbox rows."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, String, Uuid, func, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.cursor import Cursor, Position
from app.catalog.models import LIVE, MAX_STOCK_COUNT, STOCK_RESERVATIONS, Product


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
    after: Cursor | None = None,
    before: Cursor | None = None,
) -> Select[Any]:
    """The query of one page of ``list_products`` (``before``: in descending order, which
    the caller reverses). Every one reads ``ix_products_name_id`` in order."""
    key = tuple_(Product.name, Product.id)
    cursor = after if after is not None else before
    if cursor is None:
        return select(Product).order_by(Product.name, Product.id).offset(skip).limit(limit)
    # The database compares the name with the collation its ORDER BY uses (the column's):
    # a position's name as given, a bare id's as the product is named now.
    if isinstance(cursor, Position):
        at = tuple_(literal(cursor.name, String), literal(cursor.id, Uuid))
    else:
        named = select(Product.name).where(Product.id == cursor).scalar_subquery()
        at = tuple_(named, literal(cursor, Uuid))
    if before is not None:
        query = select(Product).where(key < at).order_by(Product.name.desc(), Product.id.desc())
    else:
        query = select(Product).where(key > at).order_by(Product.name, Product.id)
    return query.offset(skip).limit(limit)


class UnknownCursorError(Exception):
    """``after`` or ``before`` is the id of no product (deleted since, or never one)."""


async def list_products(
    session: AsyncSession,
    *,
    skip: int,
    limit: int,
    after: Cursor | None = None,
    before: Cursor | None = None,
) -> Sequence[Product]:
    """Products by name (ties by id): ``limit`` of them after skipping ``skip``, from the
    start, after ``after`` or just before ``before`` (a Position, or a product's id: keyset
    pages, each costing its rows, however deep). Raises UnknownCursorError when a cursor
    that is an id names no product."""
    query = products_page(skip=skip, limit=limit, after=after, before=before)
    products = (await session.scalars(query)).all()
    if before is not None:
        products = products[::-1]
    cursor = after if after is not None else before
    if (
        isinstance(cursor, uuid.UUID)
        and not products
        and await session.get(Product, cursor) is None
    ):
        raise UnknownCursorError(
            f"no product {cursor}: deleted since, or never one; start again from the first "
            "page (without after or before)"
        )
    return products


async def get_product(session: AsyncSession, *, product_id: uuid.UUID) -> Product | None:
    """One product, or None."""
    return await session.get(Product, product_id)


VersionCheck = Callable[[int], bool]
"""A caller's precondition on the product's current version (If-Match, in the router)."""


class PreconditionFailedError(Exception):
    """The caller's condition does not hold for the product's current version: nothing
    was written. ``product`` is the product as it is now."""

    def __init__(self, product: Product) -> None:
        super().__init__(f"product {product.id} is at version {product.version}")
        self.product = product


class StockOverflowError(Exception):
    """A stock that could not take back what live reservations hold: a cancel would push
    it past what the column holds (``MAX_STOCK_COUNT``)."""

    def __init__(self, *, reserved: int) -> None:
        self.reserved, self.most = reserved, MAX_STOCK_COUNT - reserved
        super().__init__(
            f"is too high: live reservations hold {reserved} that their orders' cancels would "
            f"give back, and a stock holds at most {MAX_STOCK_COUNT}, so it can be at most "
            f"{self.most}"
        )


async def update_product(
    session: AsyncSession,
    *,
    product_id: uuid.UUID,
    changes: Mapping[str, Any],
    precondition: VersionCheck | None = None,
) -> Product | None:
    """Set the given fields (``name``, ``price``, ``stock_count``; others are kept) and
    bump the version if anything changed; None when the product does not exist. Raises
    PreconditionFailedError when ``precondition`` fails for the current version, and
    StockOverflowError for a ``stock_count`` that live reservations could overflow.

    The row is locked first, so the version compared is the one overwritten, and a
    consumer's take or give-back of this product waits for this transaction (or this one
    for it): no write is based on a stale read, and the reservations counted next (a
    statement after the lock: a fresh snapshot under READ COMMITTED) are all that can
    come back to this stock. Taking stock moves it from the stock to a reservation and
    a cancel moves it back, so stock + live reservations never grows but here."""
    product = await session.get(Product, product_id, with_for_update=True)
    if product is None:
        return None
    if precondition is not None and not precondition(product.version):
        raise PreconditionFailedError(product)
    stock = changes.get("stock_count")
    if stock is not None:
        _, reserved = await _live_reservations(session, product_id)
        if stock + reserved > MAX_STOCK_COUNT:
            raise StockOverflowError(reserved=reserved)
    changed = {name: value for name, value in changes.items() if getattr(product, name) != value}
    if changed:
        for name, value in changed.items():
            setattr(product, name, value)
        product.version += 1
        await session.flush()
    return product


def live_reservations(product_id: uuid.UUID) -> Select[tuple[int, int]]:
    """How many live (``reserved``) reservations a product has, and the stock they hold.
    The state is SQL text, not a parameter: a prepared statement's generic plan can then
    still use the partial index ix_stock_reservations_live_product_id."""
    held = func.coalesce(func.sum(STOCK_RESERVATIONS.c.quantity), 0)
    return select(func.count(), held).where(STOCK_RESERVATIONS.c.product_id == product_id, LIVE)


async def _live_reservations(session: AsyncSession, product_id: uuid.UUID) -> tuple[int, int]:
    count, held = (await session.execute(live_reservations(product_id))).one()
    return int(count), int(held)


class ProductReservedError(Exception):
    """A product some live order has stock reserved of: deleting it would leave the
    order's later cancel giving stock back to nothing."""


async def delete_product(
    session: AsyncSession, *, product_id: uuid.UUID, precondition: VersionCheck | None = None
) -> bool:
    """Remove a product; False when it did not exist. Raises PreconditionFailedError when
    ``precondition`` fails for its current version, ProductReservedError while an order
    holds a reservation of it.

    The product row is locked first: the consumer takes stock with an UPDATE of the same
    row, so either its reservation commits before this check sees it, or it waits for
    the delete and then finds no product (and rejects the order as unknown_product)."""
    product = await session.get(Product, product_id, with_for_update=True)
    if product is None:
        return False
    if precondition is not None and not precondition(product.version):
        raise PreconditionFailedError(product)
    reserved, _ = await _live_reservations(session, product_id)
    if reserved:
        raise ProductReservedError(
            f"product {product_id} has {reserved} live reservation(s): their orders may "
            "still be cancelled and give their stock back, so it cannot be deleted while "
            "they stand; cancel those orders first (a reservation lives as long as its "
            "order can be cancelled)"
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
