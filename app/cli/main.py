"""The command line, ``python -m app COMMAND``: ordering and catalog, their relays and
consumers, and the operators' tools."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from app.admin import cli as admin_cli
from app.auth import cli as token_cli
from app.auth.config import AuthNotConfiguredError
from app.cli.operations import at_head, declare_broker, needs_rabbitmq, print_broker_accounts
from app.core import migrations as migrate
from app.core.logs import configure_logging
from app.core.settings import SERVICES, Settings
from app.core.telemetry import configure_tracing
from app.http.serving import serve as _serve
from app.messaging.housekeeping import housekeeping
from app.messaging.registry import bindings_fed_by, subscriptions_of
from app.messaging.wiring import consumer_broker, consumer_config, relay_broker, relay_config
from cloudcrm_outbox.observability.redaction import safe_url
from cloudcrm_outbox.storage.engine import UnsupportedDatabaseError

logger = logging.getLogger("app")

DEFAULT_PORTS = {"ordering": 8001, "catalog": 8002}


class _Parser(argparse.ArgumentParser):
    """argparse, but an argument a command does not take is refused with that command's
    own usage (``dev --prot 1``: dev's), not the top level's. Subcommands are made of the
    parent's class (argparse's ``add_subparsers``), so every level refuses its own."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def _parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _Parser(
        prog="python -m app",
        description="CloudCrm: the ordering and catalog services, their relays and "
        "consumers, and the operators' tools. `python -m app COMMAND --help` for one.",
    )
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
    for worker in (relay, consume):
        worker.add_argument(
            "--metrics-port", type=int, default=None, help="serve probes and /metrics here"
        )

    web = commands.add_parser("web", help="the web pages, calling the two APIs")
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=int, default=8000)

    upgrade = commands.add_parser("migrate", help="Alembic upgrade to head")
    upgrade.add_argument("service", nargs="?", choices=SERVICES, help="default: both")

    admin_cli.add_commands(commands)
    token_cli.add_command(commands)

    broker = commands.add_parser("broker", help="RabbitMQ topology")
    broker_commands = broker.add_subparsers(dest="broker_command", required=True)
    broker_commands.add_parser(
        "declare", help="declare the exchange, every service's queues, dead letters, bindings"
    )
    accounts = broker_commands.add_parser(
        "accounts", help="print a RabbitMQ definitions file: one least-privilege user per role"
    )
    accounts.add_argument(
        "--passwords-dir",
        type=Path,
        required=True,
        help="a file per account holding its password (compose mounts them in /run/secrets)",
    )
    accounts.add_argument(
        "--output", type=Path, default=None, help="write it to this file (default: print it)"
    )
    accounts.add_argument("--vhost", default="/")
    accounts.add_argument("--prefix", default="cloudcrm", help="account names' prefix")
    return parser


def _relay(settings: Settings, service: str) -> int:
    if not needs_rabbitmq(settings, "relay"):
        return 2
    from cloudcrm_outbox.runtime.relay_process import run_relay

    url = settings.database_url(service)

    async def main() -> None:
        async with housekeeping(settings, service, "relay"):
            await run_relay(
                relay_config(settings),
                broker=relay_broker(settings),
                database_url=url,
                name=service,
                bindings=bindings_fed_by(service),
                # After the database answers, with the probes already served.
                check_database=lambda: migrate.ensure_at_head(service, url=url),
            )

    _run_async(main())
    return 0


def _consume(settings: Settings, service: str) -> int:
    if not needs_rabbitmq(settings, "consume"):
        return 2
    subscriptions = subscriptions_of(service)
    from cloudcrm_outbox.runtime.consumer_process import run_consumer

    url = settings.database_url(service)

    async def main() -> None:
        async with housekeeping(settings, service, "consumer"):
            await run_consumer(
                consumer_config(settings),
                broker=consumer_broker(settings),
                service=service,
                database_url=url,
                subscriptions=subscriptions,
                check_database=lambda: migrate.ensure_at_head(service, url=url),
            )

    _run_async(main())
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
    """Run one command; its exit status (0 ok, 1 failure, 2 usage)."""
    args = _parser().parse_args(argv)
    configure_logging()
    try:
        port = getattr(args, "metrics_port", None)
        settings = Settings(**({"metrics_port": port} if port is not None else {}))
    except ValidationError as exc:
        problems = "; ".join(
            ": ".join(
                [*([".".join(str(p) for p in error["loc"]).upper()] if error["loc"] else []),
                 error["msg"]]
            )
            for error in exc.errors()
        )  # fmt: skip
        logger.error("invalid settings: %s", problems)
        return 1
    service = getattr(args, "service", None)
    configure_logging(
        settings.log_level, log_format=settings.log_format, service=service, role=args.command
    )
    configure_tracing(f"cloudcrm-{service or 'all'}-{args.command}")
    try:
        return _dispatch(args, settings)
    except (ArgumentError, NoSuchModuleError, UnsupportedDatabaseError) as exc:
        # A database URL SQLAlchemy cannot read, or a database or driver not supported.
        logger.error("invalid database URL: %s", exc)
        return 1
    except AuthNotConfiguredError as exc:
        logger.error("authentication: %s", exc)
        return 1


def _announce(args: argparse.Namespace, settings: Settings) -> None:
    """A long-running process says what it runs on (passwords masked by the log
    formatter), and loudly when a production command runs on SQLite."""
    if args.command == "dev":
        logger.info("starting", extra={
            "databases": [safe_url(settings.database_url(s)) for s in SERVICES],
            "broker": safe_url(settings.broker_url),
        })  # fmt: skip
        return
    if args.command not in {"api", "relay", "consume"}:
        return
    url = settings.database_url(args.service)
    logger.info(
        "starting", extra={"database": safe_url(url), "broker": safe_url(settings.broker_url)}
    )
    if url.startswith("sqlite"):
        logger.warning(
            "`%s %s` runs on SQLite, the development database: set %s_DATABASE_URL="
            "postgresql+psycopg://… in production",
            args.command,
            args.service,
            args.service.upper(),
        )


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    _announce(args, settings)
    if args.command == "migrate":
        for service in [args.service] if args.service else SERVICES:
            migrate.upgrade(service, settings=settings)
        return 0
    if args.command == "broker" and args.broker_command == "accounts":
        return print_broker_accounts(args)
    if args.command == "broker":
        return declare_broker(settings)
    if args.command == "web":
        from app.pages.serving import create_web_app

        return _serve(create_web_app(settings), args.host, args.port, settings)
    if args.command == "token":
        return token_cli.run(args, settings)
    if args.command in {"outbox", "dlq", "inbox"}:
        return admin_cli.run(args, settings)
    if args.command == "relay":
        return _relay(settings, args.service)
    if args.command == "consume":
        return _consume(settings, args.service)
    if args.command == "api":
        if args.service == "ordering":
            from app.ordering.app import create_app
        else:
            from app.catalog.app import create_app
        api = create_app(settings)  # refuses a configuration nobody can authenticate to
        asyncio.run(at_head(settings, args.service))
        return _serve(api, args.host, args.port or DEFAULT_PORTS[args.service], settings)
    from app.cli.dev import create_dev_app

    dev = create_dev_app(settings, base_url=f"http://{args.host}:{args.port}")
    return _serve(dev, args.host, args.port, settings)


if __name__ == "__main__":
    sys.exit(main())
