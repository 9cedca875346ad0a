"""Declaring a RabbitMQ queue or exchange, and saying in words why RabbitMQ refused it;
adopting, with a warning, a queue an earlier release declared with other arguments (a
queue's arguments can never change while it exists)."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import TypeVar

from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractQueue
from aiormq.exceptions import ChannelAccessRefused, ChannelNotFoundEntity, ChannelPreconditionFailed
from pamqp.common import FieldValue

from cloudcrm_outbox.errors import TopologyAccessRefusedError, TopologyConflictError
from cloudcrm_outbox.logs import library_logger

logger = library_logger(__name__)

T = TypeVar("T")

_INEQUIVALENT = re.compile(r"inequivalent arg '([^']+)'")
_ADOPTION_NOTES = {
    "x-delivery-limit": "its delivery limit still applies beside the consumer's own",
    "x-overflow": "until then a length limit on it drops dead letters instead of refusing them",
}


async def declare_queue(
    connection: AbstractConnection,
    channel: AbstractChannel,
    name: str,
    arguments: dict[str, FieldValue],
    *,
    earlier: dict[str, dict[str, FieldValue] | None],
) -> tuple[AbstractChannel, AbstractQueue]:
    """Declare quorum queue ``name``; returns it and the channel to go on with (a new one
    when a queue of an earlier release was adopted, since a refused declaration closes its
    channel). ``earlier``: by the argument in which such a queue differs, the arguments
    that release declared it with (None: used as it is)."""
    try:
        return channel, await channel.declare_queue(name, durable=True, arguments=arguments)
    except ChannelAccessRefused as exc:
        raise conflict(f"queue {name}", exc) from exc
    except ChannelPreconditionFailed as exc:
        found = _INEQUIVALENT.search(str(exc))
        if found is None or found.group(1) not in earlier:
            raise conflict(f"queue {name}", exc) from exc
        return await _adopt(connection, name, found.group(1), earlier[found.group(1)])


async def _adopt(
    connection: AbstractConnection,
    name: str,
    differing: str,
    as_declared: dict[str, FieldValue] | None,
) -> tuple[AbstractChannel, AbstractQueue]:
    """Queue ``name`` of an earlier release, on a fresh channel, with a warning; declared
    ``as_declared`` (a passive declaration when None). Raises TopologyConflictError when
    it differs in more than ``differing``."""
    fresh = await connection.channel()
    try:
        if as_declared is None:
            queue = await fresh.declare_queue(name, durable=True, passive=True)
        else:
            queue = await fresh.declare_queue(name, durable=True, arguments=as_declared)
    except ChannelPreconditionFailed as exc:
        raise conflict(f"queue {name}", exc) from exc
    logger.warning(
        "queue declared by an earlier release (%s differs); using it as it is: delete it "
        "once empty and restart to declare it as this release does (%s)",
        differing,
        _ADOPTION_NOTES.get(differing, ""),
        extra={"queue": name},
    )
    return fresh, queue


async def refusable(what: str, declaration: Awaitable[T]) -> T:
    """``declaration``'s result; raises TopologyConflictError naming ``what`` when RabbitMQ
    refuses it (406, 403, 404)."""
    try:
        return await declaration
    except (ChannelPreconditionFailed, ChannelAccessRefused, ChannelNotFoundEntity) as exc:
        raise conflict(what, exc) from exc


def conflict(what: str, exc: Exception) -> TopologyConflictError:
    """RabbitMQ's refusal ``exc`` of ``what`` in words (TopologyAccessRefusedError for a
    403: an account that may not configure)."""
    if isinstance(exc, ChannelAccessRefused):
        return TopologyAccessRefusedError(
            f"this account may not declare {what}: {exc.args[-1] if exc.args else exc!r}"
        )
    return TopologyConflictError(
        f"RabbitMQ refused to declare {what}: {exc.args[-1] if exc.args else exc!r}. "
        "It exists with other settings, or this user may not configure it: delete or "
        "rename it, or grant the permission, then start again"
    )
