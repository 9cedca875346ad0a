"""Signing in to the pages and out: the development sign-in (this machine's own browser
only), the identity provider's (app.pages.provider_sign_in), sign-out."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.pages.provider_sign_in import (
    FLOW_COOKIE,
    FLOW_SECONDS,
    IdentityProvider,
    SignInFailedError,
)
from app.pages.responses import back, page, read_form, safe_path
from app.pages.session import forget, keep

router = APIRouter(include_in_schema=False)


@router.get("/sign-in")
async def sign_in_page(request: Request) -> HTMLResponse:
    development = request.app.state.page_sign_in is not None
    provider = request.app.state.page_provider is not None
    return page(request, "sign_in.html", development=development, provider=provider,
                next=safe_path(request.query_params.get("next")))  # fmt: skip


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    sign_in_as_developer: Callable[[], str] | None = request.app.state.page_sign_in
    if sign_in_as_developer is None:
        return back(
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
        return back(request, "/sign-in", error="the development sign-in answers only on 127.0.0.1")
    token = sign_in_as_developer()
    form = await read_form(request)
    response = back(request, safe_path(form.get("next")))
    keep(response, request, token)
    return response


@router.get("/sign-in/provider")
async def sign_in_with_provider(request: Request) -> Response:
    provider: IdentityProvider | None = request.app.state.page_provider
    if provider is None:
        return back(request, "/sign-in", error="no identity provider is configured here")
    try:
        url, flow = provider.start(_callback(request), safe_path(request.query_params.get("next")))
    except SignInFailedError as exc:
        return back(request, "/sign-in", error=str(exc))
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
        return back(request, "/sign-in", error="no identity provider is configured here")
    try:
        token, expires, next_path = await provider.finish(
            request.cookies.get(FLOW_COOKIE), dict(request.query_params), _callback(request)
        )
    except SignInFailedError as exc:
        return back(request, "/sign-in", error=str(exc))
    # A page that moves on by itself rather than a redirect: the session cookie is
    # SameSite=Strict, and a redirect chain that began at the provider would not carry it.
    response = page(request, "signed_in.html", next=safe_path(next_path))
    keep(response, request, token, seconds=max(60, int(expires - time.time())))
    response.delete_cookie(FLOW_COOKIE, path="/sign-in")
    return response


# A proxy on this machine makes every client look local: a request carrying what proxies,
# load balancers and CDNs add (RFC 7239's Forwarded, RFC 9110 §7.6.3's Via, the de facto
# X-Forwarded-* and the client-address headers of nginx, Cloudflare, Akamai, Fastly…) is
# refused. A forwarder that adds nothing (a TCP port forward, ssh -L) cannot be told from
# a browser on this machine: the docs (Secure) say never to put one in front of the sign-in.
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


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    await read_form(request)  # a form from another site may not sign the user out either
    response = back(request, "/sign-in", message="signed out", session="")
    forget(response, request)  # the session ends here: a copy of the cookie is dead too
    return response
