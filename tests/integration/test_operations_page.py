"""The Operations page acts on exactly the dead letters it shows, by their exact message
ids, whatever characters those hold: a junk message whose id is "junk V" (V: a genuine
dead letter's id) once had V purged in its place, and an id with a line break could never
be acted on. On RabbitMQ (the catalog API on PostgreSQL, ``python -m app web`` in
front) and on the embedded broker (``dev``)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import aiormq
import httpx
import pytest

from app.cli.dev import create_dev_app
from app.core.settings import Settings
from app.messaging.registry import bindings_of
from cloudcrm_outbox import RabbitMQBroker
from cloudcrm_outbox.brokers.dead_letters import POISON_REASON
from cloudcrm_outbox.brokers.embedded.queue_file import Envelope
from tests.support.auth import HEADERS
from tests.support.pages import BASE_URL, loopback_client, page_forms, pages_over_services

GENUINE = "invalid OrderPlaced: quantity must be at least 1"
JUNK = "unknown event type 'Junk'"

Plant = Callable[[list[tuple[str, str]]], Awaitable[None]]  # (message id, reason) each


@dataclass
class Operations:
    """The pages (signed in), catalog's admin API, and a way to put dead letters in
    catalog's dead-letter queue."""

    web: httpx.AsyncClient
    api: httpx.AsyncClient
    plant: Plant


async def _sign_in(web: httpx.AsyncClient) -> None:
    signed = await web.post("/sign-in", content=b"next=/operations")
    assert signed.status_code == 303, signed.text


@pytest.fixture
async def on_rabbitmq(ordering_db: str, catalog_db: str, broker: str) -> AsyncIterator[Operations]:
    settings = Settings(ordering_database_url=ordering_db, catalog_database_url=catalog_db,
                        broker_url=broker, catalog_api_url="http://127.0.0.1:9")  # fmt: skip
    rabbit = RabbitMQBroker(broker, connect_timeout=10)
    catalog_queues = bindings_of("catalog")
    await rabbit.declare([catalog_queues])
    await rabbit.close()

    async def plant(letters: list[tuple[str, str]]) -> None:
        # As the consumer dead-letters a message: through the queue's dead-letter exchange.
        topology = catalog_queues.topology
        async with await aio_pika.connect(broker) as connection:
            channel = await connection.channel(publisher_confirms=True)
            underlay = await channel.get_underlay_channel()
            for message_id, reason in letters:
                properties = aiormq.spec.Basic.Properties(
                    message_id=message_id, message_type="OrderPlaced",
                    headers={POISON_REASON: reason}, delivery_mode=2,
                )  # fmt: skip
                await underlay.basic_publish(
                    b"{}", exchange=topology.dead_letter_exchange,
                    routing_key=topology.queue, properties=properties,
                )  # fmt: skip

    async with pages_over_services(settings, next_page="/operations") as pages:
        yield Operations(pages.web, pages.catalog, plant)


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[Operations]:
    settings = Settings(
        ordering_database_url=f"sqlite+aiosqlite:///{tmp_path}/ordering.db",
        catalog_database_url=f"sqlite+aiosqlite:///{tmp_path}/catalog.db",
        embedded_broker_path=str(tmp_path / "broker.db"),
        broker_url="memory://",
    )
    app = create_dev_app(settings)

    async def plant(letters: list[tuple[str, str]]) -> None:
        dlq = app.state.broker._memory.queues["catalog.events.dlq"]
        for message_id, reason in letters:
            dlq.put(Envelope(body=b"{}", message_id=message_id, type="OrderPlaced",
                             routing_key="catalog.events",
                             headers={POISON_REASON: reason}))  # fmt: skip

    async with app.router.lifespan_context(app), loopback_client(app, BASE_URL) as web:
        await _sign_in(web)
        yield Operations(web, web, plant)


@pytest.fixture(params=["rabbitmq", "embedded"])
def operations(request: pytest.FixtureRequest) -> Operations:
    if request.param == "rabbitmq":
        for mark in (pytest.mark.postgres, pytest.mark.rabbitmq):
            request.applymarker(mark)
        found: Operations = request.getfixturevalue("on_rabbitmq")
    else:
        found = request.getfixturevalue("embedded")
    return found


async def _dead_letter_ids(api: httpx.AsyncClient) -> set[str]:
    listed = await api.get("/admin/api/catalog/dlq", headers=HEADERS)
    assert listed.status_code == 200, listed.text
    return {letter["messageId"] for letter in listed.json()["deadLetters"]}


async def _act(operations: Operations, action: str, reason: str) -> str:
    """Press ``action`` (dlq-purge, dlq-replay) of the catalog row of ``reason`` as a
    browser would; the banner the page then shows."""
    page = await operations.web.get("/operations")
    assert page.status_code == 200, page.text
    [form] = [
        form
        for form in page_forms(page.text)
        if form.action == f"/operations/catalog/{action}"
        and form.row.get("data-dead-reason") == reason
    ]
    done = await operations.web.post(form.action, content=form.body())
    assert (done.status_code, done.headers["location"]) == (303, "/operations"), done.text
    shown = await operations.web.get("/operations")
    # The banner comes first (base.html), before any part of the page that says a problem.
    banner = re.search(r'<p class="\w+" role="(?:status|alert)">(.*?)</p>', shown.text)
    assert banner is not None, shown.text
    return banner[1]


async def test_the_page_acts_on_exact_message_ids(operations: Operations) -> None:
    genuine = str(uuid.uuid4())
    junk = [f"junk {genuine}", f"line\n{uuid.uuid4()}", f"cr\r{uuid.uuid4()}", " padded "]
    await operations.plant([(genuine, GENUINE)] + [(message_id, JUNK) for message_id in junk])
    assert await _dead_letter_ids(operations.api) == {genuine, *junk}

    banner = await _act(operations, "dlq-purge", JUNK)
    assert "purged 4 dead letter(s)" in banner, banner
    # The junk is gone, every one of it; the genuine dead letter its id named is still there.
    assert await _dead_letter_ids(operations.api) == {genuine}

    banner = await _act(operations, "dlq-purge", GENUINE)
    assert "purged 1 dead letter(s)" in banner, banner
    assert await _dead_letter_ids(operations.api) == set()
