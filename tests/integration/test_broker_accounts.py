"""The least-privilege broker accounts on the local RabbitMQ (a test vhost, the accounts of
app/messaging/broker_accounts.py): the broker itself refuses what a role may not do, and a consumer
dead-letters an event whose validated user_id is not its owner's relay account."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused

from app.messaging.broker_accounts import accounts
from app.messaging.registry import all_bindings, bindings_fed_by
from cloudcrm_outbox.brokers.dead_letters import DeadLetterSelection
from cloudcrm_outbox.brokers.publisher import OutgoingMessage
from cloudcrm_outbox.brokers.queue_state import QueueState
from cloudcrm_outbox.brokers.rabbitmq.broker import RabbitMQBroker
from cloudcrm_outbox.brokers.rabbitmq.publishing.publisher import AmqpPublisher
from cloudcrm_outbox.brokers.rabbitmq.topology import declare_at
from cloudcrm_outbox.errors import BrokerUnavailableError
from cloudcrm_outbox.names import DEFAULT_NAMES
from tests.conftest import query
from tests.support.catalog import new_product, stock_of
from tests.support.consuming import order_placed, running_consumer, wait_until
from tests.support.rabbit import least_privilege_accounts, queue_depth

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

Url = Callable[[str], str]


@pytest.fixture(scope="module")
async def vhost_accounts() -> AsyncIterator[Url]:
    async with least_privilege_accounts() as url:
        # Only the admin account may configure: `broker declare`.
        await declare_at(url("admin"), all_bindings(), within=30)
        yield url


@pytest.fixture
async def url(vhost_accounts: Url) -> Url:
    """The module's accounts (made once: seven users take seconds), every queue empty."""
    async with await aio_pika.connect(vhost_accounts("admin")) as connection:
        channel = await connection.channel()
        for binding in all_bindings():
            topology = binding.topology
            for name in (*topology.queues, topology.dead_letter_queue):
                queue = await channel.declare_queue(name, passive=True)
                await queue.purge()
    return vhost_accounts


def _user(url: str) -> str:
    return url.split("//")[1].split(":")[0]


async def _stock_is(database_url: str, product: uuid.UUID, stock: int) -> bool:
    return await stock_of(database_url, product) == stock


async def _depth_is(url: str, queue: str, depth: int) -> bool:
    return await queue_depth(url, queue) == depth


async def _replayed_and_back(broker: RabbitMQBroker) -> bool:
    letters = await broker.dead_letters("catalog")
    return len(letters) == 2 and all(letter.replays == 1 for letter in letters)


def _event(event_type: str, body: bytes) -> OutgoingMessage:
    return OutgoingMessage(uuid.uuid4(), event_type, body, {}, datetime.now(UTC))


async def _publish_refused(url: str, exchange: str, routing_key: str) -> None:
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        target = (
            channel.default_exchange
            if exchange == ""
            else await channel.get_exchange(exchange, ensure=False)
        )
        with pytest.raises(ChannelAccessRefused):
            await target.publish(aio_pika.Message(b"{}", type=routing_key), routing_key)


def test_every_account_is_least_privilege() -> None:
    by_name = {account.name.removeprefix("p-"): account for account in accounts("p")}
    assert by_name["admin"].configure == ".*"
    for name, account in by_name.items():
        if name != "admin":
            assert account.configure == "^$", name  # only `broker declare` configures
    # An event's name, or a keyed event's name and partition (OrderPlaced.p2).
    partition = r"(\.p[0-9]+)?$"
    assert by_name["ordering-relay"].topic_write == "^(OrderCancelled|OrderPlaced)" + partition
    assert (
        by_name["catalog-relay"].topic_write
        == "^(StockReservationRejected|StockReserved)" + partition
    )
    assert by_name["catalog-consumer"].read == (
        r"^(catalog\.events|catalog\.events\.p0|catalog\.events\.p1|catalog\.events\.p2"
        r"|catalog\.events\.p3)$"
    )
    assert by_name["catalog-consumer"].write == r"^(catalog\.events\.dlx)$"


