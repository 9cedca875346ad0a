"""Outbox rows as AMQP frames: each row checked and marshalled on its own, a batch written
as one frame write on aio-pika's aiormq channel.

Per row, because a row is data: whatever it carries into properties or headers (a 300-byte
correlation id, a header the field table cannot hold) must fail that row alone, with its
reason, and never the batch around it (one oversized correlation id would otherwise block
every later row, the whole batch failing as if the broker were down).

``basic_publish`` costs a task, a lock round, a queue put and a socket write per message;
at thousands of messages a second that, not the broker, is the relay's ceiling. Here the
whole batch is marshalled first, then every delivery tag is registered and the bytes are
queued in one step under the channel lock, exactly as ``basic_publish`` does for one message:
the broker sees the same frames, and its confirms resolve the same per-message futures.

It relies on aiormq's channel attributes (``lock``, ``delivery_tag``, ``confirmations``,
``message_id_delivery_tag``, ``write_queue``), which are not aiormq's API: the publisher
takes this path only on the aiormq versions it was tested on (``publish_path``), and
when ``supports_frame_batches`` finds them; else aiormq's public ``basic_publish``.
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import aiormq
from aiormq.abc import ChannelFrame
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.frame import marshal
from pamqp.header import ContentHeader

from cloudcrm_outbox.brokers.publisher import OutgoingMessage
from cloudcrm_outbox.events import MAX_BODY_BYTES

PERSISTENT = 2
# AMQP 0-9-1 §4.2.5.5: field (header) names are at most 128 bytes; pamqp silently
# truncates longer ones, which would rename the header, so such a row is refused instead.
MAX_HEADER_NAME_BYTES = 128
# A frame's end octet and type/channel/size prefix (AMQP 0-9-1 §4.2.3).
FRAME_OVERHEAD = 8
_REQUIRED = ("lock", "delivery_tag", "confirmations", "message_id_delivery_tag", "write_queue")


class UnpublishableError(Exception):
    """This row can never be published as it is (its own fault, not the broker's)."""


def supports_frame_batches(channel: aiormq.Channel) -> bool:
    return all(hasattr(channel, name) for name in _REQUIRED)


def properties(message: OutgoingMessage, user_id: str | None = None) -> Basic.Properties:
    """The contract's message properties for one outbox row; ``user_id``: the publishing
    connection's user, which RabbitMQ checks (its "validated user-id") so that consumers
    can trust who published."""
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
        user_id=user_id,
    )


def _refuse_non_finite(value: object) -> None:
    # JSON's 1e999 reads as infinity: pamqp encodes it, and RabbitMQ then closes the whole
    # connection (541 INTERNAL_ERROR), which would look like an outage and block every row.
    if isinstance(value, float) and not math.isfinite(value):
        raise UnpublishableError(f"header value {value} is not a finite number")
    if isinstance(value, dict):
        for item in value.values():
            _refuse_non_finite(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_non_finite(item)


def encode(
    message: OutgoingMessage,
    *,
    channel_number: int,
    frame_max: int,
    exchange: str,
    user_id: str | None = None,
) -> bytes:
    """The marshalled frames (publish, content header, body) of one row.

    ``frame_max``: the connection's negotiated frame size in bytes; the content header
    must fit in one frame (AMQP 0-9-1 §4.2.6.1), or RabbitMQ closes the whole connection.
    Raises UnpublishableError naming what does not fit: a body over the consumers'
    64 KiB, a header name over 128 bytes, a routing key, type or correlation id over an
    AMQP short string's 255 bytes, a value the field table cannot encode, properties
    larger than a frame.
    """
    body = message.body
    if len(body) > MAX_BODY_BYTES:
        raise UnpublishableError(
            f"body of {len(body)} bytes is over the {MAX_BODY_BYTES}-byte limit consumers accept"
        )
    size = frame_max - FRAME_OVERHEAD
    try:
        for name in message.headers:
            if len(name.encode()) > MAX_HEADER_NAME_BYTES:
                raise UnpublishableError(
                    f"header name {name[:40]!r}... is over AMQP's {MAX_HEADER_NAME_BYTES} bytes"
                )
        _refuse_non_finite(message.headers)
        publish = marshal(
            Basic.Publish(exchange=exchange, routing_key=message.route, mandatory=True),
            channel_number,
        )
        header = marshal(
            ContentHeader(properties=properties(message, user_id), body_size=len(body)),
            channel_number,
        )
    except (TypeError, ValueError, OverflowError, struct.error, UnicodeError) as exc:
        raise UnpublishableError(f"cannot be encoded as AMQP: {exc}") from exc
    except RecursionError as exc:  # pamqp encodes nested values recursively
        raise UnpublishableError("cannot be encoded as AMQP: headers nested too deeply") from exc
    if len(header) > frame_max:
        raise UnpublishableError(
            f"properties and headers take {len(header)} bytes, over the broker's "
            f"{frame_max}-byte frame"
        )
    chunks = (body[start : start + size] for start in range(0, len(body), size))
    return b"".join([publish, header, *(marshal(ContentBody(c), channel_number) for c in chunks)])


@dataclass(frozen=True, slots=True)
class Encoded:
    """One row's frames for a channel, ready to write."""

    message: OutgoingMessage
    payload: bytes


def encode_for(
    channel: aiormq.Channel, message: OutgoingMessage, exchange: str, user_id: str | None = None
) -> Encoded:
    """``message`` marshalled for ``channel`` (its number and the connection's frame size).

    Raises UnpublishableError (see ``encode``)."""
    frame_max = channel.max_content_size + FRAME_OVERHEAD
    frames = encode(
        message,
        channel_number=channel.number,
        frame_max=frame_max,
        exchange=exchange,
        user_id=user_id,
    )
    return Encoded(message, frames)


def _forget(channel: aiormq.Channel, message_id: str, tag: int, _: asyncio.Future[Any]) -> None:
    if channel.message_id_delivery_tag.get(message_id) == tag:
        channel.message_id_delivery_tag.pop(message_id)


async def publish_frames(
    channel: aiormq.Channel, encoded: Sequence[Encoded]
) -> list[asyncio.Future[Any]]:
    """Send the ``encoded`` rows; returns one confirmation future per row, in order.

    A future resolves to ``Basic.Ack``, fails with ``DeliveryError`` (nack, or returned as
    unroutable), or fails with a channel/connection error when the channel closes first.
    """
    payload = ChannelFrame(payload=b"".join(item.payload for item in encoded), should_close=False)
    async with channel.lock:
        first_tag = channel.delivery_tag + 1
        futures: list[asyncio.Future[Any]] = []
        for offset, item in enumerate(encoded):
            tag = first_tag + offset
            future = channel.create_future()
            channel.confirmations[tag] = future
            message_id = str(item.message.message_id)
            channel.message_id_delivery_tag[message_id] = tag
            future.add_done_callback(partial(_forget, channel, message_id, tag))
            futures.append(future)
        channel.delivery_tag += len(encoded)
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
