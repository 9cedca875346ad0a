"""The pages: Products, Orders, Operations and sign-in (GET renders, POST acts and
redirects back, so a reload never repeats an action)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.types import Scope

from app.logs import escape_controls
from app.pages import flash, operations_view
from app.pages.api_client import ApiError, Apis
from app.pages.forms import (
    Form,
    FormRefusedError,
    check_origin,
    is_form_path,
    page_of,
    parse_form,
)
from app.pages.numbers import JsonNumber, NotANumberError, typed_number
from app.pages.paging import PAGE_ROWS, Pager, position, read_page
from app.pages.provider_sign_in import (
    FLOW_COOKIE,
    FLOW_SECONDS,
    IdentityProvider,
    SignInFailedError,
)
from app.pages.reasons import reason_words
from app.pages.session import (
    Sessions,
    SignInRequiredError,
    cookie_value,
    forget,
    has_cookie,
    keep,
    signed_in,
    token_of,
)
from app.preconditions import etag
from app.settings import SERVICES

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["reason_words"] = reason_words
templates.env.globals["page_rows"] = PAGE_ROWS
router = APIRouter(include_in_schema=False)


def _apis(request: Request) -> Apis:
    apis: Apis = request.app.state.page_apis
    return apis


async def _form(request: Request) -> Form:
    # The pages' forms are url-encoded; no multipart parser needed. FormRefusedError: from
    # another site, or not UTF-8.
    check_origin(request)
    return parse_form(await request.body())


def _back(
    request: Request,
    path: str,
    *,
    message: str | None = None,
    error: str | None = None,
    session: str | None = None,
) -> Response:
    # What happened travels in a signed one-time flash: the address stays clean. It shows
    # in this browser, while its session is ``session`` (by default the request's own).
    # Its words are fixed, or the API's: never a form's (anyone can write a form).
    response = RedirectResponse(path, status_code=303)
    bound = cookie_value(request) if session is None else session
    if error:
        flash.say(response, request, flash.Flash("error", error), session=bound)
    elif message:
        flash.say(response, request, flash.Flash("message", message), session=bound)
    return response


def _page(request: Request, template: str, **context: Any) -> HTMLResponse:
    # A page the browser navigates to shows the flash (once); the Orders table fetched
    # by script (Sec-Fetch-Mode: cors) leaves it for the page.
    navigating = request.headers.get("sec-fetch-mode", "navigate") == "navigate"
    banner = flash.read(request, session=cookie_value(request)) if navigating else None
    # Shown as written, but never reordered nor hidden: bidirectional and other invisible
    # controls are written as escapes.
    words = escape_controls(banner.text) if banner else None
    page = templates.TemplateResponse(
        request,
        template,
        {
            "message": words if banner and banner.kind == "message" else None,
            "error": words if banner and banner.kind == "error" else None,
            "signed_in": signed_in(request),
            "docs_url": request.app.state.page_docs_url,
            **context,
        },
    )
    if navigating:
        flash.clear(page, request)
    # Never framed by another page (clickjacking), never kept in a cache after sign-out.
    page.headers["X-Frame-Options"] = "DENY"
    page.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    page.headers["Cache-Control"] = "no-store"
    return page


@router.get("/")
async def home() -> Response:
    return RedirectResponse("/products", status_code=303)


@router.get("/sign-in")
async def sign_in_page(request: Request) -> HTMLResponse:
    development = request.app.state.page_sign_in is not None
    provider = request.app.state.page_provider is not None
    return _page(request, "sign_in.html", development=development, provider=provider,
                 next=_safe(request.query_params.get("next")))  # fmt: skip


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    sign_in_as_developer: Callable[[], str] | None = request.app.state.page_sign_in
    if sign_in_as_developer is None:
        return _back(
            request, "/sign-in", error="no development sign-in here: use your identity provider"
        )
    client = request.client.host if request.client else ""
    if (
        _proxied(request)
        or client not in {"127.0.0.1", "::1"}
        or not _loopback(request.headers.get("host", ""))
    ):
        # Anyone who reaches it would get every scope: this machine's own browser only
        # (a name that only resolves here, as DNS rebinding would use, is refused too).
        return _back(request, "/sign-in", error="the development sign-in answers only on 127.0.0.1")
    token = sign_in_as_developer()
    form = await _form(request)
    response = _back(request, _safe(form.get("next")))
    keep(response, request, token)
    return response


@router.get("/sign-in/provider")
async def sign_in_with_provider(request: Request) -> Response:
    provider: IdentityProvider | None = request.app.state.page_provider
    if provider is None:
        return _back(request, "/sign-in", error="no identity provider is configured here")
    try:
        url, flow = provider.start(_callback(request), _safe(request.query_params.get("next")))
    except SignInFailedError as exc:
        return _back(request, "/sign-in", error=str(exc))
    response = RedirectResponse(url, status_code=303)
    # Lax, not Strict: it must come back with the provider's redirect to the callback.
    response.set_cookie(FLOW_COOKIE, flow, max_age=FLOW_SECONDS, httponly=True,
                        samesite="lax", secure=request.url.scheme == "https",
                        path="/sign-in")  # fmt: skip
    return response


@router.get("/sign-in/callback")
async def sign_in_callback(request: Request) -> Response:
    provider: IdentityProvider | None = request.app.state.page_provider
    if provider is None:
        return _back(request, "/sign-in", error="no identity provider is configured here")
    try:
        token, expires, next_path = await provider.finish(
            request.cookies.get(FLOW_COOKIE), dict(request.query_params), _callback(request)
        )
    except SignInFailedError as exc:
        return _back(request, "/sign-in", error=str(exc))
    # A page that moves on by itself rather than a redirect: the session cookie is
    # SameSite=Strict, and a redirect chain that began at the provider would not carry it.
    response = _page(request, "signed_in.html", next=_safe(next_path))
    keep(response, request, token, seconds=max(60, int(expires - time.time())))
    response.delete_cookie(FLOW_COOKIE, path="/sign-in")
    return response


# A proxy on this machine makes every client look local: a request carrying what proxies,
# load balancers and CDNs add (RFC 7239's Forwarded, RFC 9110 §7.6.3's Via, the de facto
# X-Forwarded-* and the client-address headers of nginx, Cloudflare, Akamai, Fastly…) is
# refused. A forwarder that adds nothing (a TCP port forward, ssh -L) cannot be told from
# a browser on this machine: the README says never to put one in front of the sign-in.
_PROXY_HEADERS = frozenset({
    "forwarded", "via", "x-real-ip", "cf-connecting-ip", "true-client-ip", "x-client-ip",
    "x-cluster-client-ip", "fastly-client-ip", "client-ip", "x-proxyuser-ip",
})  # fmt: skip
_PROXY_PREFIXES = ("x-forwarded-", "x-original-")


def _proxied(request: Request) -> bool:
    return any(
        name in _PROXY_HEADERS or name.startswith(_PROXY_PREFIXES) for name in request.headers
    )


def _loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    return name in {"127.0.0.1", "localhost", "[::1]"}


def _callback(request: Request) -> str:
    return str(request.url_for("sign_in_callback"))


# A path of this site and nothing else: printable ASCII, no backslash (browsers read "/\\h"
# as "//h"), not "//" (scheme-relative). Anything else is an open redirect waiting.
_SAFE_PATH = re.compile(r"^/(?![/\\])[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$")


def _safe(path: str | None) -> str:
    return path if path and _SAFE_PATH.match(path) else "/products"


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    await _form(request)  # a form from another site may not sign the user out either
    response = _back(request, "/sign-in", message="signed out", session="")
    forget(response, request)  # the session ends here: a copy of the cookie is dead too
    return response


@router.get("/products")
async def products_page(request: Request) -> Response:
    apis = _apis(request)
    pager = await read_page(apis, apis.catalog, "/api/catalog/products", token_of(request),
                            page_path="/products", params=request.query_params)  # fmt: skip
    for product in pager.rows:  # each edit form sends it back as If-Match
        product["etag"] = etag(product["version"]) if "version" in product else ""
    return _page(request, "products.html", products=pager.rows, pager=pager)


@router.post("/products")
async def create_product(request: Request) -> Response:
    form = await _form(request)
    apis = _apis(request)
    body = _product_body(form)
    created = await apis.call(apis.catalog, "POST", "/api/catalog/products", token_of(request),
                              body)  # fmt: skip
    return _back(request, "/products", message=f"added {created['name']}")


@router.post("/products/{product_id}")
async def replace_product(product_id: str, request: Request) -> Response:
    form = await _form(request)
    apis = _apis(request)
    body = _product_body(form)
    shown = form.get("etag", "")
    if not re.fullmatch(r'"[0-9]{1,19}"', shown):  # as products_page wrote it; never no If-Match
        return _back(
            request, "/products", error="this form is from an older page: reload and save again"
        )
    # The form carries the product's ETag from when the page showed it, sent as If-Match:
    # if anything changed since (an order took stock, another edit), the API refuses it
    # (412) and nothing is saved, rather than the form's values undoing that change.
    try:
        saved = await apis.call(apis.catalog, "PUT", f"/api/catalog/products/{quote(product_id)}",
                                token_of(request), body, headers={"If-Match": shown})  # fmt: skip
    except ApiError as exc:
        if exc.status != 412:
            raise
        return _back(request, "/products", error=(
            "the product changed meanwhile; nothing saved (an order or another edit "
            "changed it after this page was loaded): check its values and save again"))  # fmt: skip
    return _back(request, "/products", message=f"saved {saved['name']}")


@router.post("/products/{product_id}/delete")
async def delete_product(product_id: str, request: Request) -> Response:
    await _form(request)  # a form from another site may not delete either
    apis = _apis(request)
    await apis.call(apis.catalog, "DELETE", f"/api/catalog/products/{quote(product_id)}",
                    token_of(request))  # fmt: skip
    return _back(request, "/products", message="product deleted")


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
    apis = _apis(request)
    return await read_page(apis, apis.ordering, "/api/ordering/order", token_of(request),
                           page_path="/orders", params=request.query_params)  # fmt: skip


@router.get("/orders")
async def orders_page(request: Request) -> Response:
    apis = _apis(request)
    token = token_of(request)
    pager = await _orders(request)
    try:
        products = await apis.call(apis.catalog, "GET", "/api/catalog/products?limit=500", token)
    except ApiError as exc:  # orders are still listed and cancelled without catalog
        return _page(request, "orders.html", orders=pager.rows, pager=pager, products=[],
                     catalog_problem=f"catalog: {exc.detail}")  # fmt: skip
    return _page(request, "orders.html", orders=pager.rows, pager=pager, products=products)


@router.get("/orders/table")
async def orders_table(request: Request) -> Response:
    pager = await _orders(request)
    return _page(request, "orders_table.html", orders=pager.rows, pager=pager)


@router.post("/orders")
async def place_order(request: Request) -> Response:
    form = await _form(request)
    apis = _apis(request)
    body = {"customerName": form.get("customerName", ""), "productId": form.get("productId", ""),
            "quantity": _typed("quantity", form.get("quantity", "1"))}  # fmt: skip
    await apis.call(apis.ordering, "POST", "/api/ordering/order", token_of(request), body)
    return _back(request, "/orders", message="order placed")


@router.post("/orders/{order_id}/cancel")
async def cancel_order(order_id: str, request: Request) -> Response:
    form = await _form(request)
    apis = _apis(request)
    await apis.call(apis.ordering, "POST", f"/api/ordering/order/{quote(order_id)}/cancel",
                    token_of(request))  # fmt: skip
    # Back to the page the order was on (its position, checked: nothing else of the form
    # goes into the address).
    page = position(form.get("page", ""))
    return _back(request, f"/orders?{page}" if page else "/orders", message="order cancelled")


@router.get("/operations")
async def operations_page(request: Request) -> Response:
    services = [
        await operations_view.service_view(_apis(request), service, token_of(request))
        for service in SERVICES
    ]
    return _page(request, "operations.html", services=services)


@router.post("/operations/{service}/{action}")
async def operate(service: str, action: str, request: Request) -> Response:
    if service not in SERVICES or action not in operations_view.ACTIONS:
        raise HTTPException(404, "no such operation")
    form = await _form(request)
    done = await operations_view.operate(_apis(request), service, action, form, token_of(request))
    return _back(request, "/operations", message=done)


async def sign_in_required(request: Request, _exc: Exception) -> Response:
    """Any page without a (valid) session: to sign-in, then back (to the page a form was
    on, for a POST). The cookie is dropped only when there was one and it was refused: a
    cross-site link arrives without the Strict cookie, which must not sign the user out."""
    back = request.url.path if request.method == "GET" else _form_page(request)
    response = RedirectResponse(f"/sign-in?next={quote(_safe(back))}", status_code=303)
    if has_cookie(request):
        forget(response, request)
    return response


async def api_error(request: Request, exc: Exception) -> Response:
    """An API's refusal, shown on the page it came from (a GET: on the page itself)."""
    assert isinstance(exc, ApiError)
    if request.method == "GET":
        page = _page(request, "error.html", status=exc.status, detail=exc.detail)
        page.status_code = exc.status
        return page
    return _back(request, _form_page(request), error=exc.detail)


