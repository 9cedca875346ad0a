"""The web pages in a real browser (Chromium through Playwright): the tutorial on
`make run`'s defaults and on PostgreSQL + RabbitMQ with every process separate, the
Operations page repairing an order, and /docs rendering with no internet."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import screenshot
from tests.browser.flows import expect_stock, sign_in, tutorial
from tests.e2e.processes import Background, command_env, run_command, running
from tests.support import postgres
from tests.support.auth import API
from tests.support.identity import AUDIENCE, ISSUER, SigningKey, identity_provider_in_thread
from tests.support.servers import free_port


def _embedded_env(**settings: str) -> dict[str, str]:
    # A fresh machine: no AUTH_* (dev makes its secret), the embedded broker.
    env = command_env(BROKER_URL="memory://", **settings)
    env.pop("AUTH_JWT_SECRET", None)
    return env


def test_the_tutorial_in_the_browser_on_make_run_defaults(page: Page, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running("dev", "--port", str(port), env=_embedded_env(), ready_url=f"{url}/docs",
                 cwd=tmp_path):  # fmt: skip
        page.goto(f"{url}/sign-in")
        screenshot(page, "sign-in")
        tutorial(page, url, screenshots=True)
        page.set_viewport_size({"width": 390, "height": 844})  # a phone
        page.goto(f"{url}/orders")
        expect(page.get_by_role("button", name="Place order")).to_be_visible()
        screenshot(page, "orders-phone")
        page.set_viewport_size({"width": 1280, "height": 900})

        # An edit on a page loaded before an order took stock saves nothing: the form
        # sends the product's ETag from when it was shown as If-Match, and the order
        # changed it. Saved again from the page as it is now, it keeps the order's stock.
        page.goto(f"{url}/products")
        stale = page.locator('tr[data-product="Product B"]')
        expect(stale.locator("td.stock")).to_have_text("10")
        b_id = stale.locator("form").first.get_attribute("action").rsplit("/", 1)[1]
        order = {"customerName": "Cy", "productId": b_id, "quantity": "3"}
        placed = page.request.post(f"{url}/orders", headers={"origin": url}, form=order)
        assert placed.ok
        expect_stock(page.context.new_page(), url, "Product B", 7)
        stale.get_by_label("Price of Product B").fill("30")
        stale.get_by_role("button", name="Save Product B").click()
        expect(page.get_by_role("alert")).to_contain_text(
            "Product B changed meanwhile; nothing saved"
        )
        current = page.locator('tr[data-product="Product B"]')
        expect(current.locator("td.stock")).to_have_text("7")
        expect(current.get_by_label("Price of Product B")).not_to_have_value("30")
        current.get_by_label("Price of Product B").fill("30")
        current.get_by_role("button", name="Save Product B").click()
        expect(page.get_by_role("status")).to_have_text("saved Product B")
        expect(current.locator("td.stock")).to_have_text("7")
        expect(current.get_by_label("Price of Product B")).to_have_value("30.0")


@pytest.fixture
def databases() -> Iterator[dict[str, str]]:
    names = {s: postgres.unique_name(f"cc_web_{s}") for s in ("ordering", "catalog")}
    try:
        yield {service: postgres.create_database(name) for service, name in names.items()}
    finally:
        for name in names.values():
            postgres.drop_database(name)


def _wait_for(process: Background, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in process.log():
        assert process.process.poll() is None, process.log()
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{process.log()}"
        time.sleep(0.05)


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_the_tutorial_on_postgresql_and_rabbitmq_with_the_processes_separate(
    page: Page, databases: dict[str, str], rabbit_vhost: str, tmp_path: Path
) -> None:
    ports = {name: free_port() for name in ("ordering", "catalog", "web")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    env = command_env(
        ORDERING_DATABASE_URL=databases["ordering"],
        CATALOG_DATABASE_URL=databases["catalog"],
        CATALOG_API_URL=urls["catalog"],
        ORDERING_API_URL=urls["ordering"],
        BROKER_URL=rabbit_vhost,
    )
    run_command("migrate", env=env)
    run_command("broker", "declare", env=env)
    started: list[Background] = []
    try:
        for args in (("consume", "catalog"), ("consume", "ordering"), ("relay", "ordering"),
                     ("relay", "catalog"), ("api", "catalog", "--port", str(ports["catalog"])),
                     ("api", "ordering", "--port", str(ports["ordering"])),
                     ("web", "--port", str(ports["web"]))):  # fmt: skip
            process = Background(*args, env=env, log_path=tmp_path / f"{len(started)}.log")
            started.append(process)
        for process in started[4:]:
            _wait_for(process, "Application startup complete")
        created = API.post(f"{urls['catalog']}/api/catalog/products",
                           json={"name": "Product A", "price": 9.99, "stockCount": 53})  # fmt: skip
        assert created.status_code == 201, created.text
        tutorial(page, urls["web"])
    finally:
        for process in started:
            process.stop()


FAILING_TRIGGER = (
    "CREATE TRIGGER stock_system_down BEFORE INSERT ON stock_reservations "
    "BEGIN SELECT RAISE(ABORT, 'the stock system is down'); END"
)


def _sql(database: Path, statement: str, *params: object) -> None:
    with sqlite3.connect(database, timeout=10) as connection:
        connection.execute(statement, params)


def test_operations_shows_and_repairs_a_failed_row_and_a_dead_letter(
    page: Page, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _embedded_env(
        CONSUMER_DELIVERY_LIMIT="2", CONSUMER_REDELIVERY_MAX_SECONDS="0.2", RELAY_MAX_ATTEMPTS="1"
    )
    catalog_db, ordering_db = tmp_path / "var" / "catalog.db", tmp_path / "var" / "ordering.db"
    with running("dev", "--port", str(port), env=env, ready_url=f"{url}/docs", cwd=tmp_path):
        sign_in(page, url)
        # A dead letter: catalog's stock system fails every delivery of the order.
        _sql(catalog_db, FAILING_TRIGGER)
        page.goto(f"{url}/orders")
        page.get_by_label("Customer").fill("Bea")
        page.get_by_role("button", name="Place order").click()
        # A failed row: one the relay cannot send (headers not an object), failed at once.
        row_id = uuid.uuid4()
        _sql(ordering_db, "INSERT INTO outbox (id, event_type, payload, headers) "
             "VALUES (?, 'OrderCancelled', ?, '[1]')", row_id.hex,
             json.dumps({"orderId": str(uuid.uuid4()), "productId": str(uuid.uuid4()),
                         "quantity": 1}))  # fmt: skip
        dead = page.locator(
            '[aria-labelledby="ops-catalog"] tr[data-dead-reason^="delivery limit"]'
        )
        failed = page.locator(f'tr[data-failed-row="{row_id}"]')
        for _ in range(120):
            page.goto(f"{url}/operations")
            if dead.count() and failed.count():
                break
            page.wait_for_timeout(250)
        expect(dead).to_have_count(1)
        expect(failed).to_contain_text("unpublishable")
        screenshot(page, "operations")

        _sql(catalog_db, "DROP TRIGGER stock_system_down")  # fixed: replay from the page
        dead.get_by_role("button", name="Replay").click()
        expect(page.get_by_role("status")).to_have_text("catalog: replayed 1 dead letter(s)")
        page.goto(f"{url}/orders")
        expect(page.locator("#orders tbody tr").first.locator("td.state")).to_have_text("Confirmed")
        expect_stock(page, url, "Product A", 52)  # taken once

        _sql(ordering_db, "UPDATE outbox SET headers = '{}' WHERE id = ?", row_id.hex)
        page.goto(f"{url}/operations")
        failed.get_by_role("button", name="Replay").click()
        expect(page.get_by_role("status")).to_have_text("ordering: 1 failed row(s) back to pending")
        for _ in range(60):
            page.goto(f"{url}/operations")
            if (
                page.locator('[aria-labelledby="ops-ordering"] [data-field="failed"]').inner_text()
                == "0"
            ):
                break
            page.wait_for_timeout(250)
        expect(page.locator('[aria-labelledby="ops-ordering"] [data-field="failed"]')).to_have_text(
            "0"
        )


def test_docs_render_with_the_network_cut_to_anything_but_this_machine(
    page: Page, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    refused: list[str] = []

    def only_this_machine(route: Route) -> None:
        if urlsplit(route.request.url).hostname in {"127.0.0.1", "localhost"}:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_machine)
    with running("dev", "--port", str(port), env=_embedded_env(), ready_url=f"{url}/docs",
                 cwd=tmp_path):  # fmt: skip
        page.goto(f"{url}/docs")
        expect(page.locator(".opblock").first).to_be_visible()
        assert page.locator(".opblock").count() >= 15
        page.locator(".opblock-summary", has_text="/api/ordering/order").first.click()
        example = page.locator(".opblock.is-open .body-param__example, .opblock.is-open pre").first
        expect(example).to_be_visible()
        screenshot(page, "docs")
        page.goto(f"{url}/redoc")
        expect(page.get_by_text("Place an order").first).to_be_visible()
        page.wait_for_load_state("networkidle")  # whatever it would fetch, it has tried
    assert refused == [], refused


def test_sign_in_with_the_identity_provider(page: Page, tmp_path: Path) -> None:
    """Production sign-in: no shared secret, the pages a public client of the provider
    (authorization code + PKCE); the APIs trust the provider's keys; ordering gets its own
    token by client credentials."""
    key = SigningKey.rsa()
    with identity_provider_in_thread(key) as provider:
        provider.public_clients.add("cloudcrm-web")
        provider.clients["cloudcrm-ordering"] = "ordering-secret"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = _embedded_env(
            AUTH_JWKS_URL=provider.jwks_url,
            AUTH_ISSUER=ISSUER,
            AUTH_AUDIENCE=AUDIENCE,
            AUTH_TOKEN_URL=provider.token_url,
            AUTH_CLIENT_ID="cloudcrm-ordering",
            AUTH_CLIENT_SECRET="ordering-secret",
            AUTH_AUTHORIZE_URL=provider.authorize_url,
            AUTH_WEB_CLIENT_ID="cloudcrm-web",
            OAUTHLIB_INSECURE_TRANSPORT="1",  # the test's provider speaks http on 127.0.0.1
        )
        with running("dev", "--port", str(port), env=env, ready_url=f"{url}/docs",
                     cwd=tmp_path):  # fmt: skip
            page.goto(f"{url}/orders")
            expect(page).to_have_url(re.compile(r"/sign-in"))
            expect(page.get_by_role("button", name="Sign in as developer")).to_have_count(0)
            page.get_by_role("link", name="Sign in with your identity provider").click()
            expect(page).to_have_url(re.compile(r"/orders$"))
            expect(page.get_by_role("button", name="Place order")).to_be_visible()
            page.get_by_label("Customer").fill("Alice")
            page.get_by_role("button", name="Place order").click()
            row = page.locator("#orders tbody tr").first
            expect(row.locator("td.state")).to_have_text("Confirmed")
            expect(row).to_contain_text("Product A")  # ordering's own token reached catalog
            assert not (tmp_path / "var" / "dev-jwt-secret").exists()
