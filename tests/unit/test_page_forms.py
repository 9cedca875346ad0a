"""The pages' forms: a body that is not UTF-8 and a form from another site are refused
with a page in words; a refused form goes back to its own page, Referer or not; the
Orders page says why an order was rejected in words."""

from __future__ import annotations

from typing import Any

import pytest

from app.pages.api_client import ApiError
from tests.support.pages import signed_in_pages


@pytest.mark.parametrize(
    "body",
    [b"name=\xff\xfeLamp&price=2&stockCount=3", b"name=%FF%FELamp&price=2&stockCount=3"],
    ids=["raw bytes", "percent-encoded"],
)
async def test_a_form_that_is_not_utf8_is_refused_in_words(body: bytes) -> None:
    async with signed_in_pages() as pages:
        refused = await pages.client.post("/products", content=body)
        assert refused.status_code == 400, refused.headers
        assert refused.headers["content-type"].startswith("text/html")
        assert "UTF-8" in refused.text and "<h1>" in refused.text
        assert [asked for asked in pages.apis.asked if asked[0] == "POST"] == []  # no "��"


async def test_a_form_from_another_site_is_refused_with_a_page_in_words() -> None:
    async with signed_in_pages() as pages:
        refused = await pages.client.post(
            "/orders", content=b"customerName=x", headers={"origin": "https://evil.example"}
        )
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")
        assert "another site" in refused.text and "<h1>" in refused.text
        assert pages.apis.asked == []


@pytest.mark.parametrize(
    ("path", "body", "page"),
    [
        ("/orders", b"customerName=Ann&productId=x&quantity=1", "/orders"),
        (f"/orders/{'0' * 8}-0000-0000-0000-{'0' * 12}/cancel", b"", "/orders"),
        ("/operations/catalog/dlq-purge", b"letter=YQ", "/operations"),
        ("/products", b"name=Lamp&price=1&stockCount=1", "/products"),
    ],
)
async def test_a_refused_form_without_a_referer_goes_back_to_its_own_page(
    path: str, body: bytes, page: str
) -> None:
    def refuse(method: str, api_path: str, api_body: Any) -> Any:
        raise ApiError(409, "refused for the test")

    async with signed_in_pages() as pages:
        pages.apis.answer = refuse
        response = await pages.client.post(path, content=body)  # no Referer header
        assert response.status_code == 303
        assert response.headers["location"].split("?")[0] == page


async def test_the_orders_page_says_why_an_order_was_rejected_in_words() -> None:
    orders = [
        {"id": f"{n}0000000-0000-0000-0000-000000000000", "customerName": f"C{n}",
         "productId": "p", "productName": "Lamp", "quantity": 1, "state": "Rejected",
         "rejectionReason": reason, "createdAt": "2026-01-01T00:00:00Z"}
        for n, reason in enumerate(("insufficient_stock", "unknown_product"), start=1)
    ]  # fmt: skip

    def answer(method: str, path: str, body: Any) -> Any:
        return orders if path.startswith("/api/ordering/order") else []

    async with signed_in_pages() as pages:
        pages.apis.answer = answer
        page = await pages.client.get("/orders")
        assert page.status_code == 200
        assert "not enough stock" in page.text and "unknown product" in page.text
        # The code stays at hand (a tooltip, and for scripts), not as the words shown.
        assert 'title="insufficient_stock"' in page.text
        assert ">insufficient_stock<" not in page.text and ">unknown_product<" not in page.text


def test_every_rejection_reason_catalog_sends_has_words() -> None:
    from typing import get_args

    from app.catalog.contracts import RejectionReason
    from app.pages.reasons import REASON_WORDS

    assert set(REASON_WORDS) == set(get_args(RejectionReason))
