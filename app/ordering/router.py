"""Ordering's HTTP API."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.dependencies import AUTH_ERRORS, require
from app.auth.scopes import ORDERS_READ, ORDERS_WRITE
from app.core.schemas import COMMON_ERRORS, DEFAULT_LIMIT, NOT_FOUND, ErrorBody, Limit
from app.http.exact_json import JsonRoute
from app.http.idempotency import IDEMPOTENCY_ERRORS, KeyDep, answer_once
from app.http.paging import Before, Skip, one_cursor, page_links
from app.http.service_app import session_factory, unit_of_work
from app.ordering import service
from app.ordering.catalog_client import fetch_product_names
from app.ordering.models import Order
from app.ordering.schemas import OrderCreate, OrderRead, OrderView

router = APIRouter(
    prefix="/api/ordering",
    tags=["ordering"],
    responses={**COMMON_ERRORS, **AUTH_ERRORS},
    route_class=JsonRoute,
)
READ = [require(ORDERS_READ)]
WRITE = [require(ORDERS_WRITE)]

# Printable ASCII, 1-200 characters: it travels as the AMQP correlation_id, a short string
# of at most 255 bytes. Starlette decodes header bytes as Latin-1, so 130 bytes of 0xE9 once
# passed as 130 characters and became 260 UTF-8 bytes the relay could not send.
CORRELATION_ID_PATTERN = r"^[\x20-\x7e]{1,200}$"
CORRELATION_ID_RULE = "must be 1 to 200 printable ASCII characters (space to ~)"


def _correlation_id(value: str | None) -> str | None:
    # Checked here rather than with Header(pattern=): its 422 would show the regular
    # expression instead of the rule.
    if value is not None and not re.fullmatch(CORRELATION_ID_PATTERN, value):
        raise PydanticCustomError("correlation_id", CORRELATION_ID_RULE)
    return value


CorrelationId = Annotated[
    str | None,
    Header(
        description="echoed as the events' AMQP correlation_id: printable ASCII, 1-200 chars",
        json_schema_extra={"pattern": CORRELATION_ID_PATTERN},
    ),
    AfterValidator(_correlation_id),
]

SessionDep = Annotated[AsyncSession, Depends(unit_of_work("ordering"), scope="function")]
SessionsDep = Annotated[async_sessionmaker[AsyncSession], Depends(session_factory("ordering"))]


def catalog_client(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.catalog_client
    return client


CatalogClientDep = Annotated[httpx.AsyncClient, Depends(catalog_client)]


async def _with_product_names(
    client: httpx.AsyncClient, orders: Sequence[Order]
) -> list[OrderView]:
    names = await fetch_product_names(client, (order.product_id for order in orders))
    return [
        OrderView.model_validate(order).model_copy(
            update={"product_name": names.get(order.product_id)}
        )
        for order in orders
    ]


@router.post(
    "/order",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderRead,
    responses=IDEMPOTENCY_ERRORS,
    dependencies=WRITE,
)
async def place_order(
    body: OrderCreate,
    session: SessionDep,
    key: KeyDep,
    x_correlation_id: CorrelationId = None,
) -> Response:
    """Place an order; its OrderPlaced event is committed in the same transaction. With an
    ``Idempotency-Key``, a retry of the same request answers the first order."""

    async def place() -> OrderRead:
        order = await service.place_order(
            session,
            customer_name=body.customer_name,
            product_id=body.product_id,
            quantity=body.quantity,
            correlation_id=x_correlation_id,
        )
        return OrderRead.model_validate(order)

    return await answer_once(session, key, status.HTTP_201_CREATED, place)


CONFLICT: dict[int | str, dict[str, object]] = {
    409: {"model": ErrorBody, "description": "the order was rejected: nothing to cancel"}
}


@router.post(
    "/order/{order_id}/cancel",
    response_model=OrderRead,
    responses={**NOT_FOUND, **CONFLICT},
    dependencies=WRITE,
)
async def cancel_order(
    order_id: uuid.UUID,
    session: SessionDep,
    x_correlation_id: CorrelationId = None,
) -> OrderRead:
    """Cancel an order (Placed or Confirmed): OrderCancelled is committed with the state
    change, and catalog gives the stock back. Cancelling a cancelled order is a no-op."""
    try:
        order = await service.cancel_order(
            session, order_id=order_id, correlation_id=x_correlation_id
        )
    except service.CannotCancelError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    if order is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"order {order_id} not found")
    return OrderRead.model_validate(order)


UNKNOWN_CURSOR: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "after (or before) names no order"}
}

After = Annotated[
    uuid.UUID | None,
    Query(
        description="keyset page: the orders after this one (the last id of the previous "
        "page; the Link header's rel=next gives it). Costs the page, however deep; skip "
        "(counted from there) costs what it skips"
    ),
]


@router.get("/order", response_model=list[OrderView], responses=UNKNOWN_CURSOR, dependencies=READ)
async def list_orders(
    sessions: SessionsDep,
    client: CatalogClientDep,
    request: Request,
    response: Response,
    skip: Skip = 0,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
    before: Before = None,
) -> list[OrderView]:
    """Orders, newest first, with product names from catalog when it answers. A full page
    carries the next page's link (``Link: <…?after=ID&limit=N>; rel="next"``, RFC 8288),
    a page past the first the previous one's (``rel="prev"``, ``?before=ID``)."""
    one_cursor(after, before)
    # The session closes before catalog is called: a slow catalog must not pin
    # database connections.
    async with sessions() as session:
        try:
            orders = await service.list_orders(
                session, skip=skip, limit=limit, after=after, before=before
            )
        except service.UnknownCursorError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from exc
    link = page_links(request, orders, limit=limit, skip=skip, after=after, before=before)
    if link is not None:
        response.headers["Link"] = link
    return await _with_product_names(client, orders)


@router.get("/order/{order_id}", response_model=OrderView, responses=NOT_FOUND, dependencies=READ)
async def get_order(
    order_id: uuid.UUID, sessions: SessionsDep, client: CatalogClientDep
) -> OrderView:
    """One order by id."""
    async with sessions() as session:
        order = await service.get_order(session, order_id=order_id)
    if order is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"order {order_id} not found")
    [read] = await _with_product_names(client, [order])
    return read
