"""One broker interface, chosen from the URL once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloudcrm_outbox.brokers import broker_for
from cloudcrm_outbox.brokers.base import UnsupportedBrokerError
from cloudcrm_outbox.brokers.embedded.broker import EmbeddedBroker
from cloudcrm_outbox.brokers.publisher import OutgoingMessage
from cloudcrm_outbox.brokers.queue_state import QueueState
from cloudcrm_outbox.brokers.rabbitmq.broker import RabbitMQBroker
from cloudcrm_outbox.names import QueueBindings

CATALOG = QueueBindings.of("catalog", ["OrderPlaced"])


def test_the_url_chooses_the_broker(tmp_path: Path) -> None:
    assert isinstance(broker_for("amqp://guest:guest@127.0.0.1:5672/"), RabbitMQBroker)
    assert isinstance(broker_for("amqps://h:5671/"), RabbitMQBroker)
    assert isinstance(broker_for("memory://", embedded_path=str(tmp_path / "b.db")), EmbeddedBroker)
    with pytest.raises(UnsupportedBrokerError, match="no broker for 'redis'"):
        broker_for("redis://127.0.0.1:6379")


async def test_the_embedded_broker_publishes_and_delivers_through_the_interface(
    tmp_path: Path,
) -> None:
    broker = broker_for("memory://", embedded_path=str(tmp_path / "var" / "broker.db"))
    await broker.declare([CATALOG])
    publisher = broker.publisher(bindings=[CATALOG])
    message = OutgoingMessage(uuid.uuid4(), "OrderPlaced", b"{}", {}, datetime.now(UTC))
    result = await publisher.publish_batch([message])
    assert result.confirmed == [message.message_id]
    await publisher.close()  # one relay's handle: the broker stays open for the others

    async with broker.consumer_connections(CATALOG, prefetch=10)() as session:
        delivery = session.inbound.get_nowait()
        assert delivery.message_id == str(message.message_id)
        await delivery.ack()
    unbound = OutgoingMessage(uuid.uuid4(), "Nobody", b"{}", {}, datetime.now(UTC))
    assert unbound.message_id in (await publisher.publish_batch([unbound])).unroutable
    await broker.close()


async def test_the_embedded_broker_tells_a_queues_messages_and_consumers(tmp_path: Path) -> None:
    # What the reply timeout asks before resending (a passive queue.declare on RabbitMQ).
    broker = broker_for("memory://", embedded_path=str(tmp_path / "broker.db"))
    assert await broker.queue_state("catalog.events") is None  # not declared
    await broker.declare([CATALOG])
    publisher = broker.publisher(bindings=[CATALOG])
    messages = [
        OutgoingMessage(uuid.uuid4(), "OrderPlaced", b"{}", {}, datetime.now(UTC)) for _ in range(2)
    ]
    await publisher.publish_batch(messages)
    assert await broker.queue_state("catalog.events") == QueueState(messages=2, consumers=0)
    async with broker.consumer_connections(CATALOG, prefetch=10)():
        # Delivered to the consumer (unacked): no longer ready, as RabbitMQ counts them.
        assert await broker.queue_state("catalog.events") == QueueState(messages=0, consumers=1)
    assert await broker.queue_state("catalog.events") == QueueState(messages=2, consumers=0)
    await broker.close()


def test_a_mangled_url_is_refused_without_showing_its_text() -> None:
    # "amqp:" without "//": everything before "://" once made the "scheme" in the error,
    # the password with it.
    with pytest.raises(UnsupportedBrokerError) as refused:
        broker_for("amqp:guest:SECRETPW@h://")
    assert "malformed" in str(refused.value) and "secretpw" not in str(refused.value).lower()


def test_a_scheme_in_capitals_is_the_same_scheme() -> None:
    # RFC 3986 §3.1: schemes are case-insensitive.
    from cloudcrm_outbox.brokers import is_amqp

    assert isinstance(broker_for("AMQP://guest:guest@127.0.0.1:5672/"), RabbitMQBroker)
    assert is_amqp("AMQPS://h/") and not is_amqp("memory://")
