"""The pages' success and error banners come from a signed one-time flash set by the
action itself, never from the address: a link cannot put words in the site's mouth."""

from __future__ import annotations

from typing import Any

import httpx

from app.pages.api_client import ApiError
from tests.support.pages import BASE_URL, LOOPBACK_CLIENT, signed_in_pages

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


async def test_a_banner_never_repeats_what_a_form_said() -> None:
    """A form is anyone's to write (the attacker's own, in the attacker's browser): what a
    banner names comes from the API's answer, or the banner is fixed words."""

    def answer(method: str, path: str, body: Any) -> Any:
        if method == "PUT":
            raise ApiError(412, "the product changed since it was read")
        if method == "GET" and path.startswith("/api/catalog/products/"):
            return {"name": "Lamp"}  # as the API has it now
        return None if method == "DELETE" else []

    async with signed_in_pages() as pages:
        pages.apis.answer = answer
        product = "/products/00000000-0000-0000-0000-000000000001"
        lure = PHISHING.replace(" ", "+").encode()
        for path, body in (
            (f"{product}/delete", b"name=" + lure),
            (product, b"name=" + lure + b'&price=1&stockCount=1&etag="1"'),
        ):
            done = await pages.client.post(path, content=body)
            assert done.status_code == 303, done.text
            page = await pages.client.get("/products")
            assert 'role="status"' in page.text or 'role="alert"' in page.text, path
            assert "Your account is locked" not in page.text, path
        assert "Lamp changed meanwhile; nothing saved" in page.text


async def test_a_flash_shows_only_in_the_browser_it_was_made_for() -> None:
    """Cookies do not keep to a port: a service on another port of the host can plant a
    flash its owner obtained in their own browser into another one. It is not shown there,
    to another signed-in user nor before sign-in."""
    async with signed_in_pages() as pages:
        await pages.client.post("/products", content=b"name=Lamp&price=2&stockCount=3")
        [made] = [cookie for cookie in pages.client.cookies.jar if "flash" in cookie.name]
        transport = httpx.ASGITransport(app=pages.app, client=LOOPBACK_CLIENT)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as other:
            signed = await other.post("/sign-in", content=b"next=/products")
            assert signed.status_code == 303
            other.cookies.set(made.name, made.value or "")
            page = await other.get("/products")
            assert page.status_code == 200 and "added Lamp" not in page.text
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as stranger:
            # Before sign-in: a flash made for a browser without a session (an error of the
            # sign-in) does not show in another such browser either.
            made_there = await stranger.get("/sign-in/provider")
            assert made_there.status_code == 303 and "flash" in str(made_there.cookies)
            planted = made_there.cookies
            async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as victim:
                for name, value in planted.items():
                    if "flash" in name:
                        victim.cookies.set(name, value)
                page = await victim.get("/sign-in")
                assert "no identity provider" not in page.text
            page = await stranger.get("/sign-in")
            assert "no identity provider" in page.text  # where it was made, it shows


async def test_a_banner_never_displays_reordered_or_hidden_text() -> None:
    def refuse(method: str, path: str, body: Any) -> Any:
        if method == "POST":
            raise ApiError(409, "name \u202etxt.exe\u202c taken\u200b")
        return []

    async with signed_in_pages() as pages:
        pages.apis.answer = refuse
        await pages.client.post("/products", content=b"name=Lamp&price=1&stockCount=3")
        page = await pages.client.get("/products")
        assert "name \\u202etxt.exe\\u202c taken\\u200b<" in page.text
        assert not any(c in page.text for c in "\u202e\u202c\u200b")