def _form_page(request: Request) -> str:
    # Back to the page the form was on: only its path, and only one of this site's;
    # without a Referer (a browser may omit it), the page of the form's own route.
    referer = urlsplit(request.headers.get("referer", "")).path
    return _safe(referer) if referer else page_of(request.url.path)


async def form_refused(request: Request, exc: Exception) -> Response:
    """A form that cannot be read (another site's, not UTF-8): a page saying why."""
    assert isinstance(exc, FormRefusedError)
    return _refused(request, exc)


def _refused(request: Request, exc: FormRefusedError) -> Response:
    page = _page(request, "error.html", status=exc.status, detail=exc.words,
                 heading="Form refused")  # fmt: skip
    page.status_code = exc.status
    return page


def form_too_large(scope: Scope, max_bytes: int) -> Response | None:
    """A page's form over the request limit (BodySizeLimitMiddleware): a page in words,
    as other refused forms get; None for any other path (an API's: JSON)."""
    if scope["method"] != "POST" or not is_form_path(scope["path"]):
        return None
    words = (f"This form is larger than this site takes ({max_bytes // 1024} KiB), so "
             "nothing was done. Send less at once: a shorter text, or fewer items.")  # fmt: skip
    return _refused(Request(scope), FormRefusedError(413, words))


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
    app.mount("/assets", StaticFiles(directory=Path(__file__).parent / "static"), name="assets")
    app.add_exception_handler(SignInRequiredError, sign_in_required)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(FormRefusedError, form_refused)
    app.state.body_too_large = form_too_large
