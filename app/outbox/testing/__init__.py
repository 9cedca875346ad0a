"""What a service's own tests need to exercise its messaging without a broker server.

    broker = embedded_broker()                  # RabbitMQ's semantics, in memory
    service = MessagingService("parcels", engine, SUBSCRIPTIONS)
    ...                                         # the code under test writes its events
    assert [e.event_type for e in await staged_events(engine)] == ["ParcelShipped"]
    await drain(broker, [service])              # relayed, consumed, applied; then stopped
    ...                                         # assert on what the handlers did

``wait_drained(services)`` waits the same way for relays and consumers already running
(an application's lifespan that runs ``in_process``).
"""

from cloudcrm_outbox.testing.draining import (
    TEST_CONFIG,
    Drained,
    NotDrainedError,
    drain,
    wait_drained,
)
from cloudcrm_outbox.testing.staging import StagedEvent, embedded_broker, staged_events

__all__ = [
    "TEST_CONFIG",
    "Drained",
    "NotDrainedError",
    "StagedEvent",
    "drain",
    "embedded_broker",
    "staged_events",
    "wait_drained",
]