async def test_a_relay_publishes_only_its_own_events(url: Url) -> None:
    publisher = AmqpPublisher(
        url("ordering-relay"), publish_timeout=10, bindings=bindings_fed_by("ordering")
    )
    try:
        # It may not declare (no configure permission) and goes on with what exists.
        own = _event("OrderPlaced", order_placed(uuid.uuid4()))
        keyed = replace(_event("OrderPlaced", order_placed(uuid.uuid4())),
                        routing_key="OrderPlaced.p1")  # fmt: skip
        result = await publisher.publish_batch([own, keyed])
        assert result.confirmed == [own.message_id, keyed.message_id], result
        foreign = [_event("StockReserved", b"{}"), _event("OrderCancelled", b"{}")]
        result = await publisher.publish_batch(foreign)
        assert result.confirmed == [foreign[1].message_id], result
        assert "ACCESS_REFUSED" in result.rejected[foreign[0].message_id], result
        alone = _event("StockReserved", b"{}")  # claimed alone: refused too, not "broken"
        result = await publisher.publish_batch([alone])
        assert result.broken is None, result
        assert "ACCESS_REFUSED" in result.rejected[alone.message_id], result
    finally:
        await publisher.close()
    await _publish_refused(url("ordering-relay"), DEFAULT_NAMES.exchange, "StockReserved")
    await _publish_refused(url("catalog-relay"), DEFAULT_NAMES.exchange, "OrderPlaced")
    await _publish_refused(url("catalog-relay"), DEFAULT_NAMES.exchange, "OrderPlaced.p1")
    await _publish_refused(url("ordering-relay"), DEFAULT_NAMES.exchange, "OrderPlaced.px")
    await _publish_refused(url("ordering-relay"), "", "catalog.events")  # no back door


async def test_an_account_that_may_not_write_the_exchange_fails_no_row(url: Url) -> None:
    """A misconfigured relay (here given a consumer's account): the refusal is the
    account's, not the messages', so nothing is rejected (no attempt counted): the batch
    is left pending, as when the broker is away."""
    publisher = AmqpPublisher(url("catalog-consumer"), publish_timeout=10)
    try:
        batch = [_event("OrderPlaced", b"{}"), _event("OrderPlaced", b"{}")]
        result = await publisher.publish_batch(batch)
    finally:
        await publisher.close()
    assert not result.confirmed and not result.rejected
    assert isinstance(result.broken, ChannelAccessRefused)


async def test_a_consumer_account_cannot_publish_events(url: Url) -> None:
    """Not to the events exchange, not through the default exchange to any queue: its one
    write permission is its own dead-letter exchange, which feeds only its DLQ."""
    consumer = url("catalog-consumer")
    for routing_key in ("OrderPlaced", "OrderCancelled", "StockReserved"):
        await _publish_refused(consumer, DEFAULT_NAMES.exchange, routing_key)
    await _publish_refused(consumer, "", "catalog.events")
    await _publish_refused(consumer, "", "ordering.events")
    async with await aio_pika.connect(consumer) as connection:
        channel = await connection.channel()
        with pytest.raises(ChannelAccessRefused):
            await channel.declare_queue("anything", durable=True)


async def test_an_event_from_another_account_is_dead_lettered(url: Url, catalog_db: str) -> None:
    product = await new_product(catalog_db, stock=10)
    relay_user = _user(url("ordering-relay"))
    publishers = {"OrderPlaced": relay_user, "OrderCancelled": relay_user}
    async with running_consumer(
        catalog_db, url("catalog-consumer"), publishers=publishers, batch_size=50
    ):
        # Forged: published by accounts that may write to the exchange, as themselves,
        # as someone else (the admin may impersonate), or with no user_id at all.
        async with await aio_pika.connect(url("admin")) as connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(DEFAULT_NAMES.exchange, ensure=False)
            admin_user = _user(url("admin"))
            for user_id in (admin_user, _user(url("catalog-relay")), None):
                await exchange.publish(
                    aio_pika.Message(
                        order_placed(product, quantity=3),
                        message_id=str(uuid.uuid4()),
                        type="OrderPlaced",
                        content_type="application/json",
                        user_id=user_id,
                    ),
                    "OrderPlaced",
                )
        # Real traffic, from ordering's relay account.
        relay = AmqpPublisher(url("ordering-relay"), publish_timeout=10)
        try:
            real = _event("OrderPlaced", order_placed(product, quantity=2))
            assert (await relay.publish_batch([real])).confirmed == [real.message_id]
        finally:
            await relay.close()
        await wait_until(lambda: _stock_is(catalog_db, product, 8))
        admin_broker = RabbitMQBroker(url("admin"))
        try:
            await wait_until(lambda: _depth_is(url("admin"), "catalog.events.dlq", 3))
            letters = await admin_broker.dead_letters("catalog")
        finally:
            await admin_broker.close()
    assert len(letters) == 3
    for letter in letters:
        assert letter.reason.startswith("unexpected publisher: OrderPlaced from user_id"), letter
    assert await stock_of(catalog_db, product) == 8  # only the real order took stock
    [(applied,)] = await query(catalog_db, "SELECT count(*) FROM inbox")
    assert applied == 1


