"""The Operations page acts on exactly the dead letters it shows, by their exact message
ids, whatever characters those hold: a junk message whose id is "junk V" (V: a genuine
dead letter's id) once had V purged in its place, and an id with a line break could never
be acted on. It lists the keys whose messages wait parked, and replays or purges (when
confirmed) the dead letter a key stops at. On RabbitMQ (the catalog API on PostgreSQL,
``python -m app web`` in front) and on the embedded broker (``dev``)."""

from __future__ import annotations

import html
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import aio_pika
import aiormq
import httpx
import pytest
from markupsafe import escape

from app.cli.dev import create_dev_app
from app.core.settings import Settings
from app.messaging.registry import bindings_of
from app.pages import operations_view
from cloudcrm_outbox import RabbitMQBroker
from cloudcrm_outbox.brokers.dead_letters import POISON_REASON
from cloudcrm_outbox.brokers.embedded.queue_file import Envelope
from cloudcrm_outbox.events import KEY_HEADER, SEQUENCE_HEADER
from cloudcrm_outbox.storage.engine import make_engine
from cloudcrm_outbox.storage.tables import INBOX_KEYS, INBOX_PARKED
from tests.support.auth import HEADERS
from tests.support.pages import (
    BASE_URL,
    PageForm,
    loopback_client,
    page_forms,
    pages_over_services,
)

GENUINE = "invalid OrderPlaced: quantity must be at least 1"
JUNK = "unknown event type 'Junk'"

Headers = dict[str, str | int] | None


class Plant(Protocol):
    """Dead-letter ``letters`` (message id, reason), each with ``headers`` besides its
    reason (a message key and its place)."""

    def __call__(
        self, letters: list[tuple[str, str]], headers: Headers = None
    ) -> Awaitable[None]: ...


@dataclass
class Operations:
    """The pages (signed in), catalog's admin API, a way to put dead letters in catalog's
    dead-letter queue, and catalog's database (its URL)."""

    web: httpx.AsyncClient
    api: httpx.AsyncClient
    plant: Plant
    catalog_db: str


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

    async def plant(letters: list[tuple[str, str]], headers: Headers = None) -> None:
        # As the consumer dead-letters a message: through the queue's dead-letter exchange.
        topology = catalog_queues.topology
        async with await aio_pika.connect(broker) as connection:
            channel = await connection.channel(publisher_confirms=True)
            underlay = await channel.get_underlay_channel()
            for message_id, reason in letters:
                properties = aiormq.spec.Basic.Properties(
                    message_id=message_id, message_type="OrderPlaced",
                    headers={**(headers or {}), POISON_REASON: reason}, delivery_mode=2,
                )  # fmt: skip
                await underlay.basic_publish(
                    b"{}", exchange=topology.dead_letter_exchange,
                    routing_key=topology.queue, properties=properties,
                )  # fmt: skip

    async with pages_over_services(settings, next_page="/operations") as pages:
        yield Operations(pages.web, pages.catalog, plant, catalog_db)


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[Operations]:
    settings = Settings(
        ordering_database_url=f"sqlite+aiosqlite:///{tmp_path}/ordering.db",
        catalog_database_url=f"sqlite+aiosqlite:///{tmp_path}/catalog.db",
        embedded_broker_path=str(tmp_path / "broker.db"),
        broker_url="memory://",
    )
    app = create_dev_app(settings)

    async def plant(letters: list[tuple[str, str]], headers: Headers = None) -> None:
        dlq = app.state.broker._memory.queues["catalog.events.dlq"]
        for message_id, reason in letters:
            dlq.put(Envelope(body=b"{}", message_id=message_id, type="OrderPlaced",
                             routing_key="catalog.events",
                             headers={**(headers or {}), POISON_REASON: reason}))  # fmt: skip

    async with app.router.lifespan_context(app), loopback_client(app, BASE_URL) as web:
        await _sign_in(web)
        yield Operations(web, web, plant, settings.catalog_database_url)


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
    return await _press(operations, await _form(operations, action, "data-dead-reason", reason))


async def _form(operations: Operations, action: str, row: str, value: str) -> PageForm:
    """The form of ``action`` on the catalog row whose attribute ``row`` is ``value``."""
    page = await operations.web.get("/operations")
    assert page.status_code == 200, page.text
    [form] = [
        form
        for form in page_forms(page.text)
        if form.action == f"/operations/catalog/{action}" and form.row.get(row) == value
    ]
    return form


async def _press(operations: Operations, form: PageForm) -> str:
    """Send ``form`` as a browser would; the banner the page then shows."""
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


