"""The test harness a service's own tests use: the embedded broker, the staged events, and
``drain`` / ``wait_drained`` (relays and consumers run until everything is applied)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy import Column, MetaData, Table, Uuid, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cloudcrm_outbox import (
    APPLIED,
    IntegrationEvent,
    MessagingService,
    Subscription,
    add_event,
    in_process,
    make_engine,
    make_sessionmaker,
    outbox_metadata,
    outbox_tables,
)
from cloudcrm_outbox.testing import (
    TEST_CONFIG,
    NotDrainedError,
    drain,
    embedded_broker,
    staged_events,
    wait_drained,
)


class OrderPlaced(IntegrationEvent):
    event_name: ClassVar[str] = "OrderPlaced"
    order_id: uuid.UUID


class OrderAudited(IntegrationEvent):  # consumed by nobody
    event_name: ClassVar[str] = "OrderAudited"
    order_id: uuid.UUID


# The consuming service's own table: the effect its handler commits with its inbox row.
shipments = Table("shipments", MetaData(), Column("order_id", Uuid, primary_key=True))


async def ship(session: AsyncSession, events: Sequence[OrderPlaced]) -> list[str]:
    await session.execute(insert(shipments), [{"order_id": e.order_id} for e in events])
    return [APPLIED] * len(events)


async def _database(path: Path) -> AsyncEngine:
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as connection:
        await connection.run_sync(outbox_metadata.create_all)
        await connection.run_sync(shipments.metadata.create_all)
    return engine


@pytest.fixture
async def engines(tmp_path: Path) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two service databases: orders' and shipping's."""
    orders, shipping = await _database(tmp_path / "orders.db"), await _database(tmp_path / "s.db")
    yield orders, shipping
    await orders.dispose()
    await shipping.dispose()


async def _place(engine: AsyncEngine, *events: IntegrationEvent) -> None:
    """What the code under test does: its events written in its own transaction."""
    async with make_sessionmaker(engine)() as session, session.begin():
        for event in events:
            add_event(session, event)


async def _shipped(engine: AsyncEngine) -> set[uuid.UUID]:
    async with engine.connect() as connection:
        return set((await connection.execute(select(shipments.c.order_id))).scalars())


async def test_drain_publishes_and_applies_across_services(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    orders, shipping = engines
    placed = [OrderPlaced(order_id=uuid.uuid4()) for _ in range(3)]
    await _place(orders, *placed)
    assert [e.published for e in await staged_events(orders)] == [False] * 3
    services = [
        MessagingService("orders", orders),
        MessagingService("shipping", shipping, (Subscription(OrderPlaced, ship),)),
    ]

    drained = await drain(embedded_broker(), services)

    assert await _shipped(shipping) == {event.order_id for event in placed}
    assert (drained.published, drained.applied, drained.dead_lettered) == (
        3,
        {"shipping": 3},
        {"shipping": 0},
    )
    staged = await staged_events(orders, event_type="OrderPlaced", published=True)
    # One transaction, one created_at: the order among its rows is the ids'.
    assert sorted(e.body["orderId"] for e in staged) == sorted(str(e.order_id) for e in placed)


async def test_an_event_nobody_consumes_is_counted_not_waited_for(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    orders, _ = engines
    await _place(orders, OrderAudited(order_id=uuid.uuid4()))

    drained = await drain(embedded_broker(), [MessagingService("orders", orders)], timeout=5)

    assert (drained.published, drained.unroutable, drained.applied) == (0, 1, {})
    assert await staged_events(orders, published=False) != []


async def test_a_dead_lettered_event_counts_as_settled(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    orders, shipping = engines
    async with make_sessionmaker(orders)() as session, session.begin():
        # A body the contract rejects (no orderId): the consumer dead-letters it at once.
        row = outbox_tables().row(id=uuid.uuid4(), event_type="OrderPlaced", payload={},
                                  headers={}, attempts=0)  # fmt: skip
        session.add(row)
    broker = embedded_broker()
    services = [
        MessagingService("orders", orders),
        MessagingService("shipping", shipping, (Subscription(OrderPlaced, ship),)),
    ]

    drained = await drain(broker, services)

    assert (drained.applied, drained.dead_lettered) == ({"shipping": 0}, {"shipping": 1})
    [letter] = await broker.dead_letters("shipping")
    assert letter.message_id == str(row.id)


async def test_wait_drained_waits_for_relays_already_running(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    orders, shipping = engines
    services = [
        MessagingService("orders", orders),
        MessagingService("shipping", shipping, (Subscription(OrderPlaced, ship),)),
    ]
    placed = OrderPlaced(order_id=uuid.uuid4())
    async with in_process(embedded_broker(), services, config=TEST_CONFIG):
        await _place(orders, placed)  # while they run, as a request would
        drained = await wait_drained(services)
        assert await _shipped(shipping) == {placed.order_id}
    assert drained.applied == {"shipping": 1}


async def test_what_is_outstanding_is_named_when_nothing_runs(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    orders, shipping = engines
    await _place(orders, OrderPlaced(order_id=uuid.uuid4()))
    services = [
        MessagingService("orders", orders),
        MessagingService("shipping", shipping, (Subscription(OrderPlaced, ship),)),
    ]

    with pytest.raises(NotDrainedError, match=r"within 0.2s: 1 outbox row\(s\) unpublished"):
        await wait_drained(services, timeout=0.2)


async def test_staged_events_filters_by_type_and_state(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    orders, _ = engines
    placed, audited = OrderPlaced(order_id=uuid.uuid4()), OrderAudited(order_id=uuid.uuid4())
    await _place(orders, placed, audited)

    assert sorted(e.event_type for e in await staged_events(orders)) == [
        "OrderAudited",
        "OrderPlaced",
    ]
    [only] = await staged_events(orders, event_type="OrderAudited", published=False)
    assert (only.message_id, only.headers["event_version"]) == (audited.event_id, "1")
    assert await staged_events(orders, published=True) == []


async def test_a_handler_raising_cancelled_error_is_retried_and_the_consumer_lives_on(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """A handler that awaited something another task cancelled raises CancelledError: the
    consumer was not cancelled, so it is the handler's failure (held and retried), not a
    consumer ending without a word."""
    orders, shipping = engines
    placed = OrderPlaced(order_id=uuid.uuid4())
    await _place(orders, placed)
    calls: list[int] = []

    async def ship_after_a_cancelled_wait(
        session: AsyncSession, events: Sequence[OrderPlaced]
    ) -> list[str]:
        calls.append(len(events))
        if len(calls) == 1:
            waited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waited.cancel()
            await waited  # raises CancelledError into the handler
        return await ship(session, events)

    services = [
        MessagingService("orders", orders),
        MessagingService(
            "shipping", shipping, (Subscription(OrderPlaced, ship_after_a_cancelled_wait),)
        ),
    ]
    drained = await drain(embedded_broker(), services, timeout=20)

    assert await _shipped(shipping) == {placed.order_id}
    assert drained.applied == {"shipping": 1} and len(calls) >= 2
