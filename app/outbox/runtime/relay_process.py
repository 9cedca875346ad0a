"""The relay process (``python -m app relay SERVICE``): workers, wake-ups, retention, and a
clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox.backoff import Backoff, sleep_unless
from cloudcrm_outbox.brokers.base import Broker, same_names
from cloudcrm_outbox.brokers.publisher import Publisher
from cloudcrm_outbox.checks import require_counts, require_seconds
from cloudcrm_outbox.errors import FatalError, TopologyConflictError, is_expected_fault
from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames, QueueBindings
from cloudcrm_outbox.observability.health import ProcessHealth
from cloudcrm_outbox.ops.gauges import refresh_outbox_gauges
from cloudcrm_outbox.relay.policy import RelayPolicy
from cloudcrm_outbox.relay.relay import OutboxRelay
from cloudcrm_outbox.relay.wakeup import Wakeup, libpq_dsn, listen_for_outbox_inserts
from cloudcrm_outbox.runtime.process import RetentionPolicy, scheduler_with_retention
from cloudcrm_outbox.runtime.skeleton import run_process
from cloudcrm_outbox.storage.engine import make_engine
from cloudcrm_outbox.storage.liveness import TcpKeepalives
from cloudcrm_outbox.storage.retention import delete_published_outbox_rows

logger = library_logger(__name__)


@dataclass(frozen=True)
class RelayProcessConfig:
    """Everything a relay process needs besides its database (times in seconds).

    ``concurrency``: claim-publish-mark loops sharing the process; ``poll_interval_seconds``:
    the wake-up when no notification comes (the only one on SQLite). ``names``: its
    outbox table's and notification channel's (the broker's own must be the same).

    A connection gone silent: each database step of a batch must be answered within
    ``answer_timeout_seconds`` (``liveness.AnswerDeadline``), and PostgreSQL ends a relay's
    session left idle in its transaction for ``claim_timeout_seconds`` (its
    ``idle_in_transaction_session_timeout``), so that rows claimed by a relay cut off from
    its database go back to the others (PostgreSQL docs, "Client Connection Defaults").
    A batch is idle in its transaction while it publishes: keep ``claim_timeout_seconds``
    above its longest publish (connecting, ``publish_timeout_seconds`` per broker node,
    then the confirms, ``publish_timeout_seconds``), else its rows are published again.
    ``keepalives``: libpq's TCP settings, the LISTEN connection's too."""

    names: MessagingNames = DEFAULT_NAMES
    relay: RelayPolicy = field(default_factory=RelayPolicy)
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    concurrency: int = 2
    publish_timeout_seconds: float = 10.0
    poll_interval_seconds: float = 1.0
    reconnect_max_seconds: float = 30.0
    startup_timeout_seconds: float = 60.0
    shutdown_grace_seconds: float = 5.0
    statement_timeout_seconds: float | None = 10.0
    answer_timeout_seconds: float | None = 12.0
    claim_timeout_seconds: float | None = 60.0
    keepalives: TcpKeepalives = field(default_factory=TcpKeepalives)
    probe_port: int | None = None  # /health/live, /health/ready, /metrics; None: none
    probe_host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        require_counts("RelayProcessConfig", concurrency=self.concurrency)
        require_seconds(
            "RelayProcessConfig",
            publish_timeout_seconds=self.publish_timeout_seconds,
            poll_interval_seconds=self.poll_interval_seconds,
            startup_timeout_seconds=self.startup_timeout_seconds,
            statement_timeout_seconds=self.statement_timeout_seconds,
            answer_timeout_seconds=self.answer_timeout_seconds,
            claim_timeout_seconds=self.claim_timeout_seconds,
        )


class RelayStoppedError(FatalError):
    """The relay cannot go on (RabbitMQ refused its topology)."""


async def run_relay(
    config: RelayProcessConfig,
    *,
    broker: Broker,
    database_url: str,
    name: str,
    bindings: Sequence[QueueBindings] = (),
    check_database: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Relay ``database_url``'s outbox to ``broker`` (``broker_for(url)``) until SIGTERM or
    SIGINT.

    ``bindings``: the queues consuming what this service publishes, declared before the
    first publish. ``check_database`` runs once the database answers (the caller's schema
    check; it raises to stop the start). Raises RelayStoppedError (exit 1) if the broker
    refuses the bindings, ValueError when the broker's names are not ``config.names``."""
    same_names(broker, config.names)
    engine = make_engine(
        database_url,
        pool_size=config.concurrency + 1,
        pre_ping=False,
        statement_timeout=config.statement_timeout_seconds,
        # A claim must not outlive its relay: see RelayProcessConfig.
        idle_in_transaction_timeout=config.claim_timeout_seconds,
        keepalives=config.keepalives,
    )
    publisher = broker.publisher(bindings=bindings)

    async def refresh() -> None:
        await refresh_outbox_gauges(engine, name, config.names)

    async def relay(stop: asyncio.Event, health: ProcessHealth) -> None:
        await relay_until(
            stop,
            config=config,
            engine=engine,
            publisher=publisher,
            listen_dsn=libpq_dsn(database_url),
            name=name,
            names=config.names,
            health=health,
        )

    try:
        await run_process(
            engine,
            relay,
            settings=config,
            broker=broker,
            database_url=database_url,
            refresh=refresh,
            # An idle relay learns of a broker that went away from its connection, not a
            # batch.
            checks=[lambda: getattr(publisher, "problem", None)],
            check_database=check_database,
        )
    finally:
        await publisher.close()


async def relay_until(
    stop: asyncio.Event,
    *,
    config: RelayProcessConfig,
    engine: AsyncEngine,
    publisher: Publisher,
    listen_dsn: str | None,
    name: str,
    names: MessagingNames = DEFAULT_NAMES,
    health: ProcessHealth | None = None,
) -> None:
    """Run the relay's workers, wake-ups and retention until ``stop`` is set, on the
    outbox table and notification channel ``names`` names."""
    relay = OutboxRelay(
        engine,
        publisher,
        config.relay,
        names=names,
        service=name,
        answer_timeout=config.answer_timeout_seconds,
    )
    wakeup = Wakeup()
    scheduler = scheduler_with_retention(
        config.retention, engine, delete_published_outbox_rows, names=names
    )

    async def poll() -> None:
        # A coroutine, so that APScheduler runs it on the event loop: a plain function it
        # would run in a worker thread, and asyncio.Event.set() is not thread-safe (the
        # loop, asleep in select, would not see the wake-up until its next timer).
        wakeup.notify()

    # The fallback for lost notifications, and the only wake-up on SQLite.
    scheduler.add_job(poll, "interval", seconds=config.poll_interval_seconds)
    background: list[asyncio.Task[None]] = []
    if listen_dsn is not None:
        listener = listen_for_outbox_inserts(
            listen_dsn,
            wakeup,
            max_backoff=config.reconnect_max_seconds,
            channel=names.notify_channel,
            connect_args=config.keepalives.libpq_parameters(),
            answer_timeout=config.answer_timeout_seconds,
        )
        background.append(asyncio.create_task(listener, name="outbox-listener"))
    workers = [
        asyncio.create_task(
            _work(
                relay,
                wakeup,
                wakeup.subscribe(),
                stop,
                config,
                health or ProcessHealth(),
                # Each worker its own part: one that finds nothing to claim must not clear
                # another's failure (readiness flapped between them).
                part=f"relay worker {index}",
            ),
            name=f"relay-worker-{index}",
        )
        for index in range(config.concurrency)
    ]
    scheduler.start()
    logger.info(
        "relay started",
        extra={"service": name, "workers": len(workers), "listen": listen_dsn is not None},
    )
    try:
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({stopping, *workers}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        dead = [task for task in workers if task.done()]
        if dead and not stop.is_set():
            # A worker ends only when RabbitMQ refused the topology. The others would
            # meet the same refusal: stop (they are cancelled below: their batches roll
            # back), rather than look alive relaying nothing. ``stop`` is the caller's,
            # shared with other services' relays and consumers in_process: not set here.
            raise RelayStoppedError(f"relay of {name} stopped: {dead[0].exception()}")
        logger.info("relay stopping: finishing the batch in flight")
        _, unfinished = await asyncio.wait(workers, timeout=config.shutdown_grace_seconds)
        # A batch still waiting for confirms is abandoned: cancelling rolls its
        # transaction back, which releases its rows to the next relay unmarked.
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
    finally:
        scheduler.shutdown(wait=False)
        for task in [*background, *workers]:
            task.cancel()
        await asyncio.gather(*background, *workers, return_exceptions=True)
        logger.info("relay stopped", extra={"service": name})


async def _work(
    relay: OutboxRelay,
    wakeup: Wakeup,
    woken: asyncio.Event,
    stop: asyncio.Event,
    config: RelayProcessConfig,
    health: ProcessHealth,
    *,
    part: str = "relay",
) -> None:
    """Drain, then sleep until woken; back off (full jitter) while a dependency is down.
    ``part``: the name this worker's failures are reported under in ``health``."""
    backoff = Backoff(config.reconnect_max_seconds)
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        woken.clear()
        try:
            while not stop.is_set():
                report = await relay.relay_batch()
                if report.retry_in is not None:
                    # A probe of an unroutable event (relay_probes) is due before the next
                    # poll: wake a worker for it, not a poll interval later.
                    loop.call_later(report.retry_in, wakeup.notify)
                if report.claimed < config.relay.batch_size and not report.released:
                    break
                wakeup.notify()  # a backlog: bring in an idle worker to share it
            backoff.succeeded()
            health.recovered(part)
        except TopologyConflictError:
            raise  # refused by the broker: no retry can help (the process exits 1)
        except Exception as exc:
            # A worker never dies: a dependency that is down (broker, database) or an
            # unexpected library error both end in a jittered, capped backoff and a retry.
            delay = backoff.next_delay()
            health.failing(part, f"the relay cannot proceed: {exc!r}")
            logger.warning(
                "relay cannot proceed; backing off",
                exc_info=not is_expected_fault(exc),
                extra={"error": repr(exc)[:300], "retry_in_s": round(delay, 3)},
            )
            await sleep_unless(stop, delay)
            continue
        await wakeup.wait(woken, stop)
