"""Catalog consumes keyed events (an order's OrderPlaced then OrderCancelled) in their
key's order on RabbitMQ: partition queues with a single active consumer, a takeover when
it goes, early messages parked in the database, a poison that stops only its own key
until the operator replays or purges it by key."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

import pytest

from app.admin.operations import Actor, dlq_purge
from cloudcrm_outbox.brokers.dead_letters import DeadLetterSelection
from cloudcrm_outbox.brokers.rabbitmq.broker import RabbitMQBroker
from cloudcrm_outbox.observability.metrics import INBOX_PARKED
from tests.conftest import query
from tests.support.catalog import new_product, stock_of
from tests.support.consuming import (
    keyed_props,
    keyed_route,
    order_placed,
    publish,
    running_consumer,
    wait_until,
)

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


def placed_and_cancelled(
    product: uuid.UUID, order: uuid.UUID
) -> list[tuple[bytes, dict[str, Any]]]:
    """An order's two keyed messages: placed (1), cancelled (2)."""
    key = str(order)
    cancelled = json.dumps({"orderId": key, "productId": str(product), "quantity": 1}).encode()
    return [
        (order_placed(product, 1, orderId=key), keyed_props(key, 1, "OrderPlaced")),
        (cancelled, keyed_props(key, 2, "OrderCancelled")),
    ]


async def outcome_counts(catalog_db: str) -> dict[str, int]:
    rows = await query(catalog_db, "SELECT outcome, count(*) FROM inbox GROUP BY outcome")
    return dict(rows)


async def settled(catalog_db: str, applied: int) -> bool:
    [(done,)] = await query(catalog_db, "SELECT count(*) FROM inbox")
    [(parked,)] = await query(catalog_db, "SELECT count(*) FROM inbox_parked")
    return bool(done == applied and parked == 0)


async def test_one_active_consumer_per_partition_and_a_takeover_keeps_each_order(
    catalog_db: str, broker: str
) -> None:
    product = await new_product(catalog_db, 1000)
    by_consumer: dict[str, list[uuid.UUID]] = defaultdict(list)

    def recorder(name: str) -> Any:
        async def after_commit(ids: Sequence[uuid.UUID]) -> None:
            by_consumer[name].extend(ids)

        return after_commit

    orders = [uuid.uuid4() for _ in range(40)]
    first_half = [m for order in orders[:20] for m in placed_and_cancelled(product, order)]
    second_half = [m for order in orders[20:] for m in placed_and_cancelled(product, order)]
    async with AsyncExitStack() as second_running:
        first_running = AsyncExitStack()
        # Subscribed first: RabbitMQ makes "first" the active consumer of every partition.
        await first_running.enter_async_context(
            running_consumer(catalog_db, broker, after_commit=recorder("first"), prefetch=5)
        )
        await second_running.enter_async_context(
            running_consumer(catalog_db, broker, after_commit=recorder("second"), prefetch=5)
        )
        await publish(broker, first_half, routing_key=keyed_route)
        await wait_until(lambda: settled(catalog_db, 40))
        await first_running.aclose()  # the active one goes: "second" takes every partition
        await publish(broker, second_half, routing_key=keyed_route)
        await wait_until(lambda: settled(catalog_db, 80))

    key_of = {props["message_id"]: props["headers"]["x-message-key"]
              for _, props in first_half + second_half}  # fmt: skip
    keys_of = {name: {key_of[str(i)] for i in ids} for name, ids in by_consumer.items()}
    assert keys_of["first"] == {str(order) for order in orders[:20]}  # the active one's
    assert keys_of["second"] == {str(order) for order in orders[20:]}  # after the takeover
    assert await stock_of(catalog_db, product) == 1000
    assert await outcome_counts(catalog_db) == {"applied": 80}


async def test_a_cancel_that_arrives_first_waits_parked_for_its_order(
    catalog_db: str, broker: str
) -> None:
    """Delivered in the wrong order (a redelivery, a replay, another route): the cancel is
    parked, survives its consumer's end, and is applied by the next one after the order."""
    product = await new_product(catalog_db, 10)
    order = uuid.uuid4()
    placed, cancelled = placed_and_cancelled(product, order)
    async with running_consumer(catalog_db, broker):
        await publish(broker, [cancelled], routing_key=keyed_route)

        async def parked() -> bool:
            return bool(await query(catalog_db, "SELECT count(*) FROM inbox_parked") == [(1,)])

        await wait_until(parked)
        assert INBOX_PARKED.labels("catalog")._value.get() >= 0  # the gauge exists
    # That consumer is gone; its parked message is the database's, not its own.
    assert await query(catalog_db, "SELECT count(*) FROM inbox") == [(0,)]
    async with running_consumer(catalog_db, broker):
        await publish(broker, [placed], routing_key=keyed_route)
        await wait_until(lambda: settled(catalog_db, 2))
    assert await stock_of(catalog_db, product) == 10
    assert await outcome_counts(catalog_db) == {"applied": 2}


