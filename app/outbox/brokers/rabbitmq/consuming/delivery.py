"""A delivery read straight from aiormq: the consumer's hot path without aio-pika's
``IncomingMessage`` (which copies every property of every message into a new object,
through a chain of wrappers, for fields the consumer never reads)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiormq.abc import DeliveredMessage


class LeanDelivery:
    """One delivered message, its properties read on demand from the frame aiormq parsed;
    ``ack``/``nack`` go to the channel it came on (AMQP 0-9-1 basic.ack / basic.nack).
    Satisfies ``consumer_connection.Delivery``."""

    __slots__ = ("_message", "_properties", "body", "delivery_tag", "redelivered", "routing_key")

    def __init__(self, message: DeliveredMessage) -> None:
        self._message = message
        self._properties = message.header.properties
        self.body: bytes = message.body
        self.delivery_tag: int | None = message.delivery_tag
        self.routing_key: str | None = message.routing_key
        # False on a first delivery: its x-delivery-count cannot be believed.
        self.redelivered: bool = bool(message.redelivered)

    @property
    def message_id(self) -> str | None:
        return self._properties.message_id

    @property
    def type(self) -> str | None:
        return self._properties.message_type

    @property
    def content_type(self) -> str | None:
        return self._properties.content_type

    @property
    def headers(self) -> Mapping[str, Any]:
        return self._properties.headers or {}

    @property
    def correlation_id(self) -> str | None:
        return self._properties.correlation_id

    @property
    def timestamp(self) -> datetime | None:
        return self._properties.timestamp

    @property
    def user_id(self) -> str | None:
        return self._properties.user_id

    async def ack(self, multiple: bool = False) -> None:
        """Acknowledge this delivery (and, with ``multiple``, every earlier one)."""
        assert self.delivery_tag is not None  # consumed with acks: always tagged
        await self._message.channel.basic_ack(self.delivery_tag, multiple=multiple)

    async def nack(self, multiple: bool = False, requeue: bool = True) -> None:
        """Reject this delivery (``requeue``: back to the queue, else dead-lettered)."""
        assert self.delivery_tag is not None
        await self._message.channel.basic_nack(
            self.delivery_tag, multiple=multiple, requeue=requeue
        )
