"""``broker declare``, ``broker accounts`` and the start-up check every long-running process
makes (its database at the Alembic head); the outbox, dead-letter and inbox commands are in
``app.admin``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging

from app.core import migrations as migrate
from app.core.settings import Settings
from app.messaging.broker_accounts import definitions, passwords_in
from app.messaging.registry import all_bindings
from cloudcrm_outbox.brokers import AMQP_SCHEMES, broker_for
from cloudcrm_outbox.brokers.rabbitmq.topology import declare_at
from cloudcrm_outbox.errors import TopologyConflictError
from cloudcrm_outbox.names import DEFAULT_NAMES
from cloudcrm_outbox.observability.redaction import safe_url
from cloudcrm_outbox.runtime.startup import wait_for_broker, wait_for_database

logger = logging.getLogger("app")


def needs_rabbitmq(settings: Settings, command: str) -> bool:
    """True when BROKER_URL is an AMQP URL; else log why ``command`` needs one."""
    if settings.broker_url.startswith(AMQP_SCHEMES):
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
    url = settings.database_url(service)
    await wait_for_database(url, within=settings.startup_timeout_seconds)
    await migrate.ensure_at_head(service, url=url)


def declare_broker(settings: Settings) -> int:
    """Declare the whole RabbitMQ topology; 0, or 1 (one line) when RabbitMQ refuses."""
    if not needs_rabbitmq(settings, "broker declare"):
        return 2
    bindings = all_bindings()

    async def declare() -> None:
        await wait_for_broker(
            broker_for(settings.broker_url), within=settings.startup_timeout_seconds
        )
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


def print_broker_accounts(args: argparse.Namespace) -> int:
    """``broker accounts``: the definitions JSON on standard output; 1 when a password
    is missing or the directory cannot be read."""
    if not args.passwords_dir.is_dir():
        logger.error("--passwords-dir %s is not a directory", args.passwords_dir)
        return 1
    try:
        document = definitions(
            passwords_in(args.passwords_dir, args.prefix), vhost=args.vhost, prefix=args.prefix
        )
    except (ValueError, OSError) as exc:
        logger.error("cannot write the broker accounts: %s (in %s)", exc, args.passwords_dir)
        return 1
    text = json.dumps(document, indent=2)
    if args.output is None:
        print(text)
        return 0
    try:
        # Readable by the broker's own user (the file holds salted hashes, no password).
        args.output.write_text(text + "\n", encoding="utf-8")
        args.output.chmod(0o644)
    except OSError as exc:
        logger.error("cannot write %s: %s", args.output, exc)
        return 1
    logger.info("broker accounts written", extra={"path": str(args.output)})
    return 0
