"""``broker declare`` (the RabbitMQ topology) and ``broker accounts`` (a definitions
file of least-privilege users)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging

from app.cli.operations import needs_rabbitmq
from app.core.settings import Settings
from app.messaging.broker_accounts import definitions, passwords_in
from app.messaging.registry import all_bindings
from app.messaging.wiring import messaging_names
from cloudcrm_outbox.brokers import broker_for
from cloudcrm_outbox.brokers.rabbitmq.topology import declare_at
from cloudcrm_outbox.errors import TopologyConflictError
from cloudcrm_outbox.names import DEFAULT_NAMES
from cloudcrm_outbox.runtime.startup import wait_for_broker

logger = logging.getLogger("app")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """``broker declare`` or ``broker accounts``; its exit status."""
    if args.broker_command == "accounts":
        return print_broker_accounts(args)
    return declare_broker(settings)


def declare_broker(settings: Settings) -> int:
    """Declare the whole RabbitMQ topology; 0, or 1 (one line) when RabbitMQ refuses."""
    if not needs_rabbitmq(settings, "broker declare"):
        return 2
    names = messaging_names(settings)
    bindings = all_bindings(names)

    async def declare() -> None:
        broker = broker_for(settings.broker_url, names=names)
        await wait_for_broker(broker, within=settings.startup_timeout_seconds)
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
