"""The products list's positions and bounds on each backend (PostgreSQL, then SQLite):
``skip`` bounded as the orders list's, and Link cursors that carry the position itself,
so that a rename or a delete between two reads neither skips nor repeats a product."""

from __future__ import annotations

import httpx
import pytest

from tests.support.links import links

PRODUCTS = "/api/catalog/products"


async def test_skip_is_bounded_as_the_orders_list_is(catalog_api: httpx.AsyncClient) -> None:
    deepest = await catalog_api.get(PRODUCTS, params={"skip": 10_000})
    too_deep = await catalog_api.get(PRODUCTS, params={"skip": 10_001})

    assert deepest.status_code == 200
    assert too_deep.status_code == 422
    [error] = too_deep.json()["detail"]
    assert error["loc"] == ["query", "skip"] and "skip stops at 10,000" in error["msg"]
    assert 'rel="next" (after=)' in error["msg"]


async def _make(catalog: httpx.AsyncClient, names: list[str]) -> None:
    for name in names:
        made = await catalog.post(PRODUCTS, json={"name": name, "price": 1, "stockCount": 1})
        assert made.status_code == 201, made.text


async def test_a_rename_or_a_delete_between_reads_neither_skips_nor_repeats(
    catalog_api: httpx.AsyncClient,
) -> None:
    await _make(catalog_api, ["Banana", "Cherry", "Damson", "Elder", "Fig", "Grape", "Kiwi"])
    seen: list[str] = []
    url: str | None = f"{PRODUCTS}?limit=2"
    reads = 0
    while url is not None:
        page = await catalog_api.get(url)
        assert page.status_code == 200, page.text
        seen += [product["id"] for product in page.json()]
        url = links(page).get("next")
        reads += 1
        if url is None:
            break
        boundary = page.json()[-1]["id"]
        if reads == 1:  # moved before every product: a lookup by id would start again
            renamed = await catalog_api.patch(f"{PRODUCTS}/{boundary}", json={"name": "Apple"})
            assert renamed.status_code == 200, renamed.text
        if reads == 2:  # gone: a lookup by id would find no position at all
            assert (await catalog_api.delete(f"{PRODUCTS}/{boundary}")).status_code == 204

    assert len(seen) == 7 and len(set(seen)) == 7


async def test_a_rename_between_reads_backwards_neither_skips_nor_repeats(
    catalog_api: httpx.AsyncClient,
) -> None:
    await _make(catalog_api, ["Banana", "Cherry", "Damson", "Elder", "Fig"])
    last = await catalog_api.get(PRODUCTS, params={"skip": 3, "limit": 2})
    seen = [product["id"] for product in last.json()]
    boundary = seen[0]
    renamed = await catalog_api.patch(f"{PRODUCTS}/{boundary}", json={"name": "Zucchini"})
    assert renamed.status_code == 200
    earlier = await catalog_api.get(links(last)["prev"])

    assert [p["name"] for p in earlier.json()] == ["Cherry", "Damson"]


async def test_a_link_cursor_is_opaque_and_a_bare_id_still_works(
    catalog_api: httpx.AsyncClient,
) -> None:
    await _make(catalog_api, ["Banana", "Cherry", "Damson"])
    first = await catalog_api.get(PRODUCTS, params={"limit": 1})
    [banana] = first.json()
    following = links(first)["next"]
    by_id = await catalog_api.get(PRODUCTS, params={"after": banana["id"], "limit": 1})

    assert banana["id"] not in following and "Banana" not in following  # a position, opaque
    assert (await catalog_api.get(following)).json() == by_id.json()
    assert [p["name"] for p in by_id.json()] == ["Cherry"]


@pytest.mark.parametrize(
    "cursor",
    ["not-a-position", "WyJ4Il0", "e30", "!!!", "x" * 5000],
    ids=["words", "one item", "an object", "not base64", "too long"],
)
@pytest.mark.parametrize("parameter", ["after", "before"])
async def test_a_malformed_cursor_is_a_422_naming_the_parameter(
    catalog_api: httpx.AsyncClient, parameter: str, cursor: str
) -> None:
    response = await catalog_api.get(PRODUCTS, params={parameter: cursor})

    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", parameter]
    assert "Link header" in error["msg"], error


async def test_any_text_of_the_token_form_is_a_place_in_the_list(
    catalog_api: httpx.AsyncClient,
) -> None:
    """What the OpenAPI pattern admits is taken (a forged position is just another place)."""
    await _make(catalog_api, ["Banana"])
    for forged in ["p" + "A" * 22, "p" + "_-" * 400 + "x", "p" + "AAAA" * 5 + "AAA"]:
        response = await catalog_api.get(PRODUCTS, params={"after": forged})
        assert response.status_code == 200, (forged, response.text)
    schema = (await catalog_api.get("/openapi.json")).json()
    [after] = [p for p in schema["paths"][PRODUCTS]["get"]["parameters"] if p["name"] == "after"]
    assert after["schema"]["pattern"].startswith("^(")
