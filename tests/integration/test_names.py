"""Customer and product names must show something, and show it the way it was typed: a
name with no visible character, or with a bidirectional control that reorders what
follows it, is refused with a 422 in words by both APIs, on PostgreSQL and on SQLite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.catalog.app import create_app as create_catalog
from app.core.names import name_pattern
from app.core.settings import Settings
from app.ordering.app import create_app as create_ordering
from tests.support.servers import asgi_client, free_port

PRODUCTS = "/api/catalog/products"
ORDERS = "/api/ordering/order"

# Shown as a blank row on the pages: zero width space, BOM + ZWSP, word joiner, soft
# hyphen, Mongolian vowel separator, Arabic letter mark (all Cf), and spaces alone.
INVISIBLE = ["\u200b", "\ufeff\u200b", "\u2060", "\u00ad", "\u180e", "\u061c", "\u3000\u200b"]
# Displayed reordered: "\u202eevil" shows as "live".
BIDI = ["\u202eevil", "a\u202ab", "\u2066x\u2069", "x\u2067", "x\u2068", "Ann\u202c"]
BIDI_WORDS = "bidirectional control characters (U+202A\u2013U+202E, U+2066\u2013U+2069)"
# Names that look like what they are stay welcome: ZWNJ in Persian, a ZWJ emoji sequence,
# an emoji variation selector, a decomposed accent.
FINE = [
    "Zoë", "שלום", "مرحبا\u200f", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
    "\U0001f469\u200d\U0001f4bb", "\u2764\ufe0f", "Zoe\u0308", "李", "Ann-Marie O'Neil",
]  # fmt: skip
# Shown as nothing, or differently on every device: (name, the character named in the 422).
UNSHOWN = [
    ("A\u200bnn", "U+200B ZERO WIDTH SPACE"), ("Ann\u00ad", "U+00AD SOFT HYPHEN"),
    ("a\u2060b", "U+2060 WORD JOINER"), ("Ann\U000e0041", "U+E0041 TAG LATIN CAPITAL LETTER A"),
    ("\u3164", "U+3164 HANGUL FILLER"), ("Ann\u115f", "U+115F HANGUL CHOSEONG FILLER"),
    ("Ann\uffa0", "U+FFA0 HALFWIDTH HANGUL FILLER"), ("Ann\u0378", "U+0378"),
    ("Ann\ue000", "U+E000"), ("Ann\U0010fffd", "U+10FFFD"), ("Ann\u034f", "U+034F"),
]  # fmt: skip
MARKS_ONLY = ["\u0301", "\u0301\u0302\u20dd", " \u0308 "]


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres), "sqlite"])
def databases(request: pytest.FixtureRequest) -> dict[str, str]:
    """Both services' database URLs on one backend."""
    if request.param == "postgresql":
        return {s: request.getfixturevalue(f"{s}_db") for s in ("ordering", "catalog")}
    return {s: request.getfixturevalue(f"{s}_sqlite") for s in ("ordering", "catalog")}


@pytest.fixture
async def apis(databases: dict[str, str]) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    ordering = Settings(
        ordering_database_url=databases["ordering"],
        catalog_api_url=f"http://127.0.0.1:{free_port()}",
        catalog_api_timeout_seconds=1.0,
    )
    catalog = Settings(catalog_database_url=databases["catalog"])
    async with (
        asgi_client(create_ordering(ordering)) as ordering_api,
        asgi_client(create_catalog(catalog)) as catalog_api,
    ):
        yield {"ordering": ordering_api, "catalog": catalog_api}


async def _refusals(apis: dict[str, httpx.AsyncClient], name: str) -> list[httpx.Response]:
    """The same name through every route that takes one; nothing may be written."""
    catalog = apis["catalog"]
    kept = await catalog.post(PRODUCTS, json={"name": "kept", "price": 1, "stockCount": 1})
    assert kept.status_code == 201, kept.text
    path = f"{PRODUCTS}/{kept.json()['id']}"
    product: dict[str, Any] = {"name": name, "price": 1, "stockCount": 1}
    answers = [
        await apis["ordering"].post(
            ORDERS, json={"customerName": name, "productId": str(uuid.uuid4())}
        ),
        await catalog.post(PRODUCTS, json=product),
        await catalog.put(path, json=product),
        await catalog.patch(path, json={"name": name}),
    ]
    assert (await catalog.get(path)).json()["name"] == "kept"
    assert [p["name"] for p in (await catalog.get(PRODUCTS)).json()] == ["kept"]
    assert (await apis["ordering"].get(ORDERS)).json() == []
    return answers


