"""The operators' flows in ``dev`` (SQLite + the embedded broker, one process), through the
admin API: the embedded broker's dead letters are reachable only there."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.processes import command_env, running
from tests.support.auth import API
from tests.support.servers import free_port

FAILING_TRIGGER = (
    "CREATE TRIGGER stock_system_down BEFORE INSERT ON stock_reservations "
    "BEGIN SELECT RAISE(ABORT, 'the stock system is down'); END"
)


def until(read: Callable[[], Any], done: Callable[[Any], bool], within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while not done(seen := read()):
        assert time.monotonic() < deadline, f"not reached within {within}s: {seen!r}"
        time.sleep(0.1)
    return seen


def sql(database: Path, statement: str, *params: object) -> None:
    with sqlite3.connect(database, timeout=10) as connection:
        connection.execute(statement, params)


def stage_row(database: Path, event_type: str, payload: object, headers: object) -> str:
    """An outbox row written by hand (as another version, or a person, might)."""
    row_id = uuid.uuid4()
    sql(database, "INSERT INTO outbox (id, event_type, payload, headers) VALUES (?, ?, ?, ?)",
        row_id.hex, event_type, json.dumps(payload), json.dumps(headers))  # fmt: skip
    return str(row_id)


def test_failed_rows_dead_letters_and_poison_through_dev_admin_api(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    admin = f"{url}/admin/api"
    env = command_env(
        BROKER_URL="memory://",
        CONSUMER_DELIVERY_LIMIT="2",
        CONSUMER_REDELIVERY_MAX_SECONDS="0.2",
        RELAY_MAX_ATTEMPTS="1",
    )
    catalog_db, ordering_db = tmp_path / "var" / "catalog.db", tmp_path / "var" / "ordering.db"
    with running("dev", "--port", str(port), env=env, ready_url=f"{url}/docs", cwd=tmp_path):
        dead_letters = lambda: API.get(f"{admin}/catalog/dlq").json()["deadLetters"]  # noqa: E731

        # A handler failing on purpose, then fixed: the dead letter is replayed once.
        sql(catalog_db, FAILING_TRIGGER)
        [product] = [p for p in API.get(f"{url}/api/catalog/products").json()
                     if p["name"] == "Product A"]  # fmt: skip
        order = API.post(
            f"{url}/api/ordering/order",
            json={"customerName": "Ann", "productId": product["id"], "quantity": 1},
        ).json()
        [letter] = until(dead_letters, lambda found: len(found) == 1)
        assert letter["reason"].startswith("delivery limit")
        sql(catalog_db, "DROP TRIGGER stock_system_down")
        replayed = API.post(f"{admin}/catalog/dlq/replay", json={"all": True}).json()
        assert replayed == {"replayed": 1, "ids": [letter["messageId"]], "dryRun": False,
                            "left": [], "notFound": [], "remaining": 0}  # fmt: skip
        again = API.post(f"{admin}/catalog/dlq/replay", json={"all": True}).json()
        assert again["replayed"] == 0
        order_url = f"{url}/api/ordering/order/{order['id']}"
        until(lambda: API.get(order_url).json()["state"], lambda s: s == "Confirmed")
        stock = API.get(f"{url}/api/catalog/products/{product['id']}").json()["stockCount"]
        assert stock == product["stockCount"] - 1  # taken once
        inbox = API.get(f"{admin}/catalog/inbox/{letter['messageId']}").json()
        assert inbox["outcome"] == "applied"

        # A row the relay cannot send fails at once (RELAY_MAX_ATTEMPTS=1); fixed, replayed.
        bad = stage_row(ordering_db, "OrderCancelled", {"orderId": str(uuid.uuid4()),
                        "productId": product["id"], "quantity": 1}, [1])  # fmt: skip
        failed = lambda: API.get(f"{admin}/ordering/outbox/failed").json()["failed"]  # noqa: E731
        [row] = until(failed, lambda rows: len(rows) == 1)
        assert row["id"] == bad and "unpublishable" in row["lastError"]
        dry = API.post(f"{admin}/ordering/outbox/replay", json={"all": True, "dryRun": True})
        assert dry.json() == {"replayed": 1, "ids": [bad], "dryRun": True}
        assert len(failed()) == 1
        sql(ordering_db, "UPDATE outbox SET headers = '{}' WHERE id = ?", uuid.UUID(bad).hex)
        done = API.post(f"{admin}/ordering/outbox/replay", json={"ids": [bad]}).json()
        assert done["replayed"] == 1
        status = f"{admin}/ordering/outbox/status"
        until(lambda: API.get(status).json(), lambda s: s["pending"] == 0 and s["failed"] == 0)

        # Poison: replayed, it comes back with its reason; purged by id, only it goes.
        for _ in range(2):
            stage_row(ordering_db, "OrderPlaced", {"orderId": "not a uuid"}, {})
        poison = until(dead_letters, lambda found: len(found) == 2)
        first = poison[0]["messageId"]
        API.post(f"{admin}/catalog/dlq/replay", json={"ids": [first]})
        back = until(dead_letters, lambda found: any(d["replays"] == 1 for d in found))
        assert {d["messageId"]: d["reason"] for d in back} == {
            d["messageId"]: d["reason"] for d in poison
        }
        purged = API.post(f"{admin}/catalog/dlq/purge", json={"ids": [first]}).json()
        assert purged == {
            "purged": 1,
            "ids": [first],
            "notFound": [],
            "remaining": 1,
            "releasedPlaces": 0,
        }
        gone = API.post(f"{admin}/catalog/dlq/purge", json={"ids": [first]}).json()
        assert gone["purged"] == 0 and gone["notFound"] == [first]
        assert [d["messageId"] for d in dead_letters()] == [poison[1]["messageId"]]
        depth = API.get(f"{admin}/catalog/outbox/status").json()
        assert depth["deadLetters"] == 1 and depth["oldestDeadLetterAgeSeconds"] >= 0