# A key with what HTML, an attribute, a script and a shell would each read as their own.
HOSTILE_KEY = """<script>alert("k")</script> & 'x' -- $(rm -rf ~) \u202e"""


async def _park(
    catalog_db: str,
    key: str,
    *,
    next_sequence: int,
    parked: list[int],
    dead_letter: uuid.UUID | None = None,
    waiting: timedelta = timedelta(minutes=5),
) -> None:
    """Catalog's consumer's ``key``, as its inbox leaves it: waiting for ``next_sequence``
    (dead-lettered as ``dead_letter``, when given), the ``parked`` places after it held."""
    since = datetime.now(UTC) - waiting
    engine = make_engine(catalog_db)
    try:
        async with engine.begin() as connection:
            await connection.execute(INBOX_KEYS.insert().values(
                consumer="catalog", message_key=key, applied_sequence=next_sequence - 1,
                dead_letter_id=dead_letter,
                dead_letter_sequence=next_sequence if dead_letter else None,
                dead_lettered_at=since if dead_letter else None,
            ))  # fmt: skip
            await connection.execute(INBOX_PARKED.insert(), [
                {"consumer": "catalog", "message_key": key, "key_sequence": sequence,
                 "predecessor": sequence - 1, "message_id": uuid.uuid4(),
                 "event_type": "OrderCancelled",
                 "payload": {"orderId": str(uuid.uuid4())}, "traceparent": None,
                 "parked_at": since}
                for sequence in parked
            ])  # fmt: skip
    finally:
        await engine.dispose()


async def _parked_places(catalog_db: str, key: str) -> dict[int, str | None]:
    """Each parked place of catalog's ``key``: its event type (None: a place given up)."""
    engine = make_engine(catalog_db)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                INBOX_PARKED.select().where(INBOX_PARKED.c.message_key == key)
            )
            return {row.key_sequence: row.event_type for row in rows}
    finally:
        await engine.dispose()


def _row(page: str, key: str) -> str:
    """The page's table row of waiting ``key`` (as the page has it: escaped)."""
    rows = re.finditer(r'<tr data-waiting-key="([^"]*)">(.*?)</tr>', page, re.S)
    [row] = [found[2] for found in rows if html.unescape(found[1]) == key]
    return row


def _code(row: str, starting: str) -> str:
    """The text of the row's ``<code>`` that starts with ``starting``, as the page has it."""
    found = re.search(rf"<code>({re.escape(starting)}[^<]*)</code>", row)
    assert found is not None, row
    return found[1]


async def test_the_page_lists_keys_stopped_at_a_dead_letter_and_at_a_gap(
    operations: Operations,
) -> None:
    stopped, gap, dead_letter = f"order-{uuid.uuid4()}", f"order-{uuid.uuid4()}", uuid.uuid4()
    await _park(operations.catalog_db, stopped, next_sequence=2, parked=[3, 4],
                dead_letter=dead_letter)  # fmt: skip
    await _park(operations.catalog_db, gap, next_sequence=1, parked=[2])

    page = await operations.web.get("/operations")
    assert page.status_code == 200, page.text
    catalog = page.text[page.text.index('id="ops-catalog"') :]
    assert re.search(r'data-field="parked">3<', catalog), catalog
    assert re.search(r'data-field="key-gaps">1<', catalog), catalog  # waiting 5 min > 60 s

    row = _row(catalog, stopped)
    assert "sequence 2" in row and ">2<" in row, row  # waits for 2, two parked
    assert re.search(r'<td data-label="Waiting" title="\d{3}\.\d s">5 min \d s<', row), row
    assert f'dead letter <code data-field="dead-letter-id">{dead_letter}</code>' in row, row
    assert ">Replay key</button>" in row and ">Purge key</button>" in row, row
    assert 'name="confirm" value="yes" required' in row, row

    row = _row(catalog, gap)
    assert "a gap (no dead letter)" in row, row
    assert f"<code>python -m app outbox republish ordering --key {gap}</code>" in row, row
    assert "<button" not in row and "<form" not in row, row


