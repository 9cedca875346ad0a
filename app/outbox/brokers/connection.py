"""The consumer's view of a broker connection, so RabbitMQ and the in-memory broker both fit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol


class Delivery(Protocol):
    """One delivered message: the fields of aio-pika's IncomingMessage the consumer reads."""

    @property
    def body(self) -> bytes: ...
    @property
    def message_id(self) -> str | None: ...
    @property
    def type(self) -> str | None: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def headers(self) -> Mapping[str, Any]: ...
    @property
    def routing_key(self) -> str | None: ...
    @property
    def correlation_id(self) -> str | None: ...
    @property
    def timestamp(self) -> datetime | None: ...
    @property
    def delivery_tag(self) -> int | None: ...
    @property
    def user_id(self) -> str | None: ...

    async def ack(self, multiple: bool = False) -> None: ...
    async def nack(self, multiple: bool = False, requeue: bool = True) -> None: ...


class DeadLetterRefusedError(Exception):
    """The broker did not take a poison message's dead-letter copy: returned (no queue
    bound to ``S.events.dlx``, e.g. ``S.events.dlq`` deleted) or nacked (the DLQ refused
    it, e.g. full with ``overflow: reject-publish``). The broker's fault, not the
    message's: the original is left unacked."""


class ConsumerConnection(Protocol):
    """One connection's worth of consuming ``S.events``."""

    inbound: asyncio.Queue[Delivery]  # deliveries, in delivery order
    lost: asyncio.Future[None]  # resolves when the connection is gone

    async def dead_letter(self, message: Delivery, reason: str) -> None:
        """Put ``message`` in ``S.events.dlq`` with ``reason`` (confirmed), then ack it.
        Raises DeadLetterRefusedError, ``message`` left unacked, when the broker did not
        take the copy."""
        ...

    async def stop_receiving(self) -> None:
        """Ask for no more deliveries (those already received stay in ``inbound``)."""
        ...


ConnectionOpener = Callable[[], AbstractAsyncContextManager[ConsumerConnection]]
