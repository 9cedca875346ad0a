"""The pages: Products, Orders and Operations (GET renders, POST acts and redirects back,
so a reload never repeats an action); sign-in is app.pages.sign_in. ``install`` serves
them all."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from app.catalog.cursor import token as position_token
from app.core.settings import SERVICES
from app.http.preconditions import etag
from app.pages import operations_view
from app.pages import sign_in as sign_in_routes
from app.pages.api_client import ApiError
from app.pages.forms import Form, FormRefusedError, is_form_path, page_of
from app.pages.numbers import JsonNumber, NotANumberError, typed_number
from app.pages.paging import Pager, position, read_page
from app.pages.product_choice import ProductChoice, product_choice
from app.pages.provider_sign_in import IdentityProvider
from app.pages.responses import (
    apis_of,
    back,
    page,
    read_form,
    refused_page,
    safe_path,
)
from app.pages.session import Sessions, SignInRequiredError, forget, has_cookie, token_of

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home() -> Response:
    return RedirectResponse("/products", status_code=303)


def _product_position(product: dict[str, Any]) -> str:
    # The list's own kind of position (name and id): a product renamed between two reads
    # of the page still marks its place, so the next page neither skips nor repeats one.
    return position_token(uuid.UUID(product["id"]), product["name"])


@router.get("/products")
async def products_page(request: Request) -> Response:
    apis = apis_of(request)
    pager = await read_page(apis, apis.catalog, "/api/catalog/products", token_of(request),
                            page_path="/products", params=request.query_params,
                            cursor_of=_product_position)  # fmt: skip
    for product in pager.rows:  # each edit form sends it back as If-Match
        product["etag"] = etag(product["version"]) if "version" in product else ""
    return page(request, "products.html", products=pager.rows, pager=pager)


@router.post("/products")
async def create_product(request: Request) -> Response:
    form = await read_form(request)
    apis = apis_of(request)
    body = _product_body(form)
    created = await apis.call(apis.catalog, "POST", "/api/catalog/products", token_of(request),
                              body)  # fmt: skip
    return back(request, "/products", message=f"added {created['name']}")


@router.post("/products/{product_id}")
async def replace_product(product_id: str, request: Request) -> Response:
    form = await read_form(request)
    apis = apis_of(request)
    body = _product_body(form)
    shown = form.get("etag", "")
    if not re.fullmatch(r'"[0-9]{1,19}"', shown):  # as products_page wrote it; never no If-Match
        return back(
            request, "/products", error="this form is from an older page: reload and save again"
        )
    # The form carries the product's ETag from when the page showed it, sent as If-Match:
    # if anything changed since (an order took stock, another edit), the API refuses it
    # (412) and nothing is saved, rather than the form's values undoing that change.
    path = f"/api/catalog/products/{quote(product_id)}"
    try:
        saved = await apis.call(apis.catalog, "PUT", path, token_of(request), body,
                                headers={"If-Match": shown})  # fmt: skip
    except ApiError as exc:
        if exc.status != 412:
            raise
        # Named as the API has it now (the form's name is anyone's to write).
        current = await apis.call(apis.catalog, "GET", path, token_of(request))
        return back(request, "/products", error=(
            f"{current['name']} changed meanwhile; nothing saved (an order or another edit "
            "changed it after this page was loaded): check its values and save again"))  # fmt: skip
    return back(request, "/products", message=f"saved {saved['name']}")


@router.post("/products/{product_id}/delete")
async def delete_product(product_id: str, request: Request) -> Response:
    await read_form(request)  # a form from another site may not delete either
    apis = apis_of(request)
    await apis.call(apis.catalog, "DELETE", f"/api/catalog/products/{quote(product_id)}",
                    token_of(request))  # fmt: skip
    return back(request, "/products", message="product deleted")


def _product_body(form: Form) -> dict[str, Any]:
    # The API validates (and explains); the numbers go as typed (app.pages.numbers).
    return {"name": form.get("name", ""), "price": _typed("price", form.get("price", "")),
            "stockCount": _typed("stock", form.get("stockCount", ""))}  # fmt: skip


def _typed(field: str, text: str) -> JsonNumber:
    # Refused on the page, as the API's refusals are: what no API could read as a number.
    try:
        return typed_number(field, text)
    except NotANumberError as exc:
        raise ApiError(422, str(exc)) from exc


async def _orders(request: Request) -> Pager:
    apis = apis_of(request)
    return await read_page(apis, apis.ordering, "/api/ordering/order", token_of(request),
                           page_path="/orders", params=request.query_params)  # fmt: skip


@router.get("/orders")
async def orders_page(request: Request) -> Response:
    apis = apis_of(request)
    token = token_of(request)
    pager = await _orders(request)
    try:  # the product a Products page's Order link names, if any, chosen
        choice = await product_choice(apis, token, request.query_params.get("product"))
    except ApiError as exc:  # orders are still listed and cancelled without catalog
        return page(request, "orders.html", orders=pager.rows, pager=pager,
                    choice=ProductChoice([]), catalog_problem=f"catalog: {exc.detail}")  # fmt: skip
    return page(request, "orders.html", orders=pager.rows, pager=pager, choice=choice)


@router.get("/orders/table")
async def orders_table(request: Request) -> Response:
    pager = await _orders(request)
    return page(request, "orders_table.html", orders=pager.rows, pager=pager)


@router.post("/orders")
async def place_order(request: Request) -> Response:
    form = await read_form(request)
    apis = apis_of(request)
    body = {"customerName": form.get("customerName", ""), "productId": form.get("productId", ""),
            "quantity": _typed("quantity", form.get("quantity", "1"))}  # fmt: skip
    await apis.call(apis.ordering, "POST", "/api/ordering/order", token_of(request), body)
    return back(request, "/orders", message="order placed")


@router.post("/orders/{order_id}/cancel")
async def cancel_order(order_id: str, request: Request) -> Response:
    form = await read_form(request)
    apis = apis_of(request)
    await apis.call(apis.ordering, "POST", f"/api/ordering/order/{quote(order_id)}/cancel",
                    token_of(request))  # fmt: skip
    # Back to the page the order was on (its position, checked: nothing else of the form
    # goes into the address).
    page = position(form.get("page", ""))
    return back(request, f"/orders?{page}" if page else "/orders", message="order cancelled")


@router.get("/operations")
async def operations_page(request: Request) -> Response:
    services = [
        await operations_view.service_view(apis_of(request), service, token_of(request))
        for service in SERVICES
    ]
    return page(request, "operations.html", services=services)


@router.post("/operations/{service}/{action}")
async def operate(service: str, action: str, request: Request) -> Response:
    if service not in SERVICES or action not in operations_view.ACTIONS:
        raise HTTPException(404, "no such operation")
    form = await read_form(request)
    done = await operations_view.operate(apis_of(request), service, action, form, token_of(request))
    return back(request, "/operations", message=done)


async def sign_in_required(request: Request, _exc: Exception) -> Response:
    """Any page without a (valid) session: to sign-in, then back (to the page a form was
    on, for a POST). The cookie is dropped only when there was one and it was refused: a
    cross-site link arrives without the Strict cookie, which must not sign the user out."""
    back = request.url.path if request.method == "GET" else _form_page(request)
    response = RedirectResponse(f"/sign-in?next={quote(safe_path(back))}", status_code=303)
    if has_cookie(request):
        forget(response, request)
    return response


async def api_error(request: Request, exc: Exception) -> Response:
    """An API's refusal, shown on the page it came from (a GET: on the page itself)."""
    assert isinstance(exc, ApiError)
    if request.method == "GET":
        shown = page(request, "error.html", status=exc.status, detail=exc.detail)
        shown.status_code = exc.status
        return shown
    return back(request, _form_page(request), error=exc.detail)