async def test_a_replay_keeps_the_publisher(url: Url, catalog_db: str) -> None:
    """The admin account (impersonator) replays a dead letter as its first publisher: a
    forged one is dead-lettered again, never laundered into the operator's name. An API's
    account lists and purges its dead letters but may not replay (that would let it put
    any event in any queue)."""
    product = await new_product(catalog_db, stock=10)
    relay_user = _user(url("ordering-relay"))
    async with running_consumer(
        catalog_db, url("catalog-consumer"), publishers={"OrderPlaced": relay_user}
    ):
        async with await aio_pika.connect(url("admin")) as connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(DEFAULT_NAMES.exchange, ensure=False)
            for user_id in (None, _user(url("admin"))):
                await exchange.publish(
                    aio_pika.Message(
                        order_placed(product),
                        message_id=str(uuid.uuid4()),
                        type="OrderPlaced",
                        content_type="application/json",
                        user_id=user_id,
                    ),
                    "OrderPlaced",
                )
        await wait_until(lambda: _depth_is(url("admin"), "catalog.events.dlq", 2))
        api = RabbitMQBroker(url("catalog-api"))
        try:
            assert (await api.dead_letter_summary("catalog")).depth == 2
            assert len(await api.dead_letters("catalog")) == 2
            with pytest.raises(BrokerUnavailableError, match="ACCESS_REFUSED"):
                await api.replay_dead_letters("catalog", DeadLetterSelection())
        finally:
            await api.close()
        await _publish_refused(url("catalog-api"), "", "catalog.events")
        operator = RabbitMQBroker(url("admin"))
        try:
            letters = await operator.dead_letters("catalog")
            assert sorted(str(letter.user_id) for letter in letters) == sorted(
                ["None", _user(url("admin"))]
            )
            replay = await operator.replay_dead_letters("catalog", DeadLetterSelection())
            assert len(replay.replayed) == 2 and not replay.left, replay
            await wait_until(lambda: _replayed_and_back(operator))
            again = await operator.dead_letters("catalog")
        finally:
            await operator.close()
    assert {letter.user_id for letter in again} == {letter.user_id for letter in letters}
    for letter in again:
        assert letter.reason.startswith("unexpected publisher"), letter
    assert await stock_of(catalog_db, product) == 10


async def test_the_ordering_relay_account_may_read_a_queues_state(
    url: Url, catalog_db: str
) -> None:
    """The reply timeout (in ordering's relay process, with its account) asks how many
    messages wait in catalog.events and whether a consumer is attached: a passive
    queue.declare, which RabbitMQ checks no configure, write or read permission for."""
    broker = RabbitMQBroker(url("ordering-relay"))
    assert await broker.queue_state("catalog.events") == QueueState(messages=0, consumers=0)
    assert await broker.queue_state("no.such.queue") is None
    relay = AmqpPublisher(url("ordering-relay"), publish_timeout=10)
    try:
        event = _event("OrderPlaced", order_placed(uuid.uuid4()))
        assert (await relay.publish_batch([event])).confirmed == [event.message_id]
    finally:
        await relay.close()
    assert await broker.queue_state("catalog.events") == QueueState(messages=1, consumers=0)
    async with running_consumer(catalog_db, url("catalog-consumer")):
        state = await broker.queue_state("catalog.events")
        assert state is not None and state.consumers == 1
