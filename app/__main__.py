"""The command line: ``python -m app dev|api|relay|consume|migrate|broker`` (the contract's
commands)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from app import migrate
from app.consumers import all_bindings, bindings_fed_by, subscriptions_of
from app.db import make_engine
from app.logs import configure_logging
from app.outbox.publisher import EXCHANGE
from app.outbox.topology import TopologyConflictError, declare_at
from app.settings import SERVICES, Settings
from app.startup import wait_for_broker, wait_for_database

logger = logging.getLogger("app")

DEFAULT_PORTS = {"ordering": 8001, "catalog": 8002}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="both APIs on one port, embedded defaults")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)

    api = commands.add_parser("api", help="one service's HTTP API")
    api.add_argument("service", choices=SERVICES)
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=None, help="default: ordering 8001, catalog 8002")

    relay = commands.add_parser("relay", help="publish a service's outbox to RabbitMQ")
    relay.add_argument("service", choices=SERVICES)

    consume = commands.add_parser("consume", help="apply a service's events through its inbox")
    consume.add_argument("service", choices=SERVICES)

    upgrade = commands.add_parser("migrate", help="Alembic upgrade to head")
    upgrade.add_argument("service", nargs="?", choices=SERVICES, help="default: both")

    outbox = commands.add_parser("outbox", help="look at a service's outbox")
    outbox_commands = outbox.add_subparsers(dest="outbox_command", required=True)
    status = outbox_commands.add_parser("status", help="pending, failed, oldest pending age")
    status.add_argument("service", nargs="?", choices=SERVICES, help="default: both")
    status.add_argument(
        "--json", action="store_true", help="print one JSON object, keyed by service"
    )

    broker = commands.add_parser("broker", help="RabbitMQ topology")
    broker_commands = broker.add_subparsers(dest="broker_command", required=True)
    broker_commands.add_parser(
        "declare", help="declare the exchange, every service's queues, dead letters, bindings"
    )
    return parser


def _serve(app: FastAPI, host: str, port: int) -> None:
    uvicorn.run(app, host=host, port=port, log_config=None, proxy_headers=False)


def _needs_rabbitmq(settings: Settings, command: str) -> bool:
    if settings.broker_url.startswith(("amqp://", "amqps://")):
        return True
    logger.error(
        "`%s` talks to RabbitMQ: set BROKER_URL=amqp://user:password@host:5672/ "
        "(got %r; memory:// exists only inside `python -m app dev`)",
        command,
        settings.broker_url,
    )
    return False


async def _at_head(settings: Settings, service: str) -> None:
    """Every process but ``dev`` (which migrates) refuses a database not at head: it would
    otherwise fail every request or message later, far from the cause."""
    url = settings.database_url(service)
    await wait_for_database(url, within=settings.startup_timeout_seconds)
    await migrate.ensure_at_head(service, url=url)


def _relay(settings: Settings, service: str) -> int:
    if not _needs_rabbitmq(settings, "relay"):
        return 2
    from app.outbox.runner import run_relay

    async def main() -> None:
        await _at_head(settings, service)
        await run_relay(
            settings,
            database_url=settings.database_url(service),
            name=service,
            bindings=bindings_fed_by(service),
        )

    _run_async(main())
    return 0


def _consume(settings: Settings, service: str) -> int:
    if not _needs_rabbitmq(settings, "consume"):
        return 2
    subscriptions = subscriptions_of(service)
    from app.outbox.consumer_runner import run_consumer

    async def main() -> None:
        await _at_head(settings, service)
        await run_consumer(
            settings,
            service=service,
            database_url=settings.database_url(service),
            subscriptions=subscriptions,
        )

    _run_async(main())
    return 0


def _outbox_status(settings: Settings, services: Sequence[str], as_json: bool) -> int:
    from app.outbox.status import OutboxStatus, outbox_status

    async def read() -> dict[str, OutboxStatus]:
        found: dict[str, OutboxStatus] = {}
        for service in services:
            url = settings.database_url(service)
            await wait_for_database(url, within=settings.startup_timeout_seconds)
            engine = make_engine(url, pool_size=1)
            try:
                found[service] = await outbox_status(engine)
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


def _declare_broker(settings: Settings) -> int:
    if not _needs_rabbitmq(settings, "broker declare"):
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
    logger.info("declared the topology", extra={"exchange": EXCHANGE, "queues": queues})
    return 0


def _run_async(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop where it exists: the relay's per-message cost is mostly the loop's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is not built for every platform
        asyncio.run(main)
    else:
        uvloop.run(main)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging()
    settings = Settings()
    if args.command == "migrate":
        for service in [args.service] if args.service else SERVICES:
            migrate.upgrade(service, settings=settings)
        return 0
    if args.command == "broker":
        return _declare_broker(settings)
    if args.command == "outbox":
        return _outbox_status(settings, [args.service] if args.service else SERVICES, args.json)
    if args.command == "relay":
        return _relay(settings, args.service)
    if args.command == "consume":
        return _consume(settings, args.service)
    if args.command == "api":
        asyncio.run(_at_head(settings, args.service))
        if args.service == "ordering":
            from app.ordering.app import create_app
        else:
            from app.catalog.app import create_app
        _serve(create_app(settings), args.host, args.port or DEFAULT_PORTS[args.service])
        return 0
    from app.dev import create_dev_app

    _serve(create_dev_app(settings), args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
