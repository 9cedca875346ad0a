"""Behind a TLS-terminating proxy the operator names (FORWARDED_ALLOW_IPS), the pages see
the scheme the proxy says (X-Forwarded-Proto) and their session cookie is
``__Host-cloudcrm_session; Secure`` (RFC 6265bis §4.1.3.2); from any other address, or
without the setting, the header is not believed. The development sign-in still refuses
what comes through a proxy, trusted or not. ``python -m app web`` served as the commands
serve it (uvicorn, app.http.serving), signing in at a local test identity provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.core.settings import Settings
from app.pages.provider_sign_in import FLOW_COOKIE
from app.pages.serving import create_web_app
from tests.support.identity import IdentityProvider, SigningKey, identity_provider
from tests.support.servers import serving

HTTPS = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}


@pytest.fixture
async def provider(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[IdentityProvider]:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the provider speaks http here
    async with identity_provider(SigningKey.rsa()) as started:
        started.public_clients.add("cloudcrm-web")
        yield started


def _settings(provider: IdentityProvider, **overrides: Any) -> Settings:
    return Settings(
        auth_authorize_url=provider.authorize_url,
        auth_token_url=provider.token_url,
        auth_web_client_id="cloudcrm-web",
        ordering_api_url="http://127.0.0.1:9",
        catalog_api_url="http://127.0.0.1:9",
        **overrides,
    )


async def _session_cookie(web_url: str, headers: dict[str, str]) -> str:
    """Sign in at the provider through the pages at ``web_url``, each request to the pages
    carrying ``headers`` (as a proxy adds them); the session's Set-Cookie header.

    Cookies are carried by hand: a Secure one would not go back over the test's http."""
    async with httpx.AsyncClient(timeout=10) as http:
        started = await http.get(f"{web_url}/sign-in/provider", headers=headers)
        assert started.status_code == 303, started.text
        flow = SimpleCookie(started.headers["set-cookie"])[FLOW_COOKIE].value
        approved = await http.get(started.headers["location"])
        assert approved.status_code == 303, approved.text
        callback = urlsplit(approved.headers["location"])
        back = await http.get(
            f"{web_url}{callback.path}?{callback.query}",
            headers={**headers, "Cookie": f'{FLOW_COOKIE}="{flow}"'},
        )
        assert back.status_code == 200, back.text
        [session] = [c for c in back.headers.get_list("set-cookie") if "_session=" in c]
        return session


def _attributes(cookie: str) -> set[str]:
    return {part.strip().lower() for part in cookie.split(";")[1:]}


async def test_a_trusted_proxys_https_gets_the_host_only_secure_cookie(
    provider: IdentityProvider,
) -> None:
    settings = _settings(provider, forwarded_allow_ips="127.0.0.1")
    async with serving(create_web_app(settings), settings=settings) as url:
        cookie = await _session_cookie(url, HTTPS)
    assert cookie.startswith("__Host-cloudcrm_session="), cookie
    assert {"secure", "httponly", "path=/", "samesite=strict"} <= _attributes(cookie), cookie


@pytest.mark.parametrize(
    "trusted", [None, "10.9.8.7"], ids=["no trusted proxy", "another address trusted"]
)
async def test_an_untrusted_forwarded_scheme_is_not_believed(
    provider: IdentityProvider, trusted: str | None
) -> None:
    overrides = {} if trusted is None else {"forwarded_allow_ips": trusted}
    settings = _settings(provider, **overrides)
    async with serving(create_web_app(settings), settings=settings) as url:
        cookie = await _session_cookie(url, HTTPS)
    assert cookie.startswith("cloudcrm_session="), cookie
    assert "secure" not in _attributes(cookie), cookie


async def test_a_trusted_proxy_gets_no_development_sign_in() -> None:
    # A web with AUTH_JWT_SECRET (the suite's) and no provider: the development sign-in,
    # which answers a browser on this machine only.
    settings = Settings(forwarded_allow_ips="127.0.0.1", ordering_api_url="http://127.0.0.1:9",
                        catalog_api_url="http://127.0.0.1:9")  # fmt: skip
    async with (
        serving(create_web_app(settings), settings=settings) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        for headers in (HTTPS, {"X-Forwarded-Proto": "https"}, {}):
            signed = await http.post("/sign-in", content=b"next=/orders", headers=headers)
            sessions = [c for c in signed.headers.get_list("set-cookie") if "_session=" in c]
            assert bool(sessions) is (headers == {}), (headers, sessions)
