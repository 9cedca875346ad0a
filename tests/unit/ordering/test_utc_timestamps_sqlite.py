"""On the embedded default (SQLite) timestamps read exactly as on PostgreSQL: UTC, to the
millisecond, ending in ``Z`` (SQLite's CURRENT_TIMESTAMP has whole seconds only), and the
newest-first listing and its keyset pages still hold."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from app.admin import operations
from app.cli.main import main
from app.core import migrations as migrate
from app.core.settings import Settings
from app.ordering.app import create_app
from cloudcrm_outbox.brokers.dead_letters import FIRST_DEAD_AT, dead_letter_of, now_iso
from cloudcrm_outbox.ops.republish import PublishedSelection, republish
from cloudcrm_outbox.storage.clock import db_now_plus
from cloudcrm_outbox.storage.engine import make_engine
from cloudcrm_outbox.storage.tables import OUTBOX
from tests.support.servers import asgi_client, free_port

UTC_MILLISECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ordering.db'}"
    settings = Settings(ordering_database_url=url)
    await asyncio.to_thread(migrate.upgrade, "ordering", settings=settings)
    return url


@pytest.fixture
async def ordering(sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        ordering_database_url=sqlite_url,
        catalog_api_url=f"http://127.0.0.1:{free_port()}",
        catalog_api_timeout_seconds=0.5,
    )
    async with asgi_client(create_app(settings)) as client:
        yield client


def assert_utc(text: str | None) -> None:
    assert text is not None and UTC_MILLISECONDS.match(text), text
    assert abs((datetime.fromisoformat(text) - datetime.now(UTC)).total_seconds()) < 60, text


async def place(ordering: httpx.AsyncClient, name: str) -> dict[str, str]:
    body = {"customerName": name, "productId": str(uuid.uuid4())}
    placed = await ordering.post("/api/ordering/order", json=body)
    assert placed.status_code == 201, placed.text
    order: dict[str, str] = placed.json()
    return order


async def test_responses_are_utc_with_milliseconds_and_pages_hold(
    ordering: httpx.AsyncClient,
) -> None:
    orders = [await place(ordering, f"c{i}") for i in range(5)]
    for order in orders:
        assert_utc(order["createdAt"])
    # Milliseconds from the database clock: orders placed within one second differ.
    assert len({order["createdAt"] for order in orders}) > 1

    listed = (await ordering.get("/api/ordering/order")).json()
    assert [o["id"] for o in listed] == [o["id"] for o in reversed(orders)]
    assert [o["createdAt"] for o in listed] == [o["createdAt"] for o in reversed(orders)]
    first = await ordering.get("/api/ordering/order", params={"limit": 2})
    second = await ordering.get(
        "/api/ordering/order", params={"limit": 2, "after": first.json()[-1]["id"]}
    )
    assert [o["id"] for o in first.json() + second.json()] == [o["id"] for o in orders[::-1][:4]]


async def test_a_command_prints_utc_with_milliseconds(
    ordering: httpx.AsyncClient,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    order = await place(ordering, "Ann")
    monkeypatch.setenv("ORDERING_DATABASE_URL", sqlite_url)
    capsys.readouterr()
    argv = ["outbox", "events", "ordering", "--order", order["id"], "--json"]
    assert await asyncio.to_thread(main, argv) == 0
    [event] = json.loads(capsys.readouterr().out)["events"]
    assert_utc(event["created_at"])
    assert await asyncio.to_thread(main, argv[:-1]) == 0
    assert event["created_at"] in capsys.readouterr().out


def test_dead_letter_times_are_utc_with_milliseconds() -> None:
    """What a dead letter carries (its first death, in a header of the message) and how it
    is listed: UTC with a Z, whatever offset it was read with."""
    stamped = now_iso()
    assert UTC_MILLISECONDS.match(stamped), stamped
    kiritimati = datetime.now(timezone(timedelta(hours=14))).isoformat()
    letter = dead_letter_of(body=b"{}", headers={FIRST_DEAD_AT: kiritimati}, message_id="m",
                            event_type="OrderPlaced", routing_key="OrderPlaced")  # fmt: skip
    listed = letter.as_dict()["first_death_at"]
    assert UTC_MILLISECONDS.match(listed), listed
    assert letter.replay_headers()[FIRST_DEAD_AT] == listed


async def test_republish_since_a_shown_time_keeps_that_row(
    ordering: httpx.AsyncClient, sqlite_url: str
) -> None:
    """A time as shown (milliseconds) selects the row published at that very millisecond
    (``--since`` keeps it, ``--until`` leaves it out), the database clock's text and the
    bound's compared on SQLite."""
    order = await place(ordering, "Cy")
    engine = make_engine(sqlite_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(update(OUTBOX).values(published_at=db_now_plus(0)))
        [event] = await operations.outbox_events_of_order(engine, uuid.UUID(order["id"]), limit=1)
        shown = datetime.fromisoformat(event["published_at"])
        assert await republish(engine, PublishedSelection(since=shown), dry_run=True) == 1
        before = PublishedSelection(since=shown - timedelta(seconds=1), until=shown)
        assert await republish(engine, before, dry_run=True) == 0
    finally:
        await engine.dispose()
