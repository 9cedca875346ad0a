"""The processes of the keyed history check: ``python -m tests.reliability.keyed_worker
relay|consume DATABASE_URL BROKER_URL``, each the library's own process (``run_relay``,
``run_consumer``) over a one-event contract, so that the test can kill -9 them.

The handler records each step it applies in ``steps_applied`` (a bigserial gives the order
the steps were applied in, in the handler's transaction with the inbox row), and fails a
step marked poison until its key is listed in ``fixed_keys`` (the operator's fix).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import ClassVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from cloudcrm_outbox import APPLIED, IntegrationEvent, QueueBindings, Subscription
from cloudcrm_outbox.brokers import broker_for
from cloudcrm_outbox.inbox.policy import ConsumerPolicy
from cloudcrm_outbox.relay.policy import RelayPolicy
from cloudcrm_outbox.runtime.consumer_process import ConsumerProcessConfig, run_consumer
from cloudcrm_outbox.runtime.process import RetentionPolicy
from cloudcrm_outbox.runtime.relay_process import RelayProcessConfig, run_relay

SERVICE = "steps"
TABLES = """
CREATE TABLE IF NOT EXISTS steps_applied (
    id bigserial PRIMARY KEY, key text NOT NULL, step int NOT NULL, message_id uuid NOT NULL);
CREATE TABLE IF NOT EXISTS fixed_keys (key text PRIMARY KEY);
"""


class StepTaken(IntegrationEvent):
    """Step ``step`` of ``key``'s history; ``poison``: fails until the key is fixed."""

    event_name: ClassVar[str] = "StepTaken"
    key_field: ClassVar[str | None] = "key"
    key: str
    step: int
    poison: bool = False


class PoisonStepError(RuntimeError):
    """A poison step of a key not fixed yet."""


async def apply_steps(session: AsyncSession, events: Sequence[IntegrationEvent]) -> list[str]:
    for event in events:
        assert isinstance(event, StepTaken)
        if event.poison:
            fixed = await session.scalar(
                text("SELECT count(*) FROM fixed_keys WHERE key = :key"), {"key": event.key}
            )
            if not fixed:
                raise PoisonStepError(f"step {event.step} of {event.key} is poison")
        await session.execute(
            text("INSERT INTO steps_applied (key, step, message_id) VALUES (:k, :s, :m)"),
            {"k": event.key, "s": event.step, "m": event.event_id},
        )
    return [APPLIED] * len(events)


SUBSCRIPTIONS = (Subscription(event=StepTaken, handle=apply_steps),)
BINDINGS = QueueBindings.of(SERVICE, ["StepTaken"])


async def main(role: str, database_url: str, broker_url: str) -> None:
    if role == "relay":
        await run_relay(
            RelayProcessConfig(
                relay=RelayPolicy(batch_size=100),
                retention=RetentionPolicy(enabled=False),
                poll_interval_seconds=0.2,
                reconnect_max_seconds=1,
                claim_timeout_seconds=30,
            ),
            broker=broker_for(broker_url),
            database_url=database_url,
            name=SERVICE,
            bindings=[BINDINGS],
        )
    else:
        await run_consumer(
            ConsumerProcessConfig(
                consumer=ConsumerPolicy(
                    prefetch=100,
                    batch_size=50,
                    delivery_limit=3,
                    redelivery_max_seconds=0.3,
                    reconnect_max_seconds=1,
                    database_reconnect_max_seconds=1,
                    parked_check_seconds=0.5,
                ),
                retention=RetentionPolicy(enabled=False),
            ),
            broker=broker_for(broker_url),
            service=SERVICE,
            database_url=database_url,
            subscriptions=SUBSCRIPTIONS,
        )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(main(*sys.argv[1:4]))
