"""Reading a batch's publisher confirms: what RabbitMQ confirmed, returned or refused."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

from aiormq.exceptions import ChannelAccessRefused, ChannelPreconditionFailed, DeliveryError
from pamqp.commands import Basic

from cloudcrm_outbox.brokers.publisher import NACKED_PREFIX, PublishResult
from cloudcrm_outbox.brokers.rabbitmq.publishing.frames import Encoded

NO_ROUTE = 312


def settle(
    encoded: Sequence[Encoded], outcomes: Sequence[object], *, timeout: float
) -> PublishResult:
    """Each message's fate from its confirm's outcome (in ``encoded``'s order): confirmed,
    returned unroutable (312 NO_ROUTE), nacked (basic.nack), rejected (another return),
    or, for a cancelled wait (no confirm within ``timeout`` seconds) or a connection
    error, the batch marked ``broken``."""
    result = PublishResult()
    for item, outcome in zip(encoded, outcomes, strict=True):
        message_id = item.message.message_id
        if isinstance(outcome, DeliveryError):
            if _is_no_route(outcome):
                result.unroutable[message_id] = _reason(outcome)
            elif isinstance(outcome.frame, Basic.Nack):
                result.nacked[message_id] = _reason(outcome)
            else:
                result.rejected[message_id] = _reason(outcome)
        elif isinstance(outcome, asyncio.CancelledError):
            result.broken = result.broken or TimeoutError(f"no confirm within {timeout}s")
        elif isinstance(outcome, BaseException):
            result.broken = result.broken or outcome
        else:
            result.confirmed.append(message_id)
    return result


def _is_no_route(error: DeliveryError) -> bool:
    # 312 NO_ROUTE (AMQP 0-9-1 reply codes): a mandatory message no queue is bound for.
    return isinstance(error.frame, Basic.Return) and error.frame.reply_code == NO_ROUTE


def _reason(error: DeliveryError) -> str:
    frame = error.frame
    if isinstance(frame, Basic.Return):
        return f"returned by the broker: {frame.reply_code} {frame.reply_text}"
    if isinstance(frame, Basic.Nack):
        return f"{NACKED_PREFIX} (a queue could not take it now)"
    return f"rejected by the broker: {type(frame).__name__}"


_TOPIC = re.compile(r"access to topic '([^']*)'")


def refused_over(routing_key: str, error: BaseException) -> bool:
    """Whether a message published alone with ``routing_key`` is what ``error`` (a
    ``refused_for_itself`` one) refused: a topic refusal names its routing key, and on a
    channel relay workers share it may name another worker's message instead."""
    named = _TOPIC.search(str(error))
    return named is None or named.group(1) == routing_key


def refused_for_itself(error: BaseException | None) -> bool:
    """The broker closed the channel over one message: over a limit (406), or a routing
    key its account's topic permissions do not allow (403 "access to topic …"). A 403 on
    the exchange itself is the account's fault, not the message's: not this."""
    if isinstance(error, ChannelPreconditionFailed):
        return True
    return isinstance(error, ChannelAccessRefused) and "access to topic" in str(error)
