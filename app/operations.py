"""Operators' commands: ``outbox status``, ``broker declare``, and the start-up check every
long-running process makes (its database at the Alembic head)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError

from app import migrate
from app.consumers import all_bindings
from app.outbox.broker import AMQP_SCHEMES
from app.outbox.database import make_engine
from app.outbox.names import DEFAULT_NAMES
from app.outbox.startup import wait_for_broker, wait_for_database
from app.outbox.topology import TopologyConflictError, declare_at
from app.settings import Settings

logger = logging.getLogger("app")


def needs_rabbitmq(settings: Settings, command: str) -> bool:
    """True when BROKER_URL is an AMQP URL; else log why ``command`` needs one."""
    if settings.broker_url.startswith(AMQP_SCHEMES):
        return True
    logger.error(
        "`%s` talks to RabbitMQ: set BROKER_URL=amqp://user:password@host:5672/ "
        "(got %r; memory:// exists only inside `python -m app dev`)",
        command,
        settings.broker_url,
    )
    return False


async def at_head(settings: Settings, service: str) -> None:
    """Every process but ``dev`` (which migrates) refuses a database not at head: it would
    otherwise fail every request or message later, far from the cause."""
    url = settings.database_url(service)
    await wait_for_database(url, within=settings.startup_timeout_seconds)
    await migrate.ensure_at_head(service, url=url)


def outbox_status(settings: Settings, services: Sequence[str], *, as_json: bool) -> int:
    """Print each service's outbox status (a table, or one JSON object); 0, or 1 on error."""
    from app.outbox.status import OutboxStatus, read_status

    async def read() -> dict[str, OutboxStatus]:
        found: dict[str, OutboxStatus] = {}
        for service in services:
            await at_head(settings, service)
            engine = make_engine(settings.database_url(service), pool_size=1)
            try:
                found[service] = await read_status(engine)
            finally:
                await engine.dispose()
        return found

    try:
        statuses = asyncio.run(read())
    except DBAPIError as exc:  # reachable, but not an outbox (not migrated?)
        logger.error("cannot read the outbox: %s", str(exc.orig).splitlines()[0])
        return 1
    if as_json:
        print(json.dumps({name: status.as_dict() for name, status in statuses.items()}))
        return 0
    columns = ("pending", "oldest(s)", "unroutable", "failed", "last hour")
    print(f"{'service':<10} " + " ".join(f"{column:>10}" for column in columns))
    for name, status in statuses.items():
        age = status.oldest_pending_age_seconds
        print(
            f"{name:<10} {status.pending:>10} {'-' if age is None else f'{age:.1f}':>10} "
            f"{status.unroutable:>10} {status.failed:>10} {status.published_last_hour:>10}"
        )
    return 0


def declare_broker(settings: Settings) -> int:
    """Declare the whole RabbitMQ topology; 0, or 1 (one line) when RabbitMQ refuses."""
    if not needs_rabbitmq(settings, "broker declare"):
        return 2
    bindings = all_bindings()

    async def declare() -> None:
        await wait_for_broker(settings.broker_url, within=settings.startup_timeout_seconds)
        await declare_at(settings.broker_url, bindings, within=60)

    try:
        asyncio.run(declare())
    except TopologyConflictError as exc:
        logger.error("%s", exc)
        return 1
    queues = [item.topology.queue for item in bindings]
    logger.info(
        "declared the topology", extra={"exchange": DEFAULT_NAMES.exchange, "queues": queues}
    )
    return 0