async def test_a_key_is_shown_escaped_and_acted_on_exactly(operations: Operations) -> None:
    await _park(operations.catalog_db, HOSTILE_KEY, next_sequence=2, parked=[3],
                dead_letter=uuid.uuid4())  # fmt: skip
    gap = "-" + HOSTILE_KEY
    await _park(operations.catalog_db, gap, next_sequence=1, parked=[2])

    page = (await operations.web.get("/operations")).text
    assert "<script>alert" not in page, page
    # Shown as text: its markup escaped, its invisible character written as an escape (the
    # row's attribute, never shown, holds the key exact).
    assert "\u202e" not in re.sub(r'data-waiting-key="[^"]*"', "", page), page
    shown = HOSTILE_KEY.replace("\u202e", "\\u202e")
    row = _row(page, HOSTILE_KEY)
    assert f"<code>{escape(shown)}</code>" in row, row
    # The gap's command is one a shell runs as written: the key one word, its invisible
    # character an escape, a leading "-" not read as an option.
    command = html.unescape(_code(_row(page, gap), "python -m app outbox republish"))
    word = """$'-<script>alert("k")</script> & \\'x\\' -- $(rm -rf ~) \\u202e'"""
    assert command == f"python -m app outbox republish ordering --key={word}", command
    # The buttons carry the key exact, whatever it holds.
    actions = {
        (form.action, operations_view.key_of(dict(form.fields)["key"]))
        for form in page_forms(page)
        if form.row.get("data-waiting-key") == HOSTILE_KEY
    }
    assert actions == {
        ("/operations/catalog/key-replay", HOSTILE_KEY),
        ("/operations/catalog/key-purge", HOSTILE_KEY),
    }


def _audited(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int]]:
    """The admin audit lines logged (action, count), each by the page's signed-in user
    through catalog's admin API."""
    lines = [r for r in caplog.records if r.name == "app.admin" and hasattr(r, "action")]
    assert all(getattr(record, "actor", "").startswith("api:") for record in lines), lines
    return [(getattr(record, "action", ""), getattr(record, "count", 0)) for record in lines]


def _keyed(key: str, sequence: int) -> dict[str, str | int]:
    return {KEY_HEADER: key, SEQUENCE_HEADER: sequence}


@pytest.mark.postgres
@pytest.mark.rabbitmq
async def test_replay_key_puts_the_keys_dead_letter_back(
    on_rabbitmq: Operations, caplog: pytest.LogCaptureFixture
) -> None:
    operations = on_rabbitmq
    caplog.set_level(logging.WARNING, "app.admin")
    key, dead_letter = HOSTILE_KEY, uuid.uuid4()
    other = str(uuid.uuid4())  # another key's dead letter stays
    await operations.plant([(str(dead_letter), GENUINE)], _keyed(key, 2))
    await operations.plant([(other, GENUINE)], _keyed("order-other", 1))
    await _park(operations.catalog_db, key, next_sequence=2, parked=[3, 4],
                dead_letter=dead_letter)  # fmt: skip

    banner = await _press(
        operations, await _form(operations, "key-replay", "data-waiting-key", key)
    )
    assert banner == ("catalog: replayed 1 dead letter(s) of the key: its parked messages "
                      "are applied after them, in order"), banner  # fmt: skip
    assert await _dead_letter_ids(operations.api) == {other}
    assert _audited(caplog) == [("replayed dead letters", 1)]


@pytest.mark.postgres
@pytest.mark.rabbitmq
async def test_purge_key_gives_up_its_place_only_when_confirmed(
    on_rabbitmq: Operations, caplog: pytest.LogCaptureFixture
) -> None:
    operations = on_rabbitmq
    key, dead_letter = HOSTILE_KEY, uuid.uuid4()
    await operations.plant([(str(dead_letter), GENUINE)], _keyed(key, 2))
    await _park(operations.catalog_db, key, next_sequence=2, parked=[3, 4],
                dead_letter=dead_letter)  # fmt: skip
    form = await _form(operations, "key-purge", "data-waiting-key", key)
    assert ("confirm", "yes") in form.fields

    caplog.set_level(logging.WARNING, "app.admin")
    # Unconfirmed (the box not ticked: a browser sends no field for it): refused, nothing done.
    unticked = PageForm(form.action, [f for f in form.fields if f[0] != "confirm"], form.row)
    banner = await _press(operations, unticked)
    assert banner == "nothing purged: a key&#39;s purge must be confirmed (tick its box)", banner
    assert await _dead_letter_ids(operations.api) == {str(dead_letter)}
    assert await _parked_places(operations.catalog_db, key) == {
        3: "OrderCancelled",
        4: "OrderCancelled",
    }

    banner = await _press(operations, form)
    assert banner == ("catalog: purged 1 dead letter(s) of the key and gave up 1 place(s): "
                      "its parked messages after them are applied, in order"), banner  # fmt: skip
    assert await _dead_letter_ids(operations.api) == set()
    assert _audited(caplog) == [
        ("gave up a key's places (its dead letters purged)", 1),
        ("purged dead letters", 1),
    ]
    # Its place given up: the consumer moves the key past it and applies 3 and 4.
    assert await _parked_places(operations.catalog_db, key) == {
        2: None,
        3: "OrderCancelled",
        4: "OrderCancelled",
    }
