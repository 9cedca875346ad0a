"""``relay`` and ``consume``: a service's long-running messaging processes, on RabbitMQ
(exit 2 on the embedded broker, which lives inside ``dev`` only)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Coroutine
from typing import Any

from app.cli.operations import needs_rabbitmq
from app.core import migrations as migrate
from app.core.settings import Settings
from app.messaging.housekeeping import housekeeping
from app.messaging.registry import bindings_fed_by, subscriptions_of
from app.messaging.wiring import (
    consumer_broker,
    consumer_config,
    messaging_names,
    relay_broker,
    relay_config,
)


def relay(args: argparse.Namespace, settings: Settings) -> int:
    """``relay SERVICE``: publish the service's outbox until SIGTERM."""
    service: str = args.service
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
                bindings=bindings_fed_by(service, messaging_names(settings)),
                # After the database answers, with the probes already served.
                check_database=lambda: migrate.ensure_at_head(service, url=url),
            )

    _run_async(main())
    return 0


def consume(args: argparse.Namespace, settings: Settings) -> int:
    """``consume SERVICE``: apply the service's events through its inbox until SIGTERM."""
    service: str = args.service
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
