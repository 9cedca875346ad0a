"""A consumer's connection to RabbitMQ (aio-pika)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractQueue
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import (
    ChannelAccessRefused,
    ChannelNotFoundEntity,
    DeliveryError,
    PublishError,
)

from cloudcrm_outbox.brokers.connection import (
    ConnectionOpener,
    ConsumerConnection,
    DeadLetterRefusedError,
    Delivery,
)
from cloudcrm_outbox.brokers.dead_letters import FIRST_DEAD_AT, ORIGINAL_USER_ID, now_iso
from cloudcrm_outbox.brokers.rabbitmq import nodes as broker_nodes
from cloudcrm_outbox.brokers.rabbitmq.consuming.dead_letter_copy import fitted_headers
from cloudcrm_outbox.brokers.rabbitmq.consuming.delivery import LeanDelivery
from cloudcrm_outbox.brokers.rabbitmq.publishing.frames import FRAME_OVERHEAD
from cloudcrm_outbox.brokers.rabbitmq.topology import declare_topology
from cloudcrm_outbox.errors import TopologyAccessRefusedError
from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.names import ConsumerTopology, QueueBindings

logger = library_logger(__name__)


class AmqpConsumerConnection:
    def __init__(
        self,
        queues: list[AbstractQueue],
        connection: AbstractConnection,
        topology: ConsumerTopology,
    ) -> None:
        """Consumes ``queues`` (the service's queue and its partition queues) on one
        channel: their delivery tags are the channel's, so one ack settles across them."""
        self.inbound: asyncio.Queue[Delivery] = asyncio.Queue()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues = queues
        self._connection = connection
        self._dead_letter_channel: AbstractChannel | None = None
        self._topology = topology
        self._tags: list[tuple[AbstractQueue, str]] = []
        self._frame_max = 4096  # AMQP's minimum, until ``start`` reads the negotiated one

    def mark_lost(self, *_: object) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    def mark_cancelled(self, *_: object) -> None:
        logger.warning(
            "RabbitMQ cancelled the consumer (queue deleted?); reconnecting to declare it",
            extra={"queue": self._topology.queue},
        )
        self.mark_lost()

    async def receive(self, message: DeliveredMessage) -> None:
        self.inbound.put_nowait(LeanDelivery(message))

    async def start(self) -> None:
        # Straight on aiormq's channel: deliveries arrive as parsed frames, wrapped in a
        # LeanDelivery, not in aio-pika's IncomingMessage (a third of the consumer's CPU).
        channel = await self._queues[0].channel.get_underlay_channel()
        if isinstance(channel, aiormq.Channel):  # the frame size negotiated at connect
            self._frame_max = channel.max_content_size + FRAME_OVERHEAD
        for queue in self._queues:
            consuming = await channel.basic_consume(queue.name, self.receive, no_ack=False)
            self._tags.append((queue, str(consuming.consumer_tag)))

    async def stop_receiving(self) -> None:
        for queue, tag in self._tags:
            await queue.cancel(tag)

    async def dead_letter(self, message: Delivery, reason: str) -> None:
        own = _encodable(dict(message.headers or {}))
        # Only what RabbitMQ validated: never a header the message arrived with.
        own.pop(ORIGINAL_USER_ID, None)
        added = {
            # When it first died, kept across replays (as x-death's time is for RabbitMQ's).
            FIRST_DEAD_AT: own.get(FIRST_DEAD_AT) or now_iso(),
            "x-poison-reason": reason,
            "x-poison-queue": self._topology.queue,
            # A replayed message keeps the event name it was first published under.
            "x-original-routing-key": own.get("x-original-routing-key")
            or message.routing_key
            or "",
        }
        if message.user_id:
            added[ORIGINAL_USER_ID] = message.user_id
        dlx = self._topology.dead_letter_exchange
        copy = aio_pika.Message(
            message.body,
            content_type=message.content_type,
            message_id=message.message_id,
            type=message.type,
            correlation_id=message.correlation_id,
            timestamp=message.timestamp,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        copy.headers = fitted_headers(
            own, added, copy.properties, body_size=len(message.body), frame_max=self._frame_max
        )
        try:
            dead_letters = await self._dead_letter_exchange()
            await dead_letters.publish(copy, routing_key=self._topology.queue)
        except (ChannelNotFoundEntity, ChannelAccessRefused) as exc:
            # 404: the exchange is gone (deleted, and this account may not declare it);
            # 403: this account may not write to it. Only the dead-letter channel closes
            # over it; the next copy opens another.
            why = "no exchange" if isinstance(exc, ChannelNotFoundEntity) else "no access to"
            raise DeadLetterRefusedError(
                f"RabbitMQ did not take the dead letter of {message.message_id!r}: {why} {dlx}"
            ) from exc
        except DeliveryError as exc:
            # A basic.return raises too (the channel has on_return_raises): PublishError.
            if isinstance(exc, PublishError):
                returned = exc.args[0] if exc.args else "basic.return"  # its reply_text
                why = f"returned: no queue is bound to {dlx} ({returned})"
            else:
                why = f"nacked by the queue bound to {dlx} (full, or refusing publishes?)"
            raise DeadLetterRefusedError(
                f"RabbitMQ did not take the dead letter of {message.message_id!r}: {why}"
            ) from exc
        await message.ack()

    async def _dead_letter_exchange(self) -> AbstractExchange:
        """``S.events.dlx`` on a channel of its own, opened again after the broker closed
        it: a copy published to an exchange that is gone (404) closes its channel, and on
        the consuming channel that was every delivery in flight, redelivered with the
        poison message first, again and again (nothing behind it was consumed)."""
        if self._dead_letter_channel is None or self._dead_letter_channel.is_closed:
            # on_return_raises: a dead letter returned unroutable raises instead of
            # counting as published (aio-pika's default resolves it like a confirm).
            self._dead_letter_channel = await self._connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
        return await self._dead_letter_channel.get_exchange(
            self._topology.dead_letter_exchange, ensure=False
        )


def _encodable(value: Any) -> Any:
    """``value`` as pamqp can write it again: a header value that was not UTF-8 arrives
    as bytes (pamqp decodes what it can), which pamqp refuses to encode; it becomes text
    with the odd bytes escaped, so a poison message's dead letter can always be written."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {str(key): _encodable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encodable(item) for item in value]
    return value


def amqp_consumer_connections(
    url: str, bindings: QueueBindings, *, prefetch: int, timeout: float, exchange: str
) -> ConnectionOpener:
    """Opens a fresh broker connection each time (the consumer reconnects by opening
    another). Each declares its topology first, so a queue deleted under a running consumer
    is declared again by the next connection. Raises TopologyConflictError when RabbitMQ
    refuses a declaration (never worth a retry)."""
    topology = bindings.topology

    @asynccontextmanager
    async def open_connection() -> AsyncIterator[ConsumerConnection]:
        connection: AbstractConnection | None = None
        try:
            # Every step of the setup is bounded: a connection reset mid-handshake has
            # been seen to leave aio-pika waiting forever.
            async with asyncio.timeout(timeout * (broker_nodes.node_count(url) + 1)):
                connection = await broker_nodes.connect(url, node_timeout=timeout)
                try:
                    await declare_topology(connection, [bindings], exchange=exchange)
                except TopologyAccessRefusedError as exc:
                    # A least-privilege account reads the queue `broker declare` made;
                    # if it is missing, the passive declaration below says so (404).
                    logger.info("not declaring the queue: %s", exc)
                channel = await connection.channel(publisher_confirms=False)
                await channel.set_qos(prefetch_count=prefetch)
                queues = [await _existing_queue(channel, name) for name in topology.queues]
                await _say_if_more_partitions(connection, topology)
                consuming = AmqpConsumerConnection(queues, connection, topology)
                # aio-pika's closed() resolves only when close() is called; a connection
                # the broker or the network dropped is reported to the close callbacks,
                # and so is a channel the broker closed while the connection lives on.
                connection.close_callbacks.add(consuming.mark_lost)
                channel.close_callbacks.add(consuming.mark_lost)
                # The broker cancels a consumer whose queue was deleted (basic.cancel):
                # aiormq logs it and the channel lives on, consuming nothing, for good.
                # The connection ends instead, and the next one declares the queue again.
                underlay = await channel.get_underlay_channel()
                underlay.on_consumer_cancel_callbacks.add(consuming.mark_cancelled)
                await consuming.start()
            yield consuming
        finally:
            if connection is not None:
                await _close_quietly(connection)

    return open_connection


async def _say_if_more_partitions(
    connection: AbstractConnection, topology: ConsumerTopology
) -> None:
    """Log an error when a partition queue beyond this consumer's count exists: a relay
    (or another consumer) runs with a larger PARTITIONS, and the keyed messages it routes
    there reach no consumer that runs with this one's."""
    beyond = f"{topology.queue}.p{len(topology.partition_queues)}"
    channel = await connection.channel()
    try:
        await channel.declare_queue(beyond, durable=True, passive=True)
    except ChannelNotFoundEntity:
        return  # as it should be (the 404 closed that channel)
    logger.error(
        "queue %s exists, beyond this consumer's %d partitions: a process runs with a "
        "larger PARTITIONS, and the keyed messages it routes there are not consumed here "
        "(give every relay and consumer the same PARTITIONS)",
        beyond,
        len(topology.partition_queues),
    )
    await channel.close()


async def _existing_queue(channel: AbstractChannel, name: str) -> AbstractQueue:
    try:
        return await channel.declare_queue(name, durable=True, passive=True)
    except ChannelNotFoundEntity:
        # Only with an account that may not declare: say what makes it, then retry.
        logger.warning("queue %s does not exist yet: `python -m app broker declare` makes it", name)
        raise


async def _close_quietly(connection: AbstractConnection) -> None:
    # Closing a half-dead connection can wait forever for the broker's close-ok;
    # unacked deliveries return to the queue either way.
    try:
        await asyncio.wait_for(connection.close(), timeout=2)
    except Exception:  # already broken: only release it
        logger.debug("closing a broken connection failed", exc_info=True)
