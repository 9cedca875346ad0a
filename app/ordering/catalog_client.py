"""Ordering's view of catalog's integration API: product names, best effort."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

logger = logging.getLogger(__name__)

BY_IDS_PATH = "/integration-api/catalog/products/by-ids"


class ProductName(BaseModel):
    id: uuid.UUID
    name: str


_PRODUCT_NAMES = TypeAdapter(list[ProductName])


async def fetch_product_names(
    client: httpx.AsyncClient, product_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Names by product id in one batched call; empty when catalog is down or slow.

    Listing orders must keep working while catalog is unavailable, so every failure
    (connection refused, timeout, 5xx, a malformed answer) degrades to "no names".
    """
    unique_ids = sorted(set(product_ids))
    if not unique_ids:
        return {}
    try:
        response = await client.post(BY_IDS_PATH, json=[str(pid) for pid in unique_ids])
        response.raise_for_status()
        products = _PRODUCT_NAMES.validate_json(response.content)
    except (httpx.HTTPError, ValidationError) as exc:
        logger.warning(
            "catalog integration API unavailable; answering without product names",
            extra={"error": repr(exc)[:300], "product_count": len(unique_ids)},
        )
        return {}
    return {product.id: product.name for product in products}
