"""The in-memory broker keeps the semantics the consumer and relay rely on."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloudcrm_outbox.brokers.connection import Delivery
from cloudcrm_outbox.brokers.embedded.memory import (
    InMemoryBroker,
    MemoryConsumerConnection,
    MemoryQueue,
)
from cloudcrm_outbox.brokers.publisher import OutgoingMessage
from cloudcrm_outbox.names import ConsumerTopology

TOPOLOGY = ConsumerTopology.for_service("catalog")


def message(event_type: str = "OrderPlaced") -> OutgoingMessage:
    return OutgoingMessage(
        uuid.uuid4(), event_type, b"{}", {"correlation_id": "c"}, datetime.now(UTC)
    )


async def test_unbound_events_are_refused_like_mandatory() -> None:
    broker = InMemoryBroker()
    nobody = message()
    result = await broker.publish_batch([nobody])
    assert result.confirmed == [] and "NO_ROUTE" in result.unroutable[nobody.message_id]


async def test_unacked_deliveries_come_back_and_the_limit_dead_letters() -> None:
    broker = InMemoryBroker()
    sessions = broker.consumer_connections(TOPOLOGY, event_names=["OrderPlaced"], delivery_limit=2)
    sent = message()
    broker.declare(TOPOLOGY, event_names=["OrderPlaced"], delivery_limit=2)
    assert (await broker.publish_batch([sent])).confirmed == [sent.message_id]

    for _ in range(3):  # delivered, never acked, consumer goes away: limit + 1 times
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
    sessions = broker.consumer_connections(TOPOLOGY, event_names=["OrderPlaced"], delivery_limit=5)
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


# The queues live in a SQLite file: what was confirmed survives the process.

EVENTS = ["OrderPlaced"]


def on_file(path: Path, *, delivery_limit: int = 5) -> tuple[InMemoryBroker, MemoryQueue]:
    """A broker on ``path`` (as a restarted process makes it), its queue declared."""
    broker = InMemoryBroker(path=str(path))
    queue, _ = broker.declare(TOPOLOGY, event_names=EVENTS, delivery_limit=delivery_limit)
    return broker, queue


def deliveries(queue: MemoryQueue) -> list[Delivery]:
    """Attach a consumer that never acks (nor detaches: a crash); what it was given."""
    inbound: asyncio.Queue[Delivery] = asyncio.Queue()
    queue.attach(inbound)
    return [inbound.get_nowait() for _ in range(inbound.qsize())]


def ids(delivered: list[Delivery]) -> list[str | None]:
    return [delivery.message_id for delivery in delivered]


async def test_ready_and_unacked_messages_survive_a_crash_in_order(tmp_path: Path) -> None:
    crashed, queue = on_file(tmp_path / "broker.db")
    first, second, third = message(), message(), message()
    assert (await crashed.publish_batch([first, second])).confirmed == [
        first.message_id,
        second.message_id,
    ]
    assert ids(deliveries(queue)) == [str(first.message_id), str(second.message_id)]
    queue.pause()  # the third stays ready
    await crashed.publish_batch([third])

    restarted, queue = on_file(tmp_path / "broker.db")
    again = deliveries(queue)
    assert ids(again) == [str(m.message_id) for m in (first, second, third)]
    # Delivered when the process died: counted as returned, as RabbitMQ counts them.
    assert [d.headers["x-delivery-count"] for d in again] == [1, 1, 0]
    assert again[0].correlation_id == "c" and again[0].body == b"{}"
    assert again[0].timestamp == first.created_at
    await crashed.close()
    await restarted.close()


async def test_an_acked_message_does_not_come_back(tmp_path: Path) -> None:
    crashed, queue = on_file(tmp_path / "broker.db")
    first, second, third = message(), message(), message()
    await crashed.publish_batch([first, second, third])
    _, b, c = deliveries(queue)
    await b.ack(multiple=True)  # settles the first and the second
    await c.nack(requeue=True)  # back, and delivered again at once (unacked)

    restarted, queue = on_file(tmp_path / "broker.db")
    [only] = deliveries(queue)
    assert only.message_id == str(third.message_id)
    assert only.headers["x-delivery-count"] == 2  # the nack, then the crash
    await only.ack()
    await crashed.close()
    await restarted.close()

    settled, queue = on_file(tmp_path / "broker.db")
    assert deliveries(queue) == []
    await settled.close()


async def test_x_delivery_count_counts_returned_deliveries() -> None:
    broker = InMemoryBroker()
    sessions = broker.consumer_connections(TOPOLOGY, event_names=EVENTS, delivery_limit=5)
    sent = message()
    async with sessions() as session:
        await broker.publish_batch([sent])
        delivery = session.inbound.get_nowait()
        assert delivery.headers == {"x-delivery-count": 0}
        await delivery.nack(requeue=True)
        delivery = session.inbound.get_nowait()
        assert delivery.headers["x-delivery-count"] == 1
    async with sessions() as session:  # the consumer went away: counted too
        assert session.inbound.get_nowait().headers["x-delivery-count"] == 2


async def test_dead_letters_are_in_the_dlq_after_a_restart(tmp_path: Path) -> None:
    crashed, queue = on_file(tmp_path / "broker.db", delivery_limit=1)
    rejected, poison, spent = message(), message(), message()
    await crashed.publish_batch([rejected, poison, spent])
    session = MemoryConsumerConnection(queue, crashed.queues[TOPOLOGY.dead_letter_queue])
    a, b, _ = deliveries(queue)  # the third is outstanding at the crash
    await a.nack(requeue=False)
    await session.dead_letter(b, "invalid OrderPlaced")

    # Its crashed deliveries used up delivery_limit=1 (returned twice, as RabbitMQ counts):
    # dead-lettered as the queue loads.
    _, queue = on_file(tmp_path / "broker.db", delivery_limit=1)
    assert ids(deliveries(queue)) == [str(spent.message_id)]  # outstanding at a 2nd crash
    restarted, queue = on_file(tmp_path / "broker.db", delivery_limit=1)
    assert deliveries(queue) == []
    dead = list(restarted.queues[TOPOLOGY.dead_letter_queue].ready)
    assert [d.message_id for d in dead] == [str(m.message_id) for m in (rejected, poison, spent)]
    assert [d.headers.get("x-first-death-reason") for d in dead] == [
        "rejected",
        None,
        "delivery_limit",
    ]
    assert dead[1].headers["x-poison-reason"] == "invalid OrderPlaced"
    assert all("x-delivery-count" not in d.headers for d in dead)
    await crashed.close()
    await restarted.close()


async def test_unrouted_events_are_refused_and_not_stored(tmp_path: Path) -> None:
    broker, queue = on_file(tmp_path / "broker.db")
    nobody = message("StockReserved")  # bound to ordering.events, not declared here
    result = await broker.publish_batch([nobody])
    assert result.unroutable == {nobody.message_id: "returned by the broker: 312 NO_ROUTE"}
    assert result.confirmed == []
    await broker.close()

    restarted, queue = on_file(tmp_path / "broker.db")
    assert deliveries(queue) == [] and not restarted.queues[TOPOLOGY.dead_letter_queue].ready
    await restarted.close()


@pytest.mark.parametrize("kind", ["a folder", "not SQLite"])
def test_a_queue_file_sqlite_cannot_open_is_refused_in_words(tmp_path: Path, kind: str) -> None:
    from cloudcrm_outbox import broker_for
    from cloudcrm_outbox.brokers.embedded.queue_file import QueueFileError

    path = tmp_path if kind == "a folder" else tmp_path / "junk.db"
    if kind == "not SQLite":
        path.write_bytes(b"\x8f" * 4096)
    with pytest.raises(QueueFileError, match="the embedded broker cannot keep its queues in"):
        broker_for("memory://", embedded_path=str(path))
