"""The pages' session cookie is opaque to the APIs: browsers send a host's cookies to
every port of it (RFC 6265 §8.5), so another service on the same host name receives it,
and what it receives must not be a bearer token. Sign-out ends the session on the server.

``python -m app web`` with both APIs on PostgreSQL and RabbitMQ, in-process (the pages
reach the APIs through ASGI instead of TCP)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from app.catalog.app import create_app as create_catalog
from app.core.settings import Settings
from app.ordering.app import create_app as create_ordering
from app.pages.api_client import Apis
from app.pages.serving import create_web_app
from tests.support.auth import HEADERS
from tests.support.pages import LOOPBACK_CLIENT

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


@dataclass
class System:
    ordering: httpx.AsyncClient  # the ordering API (its admin API too), no token set
    web: httpx.AsyncClient  # the pages over http://127.0.0.1:8000
    secure_web: httpx.AsyncClient  # the same pages as if served over https


@pytest.fixture
async def system(ordering_db: str, catalog_db: str, broker: str) -> AsyncIterator[System]:
    settings = Settings(
        ordering_database_url=ordering_db,
        catalog_database_url=catalog_db,
        broker_url=broker,
        catalog_api_url="http://127.0.0.1:9",
        catalog_api_timeout_seconds=1.0,
    )
    ordering, catalog, web = (
        create_ordering(settings),
        create_catalog(settings),
        create_web_app(settings),
    )

    def client(app: object, base_url: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=LOOPBACK_CLIENT)  # type: ignore[arg-type]
        return httpx.AsyncClient(transport=transport, base_url=base_url)

    async with (
        ordering.router.lifespan_context(ordering),
        catalog.router.lifespan_context(catalog),
        web.router.lifespan_context(web),
        client(ordering, "http://ordering") as ordering_client,
        client(catalog, "http://catalog") as catalog_client,
        client(web, "http://127.0.0.1:8000") as web_client,
        client(web, "https://127.0.0.1:8443") as secure_client,
    ):
        web.state.page_apis = Apis(ordering=ordering_client, catalog=catalog_client)
        created = await catalog_client.post(
            "/api/catalog/products",
            json={"name": "Lamp", "price": 2.5, "stockCount": 3},
            headers=HEADERS,
        )
        assert created.status_code == 201, created.text
        yield System(ordering_client, web_client, secure_client)


async def _sign_in(web: httpx.AsyncClient) -> httpx.Response:
    signed = await web.post("/sign-in", content=b"next=/orders")
    assert signed.status_code == 303, signed.text
    return signed


def _session_cookie(web: httpx.AsyncClient) -> tuple[str, str]:
    [found] = [(c.name, c.value) for c in web.cookies.jar if "flash" not in c.name]
    return found


async def test_the_session_cookie_is_refused_as_a_bearer_token(system: System) -> None:
    for web in (system.web, system.secure_web):
        await _sign_in(web)
        assert (await web.get("/orders")).status_code == 200  # the pages work with it
        _, value = _session_cookie(web)
        for path in ("/api/ordering/order", "/admin/api/ordering/outbox/status"):
            headers = {"Authorization": f"Bearer {value}"}
            as_bearer = await system.ordering.get(path, headers=headers)
            assert as_bearer.status_code == 401, (path, as_bearer.text)
            assert (await system.ordering.get(path, headers=HEADERS)).status_code == 200


async def test_sign_out_ends_it_on_the_server_and_https_keeps_it_host_only(system: System) -> None:
    await _sign_in(system.web)
    name, value = _session_cookie(system.web)
    signed_out = await system.web.post("/sign-out", content=b"")
    assert signed_out.status_code == 303
    # A copy of the cookie taken before (another service on the host kept it) is dead too.
    system.web.cookies.set(name, value)
    after = await system.web.get("/orders")
    assert after.status_code == 303 and after.headers["location"].startswith("/sign-in"), (
        after.status_code,
        after.headers,
    )
    # Over https the cookie is host-only and Secure; over http it cannot be (browsers
    # refuse a __Host- cookie there).
    signed = await _sign_in(system.secure_web)
    [session] = [
        header for header in signed.headers.get_list("set-cookie") if "flash" not in header
    ]
    attributes = [part.strip().lower() for part in session.split(";")]
    assert session.startswith("__Host-"), session  # RFC 6265bis §4.1.3.2
    assert {"secure", "httponly", "path=/", "samesite=strict"} <= set(attributes), session
    assert not any(a.startswith("domain=") for a in attributes), session
    plain = await _sign_in(system.web)
    assert not plain.headers["set-cookie"].startswith("__Host-")
