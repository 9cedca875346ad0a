"""Ordering consumes catalog's replies through its inbox (real RabbitMQ and PostgreSQL):
Placed -> Confirmed or Rejected, and a reply that no longer applies is recorded, acked and
ignored, whatever order and however often the replies arrive."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.conftest import count, query
from tests.support.consuming import publish, running_consumer, wait_until
from tests.support.rabbit import read_queue

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


async def new_order(ordering_db: str, state: str = "Placed") -> uuid.UUID:
    order_id = uuid.uuid4()
    await query(
        ordering_db,
        "INSERT INTO orders (id, customer_name, product_id, quantity, state) "
        "VALUES (%s, 'Ann', %s, 1, %s)",
        order_id,
        uuid.uuid4(),
        state,
    )
    return order_id


def reply(
    event_type: str, order_id: uuid.UUID, message_id: uuid.UUID | None = None, **extra: str
) -> tuple[bytes, dict[str, Any]]:
    body = {"orderId": str(order_id), "productId": str(uuid.uuid4()), "quantity": 1, **extra}
    properties = {
        "message_id": str(message_id or uuid.uuid4()),
        "type": event_type,
        "content_type": "application/json",
    }
    return json.dumps(body).encode(), properties


def reserved(
    order_id: uuid.UUID, message_id: uuid.UUID | None = None
) -> tuple[bytes, dict[str, Any]]:
    return reply("StockReserved", order_id, message_id)


def rejected(
    order_id: uuid.UUID, reason: str = "insufficient_stock"
) -> tuple[bytes, dict[str, Any]]:
    return reply("StockReservationRejected", order_id, reason=reason)


async def states(ordering_db: str) -> dict[uuid.UUID, tuple[str, str | None]]:
    rows = await query(ordering_db, "SELECT id, state, rejection_reason FROM orders")
    return {order_id: (state, reason) for order_id, state, reason in rows}


async def consume(ordering_db: str, broker: str, messages: list[Any], *, batch: int) -> None:
    """Publish ``messages`` in this order and wait until each distinct one has its inbox row."""
    distinct = len({properties["message_id"] for _, properties in messages})
    async with running_consumer(ordering_db, broker, service="ordering", batch_size=batch):
        for message in messages:  # one at a time: the order of delivery is the point
            await publish(broker, [message])

        async def settled() -> bool:
            return await count(ordering_db, "inbox") >= distinct

        await wait_until(settled)


@pytest.mark.parametrize("batch", [1, 50])
async def test_duplicate_and_out_of_order_replies(
    ordering_db: str, broker: str, batch: int
) -> None:
    confirmed = await new_order(ordering_db)
    rejected_order = await new_order(ordering_db)
    cancelled = await new_order(ordering_db, "Cancelled")
    unknown = uuid.uuid4()
    same_message = uuid.uuid4()
    messages = [
        reserved(confirmed, same_message),
        reserved(confirmed, same_message),  # redelivered copy: the inbox skips it
        reserved(confirmed),  # a second reply for the order (another id): ignored
        rejected(confirmed),  # contradicting and late: ignored
        rejected(rejected_order, "unknown_product"),
        reserved(rejected_order),  # late: the order stays Rejected
        reserved(cancelled),  # the customer cancelled first: stays Cancelled
        rejected(unknown),  # no such order: recorded, not retried
    ]

    await consume(ordering_db, broker, messages, batch=batch)

    assert await states(ordering_db) == {
        confirmed: ("Confirmed", None),
        rejected_order: ("Rejected", "unknown_product"),
        cancelled: ("Cancelled", None),
    }
    # Each message's outcome is what applying them one by one, as delivered, gives,
    # however the consumer batched them.
    outcomes = dict(await query(ordering_db, "SELECT message_id::text, outcome FROM inbox"))
    assert [outcomes[properties["message_id"]] for _, properties in messages] == [
        "applied",
        "applied",  # the same message: one inbox row
        "ignored_confirmed",
        "ignored_confirmed",
        "applied",
        "ignored_rejected",
        "ignored_cancelled",
        "unknown_order",
    ]
    # Nothing was dead-lettered: a reply that no longer applies is not poison.
    assert await read_queue(broker, "ordering.events.dlq", expected=0, timeout=1) == []


async def test_a_malformed_reply_is_dead_lettered_and_the_next_applies(
    ordering_db: str, broker: str
) -> None:
    order = await new_order(ordering_db)
    bogus_reason = rejected(order, "out_of_stock")  # not a reason the contract knows
    no_quantity = (json.dumps({"orderId": str(order)}).encode(), reserved(order)[1])
    good = reserved(order)

    async with running_consumer(ordering_db, broker, service="ordering"):
        await publish(broker, [bogus_reason, no_quantity, good])
        dead = await read_queue(broker, "ordering.events.dlq", expected=2)

        async def applied() -> bool:
            return await count(ordering_db, "inbox") == 1

        await wait_until(applied)

    assert sorted(message.message_id or "" for message in dead) == sorted(
        [bogus_reason[1]["message_id"], no_quantity[1]["message_id"]]
    )
    assert all("x-poison-reason" in (message.headers or {}) for message in dead)
    assert await states(ordering_db) == {order: ("Confirmed", None)}
