"""Every declaration the system makes, against an existing conflicting one."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from cloudcrm_outbox.brokers.rabbitmq.consuming.consumer import amqp_consumer_connections
from cloudcrm_outbox.brokers.rabbitmq.topology import declare_at
from cloudcrm_outbox.errors import TopologyConflictError
from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames, QueueBindings
from tests.support.events import all_bindings
from tests.support.rabbit import queue_depth

pytestmark = pytest.mark.rabbitmq

Conflict = Callable[[AbstractChannel], Awaitable[object]]


def _fanout(name: str) -> Conflict:
    return lambda channel: channel.declare_exchange(name, aio_pika.ExchangeType.FANOUT)


def _topic(name: str) -> Conflict:
    return lambda channel: channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC)


def _classic(name: str) -> Conflict:
    return lambda channel: channel.declare_queue(name, durable=True)


def _quorum_with(name: str, arguments: dict[str, object]) -> Conflict:
    return lambda channel: channel.declare_queue(
        name, durable=True, arguments={"x-queue-type": "quorum", **arguments}
    )


# Every entity `broker declare`, the relays and the consumers declare, each made first
# with other settings. (Bindings cannot conflict: binding twice is a no-op.)
CONFLICTS: list[tuple[str, Conflict, str]] = [
    ("events exchange as fanout", _fanout("cloudcrm.events"), "exchange cloudcrm.events"),
    ("events exchange not durable", _topic("cloudcrm.events"), "exchange cloudcrm.events"),
    *[
        (f"{s} dead-letter exchange as topic", _topic(f"{s}.events.dlx"), f"{s}.events.dlx")
        for s in ("catalog", "ordering")
    ],
    *[
        (f"{s} dead-letter queue classic", _classic(f"{s}.events.dlq"), f"queue {s}.events.dlq")
        for s in ("catalog", "ordering")
    ],
    *[
        (f"{s} queue classic", _classic(f"{s}.events"), f"queue {s}.events")
        for s in ("catalog", "ordering")
    ],
    (
        "queue with a length limit",
        _quorum_with("catalog.events", {"x-max-length": 10}),
        "queue catalog.events",
    ),
]


@pytest.mark.parametrize(
    ("existing", "named"), [(c, n) for _, c, n in CONFLICTS], ids=[i for i, _, _ in CONFLICTS]
)
async def test_a_conflicting_entity_is_refused_with_its_name(
    broker: str, existing: Conflict, named: str
) -> None:
    async with await aio_pika.connect(broker) as connection:
        await existing(await connection.channel())
    with pytest.raises(TopologyConflictError) as refused:
        await declare_at(broker, all_bindings(), within=30)
    assert named in str(refused.value)
    assert "PRECONDITION_FAILED" in str(refused.value)


async def test_a_queue_of_an_earlier_release_is_adopted(broker: str) -> None:
    # What the previous release declared: the delivery limit and dead-lettering as queue
    # arguments. Upgrading must not stop the consumer; the queue keeps its messages.
    legacy = {
        "x-delivery-limit": 20,
        "x-dead-letter-exchange": "catalog.events.dlx",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    async with await aio_pika.connect(broker) as connection:
        channel = await connection.channel()
        queue = await _quorum_with("catalog.events", legacy)(channel)
        # Its dead-letter queue as it was: a quorum queue without an overflow argument.
        dead_letters = await _quorum_with("catalog.events.dlq", {})(channel)
        for made in (queue, dead_letters):
            assert isinstance(made, aio_pika.abc.AbstractQueue)
            await channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=made.name)
    for _ in range(2):  # and again: idempotent
        await declare_at(broker, all_bindings(), within=30)
    assert await queue_depth(broker, "catalog.events") == 1
    assert await queue_depth(broker, "catalog.events.dlq") == 1
    assert await queue_depth(broker, "ordering.events") == 0


async def test_declaring_twice_changes_nothing(broker: str) -> None:
    await declare_at(broker, all_bindings(), within=30)
    await declare_at(broker, all_bindings(), within=30)
    for name in ("catalog.events", "catalog.events.dlq", "ordering.events", "ordering.events.dlq"):
        assert await queue_depth(broker, name) == 0


async def test_partition_queues_have_a_single_active_consumer(broker: str) -> None:
    await declare_at(broker, all_bindings(), within=30)
    async with await aio_pika.connect(broker) as connection:
        channel = await connection.channel()
        # Declared again with other arguments, RabbitMQ refuses (406): what it holds.
        with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
            await channel.declare_queue("catalog.events.p0", durable=True,
                                        arguments={"x-queue-type": "quorum"})  # fmt: skip


async def test_a_consumer_with_fewer_partitions_than_a_relay_says_so(
    broker: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A relay ran with PARTITIONS=8 (its consumers' queues .p0 to .p7 exist); a consumer
    with 4 would never read .p4 to .p7: it says so, in one error line, at each connect."""
    eight = MessagingNames(partitions=8)
    await declare_at(broker, [QueueBindings.of("catalog", ["OrderPlaced"], eight)], within=30)
    four = QueueBindings.of("catalog", ["OrderPlaced"], MessagingNames(partitions=4))
    opener = amqp_consumer_connections(
        broker, four, prefetch=10, timeout=10, exchange=DEFAULT_NAMES.exchange
    )
    with caplog.at_level(logging.ERROR):
        async with opener():
            pass
    [said] = [r.getMessage() for r in caplog.records if "beyond this consumer" in r.getMessage()]
    assert said.startswith("queue catalog.events.p4 exists, beyond this consumer's 4 partitions")
