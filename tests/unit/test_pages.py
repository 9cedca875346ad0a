"""The pages' own rules, without a browser: sign-in required, no open redirect, no form
from another site, a sign-in that did not start here refused."""

from __future__ import annotations

import string
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.core.settings import Settings
from app.pages.flash import COOKIE as FLASH
from app.pages.provider_sign_in import FLOW_COOKIE
from app.pages.serving import create_web_app
from app.pages.session import COOKIE
from tests.support.auth import HEADERS
from tests.support.pages import LOOPBACK_CLIENT


@pytest.fixture
def web_app() -> FastAPI:
    settings = Settings(
        auth_authorize_url="https://idp.example/authorize",
        auth_web_client_id="cloudcrm-web",
        auth_token_url="https://idp.example/token",
        ordering_api_url="http://127.0.0.1:9",
        catalog_api_url="http://127.0.0.1:9",
    )
    return create_web_app(settings)


@pytest.fixture
async def web(web_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        web_app.router.lifespan_context(web_app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=web_app), base_url="http://web") as c,
    ):
        yield c


def _signed_in(web: httpx.AsyncClient, app: FastAPI) -> None:
    """A session as a sign-in leaves it, holding the token "t"."""
    web.cookies.set(COOKIE, app.state.page_sessions.start("t", 60))


async def test_a_page_without_a_session_goes_to_sign_in(web: httpx.AsyncClient) -> None:
    response = await web.get("/orders")
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=/orders"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "javascript:x"])
async def test_sign_in_never_redirects_off_site(web: httpx.AsyncClient, target: str) -> None:
    page = await web.get("/sign-in", params={"next": target})
    assert "next=/products" in page.text
    started = await web.get("/sign-in/provider", params={"next": target})
    assert started.status_code == 303
    assert started.headers["location"].startswith("https://idp.example/authorize?")
    assert "code_challenge_method=S256" in started.headers["location"]
    assert started.cookies[FLOW_COOKIE].strip('"').endswith(" /products")


async def test_a_callback_that_did_not_start_here_is_refused(web: httpx.AsyncClient) -> None:
    response = await web.get("/sign-in/callback", params={"code": "c", "state": "forged"})
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in" and FLASH in response.cookies
    assert COOKIE not in response.cookies


async def test_a_form_from_another_site_is_refused(
    web: httpx.AsyncClient, web_app: FastAPI
) -> None:
    _signed_in(web, web_app)
    response = await web.post(
        "/orders", content=b"customerName=x", headers={"origin": "https://evil.example"}
    )
    assert response.status_code == 403


async def test_an_unreachable_service_is_a_message_not_a_500(
    web: httpx.AsyncClient, web_app: FastAPI
) -> None:
    _signed_in(web, web_app)
    response = await web.get("/products")
    assert response.status_code == 503
    assert "unreachable" in response.text and "<h1>" in response.text


async def test_a_failed_form_goes_back_only_to_a_page_of_this_site(
    web: httpx.AsyncClient, web_app: FastAPI
) -> None:
    _signed_in(web, web_app)
    for referer in ("https://web//evil.example/x", "https://evil.example/orders", ""):
        response = await web.post(
            "/orders", content=b"customerName=x", headers={"referer": referer}
        )
        location = response.headers["location"]
        assert response.status_code == 303 and location.startswith("/")
        assert not location.startswith("//"), location
        assert FLASH in response.cookies  # the error, said on that page


async def test_a_body_over_the_limit_is_refused_with_a_page_in_words(
    web: httpx.AsyncClient, web_app: FastAPI
) -> None:
    _signed_in(web, web_app)
    for path in ("/orders", "/products/x/delete", "/operations/catalog/dlq-purge", "/sign-in"):
        response = await web.post(path, content=b"x" * 70_000)
        assert response.status_code == 413, path
        assert response.headers["content-type"].startswith("text/html"), (path, response.text)
        assert "<h1>Form refused</h1>" in response.text and "nothing was done" in response.text


