"""What the pages answer with: a page (with the flash's banner), a redirect back with a
banner, and the forms they read; where a redirect may go."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from app.core.logs import escape_controls
from app.pages import flash
from app.pages.api_client import Apis
from app.pages.forms import Form, FormRefusedError, check_origin, parse_form
from app.pages.paging import PAGE_ROWS
from app.pages.product_choice import SHOWN
from app.pages.reasons import reason_words
from app.pages.session import cookie_value, signed_in

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["reason_words"] = reason_words
templates.env.globals["page_rows"] = PAGE_ROWS
templates.env.globals["products_shown"] = SHOWN


def apis_of(request: Request) -> Apis:
    """The clients of the two APIs (``app.state.page_apis``)."""
    apis: Apis = request.app.state.page_apis
    return apis


async def read_form(request: Request) -> Form:
    """The form a page posted. Raises FormRefusedError: from another site, or not UTF-8."""
    # The pages' forms are url-encoded; no multipart parser needed.
    check_origin(request)
    return parse_form(await request.body())


def back(
    request: Request,
    path: str,
    *,
    message: str | None = None,
    error: str | None = None,
    session: str | None = None,
) -> Response:
    """A redirect (303) to ``path`` whose page says ``message`` or ``error`` once: in a
    signed one-time flash (the address stays clean), shown in this browser while its
    session is ``session`` (by default the request's own). The words are fixed, or an
    API's: never a form's (anyone can write a form)."""
    response = RedirectResponse(path, status_code=303)
    bound = cookie_value(request) if session is None else session
    if error:
        flash.say(response, request, flash.Flash("error", error), session=bound)
    elif message:
        flash.say(response, request, flash.Flash("message", message), session=bound)
    return response


def page(request: Request, template: str, **context: Any) -> HTMLResponse:
    """``template`` with ``context``, the flash's banner, and the headers every page has."""
    # A page the browser navigates to shows the flash (once); the Orders table fetched
    # by script (Sec-Fetch-Mode: cors) leaves it for the page.
    navigating = request.headers.get("sec-fetch-mode", "navigate") == "navigate"
    banner = flash.read(request, session=cookie_value(request)) if navigating else None
    # Shown as written, but never reordered nor hidden: bidirectional and other invisible
    # controls are written as escapes.
    words = escape_controls(banner.text) if banner else None
    answer = templates.TemplateResponse(
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
        flash.clear(answer, request)
    # Never framed by another page (clickjacking), never kept in a cache after sign-out.
    answer.headers["X-Frame-Options"] = "DENY"
    answer.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    answer.headers["Cache-Control"] = "no-store"
    return answer


# A path of this site and nothing else: printable ASCII, no backslash (browsers read "/\\h"
# as "//h"), not "//" (scheme-relative). Anything else is an open redirect waiting.
_SAFE_PATH = re.compile(r"^/(?![/\\])[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$")


def safe_path(path: str | None) -> str:
    """``path`` when it is a path of this site; /products otherwise."""
    return path if path and _SAFE_PATH.match(path) else "/products"


def refused_page(request: Request, exc: FormRefusedError) -> Response:
    """The page saying why a form was refused, answered with ``exc.status``."""
    refused = page(request, "error.html", status=exc.status, detail=exc.words,
                   heading="Form refused")  # fmt: skip
    refused.status_code = exc.status
    return refused