def _message(response: httpx.Response) -> str:
    assert response.status_code == 422, (response.request.method, response.text)
    [error] = response.json()["detail"]
    assert error["loc"][-1] in ("name", "customerName"), error
    return str(error["msg"])


@pytest.mark.parametrize(
    "name", INVISIBLE, ids=[n.encode("unicode_escape").decode() for n in INVISIBLE]
)
async def test_a_name_with_no_visible_character_is_refused_in_words(
    apis: dict[str, httpx.AsyncClient], name: str
) -> None:
    for response in await _refusals(apis, name):
        message = _message(response)
        assert "at least one visible character" in message, message
        assert "pattern" not in message


@pytest.mark.parametrize("name", BIDI, ids=lambda n: n.encode("unicode_escape").decode())
async def test_a_name_with_a_bidirectional_control_is_refused_in_words(
    apis: dict[str, httpx.AsyncClient], name: str
) -> None:
    for response in await _refusals(apis, name):
        message = _message(response)
        assert BIDI_WORDS in message


async def test_names_of_every_script_are_kept_as_typed(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    for name in FINE:
        order = await apis["ordering"].post(
            ORDERS, json={"customerName": name, "productId": str(uuid.uuid4())}
        )
        product = await apis["catalog"].post(
            PRODUCTS, json={"name": name, "price": 1, "stockCount": 1}
        )
        assert order.status_code == 201 and order.json()["customerName"] == name, order.text
        assert product.status_code == 201 and product.json()["name"] == name, product.text


async def test_the_openapi_schema_states_the_rule(apis: dict[str, httpx.AsyncClient]) -> None:
    for service, model in (("ordering", "OrderCreate"), ("catalog", "ProductWrite")):
        schema = (await apis[service].get("/openapi.json")).json()
        field = next(iter(schema["components"]["schemas"][model]["properties"].values()))
        assert "visible character" in field["description"], field
        assert "U+202A" in field["description"]
        # Machine-readable too (tests/unit/test_names.py: the validator agrees with it).
        assert field["pattern"] == name_pattern()


@pytest.mark.parametrize(("name", "char"), UNSHOWN, ids=[c for _, c in UNSHOWN])
async def test_a_character_that_shows_as_nothing_is_refused_by_its_code_point(
    apis: dict[str, httpx.AsyncClient], name: str, char: str
) -> None:
    for response in await _refusals(apis, name):
        message = _message(response)
        assert f"must not contain {char}" in message, message


@pytest.mark.parametrize("name", MARKS_ONLY, ids=lambda n: n.encode("unicode_escape").decode())
async def test_a_name_of_combining_marks_alone_is_refused_in_words(
    apis: dict[str, httpx.AsyncClient], name: str
) -> None:
    for response in await _refusals(apis, name):
        message = _message(response)
        assert "other than combining marks" in message and "U+03" in message, message


@pytest.mark.parametrize(
    "name", ["Line\u2028Break", "Para\u2029graph", "\u2028Ann", "Ann\u2029"],
    ids=["U+2028", "U+2029", "leading", "trailing"],
)  # fmt: skip
async def test_a_name_with_a_line_or_paragraph_separator_is_refused_in_words(
    apis: dict[str, httpx.AsyncClient], name: str
) -> None:
    # U+2028 and U+2029 break a line as "\n" does (Unicode Annex #14, class BK), and "\n"
    # is refused: "Line\u2028Break" was saved, and shown on two lines.
    for response in await _refusals(apis, name):
        message = _message(response)
        assert "line or paragraph separators (U+2028, U+2029)" in message, message