async def test_in_dev_the_apis_still_answer_json_to_a_body_over_the_limit(tmp_path: Path) -> None:
    from app.cli.dev import create_dev_app

    app = create_dev_app(Settings(ordering_database_url=f"sqlite+aiosqlite:///{tmp_path}/o.db",
                                  catalog_database_url=f"sqlite+aiosqlite:///{tmp_path}/c.db",
                                  broker_url="memory://"))  # fmt: skip
    transport = httpx.ASGITransport(app=app, client=LOOPBACK_CLIENT)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as dev:
        page = await dev.post("/products", content=b"x" * 70_000)
        assert page.status_code == 413 and "<h1>Form refused</h1>" in page.text
        api = await dev.post("/api/catalog/products", content=b"x" * 70_000, headers=HEADERS)
        assert api.status_code == 413
        assert api.json() == {"detail": "request body larger than 65536 bytes"}


@pytest.mark.parametrize(
    ("client", "host", "allowed"),
    [
        (("127.0.0.1", 5000), "127.0.0.1:8000", True),
        (("127.0.0.1", 5000), "localhost:8000", True),
        (("127.0.0.1", 5000), "rebind.attacker.example:8000", False),  # DNS rebinding
        (("172.18.0.1", 5000), "localhost:8000", False),  # compose's port mapping, a LAN
    ],
)
async def test_the_development_sign_in_answers_only_this_machines_browser(
    client: tuple[str, int], host: str, allowed: bool
) -> None:
    app = create_web_app(Settings(catalog_api_url="http://127.0.0.1:9"))
    transport = httpx.ASGITransport(app=app, client=client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as web,
    ):
        response = await web.post("/sign-in", content=b"next=/orders")
    assert (COOKIE in response.cookies) is allowed, response.headers


async def test_no_development_sign_in_beside_an_identity_provider(web: httpx.AsyncClient) -> None:
    # The fixture's web app has a provider, and the suite's AUTH_JWT_SECRET is set.
    response = await web.post("/sign-in", content=b"next=/orders")
    assert COOKIE not in response.cookies
    page = await web.get("/sign-in")
    assert "Sign in as developer" not in page.text
    assert "Sign in with your identity provider" in page.text


@pytest.mark.parametrize("target", ["/\\evil.example", "/\t/evil.example", "/\n/x", "/€", "/\\x"])
async def test_no_path_that_a_browser_reads_as_another_host(
    web: httpx.AsyncClient, target: str
) -> None:
    from app.pages.responses import safe_path as _safe

    assert _safe(target) == "/products" or not any(c in _safe(target) for c in "\\\t\n€")
    started = await web.get("/sign-in/provider", params={"next": target})
    assert started.status_code == 303
    assert started.cookies[FLOW_COOKIE].strip('"').endswith(" /products"), target


def test_numbers_go_as_typed_and_what_is_no_number_is_refused() -> None:
    from app.pages.numbers import NotANumberError, json_text, typed_number

    for typed, sent in (("12", "12"), ("2.50", "2.50"), (" 1e2 ", "1e2"), (".5", "0.5"),
                        ("-.5", "-0.5"), ("007", "7"), ("1.0000000000000001", "1.0000000000000001"),
                        ("-0", "-0"), ("1E-2", "1E-2")):  # fmt: skip
        assert typed_number("price", typed) == sent, typed
    for text in ("nan", "inf", "-inf", "1_000", "\uff11\uff12", "", "-", ".", "1.", "+1", "1e",
                 "1" * 101):  # fmt: skip
        with pytest.raises(NotANumberError, match=r"^price: write a number"):
            typed_number("price", text)
    body = {"name": "a\u00e9", "price": typed_number("price", "1.10"), "ids": ["x", 1]}
    assert json_text(body) == '{"name":"a\\u00e9","price":1.10,"ids":["x",1]}'


async def test_a_cross_site_link_does_not_sign_the_user_out(web: httpx.AsyncClient) -> None:
    response = await web.get("/orders")  # arrives without the Strict cookie
    assert response.status_code == 303
    assert "set-cookie" not in response.headers


async def test_pages_are_never_framed_nor_cached(web: httpx.AsyncClient) -> None:
    page = await web.get("/sign-in")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"


