"""Publishing to RabbitMQ with publisher confirms, ``mandatory`` and persistent messages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import aiormq
from aio_pika.abc import AbstractConnection

from cloudcrm_outbox.brokers.publisher import OutgoingMessage, PublishResult
from cloudcrm_outbox.brokers.rabbitmq import nodes as broker_nodes
from cloudcrm_outbox.brokers.rabbitmq.publishing.confirms import (
    refused_for_itself,
    refused_over,
    settle,
)
from cloudcrm_outbox.brokers.rabbitmq.publishing.frames import (
    Encoded,
    UnpublishableError,
    encode_for,
    properties,
    publish_frames,
    supports_frame_batches,
)
from cloudcrm_outbox.brokers.rabbitmq.publishing.path import (
    PublishPath,
    chosen_publish_path,
    installed_aiormq,
)
from cloudcrm_outbox.brokers.rabbitmq.publishing.retiring import Retiring, close_quietly
from cloudcrm_outbox.brokers.rabbitmq.topology import declare_topology
from cloudcrm_outbox.errors import (
    BrokerUnavailableError,
    TopologyAccessRefusedError,
    TopologyConflictError,
)
from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.names import DEFAULT_NAMES, QueueBindings

logger = library_logger(__name__)

# After a NO_ROUTE the topology is declared again (a queue may have been deleted), but
# not more often than this: an event nobody subscribes to must not cost a declare a batch.
REDECLARE_INTERVAL_SECONDS = 5.0
# After a nack the channel is replaced (see publish_batch), but not more often than this.
RENEW_INTERVAL_SECONDS = 5.0


class AmqpPublisher:
    """One connection and channel, opened on first use and again after any failure.

    A plain (not robust) connection: when it breaks, the relay must know at once which
    publishes were confirmed, rather than have them silently wait for a reconnect.
    """

    def __init__(
        self,
        url: str,
        *,
        publish_timeout: float,
        bindings: Sequence[QueueBindings] = (),
        exchange: str = DEFAULT_NAMES.exchange,
        publish_path: PublishPath = "auto",
    ) -> None:
        """Publishes to the topic ``exchange`` (routing key: the event name), confirms
        awaited at most ``publish_timeout`` seconds. ``bindings``: the queues that consume
        what this relay publishes; declared (with the exchange) on every connect and after
        a NO_ROUTE, so that no event is returned for want of a queue that was never
        declared or was deleted. ``publish_path``: how batches are written (see
        ``publish_path.chosen_publish_path``; logged once here). Raises ValueError for an
        unknown ``publish_path``."""
        self._url = url
        # Every message says who published it; RabbitMQ refuses a user_id that is not the
        # connection's user, so consumers can trust it (aio-pika's default login: guest).
        self._user_id = broker_nodes.user_of(url)
        self._nodes = broker_nodes.node_count(url)
        self._exchange = exchange
        self._timeout = publish_timeout
        self._bindings = tuple(bindings)
        self._connection: AbstractConnection | None = None
        self._channel: aiormq.Channel | None = None
        self._lock = asyncio.Lock()
        self._retiring = Retiring()
        self._renew = False  # replace the connection before the next batch (after a nack)
        self._renewed_at = float("-inf")
        self._redeclare = False
        self._declared_at = 0.0
        self._may_declare = True
        choice = chosen_publish_path(publish_path, installed_aiormq())
        self._fast = choice.path == "fast"
        described = (
            "fast (batched frames on aiormq's channel)"
            if self._fast
            else "public (aiormq's Channel.basic_publish, pipelined)"
        )
        log = logger.warning if choice.untested else logger.info
        log(f"relay publish path: {described}: {choice.reason}")

    @property
    def problem(self) -> str | None:
        """Why the relay could not publish now (its connection closed under it); None
        when connected, or not connected yet (it connects on its first publish)."""
        if self._connection is not None and self._connection.is_closed:
            return "the broker connection is closed"
        if self._channel is not None and self._channel.is_closed:
            return "the broker channel is closed"
        return None

    async def _ensure_channel(self) -> aiormq.Channel:
        async with self._lock:
            if self._renew and self._connection is not None:
                # Not closed under a batch another worker still waits on: after it.
                await self._retiring.retire(self._connection)
                self._connection = self._channel = None
            self._renew = False
            if self._channel is not None and not self._channel.is_closed:
                await self._declare_again_after_no_route()
                return self._channel
            await self._drop()
            try:
                # aio-pika's own connect timeout does not cover every step of the
                # handshake (seen: a socket reset mid-handshake hung it for good).
                # Each node within the timeout, and the declarations after the last.
                async with asyncio.timeout(self._timeout * (self._nodes + 1)):
                    self._connection = await broker_nodes.connect(
                        self._url, node_timeout=self._timeout
                    )
                    await self._declare(self._connection)
                    channel = await self._connection.channel(
                        publisher_confirms=True, on_return_raises=True
                    )
                    # Publishes go straight to aio-pika's underlying aiormq channel: the
                    # same frames and confirms, without an aio_pika.Message per row.
                    underlay = await channel.get_underlay_channel()
            except TopologyConflictError:
                await self._drop()
                raise  # refused, not unavailable: a retry cannot help
            except Exception as exc:
                # Any failure to connect means "unavailable": besides OSError and AMQP
                # errors, aiormq has been seen to raise StopAsyncIteration when the
                # socket is reset mid-handshake.
                await self._drop()  # a connection whose channel never opened
                raise BrokerUnavailableError(f"cannot reach RabbitMQ: {exc!r}") from exc
            assert isinstance(underlay, aiormq.Channel)  # for basic_publish(wait=False)
            self._channel = underlay
            logger.info("connected to RabbitMQ", extra={"exchange": self._exchange})
            return self._channel

    async def _declare(self, connection: AbstractConnection) -> None:
        if self._may_declare:
            try:
                await declare_topology(connection, self._bindings, exchange=self._exchange)
            except TopologyAccessRefusedError as exc:
                # A least-privilege account: the topology is `broker declare`'s to make.
                self._may_declare = False
                logger.info("not declaring the topology: %s", exc)
        self._redeclare = False
        self._declared_at = time.monotonic()

    async def _declare_again_after_no_route(self) -> None:
        if not self._redeclare or self._connection is None:
            return
        if time.monotonic() - self._declared_at < REDECLARE_INTERVAL_SECONDS:
            return
        logger.warning("events were returned unroutable; declaring the topology again")
        try:
            async with asyncio.timeout(self._timeout):
                await self._declare(self._connection)
        except TopologyConflictError:
            raise
        except Exception as exc:
            await self._drop()
            raise BrokerUnavailableError(f"cannot declare the topology: {exc!r}") from exc

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> PublishResult:
        """Publish every message at once and wait for all confirms (or the deadline).

        A message that cannot be encoded is rejected alone (its own fault) and the rest
        are published. If the broker closes the channel over one message
        (406 PRECONDITION_FAILED, e.g. over its maximum message size), the unconfirmed
        ones are published again one at a time, so only that message is rejected.
        """
        channel = await self._ensure_channel()
        connection = self._connection  # the channel's: no await since it was chosen
        assert connection is not None
        result = PublishResult()
        sendable: list[Encoded] = []
        for message in messages:
            try:
                sendable.append(encode_for(channel, message, self._exchange, self._user_id))
            except UnpublishableError as exc:
                result.rejected[message.message_id] = f"unpublishable: {exc}"
        if not sendable:
            return result
        self._retiring.begin(connection)
        try:
            outcome = await self._send(channel, connection, sendable)
        finally:
            await self._retiring.end(connection)
        result.confirmed += outcome.confirmed
        result.rejected.update(outcome.rejected)
        result.unroutable.update(outcome.unroutable)
        result.nacked.update(outcome.nacked)
        result.broken = outcome.broken
        if result.unroutable:
            self._redeclare = True
        if outcome.nacked and outcome.broken is None:
            # A channel's nacks may outlive their cause: RabbitMQ 3.10 keeps nacking every
            # publish of a channel whose first one reached a quorum queue between two
            # leaders (its enqueuer never registered; seen when a cluster node stopped).
            # A fresh connection and channel start that registration afresh.
            # At most once per interval: a queue that stays full nacks batch after batch.
            renewed_long_ago = time.monotonic() - self._renewed_at >= RENEW_INTERVAL_SECONDS
            if renewed_long_ago and self._connection is connection:
                logger.warning(
                    "RabbitMQ nacked messages; a new channel before the next batch",
                    extra={"nacked": len(outcome.nacked)},
                )
                self._renew, self._renewed_at = True, time.monotonic()
        if outcome.broken is not None and refused_for_itself(outcome.broken):
            if len(sendable) == 1:
                only = sendable[0].message
                if refused_over(only.route, outcome.broken):
                    result.rejected[only.message_id] = f"refused by the broker: {outcome.broken}"
                    result.broken = None
                # Else another worker's message closed the shared channel: fate unknown.
            else:
                await self._one_by_one(sendable, outcome, result)
        return result

    async def _one_by_one(
        self, sendable: list[Encoded], outcome: PublishResult, result: PublishResult
    ) -> None:
        """The broker closed the channel over one message of the batch: publish the
        unsettled ones again alone, so only that one is refused (into ``result``)."""
        settled = {*outcome.confirmed, *outcome.rejected, *outcome.unroutable, *outcome.nacked}
        rest = [item.message for item in sendable if item.message.message_id not in settled]
        logger.warning(
            "the broker refused a message of the batch; publishing the rest one by one",
            extra={"error": repr(outcome.broken)[:300], "messages": len(rest)},
        )
        result.broken = None
        for message in rest:
            alone = await self.publish_batch([message])
            result.confirmed += alone.confirmed
            result.rejected.update(alone.rejected)
            result.unroutable.update(alone.unroutable)
            result.nacked.update(alone.nacked)
            if alone.broken is not None:
                result.broken = alone.broken
                break

    async def _send(
        self, channel: aiormq.Channel, connection: AbstractConnection, encoded: list[Encoded]
    ) -> PublishResult:
        try:
            if self._fast and supports_frame_batches(channel):
                confirms = await publish_frames(channel, encoded)
            else:
                confirms = [
                    asyncio.ensure_future(self._publish(channel, item.message)) for item in encoded
                ]
        except Exception as exc:  # the channel closed under us, or worse: start afresh
            await self._drop(connection)
            return PublishResult(broken=exc)
        # One deadline for the whole batch bounds every publish in it (aio-pika can wait
        # forever for a confirm on a connection that died silently).
        _, late = await asyncio.wait(confirms, timeout=self._timeout)
        for confirm in late:
            confirm.cancel()
        outcomes = await asyncio.gather(*confirms, return_exceptions=True)
        result = settle(encoded, outcomes, timeout=self._timeout)
        if result.broken is not None:
            # Half-dead connections hang; start from a fresh one next time.
            await self._drop(connection)
        return result

    async def _publish(self, channel: aiormq.Channel, message: OutgoingMessage) -> None:
        await channel.basic_publish(
            message.body,
            exchange=self._exchange,
            routing_key=message.route,
            properties=properties(message, self._user_id),
            mandatory=True,
            # Do not wait for each frame to reach the socket buffer: only the broker's
            # confirm, awaited by the caller, says anything about the message's fate.
            wait=False,
        )

    async def _drop(self, broken: AbstractConnection | None = None) -> None:
        """Close the current connection; with ``broken``, that one (the current one only
        if it still is: another worker may have opened a new one meanwhile)."""
        connection = broken or self._connection
        if connection is self._connection:
            self._connection, self._channel = None, None
        if connection is not None:
            await close_quietly(connection)

    async def close(self) -> None:
        async with self._lock:
            await self._drop()
