"""A consumer session on RabbitMQ (aio-pika)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractExchange, AbstractQueue

from app.outbox.sessions import ConsumerSession, Delivery, SessionOpener
from app.outbox.topology import ConsumerTopology, declare

logger = logging.getLogger(__name__)


class AmqpSession:
    def __init__(
        self, queue: AbstractQueue, dead_letters: AbstractExchange, topology: ConsumerTopology
    ) -> None:
        self.inbound: asyncio.Queue[Delivery] = asyncio.Queue()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue = queue
        self._dead_letters = dead_letters
        self._topology = topology
        self._tag: str | None = None

    def mark_lost(self, *_: object) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    async def receive(self, message: Any) -> None:
        self.inbound.put_nowait(message)

    async def start(self) -> None:
        self._tag = await self._queue.consume(self.receive)

    async def stop_receiving(self) -> None:
        if self._tag is not None:
            await self._queue.cancel(self._tag)

    async def dead_letter(self, message: Delivery, reason: str) -> None:
        headers = dict(message.headers or {})
        headers.update(
            {
                "x-poison-reason": reason,
                "x-poison-queue": self._topology.queue,
                "x-original-routing-key": message.routing_key or "",
            }
        )
        copy = aio_pika.Message(
            message.body,
            headers=headers,
            content_type=message.content_type,
            message_id=message.message_id,
            type=message.type,
            correlation_id=message.correlation_id,
            timestamp=message.timestamp,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self._dead_letters.publish(copy, routing_key=self._topology.queue)
        await message.ack()


def amqp_sessions(
    url: str,
    topology: ConsumerTopology,
    *,
    event_names: Iterable[str],
    prefetch: int,
    delivery_limit: int,
    timeout: float,
) -> SessionOpener:
    """Opens a fresh connection per session (the consumer reconnects by opening another)."""
    names = list(event_names)

    @asynccontextmanager
    async def open_session() -> AsyncIterator[ConsumerSession]:
        connection: AbstractConnection | None = None
        try:
            # Every step of the setup is bounded: a connection reset mid-handshake has
            # been seen to leave aio-pika waiting forever.
            async with asyncio.timeout(timeout):
                connection = await aio_pika.connect(url)
                channel = await connection.channel(publisher_confirms=True)
                await channel.set_qos(prefetch_count=prefetch)
                declared = await declare(
                    channel, topology, event_names=names, delivery_limit=delivery_limit
                )
                session = AmqpSession(declared.queue, declared.dead_letters, topology)
                # aio-pika's closed() resolves only when close() is called; a connection
                # the broker or the network dropped is reported to the close callbacks.
                connection.close_callbacks.add(session.mark_lost)
                await session.start()
            yield session
        finally:
            if connection is not None:
                await _close_quietly(connection)

    return open_session


async def _close_quietly(connection: AbstractConnection) -> None:
    # Closing a half-dead connection can wait forever for the broker's close-ok;
    # unacked deliveries return to the queue either way.
    try:
        await asyncio.wait_for(connection.close(), timeout=2)
    except Exception:  # already broken: only release it
        logger.debug("closing a broken connection failed", exc_info=True)
