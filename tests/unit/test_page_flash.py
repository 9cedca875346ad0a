"""The pages' success and error banners come from a signed one-time flash set by the
action itself, never from the address: a link cannot put words in the site's mouth."""

from __future__ import annotations

from typing import Any

from app.pages.api_client import ApiError
from tests.support.pages import signed_in_pages

PHISHING = "Your account is locked. Call +1 555 0100 to unlock it"


async def test_a_banner_in_the_query_string_is_never_shown() -> None:
    async with signed_in_pages() as pages:
        for path in ("/products", "/orders", "/sign-in"):
            for name in ("message", "error"):
                page = await pages.client.get(path, params={name: PHISHING})
                assert page.status_code == 200, (path, page.text)
                assert "Your account is locked" not in page.text, (path, name)


async def test_an_action_says_what_it_did_once() -> None:
    async with signed_in_pages() as pages:
        done = await pages.client.post("/products", content=b"name=Lamp&price=2&stockCount=3")
        assert done.status_code == 303
        assert done.headers["location"] == "/products"  # nothing in the address
        first = await pages.client.get("/products")
        assert 'role="status">added Lamp<' in first.text
        again = await pages.client.get("/products")
        assert "added Lamp" not in again.text  # read once, then gone


async def test_an_error_is_said_on_the_page_of_the_form() -> None:
    def refuse(method: str, path: str, body: Any) -> Any:
        if method == "POST":
            raise ApiError(422, "price: must be at least 0")
        return []

    async with signed_in_pages() as pages:
        pages.apis.answer = refuse
        done = await pages.client.post(
            "/products",
            content=b"name=Lamp&price=-1&stockCount=3",
            headers={"referer": "http://127.0.0.1:8000/products"},
        )
        assert (done.status_code, done.headers["location"]) == (303, "/products")
        page = await pages.client.get("/products")
        assert 'role="alert">price: must be at least 0<' in page.text


async def test_a_flash_not_signed_here_is_not_shown() -> None:
    """Another service on the same host name may set cookies for this one (cookies do not
    keep to a port): what it writes there is not a banner."""
    async with signed_in_pages() as pages:
        await pages.client.post("/products", content=b"name=Lamp&price=2&stockCount=3")
        [name] = [name for name in pages.client.cookies if "flash" in name]
        value = pages.client.cookies[name]
        middle = len(value) // 3
        altered = value[:middle] + ("A" if value[middle] != "A" else "B") + value[middle + 1 :]
        for forged in (altered, PHISHING, f"error.{PHISHING}"):
            pages.client.cookies.set(name, forged)
            page = await pages.client.get("/products")
            assert "added Lamp" not in page.text and "Your account" not in page.text, forged


async def test_a_long_error_is_cut_to_fit_a_cookie() -> None:
    words = "価格は0以上でなければなりません。" * 300  # about 15 KB of UTF-8

    def refuse(method: str, path: str, body: Any) -> Any:
        if method == "POST":
            raise ApiError(422, words)
        return []

    async with signed_in_pages() as pages:
        pages.apis.answer = refuse
        await pages.client.post("/products", content=b"name=Lamp&price=-1&stockCount=3")
        [cookie] = [h for h in pages.client.cookies.jar if "flash" in h.name]
        assert len(cookie.name) + len(cookie.value or "") < 4096
        page = await pages.client.get("/products")
        assert "価格は0以上でなければなりません。" in page.text and "…" in page.text
