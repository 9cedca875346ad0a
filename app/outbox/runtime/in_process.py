"""Relays and consumers as tasks of the calling process: for a FastAPI lifespan (``dev``,
a small service, a test) instead of separate ``relay`` and ``consume`` processes.

    async with in_process(broker, [MessagingService("orders", engine, SUBSCRIPTIONS)]):
        yield  # the app serves; each service's outbox is relayed and its queue consumed
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox.brokers.base import Broker
from cloudcrm_outbox.errors import FatalError, TopologyConflictError
from cloudcrm_outbox.inbox.consumer import InboxConsumer
from cloudcrm_outbox.inbox.policy import ConsumerPolicy
from cloudcrm_outbox.inbox.processor import InboxProcessor
from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.names import MessagingNames, QueueBindings
from cloudcrm_outbox.runtime.consumer_process import inbox_consumer
from cloudcrm_outbox.runtime.relay_process import RelayProcessConfig, relay_until
from cloudcrm_outbox.subscriptions import Subscription, by_event_name

logger = library_logger(__name__)


@dataclass(frozen=True)
class MessagingService:
    """One service's side of messaging: its database (outbox and inbox tables in it), what
    it consumes (none: it only publishes), and a libpq DSN to LISTEN on for new outbox
    rows (PostgreSQL; None polls, as on SQLite)."""

    name: str
    engine: AsyncEngine
    subscriptions: Sequence[Subscription] = ()
    listen_dsn: str | None = None

    def bindings(self, names: MessagingNames) -> QueueBindings:
        """Its queue (``NAME.events`` by default) and the event names bound to it."""
        return QueueBindings.of(self.name, (s.name for s in self.subscriptions), names)


@dataclass(frozen=True)
class InProcessConfig:
    """The relays' and consumers' policies (seconds), shared by every service."""

    relay: RelayProcessConfig = field(default_factory=RelayProcessConfig)
    consumer: ConsumerPolicy = field(default_factory=ConsumerPolicy)


@asynccontextmanager
async def in_process(
    broker: Broker,
    services: Sequence[MessagingService],
    *,
    config: InProcessConfig | None = None,
    on_failure: Callable[[str], None] | None = None,
) -> AsyncIterator[None]:
    """Declare every service's queues, then run a relay per service and a consumer per
    service that subscribes to anything, until the block ends (then they finish what
    they hold within the relay's ``shutdown_grace_seconds``). Raises TopologyConflictError
    at entry when the broker refuses a declaration. Tables, queues and the exchange are
    named by ``broker.names`` (``config.relay.names`` is not used here).

    A relay or consumer that stops for good while the block runs (RabbitMQ refused its
    topology: what makes a ``relay`` or ``consume`` process exit 1) is logged as one
    ERROR line and reported to ``on_failure(reason)``, which may stop the host (``dev``
    does); the others go on."""
    config = config or InProcessConfig()
    names = broker.names
    consuming = [service for service in services if service.subscriptions]
    every_queue = [service.bindings(names) for service in consuming]
    await broker.declare(every_queue)
    publisher = broker.publisher(bindings=every_queue)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(
            _reporting(
                _consumer(broker, service, config.consumer).run(stop),
                f"consumer of {service.name}",
                on_failure,
            ),
            name=f"{service.name}-consumer",
        )
        for service in consuming
    ]
    tasks += [
        asyncio.create_task(
            _reporting(
                relay_until(
                    stop,
                    config=config.relay,
                    engine=service.engine,
                    publisher=publisher,
                    listen_dsn=service.listen_dsn,
                    name=service.name,
                    names=names,
                ),
                f"relay of {service.name}",
                on_failure,
            ),
            name=f"{service.name}-relay",
        )
        for service in services
    ]
    logger.info("in-process relays and consumers started", extra={"services": len(services)})
    try:
        yield
    finally:
        stop.set()
        grace = config.relay.shutdown_grace_seconds + 1
        _, unfinished = await asyncio.wait(tasks, timeout=grace)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await publisher.close()


async def _reporting(
    work: Awaitable[None], what: str, on_failure: Callable[[str], None] | None
) -> None:
    """Run ``work``; if it ends with an Exception or a FatalError, log it and tell
    ``on_failure`` instead of re-raising: a FatalError is a SystemExit, which asyncio lets
    out of a task and out of the host's event loop (uvicorn's then ends without its
    shutdown). Cancellation and other BaseExceptions go on as usual."""
    try:
        await work
    except FatalError as exc:  # a SystemExit: would leave the loop (see above)
        reason = exc.message  # already logged as one ERROR line
    except Exception as exc:
        reason = f"{what} stopped: {exc}"
        logger.error(reason, exc_info=not isinstance(exc, TopologyConflictError))
    else:
        return
    if on_failure is not None:
        on_failure(reason)


def _consumer(broker: Broker, service: MessagingService, policy: ConsumerPolicy) -> InboxConsumer:
    index = by_event_name(service.subscriptions)
    return inbox_consumer(
        broker,
        service=service.name,
        processor=InboxProcessor(
            service.engine,
            consumer=service.name,
            subscriptions=index,
            names=broker.names,
            answer_timeout=policy.answer_timeout_seconds,
        ),
        subscriptions=index,
        policy=policy,
    )