_REFUSE = """
CREATE FUNCTION refuse_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER refuse_order BEFORE INSERT ON stock_reservations
    FOR EACH ROW WHEN (NEW.order_id = '{order}') EXECUTE FUNCTION refuse_order();
"""
_ACCEPT = "DROP TRIGGER refuse_order ON stock_reservations; DROP FUNCTION refuse_order();"


async def _poisoned_key(catalog_db: str, broker: str, product: uuid.UUID) -> uuid.UUID:
    """An order whose OrderPlaced fails with a data error (a trigger refuses its
    reservation): dead-lettered, its cancel waits parked while another order flows; the
    trigger is then dropped (the fix). Returns the poisoned order."""
    poisoned, healthy = uuid.uuid4(), uuid.uuid4()
    await query(catalog_db, _REFUSE.format(order=poisoned))
    async with running_consumer(catalog_db, broker):
        await publish(
            broker,
            [*placed_and_cancelled(product, poisoned), *placed_and_cancelled(product, healthy)],
            routing_key=keyed_route,
        )
        await wait_until(lambda: settled_but(catalog_db, applied=2, parked=1))
        rows = await query(
            catalog_db,
            "SELECT message_key, applied_sequence, dead_letter_sequence FROM inbox_keys "
            "WHERE message_key = %s",
            str(poisoned),
        )
        assert rows == [(str(poisoned), 0, 1)]
    await query(catalog_db, _ACCEPT)
    assert await stock_of(catalog_db, product) == 10
    return poisoned


async def settled_but(catalog_db: str, *, applied: int, parked: int) -> bool:
    [(done,)] = await query(catalog_db, "SELECT count(*) FROM inbox")
    [(waiting,)] = await query(catalog_db, "SELECT count(*) FROM inbox_parked")
    return bool(done == applied and waiting == parked)


async def test_poison_stops_its_key_and_a_replay_by_key_applies_the_rest_in_order(
    catalog_db: str, broker: str
) -> None:
    product = await new_product(catalog_db, 10)
    poisoned = await _poisoned_key(catalog_db, broker, product)
    admin = RabbitMQBroker(broker)
    try:
        [letter] = await admin.dead_letters("catalog")
        assert (letter.message_key, letter.key_sequence) == (str(poisoned), 1)
        assert letter.reason.startswith("data error: refused by the test"), letter.reason
        result = await admin.replay_dead_letters(
            "catalog", DeadLetterSelection(message_key=str(poisoned))
        )
        assert [replayed.message_id for replayed in result.replayed] == [letter.message_id]
    finally:
        await admin.close()
    async with running_consumer(catalog_db, broker):
        # The order is taken, then its parked cancel gives the unit back: in that order.
        await wait_until(lambda: settled_but(catalog_db, applied=4, parked=0))
    assert await stock_of(catalog_db, product) == 10
    states = await query(
        catalog_db, "SELECT state FROM stock_reservations WHERE order_id = %s", poisoned
    )
    assert states == [("released",)]
    assert await outcome_counts(catalog_db) == {"applied": 4}


async def test_a_purge_by_key_gives_up_the_poison_and_releases_the_rest(
    catalog_db: str, broker: str
) -> None:
    product = await new_product(catalog_db, 10)
    poisoned = await _poisoned_key(catalog_db, broker, product)
    admin = RabbitMQBroker(broker)
    from cloudcrm_outbox.storage.engine import make_engine

    engine = make_engine(catalog_db)
    try:
        done = await dlq_purge(
            admin,
            "catalog",
            DeadLetterSelection(message_key=str(poisoned)),
            actor=Actor("test"),
            engine=engine,
        )
    finally:
        await admin.close()
        await engine.dispose()
    assert (done["purged"], done["released_places"]) == (1, 1)
    async with running_consumer(catalog_db, broker):
        # The healthy order's two, the cancel, and the given-up order recorded as such.
        await wait_until(lambda: settled_but(catalog_db, applied=4, parked=0))
    rows = await query(
        catalog_db,
        "SELECT applied_sequence, dead_letter_id FROM inbox_keys WHERE message_key = %s",
        str(poisoned),
    )
    assert rows == [(2, None)]
    # The cancel was applied after the given-up order: it found nothing to give back.
    assert await stock_of(catalog_db, product) == 10
    assert await outcome_counts(catalog_db) == {
        "applied": 2,
        "given_up": 1,
        "cancelled_before_placed": 1,
    }
