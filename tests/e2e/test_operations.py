"""An operator repairs what went wrong, with ``python -m app outbox|dlq|inbox``, on
PostgreSQL and RabbitMQ with the processes separate: a row failed for want of a route,
a message dead-lettered by a handler failing on purpose (then fixed), poison."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from cloudcrm_outbox.brokers.publisher import OutgoingMessage
from cloudcrm_outbox.brokers.rabbitmq.publishing.publisher import AmqpPublisher
from cloudcrm_outbox.relay.policy import RelayPolicy
from cloudcrm_outbox.relay.relay import OutboxRelay
from cloudcrm_outbox.storage.engine import make_engine
from tests.conftest import query
from tests.e2e.processes import PROJECT_ROOT, command_env
from tests.support.auth import HEADERS
from tests.support.consuming import wait_until
from tests.support.deployment import Deployment, place

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

FAILED_ROW_FIELDS = {"id", "event_type", "attempts", "last_error", "failed_at"}
DEAD_LETTER_FIELDS = {
    "message_id", "event_type", "routing_key", "reason", "deaths", "replays", "first_death_at",
    "message_key", "key_sequence",
}  # fmt: skip


def cli(deployment: Deployment, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    """``python -m app ARGS`` against the deployment's databases and broker."""
    env = command_env(
        ORDERING_DATABASE_URL=deployment.ordering_db,
        CATALOG_DATABASE_URL=deployment.catalog_db,
        BROKER_URL=deployment.broker,
    )
    done = subprocess.run(
        [sys.executable, "-m", "app", *args], env=env, cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == expect, f"{args}: rc {done.returncode}\n{done.stderr}"
    return done


def cli_json(deployment: Deployment, *args: str) -> Any:
    return json.loads(cli(deployment, *args, "--json").stdout)


async def order_state(deployment: Deployment, order_id: str) -> str:
    [(state,)] = await query(deployment.ordering_db, "SELECT state FROM orders WHERE id = %s",
                             uuid.UUID(order_id))  # fmt: skip
    return str(state)


async def fail_for_want_of_a_route(deployment: Deployment) -> None:
    """Relay ordering's pending rows while no queue is bound, until each gives up."""
    engine = make_engine(deployment.ordering_db)
    publisher = AmqpPublisher(deployment.broker, publish_timeout=5)  # declares no queue
    policy = RelayPolicy(retry_base_seconds=0.01, retry_max_seconds=0.01,
                         unroutable_give_up_seconds=0)  # fmt: skip
    relay = OutboxRelay(engine, publisher, policy)
    try:

        async def all_failed() -> bool:
            await relay.relay_batch()
            [(pending,)] = await query(
                deployment.ordering_db,
                "SELECT count(*) FROM outbox WHERE published_at IS NULL AND failed_at IS NULL",
            )
            return pending == 0

        await wait_until(all_failed, timeout=20)
    finally:
        await publisher.close()
        await engine.dispose()


async def test_rows_failed_for_want_of_a_route_are_replayed_and_orders_confirmed(
    deployment: Deployment,
) -> None:
    await deployment.start(relays=0, consumers=0)  # the APIs only: nothing is bound yet
    async with httpx.AsyncClient(headers=HEADERS, timeout=10) as client:
        product = await deployment.new_product(client, stock=5)
        first, second = [await place(client, deployment, product) for _ in range(2)]
        await fail_for_want_of_a_route(deployment)

        failed = cli_json(deployment, "outbox", "failed", "ordering")["failed"]
        assert len(failed) == 2 and all(row.keys() == FAILED_ROW_FIELDS for row in failed)
        assert all("NO_ROUTE" in row["last_error"] for row in failed)
        [first_row] = [r for r in failed if r["id"] in await outbox_ids(deployment, first)]

        dry = cli_json(deployment, "outbox", "replay", "ordering", "--all", "--dry-run")
        assert dry == {"replayed": 2, "ids": dry["ids"], "dry_run": True}
        assert len(cli_json(deployment, "outbox", "failed", "ordering")["failed"]) == 2

        for consuming in ("catalog", "ordering"):
            await deployment.add_consumer(consuming)  # declares its queue
        for relaying in ("ordering", "catalog"):
            await deployment.add_relay(relaying)
        one = cli_json(deployment, "outbox", "replay", "ordering", "--id", first_row["id"])
        assert one == {"replayed": 1, "ids": [first_row["id"]], "dry_run": False}

        async def first_confirmed() -> bool:
            return await order_state(deployment, first) == "Confirmed"

        await wait_until(first_confirmed, timeout=30)
        assert await order_state(deployment, second) == "Placed"  # by id: only that row
        status = cli_json(deployment, "outbox", "status", "ordering")["ordering"]
        assert status["failed"] == 1 and status["dead_letters"] == 0

        cli(deployment, "outbox", "replay", "ordering", "--all")

        async def second_confirmed() -> bool:
            return await order_state(deployment, second) == "Confirmed"

        await wait_until(second_confirmed, timeout=30)
    assert cli_json(deployment, "outbox", "failed", "ordering") == {"failed": []}


async def outbox_ids(deployment: Deployment, order_id: str) -> set[str]:
    rows = await query(
        deployment.ordering_db, "SELECT id::text FROM outbox WHERE payload->>'orderId' = %s",
        order_id,
    )  # fmt: skip
    return {row[0] for row in rows}


FAILING_TRIGGER = """
CREATE FUNCTION stock_system_down() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the stock system is down'; END $$;
CREATE TRIGGER stock_system_down BEFORE INSERT ON stock_reservations
    FOR EACH ROW EXECUTE FUNCTION stock_system_down();
"""


async def test_dead_letters_replayed_once_after_the_fix_and_poison_purged_by_id(
    deployment: Deployment,
) -> None:
    await deployment.start(
        replies=True, CONSUMER_DELIVERY_LIMIT="2", CONSUMER_REDELIVERY_MAX_SECONDS="0.2"
    )
    await query(deployment.catalog_db, FAILING_TRIGGER)  # the handler fails on purpose
    async with httpx.AsyncClient(headers=HEADERS, timeout=10) as client:
        product = await deployment.new_product(client, stock=5)
        order = await place(client, deployment, product)
        [event] = cli_json(deployment, "outbox", "events", "ordering", "--order", order)["events"]
        assert event["event_type"] == "OrderPlaced"
        message_id = event["id"]

        async def dead_lettered() -> bool:
            return len(cli_json(deployment, "dlq", "list", "catalog")["dead_letters"]) == 1

        await wait_until(dead_lettered, timeout=60)
        listing = cli_json(deployment, "dlq", "list", "catalog")
        [letter] = listing["dead_letters"]
        assert letter.keys() == DEAD_LETTER_FIELDS and letter["message_id"] == message_id
        assert letter["reason"].startswith("delivery limit")
        assert listing["summary"] == {letter["reason"]: 1}
        assert await order_state(deployment, order) == "Placed"

        await query(deployment.catalog_db, "DROP TRIGGER stock_system_down ON stock_reservations")
        assert cli_json(deployment, "dlq", "replay", "catalog", "--all")["replayed"] == 1
        assert cli_json(deployment, "dlq", "replay", "catalog", "--all")["replayed"] == 0

        async def confirmed() -> bool:
            return await order_state(deployment, order) == "Confirmed"

        await wait_until(confirmed, timeout=30)
        stock = await client.get(f"{deployment.catalog_url}/api/catalog/products/{product}")
        assert stock.json()["stockCount"] == 4  # taken once
        entry = cli_json(deployment, "inbox", "show", "catalog", message_id)
        assert entry["outcome"] == "applied" and entry["message_id"] == message_id
        assert cli_json(deployment, "dlq", "list", "catalog")["dead_letters"] == []

        poison = await publish_poison(deployment, 2)
        await wait_until(dead_poison(deployment, 2), timeout=30)
        listed = cli_json(deployment, "dlq", "list", "catalog")["dead_letters"]
        reasons = {d["message_id"]: d["reason"] for d in listed}
        cli(deployment, "dlq", "replay", "catalog", "--id", poison[0])

        async def back_again() -> bool:
            found = cli_json(deployment, "dlq", "list", "catalog")["dead_letters"]
            return any(d["message_id"] == poison[0] and d["replays"] == 1 for d in found)

        await wait_until(back_again, timeout=30)
        letters = cli_json(deployment, "dlq", "list", "catalog")["dead_letters"]
        assert {d["message_id"]: d["reason"] for d in letters} == reasons  # same reasons
        cli(deployment, "dlq", "purge", "catalog", "--id", poison[0], "--yes")
        left = cli_json(deployment, "dlq", "list", "catalog")["dead_letters"]
        assert [d["message_id"] for d in left] == [poison[1]]
    cli(deployment, "dlq", "purge", "catalog", "--all", expect=2)  # no --yes, no terminal


async def publish_poison(deployment: Deployment, count: int) -> list[str]:
    """``count`` OrderPlaced messages with bodies no consumer can read."""
    publisher = AmqpPublisher(deployment.broker, publish_timeout=5)
    messages = [
        OutgoingMessage(uuid.uuid4(), "OrderPlaced", b"{not json", {}, datetime.now(UTC))
        for _ in range(count)
    ]
    try:
        assert len((await publisher.publish_batch(messages)).confirmed) == count
    finally:
        await publisher.close()
    return [str(message.message_id) for message in messages]


def dead_poison(deployment: Deployment, count: int) -> Any:
    async def check() -> bool:
        return len(cli_json(deployment, "dlq", "list", "catalog")["dead_letters"]) == count

    return check
