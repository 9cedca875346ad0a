"""Every route of every app, taken from the OpenAPI schemas (so a new route cannot be
forgotten): 401 without a token, with an expired one and with a wrongly signed one; 403
with every scope but its own; 2xx with only its own. The probes stay open.

Run against ``dev`` in-process (SQLite and the embedded broker: every route, the dead
letters' included, answers there), with the standalone apps' routes checked to be a subset.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.auth.scopes import SCOPES
from app.auth.tokens import issue_token
from app.catalog.app import create_app as create_catalog
from app.cli.dev import create_dev_app
from app.core.settings import Settings
from app.ordering.app import create_app as create_ordering
from tests.support.auth import TEST_SECRET, token

OPEN_ROUTES = {("get", "/health/live"), ("get", "/health/ready")}


@dataclass
class Fixtures:
    """Ids the example requests need: a product, an order, a message the inbox holds."""

    client: httpx.AsyncClient
    product_id: str
    order_id: str
    message_id: str
    page_session: str  # the pages' session cookie, as dev's development sign-in sets it

    async def fresh_product(self) -> str:
        created = await self.client.post(
            "/api/catalog/products",
            json={"name": "Spare", "price": 1.0, "stockCount": 1},
            headers={"Authorization": f"Bearer {token()}"},
        )
        assert created.status_code == 201, created.text
        return str(created.json()["id"])


Request = tuple[str, Any]  # (path, JSON body or None)
Example = Callable[[Fixtures], Awaitable[Request]]


async def _fixed(path: str, body: Any = None) -> Request:
    return path, body


async def _delete_fresh_product(fixtures: Fixtures) -> Request:
    return f"/api/catalog/products/{await fixtures.fresh_product()}", None


# (method, path template) → a request that succeeds with the right scope.
EXAMPLES: dict[tuple[str, str], Example] = {
    ("post", "/api/ordering/order"): lambda f: _fixed(
        "/api/ordering/order", {"customerName": "Ann", "productId": f.product_id}
    ),
    ("get", "/api/ordering/order"): lambda f: _fixed("/api/ordering/order"),
    ("get", "/api/ordering/order/{order_id}"): lambda f: _fixed(
        f"/api/ordering/order/{f.order_id}"
    ),
    ("post", "/api/ordering/order/{order_id}/cancel"): lambda f: _fixed(
        f"/api/ordering/order/{f.order_id}/cancel"
    ),
    ("post", "/api/catalog/products"): lambda f: _fixed(
        "/api/catalog/products", {"name": "New", "price": 2.5, "stockCount": 3}
    ),
    ("get", "/api/catalog/products"): lambda f: _fixed("/api/catalog/products"),
    ("get", "/api/catalog/products/{product_id}"): lambda f: _fixed(
        f"/api/catalog/products/{f.product_id}"
    ),
    ("put", "/api/catalog/products/{product_id}"): lambda f: _fixed(
        f"/api/catalog/products/{f.product_id}",
        {"name": "Product A", "price": 9.99, "stockCount": 500},
    ),
    ("patch", "/api/catalog/products/{product_id}"): lambda f: _fixed(
        f"/api/catalog/products/{f.product_id}", {"price": 9.99}
    ),
    ("delete", "/api/catalog/products/{product_id}"): _delete_fresh_product,
    ("post", "/integration-api/catalog/products/by-ids"): lambda f: _fixed(
        "/integration-api/catalog/products/by-ids", [f.product_id]
    ),
    ("get", "/admin/api/{service}/outbox/status"): lambda f: _fixed(
        "/admin/api/ordering/outbox/status"
    ),
    ("get", "/admin/api/{service}/outbox/failed"): lambda f: _fixed(
        "/admin/api/ordering/outbox/failed"
    ),
    ("get", "/admin/api/{service}/outbox/events"): lambda f: _fixed(
        f"/admin/api/ordering/outbox/events?orderId={f.order_id}"
    ),
    ("post", "/admin/api/{service}/outbox/replay"): lambda f: _fixed(
        "/admin/api/ordering/outbox/replay", {"all": True, "dryRun": True}
    ),
    ("get", "/admin/api/{service}/dlq"): lambda f: _fixed("/admin/api/catalog/dlq"),
    ("post", "/admin/api/{service}/dlq/replay"): lambda f: _fixed(
        "/admin/api/catalog/dlq/replay", {"all": True, "dryRun": True}
    ),
    ("post", "/admin/api/{service}/dlq/purge"): lambda f: _fixed(
        "/admin/api/catalog/dlq/purge", {"ids": [str(uuid.uuid4())]}
    ),
    ("get", "/admin/api/{service}/inbox"): lambda f: _fixed("/admin/api/catalog/inbox?limit=5"),
    ("get", "/admin/api/{service}/inbox/keys"): lambda f: _fixed(
        "/admin/api/catalog/inbox/keys?limit=5"
    ),
    ("get", "/admin/api/{service}/inbox/{message_id}"): lambda f: _fixed(
        f"/admin/api/catalog/inbox/{f.message_id}"
    ),
}


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        ordering_database_url=f"sqlite+aiosqlite:///{tmp_path}/ordering.db",
        catalog_database_url=f"sqlite+aiosqlite:///{tmp_path}/catalog.db",
        embedded_broker_path=str(tmp_path / "broker.db"),
        broker_url="memory://",
    )


def _operations(app: FastAPI) -> dict[tuple[str, str], list[str] | None]:
    """(method, path) → the route's required scopes (None: no security requirement)."""
    found: dict[tuple[str, str], list[str] | None] = {}
    for path, methods in app.openapi()["paths"].items():
        for method, operation in methods.items():
            requirements = operation.get("security")
            found[(method, path)] = (
                None if requirements is None else [s for r in requirements for s in r["bearerAuth"]]
            )
    return found