def _form_page(request: Request) -> str:
    # Back to the page the form was on: only its path, and only one of this site's;
    # without a Referer (a browser may omit it), the page of the form's own route.
    referer = urlsplit(request.headers.get("referer", "")).path
    return safe_path(referer) if referer else page_of(request.url.path)


async def form_refused(request: Request, exc: Exception) -> Response:
    """A form that cannot be read (another site's, not UTF-8): a page saying why."""
    assert isinstance(exc, FormRefusedError)
    return refused_page(request, exc)


def form_too_large(scope: Scope, max_bytes: int) -> Response | None:
    """A page's form over the request limit (BodySizeLimitMiddleware): a page in words,
    as other refused forms get; None for any other path (an API's: JSON)."""
    if scope["method"] != "POST" or not is_form_path(scope["path"]):
        return None
    words = (f"This form is larger than this site takes ({max_bytes // 1024} KiB), so "
             "nothing was done. Send less at once: a shorter text, or fewer items.")  # fmt: skip
    return refused_page(Request(scope), FormRefusedError(413, words))


def install(
    app: FastAPI,
    *,
    sign_in: Callable[[], str] | None,
    provider: IdentityProvider | None,
    docs_url: str | None = "/docs",
) -> None:
    """Serve the pages on ``app``; ``sign_in`` makes a development session's token (None:
    no development sign-in); ``provider``: sign-in at the identity provider. The clients of
    the services (``app.state.page_apis``, Apis) are set by the app's lifespan."""
    app.state.page_sign_in = sign_in
    app.state.page_provider = provider
    app.state.page_sessions = Sessions()
    app.state.page_docs_url = docs_url  # where the nav's "API" link goes (None: none)
    app.include_router(router)
    app.include_router(sign_in_routes.router)
    app.mount("/assets", StaticFiles(directory=Path(__file__).parent / "static"), name="assets")
    app.add_exception_handler(SignInRequiredError, sign_in_required)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(FormRefusedError, form_refused)
    app.state.body_too_large = form_too_large
