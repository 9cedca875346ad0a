"""The consumer process (``python -m app consume SERVICE``): the loop, inbox retention, and a
clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox.brokers.base import Broker, same_names
from cloudcrm_outbox.errors import FatalError
from cloudcrm_outbox.inbox.consumer import InboxConsumer
from cloudcrm_outbox.inbox.policy import BatchProcessor, ConsumerPolicy
from cloudcrm_outbox.inbox.processor import InboxProcessor
from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames, QueueBindings
from cloudcrm_outbox.observability.health import ProcessHealth
from cloudcrm_outbox.runtime.process import RetentionPolicy, scheduler_with_retention
from cloudcrm_outbox.runtime.skeleton import run_process
from cloudcrm_outbox.storage.engine import make_engine
from cloudcrm_outbox.storage.liveness import TcpKeepalives
from cloudcrm_outbox.storage.retention import delete_old_inbox_rows
from cloudcrm_outbox.subscriptions import Subscription, by_event_name

logger = library_logger(__name__)

FIRST = asyncio.FIRST_COMPLETED


class ConsumerStoppedError(FatalError):
    """The consumer cannot go on (RabbitMQ refused its queues)."""


@dataclass(frozen=True)
class ConsumerProcessConfig:
    """Everything a consumer process needs besides its database and handlers (seconds).

    The lock and statement timeouts apply to every transaction of the consumer's engine
    (PostgreSQL), so that none waits without bound on another's locks; PostgreSQL ends a
    session left idle in a transaction for ``idle_in_transaction_timeout_seconds`` (a
    consumer cut off from its database: its row locks go with it). ``keepalives``: libpq's
    TCP settings. ``names``: its queue's and inbox table's."""

    names: MessagingNames = DEFAULT_NAMES
    consumer: ConsumerPolicy = field(default_factory=ConsumerPolicy)
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    lock_timeout_seconds: float | None = 2.0
    statement_timeout_seconds: float | None = 10.0
    idle_in_transaction_timeout_seconds: float | None = 12.0
    keepalives: TcpKeepalives = field(default_factory=TcpKeepalives)
    startup_timeout_seconds: float = 60.0
    shutdown_grace_seconds: float = 5.0
    probe_port: int | None = None  # /health/live, /health/ready, /metrics; None: none
    probe_host: str = "127.0.0.1"


def consumer_engine(
    config: ConsumerProcessConfig, database_url: str, *, pool_size: int
) -> AsyncEngine:
    """The engine a consumer (and, in ``dev``, a relay) works through, with the config's
    lock, statement and idle-in-transaction timeouts and keepalives."""
    return make_engine(
        database_url,
        pool_size=pool_size,
        pre_ping=False,
        lock_timeout=config.lock_timeout_seconds,
        statement_timeout=config.statement_timeout_seconds,
        idle_in_transaction_timeout=config.idle_in_transaction_timeout_seconds,
        keepalives=config.keepalives,
    )


def inbox_consumer(
    broker: Broker,
    *,
    service: str,
    processor: BatchProcessor,
    subscriptions: Mapping[str, Subscription],
    policy: ConsumerPolicy,
) -> InboxConsumer:
    """An inbox consumer of ``service``'s queue (named by ``broker.names``) on ``broker``."""
    bindings = QueueBindings.of(service, subscriptions, broker.names)
    connections = broker.consumer_connections(bindings, prefetch=policy.prefetch)
    return InboxConsumer(
        open_connection=connections,
        queue=bindings.topology.queue,
        name=service,
        processor=processor,
        subscriptions=subscriptions,
        policy=policy,
    )


async def run_consumer(
    config: ConsumerProcessConfig,
    *,
    broker: Broker,
    service: str,
    database_url: str,
    subscriptions: Sequence[Subscription],
    check_database: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Consume ``service``'s queue on ``broker`` (``broker_for(url)``) into its database
    until SIGTERM/SIGINT; ``check_database`` runs once the database answers (the caller's
    schema check). Raises ValueError when the broker's names are not ``config.names``."""
    same_names(broker, config.names)
    engine = consumer_engine(config, database_url, pool_size=2)

    async def consume(stop: asyncio.Event, health: ProcessHealth) -> None:
        await _consume(config, broker, service, engine, subscriptions, health, stop)

    await run_process(
        engine,
        consume,
        settings=config,
        broker=broker,
        database_url=database_url,
        check_database=check_database,
    )


async def _consume(
    config: ConsumerProcessConfig,
    broker: Broker,
    service: str,
    engine: AsyncEngine,
    subscriptions: Sequence[Subscription],
    health: ProcessHealth,
    stop: asyncio.Event,
) -> None:
    index = by_event_name(subscriptions)
    consumer = inbox_consumer(
        broker,
        service=service,
        processor=InboxProcessor(
            engine,
            consumer=service,
            subscriptions=index,
            names=config.names,
            answer_timeout=config.consumer.answer_timeout_seconds,
        ),
        subscriptions=index,
        policy=config.consumer,
    )
    health.add_check(
        lambda: None if consumer.ready.is_set() else "not consuming: connecting to the broker"
    )
    health.add_check(lambda: consumer.trouble)
    scheduler = scheduler_with_retention(
        config.retention, engine, delete_old_inbox_rows, names=config.names
    )
    scheduler.start()
    consuming = asyncio.create_task(consumer.run(stop), name="consumer")
    logger.info("consumer started", extra={"service": service, "events": sorted(index)})
    try:
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({consuming, stopping}, return_when=FIRST)
        stopping.cancel()
        if consuming.done() and not stop.is_set():
            # The loop never ends by itself: only a refused declaration gets here. A
            # process that looks alive while consuming nothing is worse than an exit.
            raise ConsumerStoppedError(f"consumer of {service} stopped: {consuming.exception()}")
        logger.info("consumer stopping: finishing the batch in flight")
        try:
            await asyncio.wait_for(consuming, timeout=config.shutdown_grace_seconds)
        except TimeoutError:
            # Unacked messages return to the queue when the connection closes; their
            # inbox rows (if committed) make the redelivery a skip.
            logger.warning("consumer did not finish in time; its deliveries are requeued")
    finally:
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)
        scheduler.shutdown(wait=False)
        logger.info("consumer stopped", extra={"service": service})