@pytest.fixture(scope="module")
async def dev(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fixtures]:
    app = create_dev_app(_settings(tmp_path_factory.mktemp("dev")))
    headers = {"Authorization": f"Bearer {token()}"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://dev", headers=headers
        ) as client,
    ):
        products = (await client.get("/api/catalog/products")).json()
        product_id = next(p["id"] for p in products if p["name"] == "Product A")
        order = await client.post(
            "/api/ordering/order", json={"customerName": "Ann", "productId": product_id}
        )
        order_id = order.json()["id"]
        message_id = await _applied_message(client, order_id)
        yield Fixtures(client, product_id, order_id, message_id, await _page_session(app))


async def _page_session(app: FastAPI) -> str:
    """Sign in to dev's pages as this machine's browser does; the session cookie's value."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as web:
        signed = await web.post("/sign-in", content=b"next=/orders")
        assert signed.status_code == 303, signed.text
        [value] = [c.value for c in web.cookies.jar if "flash" not in c.name]
        return value


async def _applied_message(client: httpx.AsyncClient, order_id: str) -> str:
    """The id of the order's OrderPlaced once catalog's inbox has it."""
    for _ in range(200):
        events = await client.get(f"/admin/api/ordering/outbox/events?orderId={order_id}")
        for event in events.json()["events"]:
            inbox = await client.get(f"/admin/api/catalog/inbox/{event['id']}")
            if inbox.status_code == 200:
                return str(event["id"])
        await asyncio.sleep(0.05)
    raise AssertionError("the order's OrderPlaced never reached catalog's inbox")


def _routes() -> dict[tuple[str, str], list[str] | None]:
    settings = Settings()
    routes = _operations(create_dev_app(settings))
    for standalone in (create_ordering(settings), create_catalog(settings)):
        missing = set(_operations(standalone)) - set(routes)
        assert not missing, f"routes only a standalone app serves, not tested here: {missing}"
    return routes


ROUTES = _routes()
PROTECTED = sorted(route for route, scopes in ROUTES.items() if route not in OPEN_ROUTES)


def test_every_protected_route_names_one_known_scope_and_has_an_example() -> None:
    unprotected = {route for route, scopes in ROUTES.items() if scopes is None}
    assert unprotected == OPEN_ROUTES, "a route without a scope: add require(…) to it"
    for route in PROTECTED:
        scopes = ROUTES[route]
        assert scopes is not None and len(scopes) == 1 and scopes[0] in SCOPES, route
        assert route in EXAMPLES, f"no example request for {route}: add one to EXAMPLES"


def _expired() -> str:
    return issue_token(TEST_SECRET, SCOPES, subject="late", ttl_seconds=-3600)


def _exp_as_text() -> str:
    """RFC 7519 §2: ``exp`` is a NumericDate, a JSON number; PyJWT takes "9999999999" too."""
    import jwt

    claims = {"sub": "x", "scope": " ".join(SCOPES), "exp": "9999999999"}
    return jwt.encode(claims, TEST_SECRET, algorithm="HS256")


def _wrongly_signed() -> str:
    return issue_token("another-secret-of-at-least-32-characters!!", SCOPES, subject="x",
                       ttl_seconds=3600)  # fmt: skip


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_route_refuses_without_a_valid_token_and_its_scope(
    dev: Fixtures, method: str, path: str
) -> None:
    [scope] = ROUTES[(method, path)] or []
    url, body = await EXAMPLES[(method, path)](dev)
    refusals: dict[str, tuple[dict[str, str], int, str]] = {
        "no token": ({"Authorization": ""}, 401, ""),
        "not a bearer": ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, ""),
        "expired": ({"Authorization": f"Bearer {_expired()}"}, 401, "invalid_token"),
        "wrong key": ({"Authorization": f"Bearer {_wrongly_signed()}"}, 401, "invalid_token"),
        "exp as text": ({"Authorization": f"Bearer {_exp_as_text()}"}, 401, "invalid_token"),
        # Browsers send a host's cookies to every port of it: another service there gets
        # the pages' session cookie, which must not open the APIs.
        "the pages' session": (
            {"Authorization": f"Bearer {dev.page_session}"},
            401,
            "invalid_token",
        ),
        "other scopes": (
            {"Authorization": f"Bearer {token(*(s for s in SCOPES if s != scope))}"},
            403,
            "insufficient_scope",
        ),
    }
    for case, (headers, status, error) in refusals.items():
        response = await dev.client.request(method, url, json=body, headers=headers)
        assert response.status_code == status, (case, response.text)
        assert isinstance(response.json()["detail"], str), case
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="cloudcrm"'), (case, challenge)
        assert f'error="{error}"' in challenge if error else "error=" not in challenge, case
    allowed = await dev.client.request(
        method, url, json=body, headers={"Authorization": f"Bearer {token(scope)}"}
    )
    assert 200 <= allowed.status_code < 300, (scope, allowed.text)


@pytest.mark.parametrize(("method", "path"), sorted(OPEN_ROUTES))
async def test_probes_stay_open(dev: Fixtures, method: str, path: str) -> None:
    response = await dev.client.request(method, path, headers={"Authorization": ""})
    assert response.status_code == 200, response.text


async def test_metrics_and_docs_stay_open(dev: Fixtures) -> None:
    for path in ("/metrics", "/docs", "/openapi.json"):
        response = await dev.client.get(path, headers={"Authorization": ""})
        assert response.status_code == 200, path


async def test_the_schema_declares_the_bearer_scheme() -> None:
    schema = create_dev_app(Settings()).openapi()
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "an access token (`python -m app token --scope …` in development)",
    }


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_the_token_is_checked_before_the_request_is_read(
    dev: Fixtures, method: str, path: str
) -> None:
    """A body that is not JSON, or over the size limit, or a bad path parameter, from a
    client without a valid token: 401, before any parsing."""
    url, _ = await EXAMPLES[(method, path)](dev)
    for content in (b"{", b'{"name": "\xff"}', b"x" * 70_000):
        for headers in ({"Authorization": ""}, {"Authorization": "Bearer not.a.token"}):
            response = await dev.client.request(
                method,
                url,
                content=content,
                headers={**headers, "content-type": "application/json"},
            )
            assert response.status_code == 401, (content[:10], headers, response.text)
    odd = await dev.client.request(method, url + "/%ff/not-a-route", headers={"Authorization": ""})
    assert odd.status_code == 401


async def test_a_header_no_latin1_can_hold_is_a_401_not_a_500(dev: Fixtures) -> None:
    import base64
    import json

    header = base64.urlsafe_b64encode(json.dumps({"alg": "漢字"}).encode()).rstrip(b"=")
    token = f"{header.decode()}.e30.AAAA"
    response = await dev.client.get(
        "/api/catalog/products", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].isascii()
