"""A batch of publishes written as one frame write on aio-pika's aiormq channel.

``basic_publish`` costs a task, a lock round, a queue put and a socket write per message;
at thousands of messages a second that, not the broker, is the relay's ceiling. Here the
whole batch is marshalled first, then every delivery tag is registered and the bytes are
queued in one step under the channel lock, exactly as ``basic_publish`` does for one message:
the broker sees the same frames, and its confirms resolve the same per-message futures.

It relies on aiormq's channel attributes (``lock``, ``delivery_tag``, ``confirmations``,
``message_id_delivery_tag``, ``write_queue``); ``supports_frame_batches`` checks them, and
the publisher falls back to ``basic_publish`` when they are missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial
from typing import Any

import aiormq
from aiormq.abc import ChannelFrame
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from app.outbox.publisher import EXCHANGE, OutgoingMessage

PERSISTENT = 2
_REQUIRED = ("lock", "delivery_tag", "confirmations", "message_id_delivery_tag", "write_queue")


def supports_frame_batches(channel: aiormq.Channel) -> bool:
    return all(hasattr(channel, name) for name in _REQUIRED)


def properties(message: OutgoingMessage) -> Basic.Properties:
    """The contract's message properties for one outbox row."""
    headers: dict[str, Any] = dict(message.headers)
    correlation_id = headers.pop("correlation_id", None)
    return Basic.Properties(
        message_id=str(message.message_id),
        message_type=message.event_type,
        content_type="application/json",
        delivery_mode=PERSISTENT,
        timestamp=message.created_at,
        correlation_id=correlation_id,
        headers=headers or None,
    )


def _frames(channel: aiormq.Channel, message: OutgoingMessage) -> list[Any]:
    body = message.body
    size = channel.max_content_size
    return [
        Basic.Publish(exchange=EXCHANGE, routing_key=message.event_type, mandatory=True),
        ContentHeader(properties=properties(message), body_size=len(body)),
        *(ContentBody(body[start : start + size]) for start in range(0, len(body), size)),
    ]


def _forget(channel: aiormq.Channel, message_id: str, tag: int, _: asyncio.Future[Any]) -> None:
    if channel.message_id_delivery_tag.get(message_id) == tag:
        channel.message_id_delivery_tag.pop(message_id)


async def publish_frames(
    channel: aiormq.Channel, messages: Sequence[OutgoingMessage]
) -> list[asyncio.Future[Any]]:
    """Send ``messages``; returns one confirmation future per message, in order.

    A future resolves to ``Basic.Ack``, fails with ``DeliveryError`` (nack, or returned as
    unroutable), or fails with a channel/connection error when the channel closes first.
    """
    # Marshal before touching any channel state: a failure here leaves the channel as it
    # was, so delivery tags never drift from what the broker counts.
    frames = [frame for message in messages for frame in _frames(channel, message)]
    payload = ChannelFrame.marshall(channel_number=channel.number, frames=frames)
    async with channel.lock:
        first_tag = channel.delivery_tag + 1
        futures: list[asyncio.Future[Any]] = []
        for offset, message in enumerate(messages):
            tag = first_tag + offset
            future = channel.create_future()
            channel.confirmations[tag] = future
            message_id = str(message.message_id)
            channel.message_id_delivery_tag[message_id] = tag
            future.add_done_callback(partial(_forget, channel, message_id, tag))
            futures.append(future)
        channel.delivery_tag += len(messages)
        try:
            await channel.write_queue.put(payload)
        except BaseException:
            # Nothing was queued, so the broker never saw these tags: take them back.
            channel.delivery_tag = first_tag - 1
            for offset, future in enumerate(futures):
                channel.confirmations.pop(first_tag + offset, None)
                future.cancel()
            raise
    return futures
