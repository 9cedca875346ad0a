"""``migrate``, and what several commands share: the start-up check every process but
``dev`` makes (its database at the Alembic head) and the refusal of a command that needs
RabbitMQ on the embedded broker."""

from __future__ import annotations

import argparse
import logging

from app.core import migrations as migrate_database
from app.core.settings import SERVICES, Settings
from cloudcrm_outbox.brokers import is_amqp
from cloudcrm_outbox.observability.redaction import safe_url
from cloudcrm_outbox.runtime.startup import wait_for_database

logger = logging.getLogger("app")


def needs_rabbitmq(settings: Settings, command: str) -> bool:
    """True when BROKER_URL is an AMQP URL; else log why ``command`` needs one."""
    if is_amqp(settings.broker_url):
        return True
    logger.error(
        "`%s` talks to RabbitMQ: set BROKER_URL=amqp://USER:PASSWORD@HOST:5672/ "
        "(got %r; memory:// exists only inside `python -m app dev`)",
        command,
        safe_url(settings.broker_url),
    )
    return False


async def at_head(settings: Settings, service: str) -> None:
    """Every process but ``dev`` (which migrates) refuses a database not at head: it would
    otherwise fail every request or message later, far from the cause."""
    from cloudcrm_outbox.storage.engine import missing_sqlite_file

    url = settings.database_url(service)
    missing = missing_sqlite_file(url)
    if missing is not None:
        # Not made here: connecting would leave an empty file where none was.
        raise migrate_database.DatabaseNotAtHeadError(
            f"{service}'s database {str(missing)!r} does not exist: "
            "run `python -m app migrate` (or `make run`) first"
        )
    await wait_for_database(url, within=settings.startup_timeout_seconds)
    await migrate_database.ensure_at_head(service, url=url)


def migrate(args: argparse.Namespace, settings: Settings) -> int:
    """``migrate [SERVICE]``: Alembic upgrade to head, of one service's database or both."""
    for service in [args.service] if args.service else SERVICES:
        migrate_database.upgrade(service, settings=settings)
    return 0
