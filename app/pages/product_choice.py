"""The Orders page's product select: the first products by name (as many as one catalog
page holds), whether there are more, and the product an Order link of the Products page
names (``/orders?product=ID``), read by its id when it is not among them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from app.pages.api_client import ApiError, Apis

SHOWN = 500  # the catalog API's largest page (app.core.schemas.Limit)
NOT_AN_ID = ("The product in this page's address is not a product id, so none is chosen: "
             "choose one below.")  # fmt: skip
NOT_FOUND = ("The product in this page's address is not in the catalog (deleted, or never "
             "added), so none is chosen: choose one below.")  # fmt: skip


@dataclass(frozen=True)
class ProductChoice:
    """The select's ``products`` (by name; the chosen one last when it is beyond them),
    the ``chosen`` one's id (None: the browser's default, the first), whether the catalog
    holds ``more`` than SHOWN, and a ``notice`` when the address named no product."""

    products: list[dict[str, Any]]
    chosen: str | None = None
    more: bool = False
    notice: str | None = None


async def product_choice(apis: Apis, token: str, asked: str | None) -> ProductChoice:
    """The select for ``asked`` (the address's ``product``, None: none asked). A malformed
    or unknown id gives a ``notice`` in fixed words (the address is anyone's to write).
    Raises ApiError when the catalog cannot list the products."""
    products: list[dict[str, Any]] = await apis.call(
        apis.catalog, "GET", f"/api/catalog/products?limit={SHOWN}", token
    )
    more = len(products) == SHOWN and await _beyond(apis, token, products[-1]["id"])
    if asked is None:
        return ProductChoice(products, more=more)
    try:
        # As the API reads a path's UUID (any case, dashes or none); its canonical text
        # is what the listed products' ids are.
        chosen = str(uuid.UUID(asked))
    except ValueError:
        return ProductChoice(products, more=more, notice=NOT_AN_ID)
    if not any(product["id"] == chosen for product in products):
        try:
            found = await apis.call(apis.catalog, "GET", f"/api/catalog/products/{chosen}", token)
        except ApiError as exc:
            if exc.status != 404:
                raise
            return ProductChoice(products, more=more, notice=NOT_FOUND)
        # Beyond the first SHOWN by name, it sorts after them all: last keeps the order.
        products = [*products, found]
    return ProductChoice(products, chosen, more)


async def _beyond(apis: Apis, token: str, last_id: str) -> bool:
    # A full page says nothing of what follows (the API's limit is SHOWN): one row more.
    try:
        rows = await apis.call(apis.catalog, "GET",
                               f"/api/catalog/products?limit=1&after={last_id}", token)  # fmt: skip
    except ApiError as exc:
        if exc.status != 404:
            raise
        return True  # the last one was deleted meanwhile: "the first SHOWN" is still true
    return bool(rows)
