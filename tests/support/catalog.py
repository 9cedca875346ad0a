"""Catalog rows for tests that work on its database directly."""

from __future__ import annotations

import uuid

from tests.conftest import query


async def new_product(database_url: str, stock: int) -> uuid.UUID:
    product_id = uuid.uuid4()
    await query(
        database_url,
        "INSERT INTO products (id, name, price, stock_count) VALUES (%s, 'P', 1, %s)",
        product_id,
        stock,
    )
    return product_id


async def stock_of(database_url: str, product_id: uuid.UUID) -> int:
    [(stock,)] = await query(
        database_url, "SELECT stock_count FROM products WHERE id = %s", product_id
    )
    return int(stock)
