"""Catalog's HTTP API: the public CRUD and the integration API other services call."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import AUTH_ERRORS, require
from app.auth.scopes import CATALOG_INTEGRATION, PRODUCTS_READ, PRODUCTS_WRITE
from app.catalog import service
from app.catalog.cursor import AfterPosition, BeforePosition, parse_cursor, token_of
from app.catalog.models import Product
from app.catalog.schemas import ProductIds, ProductPatch, ProductRead, ProductWrite
from app.core.schemas import COMMON_ERRORS, DEFAULT_LIMIT, NOT_FOUND, ErrorBody, Limit
from app.http.exact_json import ExactNumbersRoute, JsonRoute
from app.http.idempotency import IDEMPOTENCY_ERRORS, KeyDep, answer_once
from app.http.merge_patch import MERGE_PATCH, NOT_A_MERGE_PATCH, merge_patch_only
from app.http.paging import Skip, one_cursor, page_links
from app.http.preconditions import BAD_IF_MATCH, ETAG, STALE, IfMatch, IfMatchDep, etag
from app.http.service_app import unit_of_work

router = APIRouter(
    prefix="/api/catalog",
    tags=["catalog"],
    responses={**COMMON_ERRORS, **AUTH_ERRORS},
    route_class=ExactNumbersRoute,  # prices are judged as written, not as floats
)
integration_router = APIRouter(
    prefix="/integration-api/catalog",
    tags=["catalog integration"],
    responses={**COMMON_ERRORS, **AUTH_ERRORS},
    dependencies=[require(CATALOG_INTEGRATION)],
    route_class=JsonRoute,
)
READ = [require(PRODUCTS_READ)]
WRITE = [require(PRODUCTS_WRITE)]

SessionDep = Annotated[AsyncSession, Depends(unit_of_work("catalog"), scope="function")]


def _found(product: Product | None, product_id: uuid.UUID) -> Product:
    if product is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"product {product_id} not found")
    return product


def _tagged(product: Product, response: Response) -> Product:
    response.headers["ETag"] = etag(product.version)
    return product


@router.post(
    "/products",
    status_code=status.HTTP_201_CREATED,
    response_model=ProductRead,
    responses={**IDEMPOTENCY_ERRORS, 201: {"headers": ETAG}},
    dependencies=WRITE,
)
async def create_product(body: ProductWrite, session: SessionDep, key: KeyDep) -> Response:
    """Add a product (version 1; its ETag in the answer's header). With an
    ``Idempotency-Key``, a retry of the same request answers the first product."""

    async def create() -> ProductRead:
        product = await service.create_product(
            session, name=body.name, price=body.price, stock_count=body.stock_count
        )
        return ProductRead.model_validate(product)

    return await answer_once(
        session, key, status.HTTP_201_CREATED, create,
        headers_of=lambda product: {"ETag": etag(product["version"])},
    )  # fmt: skip


UNKNOWN_PRODUCT_CURSOR: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "after (or before) is the id of no product"}
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
    after: AfterPosition = None,
    before: BeforePosition = None,
) -> list[Product]:
    """Products, by name (ties by id). A full page carries the next page's link (``Link:
    <…?after=POSITION&limit=N>; rel="next"``, RFC 8288), a page past the first the
    previous one's (``rel="prev"``, ``?before=POSITION``); a position is opaque, and holds
    its place when its product is renamed or deleted."""
    one_cursor(after, before)
    start, end = parse_cursor(after, "after"), parse_cursor(before, "before")
    try:
        products = await service.list_products(
            session, skip=skip, limit=limit, after=start, before=end
        )
    except service.UnknownCursorError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from exc
    link = page_links(
        request, products, limit=limit, skip=skip, after=start, before=end, position=token_of
    )
    if link is not None:
        response.headers["Link"] = link
    return list(products)


@router.get(
    "/products/{product_id}",
    response_model=ProductRead,
    responses={**NOT_FOUND, 200: {"headers": ETAG}},
    dependencies=READ,
)
async def get_product(product_id: uuid.UUID, session: SessionDep, response: Response) -> Product:
    """One product, with its ETag (send it back as If-Match to write it safely)."""
    product = _found(await service.get_product(session, product_id=product_id), product_id)
    return _tagged(product, response)


@router.put(
    "/products/{product_id}",
    response_model=ProductRead,
    responses={**NOT_FOUND, **STALE, **BAD_IF_MATCH, 200: {"headers": ETAG}},
    dependencies=WRITE,
)
async def replace_product(
    product_id: uuid.UUID,
    body: ProductWrite,
    session: SessionDep,
    if_match: IfMatchDep,
    response: Response,
) -> Product:
    """Replace a product's name, price and stock. Without If-Match it overwrites whatever
    the product holds now: stock an order took since the client read it comes back."""
    changes = {"name": body.name, "price": body.price, "stock_count": body.stock_count}
    return _tagged(await _update(session, product_id, changes, if_match), response)


@router.patch(
    "/products/{product_id}",
    response_model=ProductRead,
    responses={**NOT_FOUND, **STALE, **BAD_IF_MATCH, **NOT_A_MERGE_PATCH, 200: {"headers": ETAG}},
    dependencies=[*WRITE, Depends(merge_patch_only)],
)
async def patch_product(
    product_id: uuid.UUID,
    body: Annotated[ProductPatch, Body(media_type=MERGE_PATCH)],
    session: SessionDep,
    if_match: IfMatchDep,
    response: Response,
) -> Product:
    """Change only the fields sent: a JSON merge patch (RFC 7396), as
    `application/merge-patch+json` or `application/json`. `null` would remove a field,
    and every field of a product is required: it is refused."""
    return _tagged(await _update(session, product_id, body.changes(), if_match), response)


async def _update(
    session: AsyncSession, product_id: uuid.UUID, changes: dict[str, Any], if_match: IfMatch | None
) -> Product:
    try:
        product = await service.update_product(
            session, product_id=product_id, changes=changes, precondition=_check(if_match)
        )
    except service.PreconditionFailedError as exc:
        raise _stale(exc.product, "nothing was saved") from exc
    except service.StockOverflowError as exc:
        raise RequestValidationError(
            [{"loc": ("body", "stockCount"), "msg": str(exc), "type": "stock_overflow"}]
        ) from exc
    return _found(product, product_id)


def _check(if_match: IfMatch | None) -> service.VersionCheck | None:
    return None if if_match is None else lambda version: if_match.holds(etag(version))


def _stale(product: Product, outcome: str) -> HTTPException:
    current = etag(product.version)
    return HTTPException(
        status.HTTP_412_PRECONDITION_FAILED,
        f"product {product.id} changed meanwhile (its ETag is now {current}, which If-Match "
        f"does not match): {outcome}; GET it again, check, and send its new ETag",
        headers={"ETag": current},
    )


RESERVED: dict[int | str, dict[str, object]] = {
    409: {"model": ErrorBody, "description": "an order holds a reservation of the product"}
}


@router.delete(
    "/products/{product_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**NOT_FOUND, **RESERVED, **STALE, **BAD_IF_MATCH},
    dependencies=WRITE,
)
async def delete_product(
    product_id: uuid.UUID, session: SessionDep, if_match: IfMatchDep
) -> Response:
    """Remove a product; 409 while an order holds a reservation of it (its cancel would
    give stock back to nothing)."""
    try:
        deleted = await service.delete_product(
            session, product_id=product_id, precondition=_check(if_match)
        )
    except service.PreconditionFailedError as exc:
        raise _stale(exc.product, "nothing was deleted") from exc
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