async def test_operations_act_on_exactly_the_letters_shown() -> None:
    from app.pages import operations_view
    from app.pages.api_client import ApiError, Apis
    from app.pages.forms import Form

    asked: list[tuple[str, object]] = []

    class Recording(Apis):
        async def call(self, client: object, method: str, path: str, token: str,
                       body: object = None) -> object:  # fmt: skip
            asked.append((path, body))
            return {"purged": 2}

    apis = Recording(ordering=None, catalog=None)  # type: ignore[arg-type]
    ids = ["junk a b", "line\nbreak", "cr\rlf", "\u00e9\U0001f600", " "]
    form = Form([("letter", operations_view.letter_field(i)) for i in ids])
    done = await operations_view.operate(apis, "catalog", "dlq-purge", form, "t")
    assert asked == [("/admin/api/catalog/dlq/purge", {"ids": ids})]
    assert done == "catalog: purged 2 dead letter(s)"
    assert all(
        set(operations_view.letter_field(i)) <= set(string.ascii_letters + string.digits + "-_")
        for i in ids
    )
    for refused in (Form([("reason", "x")]), Form([("letter", "a b")]), Form([("letter", "_w")])):
        with pytest.raises(ApiError):
            await operations_view.operate(apis, "catalog", "dlq-purge", refused, "t")


def test_one_reasons_form_fits_the_request_limit_whatever_the_ids() -> None:
    from app.pages import operations_view

    letters = [{"messageId": f"{n:03d}" + "x" * 252, "reason": "r"} for n in range(500)]
    [group] = operations_view._groups(letters)
    assert group.count == 500 and 0 < len(group.letters) < 500
    body = "&".join(f"letter={letter}" for letter in group.letters)
    assert len(body) <= operations_view.FORM_BYTES < 64 * 1024


# What proxies, load balancers and CDNs add to the requests they pass on.
PROXY_HEADERS = {
    "forwarded": "for=203.0.113.9", "via": "1.1 proxy", "x-forwarded-for": "203.0.113.9",
    "x-forwarded-proto": "https", "x-forwarded-host": "shop.example",
    "x-forwarded-port": "443", "x-forwarded-prefix": "/shop", "x-real-ip": "203.0.113.9",
    "cf-connecting-ip": "203.0.113.9", "true-client-ip": "203.0.113.9",
    "x-client-ip": "203.0.113.9", "x-original-forwarded-for": "203.0.113.9",
    "x-cluster-client-ip": "203.0.113.9", "fastly-client-ip": "203.0.113.9",
}  # fmt: skip


@pytest.mark.parametrize(("name", "value"), PROXY_HEADERS.items(), ids=list(PROXY_HEADERS))
async def test_the_development_sign_in_refuses_a_proxied_request(name: str, value: str) -> None:
    app = create_web_app(Settings(catalog_api_url="http://127.0.0.1:9"))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as web,
    ):
        response = await web.post("/sign-in", content=b"next=/orders", headers={name: value})
    assert COOKIE not in response.cookies
    assert response.headers["location"] == "/sign-in" and FLASH in response.cookies


async def test_a_callback_with_a_non_ascii_state_is_refused_not_a_500(
    web: httpx.AsyncClient,
) -> None:
    await web.get("/sign-in/provider", params={"next": "/orders"})
    response = await web.get("/sign-in/callback", params={"state": "\u20ac", "code": "x"})
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in" and FLASH in response.cookies


async def test_the_providers_error_is_said_in_fixed_words_never_the_address(
    web: httpx.AsyncClient,
) -> None:
    """A link to the callback carries whatever its author wrote in ``error`` and
    ``error_description``; only the error codes of RFC 6749 §4.1.2.1 are named."""
    await web.get("/sign-in/provider", params={"next": "/orders"})
    lure = "account_locked: call +1 555 0100 to unlock it"
    for query in ({"error": lure}, {"error": "access_denied", "error_description": lure}):
        failed = await web.get("/sign-in/callback", params=query)
        assert (failed.status_code, failed.headers["location"]) == (303, "/sign-in")
        page = await web.get("/sign-in")
        assert "did not sign you in" in page.text, page.text
        assert "555" not in page.text and "account_locked" not in page.text, query
    assert "access_denied" in page.text  # a code of the RFC, named
