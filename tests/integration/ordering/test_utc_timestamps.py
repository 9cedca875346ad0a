"""Every timestamp the APIs, the admin API and the operators' commands give is UTC, to the
millisecond, ending in ``Z``, whatever the database session's time zone (here
Pacific/Kiritimati, UTC+14: an offset nobody mistakes for UTC)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import text

from app.cli.main import main
from app.core.settings import Settings
from app.ordering.app import create_app
from cloudcrm_outbox.storage.engine import make_engine
from tests.conftest import query
from tests.support.servers import asgi_client, free_port

pytestmark = pytest.mark.postgres

UTC_MILLISECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
async def kiritimati_db(ordering_db: str) -> str:
    """A fresh ordering database whose sessions run in Pacific/Kiritimati (UTC+14)."""
    name = urlsplit(ordering_db).path.lstrip("/")
    await query(ordering_db, f"ALTER DATABASE \"{name}\" SET timezone = 'Pacific/Kiritimati'")
    [(zone,)] = await query(ordering_db, "SELECT current_setting('TimeZone')")
    assert zone == "Pacific/Kiritimati"  # a new session sees it
    return ordering_db


@pytest.fixture
async def ordering(kiritimati_db: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        ordering_database_url=kiritimati_db,
        catalog_api_url=f"http://127.0.0.1:{free_port()}",
        catalog_api_timeout_seconds=0.5,
    )
    async with asgi_client(create_app(settings)) as client:
        yield client


def assert_utc(text: str | None, *, near: datetime) -> None:
    assert text is not None and UTC_MILLISECONDS.match(text), text
    assert abs((datetime.fromisoformat(text) - near).total_seconds()) < 60, (text, near)


async def test_responses_are_utc_with_milliseconds(
    ordering: httpx.AsyncClient, kiritimati_db: str
) -> None:
    now = datetime.now(UTC)
    body = {"customerName": "Ann", "productId": str(uuid.uuid4())}
    placed = await ordering.post("/api/ordering/order", json=body)
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert_utc(order["createdAt"], near=now)

    listed = await ordering.get("/api/ordering/order")
    one = await ordering.get(f"/api/ordering/order/{order['id']}")
    assert_utc(listed.json()[0]["createdAt"], near=now)
    assert one.json()["createdAt"] == order["createdAt"]

    # The admin API: an order's outbox rows, and an inbox row.
    await query(kiritimati_db, "UPDATE outbox SET published_at = now()")
    events = await ordering.get(
        "/admin/api/ordering/outbox/events", params={"orderId": order["id"]}
    )
    [event] = events.json()["events"]
    assert_utc(event["createdAt"], near=now)
    assert_utc(event["publishedAt"], near=now)
    message_id = uuid.uuid4()
    await query(kiritimati_db, "INSERT INTO inbox (consumer, message_id, outcome) "
                "VALUES ('ordering', %s, 'applied')", message_id)  # fmt: skip
    entry = await ordering.get(f"/admin/api/ordering/inbox/{message_id}")
    assert_utc(entry.json()["processedAt"], near=now)
    [latest] = (await ordering.get("/admin/api/ordering/inbox")).json()["entries"]
    assert latest["processedAt"] == entry.json()["processedAt"]
    await query(kiritimati_db, "UPDATE outbox SET published_at = NULL, failed_at = now()")
    [failed] = (await ordering.get("/admin/api/ordering/outbox/failed")).json()["failed"]
    assert_utc(failed["failedAt"], near=now)


async def test_operators_commands_print_utc_with_milliseconds(
    ordering: httpx.AsyncClient,
    kiritimati_db: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = datetime.now(UTC)
    body = {"customerName": "Bo", "productId": str(uuid.uuid4())}
    order_id = (await ordering.post("/api/ordering/order", json=body)).json()["id"]
    await query(kiritimati_db, "UPDATE outbox SET failed_at = now(), attempts = 10")
    message_id = uuid.uuid4()
    await query(kiritimati_db, "INSERT INTO inbox (consumer, message_id, outcome) "
                "VALUES ('ordering', %s, 'applied')", message_id)  # fmt: skip
    monkeypatch.setenv("ORDERING_DATABASE_URL", kiritimati_db)

    async def command(*argv: str) -> str:
        capsys.readouterr()
        assert await asyncio.to_thread(main, list(argv)) == 0
        return capsys.readouterr().out

    argv = ("outbox", "events", "ordering", "--order", order_id)
    events = json.loads(await command(*argv, "--json"))
    assert_utc(events["events"][0]["created_at"], near=now)
    assert_utc(events["events"][0]["failed_at"], near=now)
    failed = json.loads(await command("outbox", "failed", "ordering", "--json"))
    assert_utc(failed["failed"][0]["failed_at"], near=now)
    shown = json.loads(await command("inbox", "show", "ordering", str(message_id), "--json"))
    assert_utc(shown["processed_at"], near=now)

    # The tables print the same text.
    for printed, stamp in (
        (await command(*argv), events["events"][0]["created_at"]),
        (await command("outbox", "failed", "ordering"), failed["failed"][0]["failed_at"]),
        (await command("inbox", "show", "ordering", str(message_id)), shown["processed_at"]),
    ):  # fmt: skip
        assert stamp in printed, printed
        assert "+14:00" not in printed and "+00:00" not in printed


async def test_every_session_runs_in_utc(kiritimati_db: str) -> None:
    """Whatever the database's TimeZone, the engines' sessions are UTC (libpq options): a
    time cast to text, or read by any code, is never in another zone."""
    engine = make_engine(kiritimati_db, pool_size=1)
    try:
        async with engine.connect() as connection:
            zone = (await connection.execute(text("SELECT current_setting('TimeZone')"))).scalar()
            stamp = (await connection.execute(text("SELECT now()::text"))).scalar()
    finally:
        await engine.dispose()
    assert zone == "UTC"
    assert str(stamp).endswith("+00")
