"""The in-memory broker keeps the semantics the consumer and relay rely on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from app.outbox.memory import InMemoryBroker
from app.outbox.publisher import OutgoingMessage
from app.outbox.topology import ConsumerTopology

TOPOLOGY = ConsumerTopology.for_service("catalog")


def message(event_type: str = "OrderPlaced") -> OutgoingMessage:
    return OutgoingMessage(
        uuid.uuid4(), event_type, b"{}", {"correlation_id": "c"}, datetime.now(UTC)
    )


async def test_unbound_events_are_refused_like_mandatory() -> None:
    broker = InMemoryBroker()
    nobody = message()
    result = await broker.publish_batch([nobody])
    assert result.confirmed == [] and "NO_ROUTE" in result.rejected[nobody.message_id]


async def test_unacked_deliveries_come_back_and_the_limit_dead_letters() -> None:
    broker = InMemoryBroker()
    sessions = broker.sessions(TOPOLOGY, event_names=["OrderPlaced"], delivery_limit=2)
    sent = message()
    broker.declare(TOPOLOGY, event_names=["OrderPlaced"], delivery_limit=2)
    assert (await broker.publish_batch([sent])).confirmed == [sent.message_id]

    for _ in range(2):  # delivered, never acked, consumer goes away: twice
        async with sessions() as session:
            delivery = session.inbound.get_nowait()
            assert delivery.message_id == str(sent.message_id)
            assert delivery.correlation_id == "c"
    async with sessions() as session:
        assert session.inbound.empty()

    [dead] = broker.queues[TOPOLOGY.dead_letter_queue].ready
    assert dead.message_id == str(sent.message_id)
    assert dead.headers["x-first-death-reason"] == "delivery_limit"


async def test_ack_settles_nack_requeues_and_poison_goes_to_the_dlq() -> None:
    broker = InMemoryBroker()
    sessions = broker.sessions(TOPOLOGY, event_names=["OrderPlaced"], delivery_limit=5)
    async with sessions() as session:
        first, second, third = message(), message(), message()
        await broker.publish_batch([first, second, third])
        _, b, c = (session.inbound.get_nowait() for _ in range(3))
        await b.ack(multiple=True)  # settles a and b
        await c.nack(requeue=True)  # comes straight back
        again = session.inbound.get_nowait()
        assert again.message_id == str(third.message_id)
        await session.dead_letter(again, "invalid OrderPlaced")
        queue = broker.queues[TOPOLOGY.queue]
        assert queue.unacked == {} and not queue.ready
    [poison] = broker.queues[TOPOLOGY.dead_letter_queue].ready
    assert poison.headers["x-poison-reason"] == "invalid OrderPlaced"
