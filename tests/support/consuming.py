"""Running the inbox consumer in-process and feeding it messages, for tests."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aio_pika

from app.messaging.registry import subscriptions_of
from cloudcrm_outbox.brokers.rabbitmq.broker import RabbitMQBroker
from cloudcrm_outbox.events import KEY_HEADER, SEQUENCE_HEADER
from cloudcrm_outbox.inbox.decoding import Decoded
from cloudcrm_outbox.inbox.policy import BatchProcessor, ConsumerPolicy, KeyedProcessor
from cloudcrm_outbox.inbox.processor import InboxProcessor
from cloudcrm_outbox.names import DEFAULT_NAMES
from cloudcrm_outbox.runtime.consumer_process import inbox_consumer
from cloudcrm_outbox.storage.engine import make_engine
from cloudcrm_outbox.subscriptions import by_event_name

# A fault hook: called with a batch's message ids after its transaction committed, before
# the consumer acks them (it acks once ``process`` returns).
AfterCommitHook = Callable[[Sequence[uuid.UUID]], Awaitable[None]]


class HookedProcessor:
    """An inbox processor that runs ``after_commit`` between the commit and the ack."""

    def __init__(self, inner: BatchProcessor, after_commit: AfterCommitHook) -> None:
        self._inner, self._after_commit = inner, after_commit

    async def process(
        self, messages: Sequence[Decoded], *, lock_timeout: float | None = None
    ) -> dict[uuid.UUID, str]:
        outcomes = await self._inner.process(messages, lock_timeout=lock_timeout)
        await self._after_commit([message.message_id for message in messages])
        return outcomes

    async def record_dead_letter(
        self, key: str, sequence: int, message_id: uuid.UUID | None
    ) -> None:
        assert isinstance(self._inner, KeyedProcessor)
        await self._inner.record_dead_letter(key, sequence, message_id)

    async def watch_parked(self, stop: asyncio.Event, policy: ConsumerPolicy) -> None:
        assert isinstance(self._inner, KeyedProcessor)
        await self._inner.watch_parked(stop, policy)


@asynccontextmanager
async def running_consumer(
    database_url: str,
    broker_url: str,
    *,
    service: str = "catalog",
    after_commit: AfterCommitHook | None = None,
    lock_timeout: float = 2.0,
    **policy: Any,
) -> AsyncIterator[asyncio.Task[None]]:
    """``service``'s consumer, consuming until the block ends; yields its task."""
    engine = make_engine(database_url, lock_timeout=lock_timeout, statement_timeout=30)
    index = by_event_name(subscriptions_of(service))
    processor: BatchProcessor = InboxProcessor(engine, consumer=service, subscriptions=index)
    if after_commit is not None:
        processor = HookedProcessor(processor, after_commit)
    consumer = inbox_consumer(
        RabbitMQBroker(broker_url),
        service=service,
        processor=processor,
        subscriptions=index,
        policy=ConsumerPolicy(**{"reconnect_max_seconds": 0.5, **policy}),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await asyncio.wait_for(_ready_or_done(consumer.ready, task), timeout=15)
        yield task
    finally:
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=10)
        except BaseException:
            task.cancel()
        await engine.dispose()


async def _ready_or_done(ready: asyncio.Event, task: asyncio.Task[None]) -> None:
    waiter = asyncio.ensure_future(ready.wait())
    await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()


def order_placed(product_id: uuid.UUID | str, quantity: int = 1, **fields: Any) -> bytes:
    body = {
        "orderId": str(uuid.uuid4()),
        "productId": str(product_id),
        "customerName": "Ann",
        "quantity": quantity,
    }
    body.update(fields)
    return json.dumps(body).encode()


async def publish(
    broker_url: str,
    messages: list[tuple[bytes, dict[str, Any]]],
    *,
    routing_key: Callable[[dict[str, Any]], str] = lambda props: props.get("type") or "x",
) -> None:
    """Publish raw messages (body, properties) to the events exchange, confirmed."""
    async with await aio_pika.connect(broker_url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            DEFAULT_NAMES.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        for start in range(0, len(messages), 500):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **props
                        ),
                        routing_key=routing_key(props),
                    )
                    for body, props in messages[start : start + 500]
                )
            )


def valid_props(message_id: uuid.UUID | None = None) -> dict[str, Any]:
    return {
        "message_id": str(message_id or uuid.uuid4()),
        "type": "OrderPlaced",
        "content_type": "application/json",
    }


async def wait_until(
    condition: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.05
) -> None:
    """Poll an async ``condition`` until it is truthy; fail with its last value otherwise."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await condition()
        if last:
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


async def publish_without_message_id(broker_url: str, body: bytes, **props: Any) -> None:
    """aio-pika (aiormq) fills in a random message_id when none is given; a message from
    another client may have none, so this writes the frames itself."""
    from aiormq.abc import ChannelFrame
    from pamqp.body import ContentBody
    from pamqp.commands import Basic
    from pamqp.header import ContentHeader

    async with await aio_pika.connect(broker_url) as connection:
        channel = await connection.channel(publisher_confirms=False)
        underlay = await channel.get_underlay_channel()
        frames = [
            Basic.Publish(exchange=DEFAULT_NAMES.exchange, routing_key="OrderPlaced"),
            ContentHeader(
                properties=Basic.Properties(delivery_mode=2, **props), body_size=len(body)
            ),
            ContentBody(body),
        ]
        await underlay.write_queue.put(ChannelFrame.marshall(underlay.number, frames))  # type: ignore[attr-defined]
        await asyncio.sleep(0.2)  # let the frames leave before the connection closes


def keyed_props(
    key: str, sequence: int, event_type: str = "OrderPlaced", message_id: uuid.UUID | None = None
) -> dict[str, Any]:
    """A keyed message's properties: its key and place in the headers, as a relay sends."""
    return {
        **valid_props(message_id),
        "type": event_type,
        "headers": {KEY_HEADER: key, SEQUENCE_HEADER: sequence},
    }


def keyed_route(props: dict[str, Any]) -> str:
    """The routing key a relay gives a keyed message: its event and its key's partition."""
    return DEFAULT_NAMES.routing_key(props["type"], props["headers"][KEY_HEADER])
