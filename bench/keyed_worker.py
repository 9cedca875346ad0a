"""The keyed part's relay and consumer processes, on the library's own entry points.

    python -m bench.keyed_worker relay     # run_relay over KEYED_DATABASE_URL's outbox
    python -m bench.keyed_worker consume   # run_consumer of service "keyed" into its inbox

Both read KEYED_DATABASE_URL and KEYED_BROKER_URL; the consumer's delivery limit is
small when KEYED_POISON_POLICY is set (``POISON_POLICY``). The events are the bench's own
contract with a handler that only accepts (the inbox row is the whole effect, as
tests/support/events.py ``record``), so what is measured is the library's path, not a
service's handler. Run as processes, as deployed, so that 2 relays and 2 consumers
share the machine's cores the way production's would.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncSession

from cloudcrm_outbox import (
    APPLIED,
    ConsumerPolicy,
    ConsumerProcessConfig,
    IntegrationEvent,
    QueueBindings,
    RelayProcessConfig,
    Subscription,
    broker_for,
    run_consumer,
    run_relay,
)

SERVICE = "keyed"  # the consuming service: queue keyed.events, partitions keyed.events.pN
PRODUCER = "producer"  # the relay's service name (its metrics' label only)
# A poison message is dead-lettered at its second delivery and requeued 0.1-0.2 s after
# its first failure (REDELIVERY_BASE_SECONDS, capped here): a poisoned key stops quickly.
POISON_POLICY = ConsumerPolicy(delivery_limit=2, redelivery_max_seconds=0.2)
RELAY_READY = "listening for outbox inserts"  # LISTENing: a commit wakes it at once
CONSUMER_READY = "consuming"  # InboxConsumer's line once every queue is subscribed


class Tick(IntegrationEvent):
    """The bench's event: ``n`` its number in the stream; ``poison`` makes the handler
    raise (every delivery: it is the message's own fault, so it ends dead-lettered)."""

    event_name: ClassVar[str] = "BenchTick"
    n: int
    poison: bool = False


class PoisonError(RuntimeError):
    """The handler's failure for a poison event."""


async def accept(session: AsyncSession, events: Sequence[Tick]) -> list[str]:
    """Apply nothing but the inbox row; raise for a poison event (its batch then goes
    one message at a time, and the poison alone fails)."""
    if any(event.poison for event in events):
        raise PoisonError("a poison event")
    return [APPLIED] * len(events)


SUBSCRIPTIONS = (Subscription(event=Tick, handle=accept),)
BINDINGS = QueueBindings.of(SERVICE, [Tick.event_name])


def worker_env(database_url: str, broker_url: str, *, poison_policy: bool) -> dict[str, str]:
    """The environment of ``python -m bench.keyed_worker`` on this database and broker."""
    return dict(
        os.environ,
        KEYED_DATABASE_URL=database_url,
        KEYED_BROKER_URL=broker_url,
        KEYED_POISON_POLICY="1" if poison_policy else "",
    )


async def _main(role: str) -> None:
    database = os.environ["KEYED_DATABASE_URL"]
    broker = broker_for(os.environ["KEYED_BROKER_URL"])
    if role == "relay":
        # The relay declares the consumer's queues before its first publish (bindings).
        await run_relay(
            RelayProcessConfig(), broker=broker, database_url=database, name=PRODUCER,
            bindings=[BINDINGS],
        )  # fmt: skip
        return
    policy = POISON_POLICY if os.environ.get("KEYED_POISON_POLICY") else ConsumerPolicy()
    config = ConsumerProcessConfig(consumer=policy)
    await run_consumer(
        config, broker=broker, service=SERVICE, database_url=database,
        subscriptions=SUBSCRIPTIONS,
    )  # fmt: skip


def main() -> None:
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role not in ("relay", "consume"):
        raise SystemExit("usage: python -m bench.keyed_worker relay|consume")
    # INFO: the ready lines the bench waits for, and the per-batch lines a deployment logs.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        import uvloop  # as `python -m app relay|consume` run (app/cli/workers.py)
    except ImportError:  # pragma: no cover - uvloop is not built for every platform
        asyncio.run(_main(role))
    else:
        uvloop.run(_main(role))


if __name__ == "__main__":
    main()
