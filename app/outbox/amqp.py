"""Publishing to RabbitMQ with publisher confirms, ``mandatory`` and persistent messages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.exceptions import DeliveryError
from pamqp.commands import Basic

from app.outbox.amqp_frames import properties, publish_frames, supports_frame_batches
from app.outbox.publisher import (
    EXCHANGE,
    BrokerUnavailableError,
    OutgoingMessage,
    PublishResult,
)

logger = logging.getLogger(__name__)


async def declare_exchange(channel: AbstractChannel) -> None:
    """Declare the contract's exchange; idempotent, so every process may do it at start."""
    await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)


class AmqpPublisher:
    """One connection and channel, opened on first use and again after any failure.

    A plain (not robust) connection: when it breaks, the relay must know at once which
    publishes were confirmed, rather than have them silently wait for a reconnect.
    """

    def __init__(self, url: str, *, publish_timeout: float) -> None:
        self._url = url
        self._timeout = publish_timeout
        self._connection: AbstractConnection | None = None
        self._channel: aiormq.Channel | None = None
        self._lock = asyncio.Lock()

    async def _ensure_channel(self) -> aiormq.Channel:
        async with self._lock:
            if self._channel is not None and not self._channel.is_closed:
                return self._channel
            await self._drop()
            try:
                # aio-pika's own connect timeout does not cover every step of the
                # handshake (seen: a socket reset mid-handshake hung it for good).
                async with asyncio.timeout(self._timeout):
                    self._connection = await aio_pika.connect(self._url, timeout=self._timeout)
                    channel = await self._connection.channel(
                        publisher_confirms=True, on_return_raises=True
                    )
                    await declare_exchange(channel)
                    # Publishes go straight to aio-pika's underlying aiormq channel: the
                    # same frames and confirms, without an aio_pika.Message per row.
                    underlay = await channel.get_underlay_channel()
            except Exception as exc:
                # Any failure to connect means "unavailable": besides OSError and AMQP
                # errors, aiormq has been seen to raise StopAsyncIteration when the
                # socket is reset mid-handshake.
                await self._drop()  # a connection whose channel never opened
                raise BrokerUnavailableError(f"cannot reach RabbitMQ: {exc!r}") from exc
            assert isinstance(underlay, aiormq.Channel)  # for basic_publish(wait=False)
            self._channel = underlay
            logger.info("connected to RabbitMQ", extra={"exchange": EXCHANGE})
            return self._channel

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> PublishResult:
        """Publish every message at once and wait for all confirms (or the deadline)."""
        channel = await self._ensure_channel()
        try:
            if supports_frame_batches(channel):
                confirms = await publish_frames(channel, messages)
            else:
                confirms = [asyncio.ensure_future(self._publish(channel, m)) for m in messages]
        except Exception as exc:  # the channel closed under us, or worse: start afresh
            await self._drop()
            return PublishResult(broken=exc)
        # One deadline for the whole batch bounds every publish in it (aio-pika can wait
        # forever for a confirm on a connection that died silently).
        _, late = await asyncio.wait(confirms, timeout=self._timeout)
        for confirm in late:
            confirm.cancel()
        outcomes = await asyncio.gather(*confirms, return_exceptions=True)
        result = PublishResult()
        for message, outcome in zip(messages, outcomes, strict=True):
            if isinstance(outcome, DeliveryError):
                result.rejected[message.message_id] = _reason(outcome)
            elif isinstance(outcome, asyncio.CancelledError):
                result.broken = result.broken or TimeoutError(f"no confirm within {self._timeout}s")
            elif isinstance(outcome, BaseException):
                result.broken = result.broken or outcome
            else:
                result.confirmed.append(message.message_id)
        if result.broken is not None:
            # Half-dead connections hang; start from a fresh one next time.
            await self._drop()
        return result

    async def _publish(self, channel: aiormq.Channel, message: OutgoingMessage) -> None:
        await channel.basic_publish(
            message.body,
            exchange=EXCHANGE,
            routing_key=message.event_type,
            properties=properties(message),
            mandatory=True,
            # Do not wait for each frame to reach the socket buffer: only the broker's
            # confirm, awaited by the caller, says anything about the message's fate.
            wait=False,
        )

    async def _drop(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            try:
                await asyncio.wait_for(connection.close(), timeout=2)
            except Exception:  # it is already broken; only release it
                logger.debug("closing a broken connection failed", exc_info=True)

    async def close(self) -> None:
        async with self._lock:
            await self._drop()


def _reason(error: DeliveryError) -> str:
    frame = error.frame
    if isinstance(frame, Basic.Return):
        return f"returned by the broker: {frame.reply_code} {frame.reply_text}"
    return f"rejected by the broker: {type(frame).__name__}"
