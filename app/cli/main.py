"""The command line, ``python -m app COMMAND``: ordering and catalog, their relays and
consumers, and the operators' tools.

Parsing (``--help`` included) loads the grammar alone (``app.cli.parser``); a command's
module, and with it the web framework, the broker client or the database drivers it
needs, is imported once the command line has been read (``COMMANDS``)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from app.cli.parser import build_parser, check_choices

if TYPE_CHECKING:
    from app.core.settings import Settings

__all__ = ["COMMANDS", "main"]

logger = logging.getLogger("app")

Command = Callable[[argparse.Namespace, "Settings"], int]

# Each command's function, as "module:function", imported when that command runs.
COMMANDS: dict[str, str] = {
    "dev": "app.cli.servers:dev",
    "api": "app.cli.servers:api",
    "web": "app.cli.servers:web",
    "relay": "app.cli.workers:relay",
    "consume": "app.cli.workers:consume",
    "migrate": "app.cli.operations:migrate",
    "outbox": "app.cli.admin:run",
    "dlq": "app.cli.admin:run",
    "inbox": "app.cli.admin:run",
    "token": "app.cli.token:run",
    "broker": "app.cli.broker:run",
}


def _parser() -> argparse.ArgumentParser:
    """The whole command line (``app.cli.parser.build_parser``)."""
    return build_parser()


def command(name: str) -> Command:
    """The function that runs command ``name`` (a key of ``COMMANDS``), its module imported
    now; ``KeyError`` for a name that is no command."""
    module, _, function = COMMANDS[name].partition(":")
    found: Command = getattr(importlib.import_module(module), function)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status (0 ok, 1 failure, 2 usage)."""
    parser = _parser()
    args = parser.parse_args(argv)
    check_choices(parser, args)
    # Imported before logging is set up, as everything was when this module imported it
    # all: a library that logs while it is imported (Alembic's plugins) stays quiet.
    run = command(args.command)
    from pydantic import ValidationError

    from app.core.logs import configure_logging
    from app.core.settings import Settings
    from app.core.telemetry import configure_tracing

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
        _announce(args, settings)
        return run(args, settings)
    # The except clauses name their classes through calls, evaluated only when an
    # exception propagates: a command that never touched a database does not load
    # SQLAlchemy to learn that its error is not one of them.
    except _database_url_errors() as exc:
        # A database URL SQLAlchemy cannot read, or a database or driver not supported.
        logger.error("invalid database URL: %s", exc)
        return 1
    except _auth_errors() as exc:
        logger.error("authentication: %s", exc)
        return 1


def _database_url_errors() -> tuple[type[Exception], ...]:
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    from cloudcrm_outbox.storage.engine import UnsupportedDatabaseError

    return ArgumentError, NoSuchModuleError, UnsupportedDatabaseError


def _auth_errors() -> tuple[type[Exception], ...]:
    from app.auth.config import AuthNotConfiguredError

    return (AuthNotConfiguredError,)


def _announce(args: argparse.Namespace, settings: Settings) -> None:
    """A long-running process says what it runs on (passwords masked by the log
    formatter), and loudly when a production command runs on SQLite."""
    if args.command not in {"dev", "api", "relay", "consume"}:
        return
    from app.core.settings import SERVICES
    from cloudcrm_outbox.observability.redaction import safe_url

    if args.command == "dev":
        logger.info("starting", extra={
            "databases": [safe_url(settings.database_url(s)) for s in SERVICES],
            "broker": safe_url(settings.broker_url),
        })  # fmt: skip
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


if __name__ == "__main__":
    sys.exit(main())
