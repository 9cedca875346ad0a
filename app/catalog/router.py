"""Catalog's HTTP API: the public CRUD and the integration API other services call."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import AUTH_ERRORS, require
from app.auth.scopes import CATALOG_INTEGRATION, PRODUCTS_READ, PRODUCTS_WRITE
from app.catalog import service
from app.catalog.models import Product
from app.catalog.schemas import ProductIds, ProductRead, ProductWrite
from app.idempotency import IDEMPOTENCY_ERRORS, KeyDep, answer_once
from app.paging import Before, one_cursor, page_links
from app.schemas import COMMON_ERRORS, DEFAULT_LIMIT, NOT_FOUND, ErrorBody, Limit, Skip
from app.web import unit_of_work

router = APIRouter(
    prefix="/api/catalog", tags=["catalog"], responses={**COMMON_ERRORS, **AUTH_ERRORS}
)
integration_router = APIRouter(
    prefix="/integration-api/catalog",
    tags=["catalog integration"],
    responses={**COMMON_ERRORS, **AUTH_ERRORS},
    dependencies=[require(CATALOG_INTEGRATION)],
)
READ = [require(PRODUCTS_READ)]
WRITE = [require(PRODUCTS_WRITE)]

SessionDep = Annotated[AsyncSession, Depends(unit_of_work("catalog"), scope="function")]


def _found(product: Product | None, product_id: uuid.UUID) -> Product:
    if product is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"product {product_id} not found")
    return product


@router.post(
    "/products",
    status_code=status.HTTP_201_CREATED,
    response_model=ProductRead,
    responses=IDEMPOTENCY_ERRORS,
    dependencies=WRITE,
)
async def create_product(body: ProductWrite, session: SessionDep, key: KeyDep) -> Response:
    """Add a product. With an ``Idempotency-Key``, a retry of the same request answers the
    first product."""

    async def create() -> ProductRead:
        product = await service.create_product(
            session, name=body.name, price=body.price, stock_count=body.stock_count
        )
        return ProductRead.model_validate(product)

    return await answer_once(session, key, status.HTTP_201_CREATED, create)


AfterProduct = Annotated[
    uuid.UUID | None,
    Query(
        alias="after",
        description="keyset page: the products after this one (the last id of the previous "
        "page; the Link header's rel=next gives it). Costs the page, however deep",
    ),
]
UNKNOWN_PRODUCT_CURSOR: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "after (or before) names no product"}
}


@router.get(
    "/products",
    response_model=list[ProductRead],
    responses=UNKNOWN_PRODUCT_CURSOR,
    dependencies=READ,
)
async def list_products(
    session: SessionDep,
    request: Request,
    response: Response,
    skip: Skip = 0,
    limit: Limit = DEFAULT_LIMIT,
    after: AfterProduct = None,
    before: Before = None,
) -> list[Product]:
    """Products, by name (ties by id). A full page carries the next page's link (``Link:
    <…?after=ID&limit=N>; rel="next"``, RFC 8288), a page past the first the previous
    one's (``rel="prev"``, ``?before=ID``)."""
    one_cursor(after, before)
    try:
        products = await service.list_products(
            session, skip=skip, limit=limit, after=after, before=before
        )
    except service.UnknownCursorError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from exc
    link = page_links(request, products, limit=limit, skip=skip, after=after, before=before)
    if link is not None:
        response.headers["Link"] = link
    return list(products)


@router.get(
    "/products/{product_id}", response_model=ProductRead, responses=NOT_FOUND, dependencies=READ
)
async def get_product(product_id: uuid.UUID, session: SessionDep) -> Product:
    """One product."""
    return _found(await service.get_product(session, product_id=product_id), product_id)


@router.put(
    "/products/{product_id}", response_model=ProductRead, responses=NOT_FOUND, dependencies=WRITE
)
async def replace_product(
    product_id: uuid.UUID, body: ProductWrite, session: SessionDep
) -> Product:
    """Replace a product's name, price and stock."""
    product = await service.replace_product(
        session,
        product_id=product_id,
        name=body.name,
        price=body.price,
        stock_count=body.stock_count,
    )
    return _found(product, product_id)


RESERVED: dict[int | str, dict[str, object]] = {
    409: {"model": ErrorBody, "description": "an order holds a reservation of the product"}
}


@router.delete(
    "/products/{product_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**NOT_FOUND, **RESERVED},
    dependencies=WRITE,
)
async def delete_product(product_id: uuid.UUID, session: SessionDep) -> Response:
    """Remove a product; 409 while an order holds a reservation of it (its cancel would
    give stock back to nothing)."""
    try:
        deleted = await service.delete_product(session, product_id=product_id)
    except service.ProductReservedError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    if not deleted:
        _found(None, product_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@integration_router.post("/products/by-ids", response_model=list[ProductRead])
async def products_by_ids(
    product_ids: Annotated[ProductIds, Body()], session: SessionDep
) -> list[Product]:
    """The products among the given ids (unknown ids are left out), for other services."""
    return list(await service.products_by_ids(session, product_ids=product_ids))
