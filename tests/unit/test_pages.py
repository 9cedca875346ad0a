"""The pages' own rules, without a browser: sign-in required, no open redirect, no form
from another site, a sign-in that did not start here refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.pages.provider_sign_in import FLOW_COOKIE
from app.pages.serving import create_web_app
from app.settings import Settings


@pytest.fixture
async def web() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        auth_authorize_url="https://idp.example/authorize",
        auth_web_client_id="cloudcrm-web",
        auth_token_url="https://idp.example/token",
        ordering_api_url="http://127.0.0.1:9",
        catalog_api_url="http://127.0.0.1:9",
    )
    app = create_web_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web") as c,
    ):
        yield c


async def test_a_page_without_a_session_goes_to_sign_in(web: httpx.AsyncClient) -> None:
    response = await web.get("/orders")
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=/orders"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "javascript:x"])
async def test_sign_in_never_redirects_off_site(web: httpx.AsyncClient, target: str) -> None:
    page = await web.get("/sign-in", params={"next": target})
    assert 'value="/products"' in page.text or "next=%2Fproducts" in page.text
    started = await web.get("/sign-in/provider", params={"next": target})
    assert started.status_code == 303
    assert started.headers["location"].startswith("https://idp.example/authorize?")
    assert "code_challenge_method=S256" in started.headers["location"]
    assert started.cookies[FLOW_COOKIE].strip('"').endswith(" /products")


async def test_a_callback_that_did_not_start_here_is_refused(web: httpx.AsyncClient) -> None:
    response = await web.get("/sign-in/callback", params={"code": "c", "state": "forged"})
    assert response.status_code == 303
    assert response.headers["location"].startswith("/sign-in?error=")
    assert "cloudcrm_token" not in response.cookies


async def test_a_form_from_another_site_is_refused(web: httpx.AsyncClient) -> None:
    web.cookies.set("cloudcrm_token", "t")
    response = await web.post(
        "/orders", content=b"customerName=x", headers={"origin": "https://evil.example"}
    )
    assert response.status_code == 403


async def test_an_unreachable_service_is_a_message_not_a_500(web: httpx.AsyncClient) -> None:
    web.cookies.set("cloudcrm_token", "t")
    response = await web.get("/products")
    assert response.status_code == 503
    assert "unreachable" in response.text and "<h1>" in response.text


async def test_a_failed_form_goes_back_only_to_a_page_of_this_site(
    web: httpx.AsyncClient,
) -> None:
    web.cookies.set("cloudcrm_token", "t")
    for referer in ("https://web//evil.example/x", "https://evil.example/orders", ""):
        response = await web.post(
            "/orders", content=b"customerName=x", headers={"referer": referer}
        )
        location = response.headers["location"]
        assert response.status_code == 303 and location.startswith("/")
        assert not location.startswith("//"), location
        assert "error=" in location


async def test_a_body_over_the_limit_is_refused(web: httpx.AsyncClient) -> None:
    web.cookies.set("cloudcrm_token", "t")
    response = await web.post("/orders", content=b"x" * 70_000)
    assert response.status_code == 413
