"""Several RabbitMQ nodes behind one broker URL: ``amqp://…@node1:5672/,amqp://…@node2:5672/``.

A cluster's clients are expected to know more than one node and move to the next when the
one they use goes away (RabbitMQ docs, "Clustering and Client Connections"); aio-pika
takes one URL. So every connection of the outbox's processes goes through ``connect``:
it tries the nodes in turn, starting with the one that last answered, each within its own
timeout, and raises the last error when none answers. Nothing else changes: a process
already reconnects after any connection loss (the relay rolls its batch back, the
consumer's unacked deliveries are redelivered), and the next connect finds a live node.
Quorum queues keep their messages on a majority of the nodes, so a node's loss loses
nothing that was confirmed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from yarl import URL

from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.urls import split_urls

if TYPE_CHECKING:
    from aio_pika.abc import AbstractConnection

logger = library_logger(__name__)

SCHEMES = ("amqp://", "amqps://")
# Seconds each node gets when the caller names no timeout.
DEFAULT_NODE_TIMEOUT = 10.0
# The AMQP heartbeat asked for when the URL names none (``?heartbeat=N`` wins). A
# connection gone dark (a dropped NAT mapping, a failed-over balancer: bytes swallowed,
# nothing closed) is noticed only by missed heartbeats: RabbitMQ after two intervals,
# aiormq after three and a bit. With RabbitMQ's own 60 s a consumer sat on such a
# connection for about three minutes while RabbitMQ kept delivering to it; RabbitMQ's docs
# ("Detecting Dead TCP Connections with Heartbeats") find 5 to 20 s right for most setups.
DEFAULT_HEARTBEAT_SECONDS = 10

# The node that answered last, per broker URL: tried first next time (a live node stays in
# use; the list's order is only where to start).
_last_good: dict[str, int] = {}


def node_urls(url: str) -> list[str]:
    """The AMQP URLs in ``url`` (comma-separated; spaces around commas ignored). Raises
    ValueError when one is not an ``amqp://`` or ``amqps://`` URL, or none is given."""
    nodes = split_urls(url)
    if not nodes:
        raise ValueError("no RabbitMQ URL given")
    for node in nodes:
        shown = node.split("@")[-1]  # never the credentials
        if not node.lower().startswith(SCHEMES):
            raise ValueError(f"not an amqp:// or amqps:// URL: {shown!r}")
        try:
            parsed = URL(node)
            port = parsed.port
        except ValueError as exc:
            raise ValueError(f"not a valid AMQP URL ({exc}): {shown!r}") from None
        if not parsed.host or (port is not None and not 0 < port < 65536):
            raise ValueError(f"an AMQP URL needs a host (and a port from 1 to 65535): {shown!r}")
    return nodes


def user_of(url: str) -> str:
    """The user name the connections to ``url`` log in as (aio-pika's default: guest)."""
    return URL(node_urls(url)[0]).user or "guest"


def where(url: str) -> str:
    """The nodes of ``url`` as host:port/vhost, without credentials, for a log line."""
    return ",".join(node.split("@")[-1] for node in node_urls(url))


def with_heartbeat(node: str) -> URL:
    """``node`` (one AMQP URL) asking for ``DEFAULT_HEARTBEAT_SECONDS`` unless it names
    its own ``heartbeat``."""
    parsed = URL(node)
    if "heartbeat" in parsed.query:
        return parsed
    return parsed.update_query(heartbeat=DEFAULT_HEARTBEAT_SECONDS)


def node_count(url: str) -> int:
    """How many nodes ``url`` names (1 for a plain URL)."""
    return len(node_urls(url))


async def connect(url: str, *, node_timeout: float | None = None) -> AbstractConnection:
    """An open aio-pika connection to the first node of ``url`` that answers, each node
    tried within ``node_timeout`` seconds (default 10). Raises the last node's error."""
    # aio-pika is imported here, not at the top: reading a URL (settings, logs) needs none.
    import aio_pika

    from cloudcrm_outbox.brokers.rabbitmq import reading as amqp_reading

    nodes = node_urls(url)
    amqp_reading.install()  # no single message may end the connection (amqp_reading)
    per_node = DEFAULT_NODE_TIMEOUT if node_timeout is None else node_timeout
    first = _last_good.get(url, 0) % len(nodes)
    last_error: BaseException | None = None
    for step in range(len(nodes)):
        index = (first + step) % len(nodes)
        try:
            async with asyncio.timeout(per_node):
                connection = await aio_pika.connect(with_heartbeat(nodes[index]), timeout=per_node)
        except Exception as exc:  # OSError, a refused login, a reset handshake, a timeout
            last_error = exc
            if len(nodes) > 1:
                logger.info(
                    "RabbitMQ node unavailable; trying the next",
                    extra={"node": nodes[index].split("@")[-1], "error": repr(exc)[:200]},
                )
            continue
        if index != _last_good.get(url, 0) and len(nodes) > 1:
            logger.warning(
                "connected to another RabbitMQ node", extra={"node": where(nodes[index])}
            )
        _last_good[url] = index
        return connection
    assert last_error is not None
    raise last_error
