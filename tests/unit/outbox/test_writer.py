from __future__ import annotations

import uuid
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from cloudcrm_outbox import IntegrationEvent, OutboxMessage, add_event
from cloudcrm_outbox.storage.engine import make_engine, make_sessionmaker
from cloudcrm_outbox.storage.tables import outbox_tables
from tests.support.events import OrderPlaced


def test_add_event_stages_a_row_without_any_io() -> None:
    # An unbound session: any I/O (flush, execute, commit) would raise.
    session = AsyncSession()
    placed = OrderPlaced(
        order_id=uuid.uuid4(), product_id=uuid.uuid4(), customer_name="Ann", quantity=1
    )

    row = add_event(session, placed, correlation_id="c-1", traceparent="00-abc-def-01")

    assert list(session.new) == [row]
    assert isinstance(row, OutboxMessage)
    assert row.id == placed.event_id
    assert row.event_type == "OrderPlaced"
    assert row.payload == placed.body()
    assert row.headers == {
        "event_version": "1",
        "correlation_id": "c-1",
        "traceparent": "00-abc-def-01",
    }
    assert row.published_at is None and row.attempts == 0


def test_headers_leave_out_what_is_unknown() -> None:
    placed = OrderPlaced(
        order_id=uuid.uuid4(), product_id=uuid.uuid4(), customer_name="Bo", quantity=3
    )
    row = add_event(AsyncSession(), placed)
    assert row.headers == {"event_version": "1"}


class ParcelShipped(IntegrationEvent):
    event_name: ClassVar[str] = "ParcelShipped"
    key_field: ClassVar[str | None] = "parcel_id"

    parcel_id: uuid.UUID
    carrier: str


def test_a_key_is_given_or_taken_from_the_events_key_field() -> None:
    placed = OrderPlaced(
        order_id=uuid.uuid4(), product_id=uuid.uuid4(), customer_name="Cy", quantity=1
    )
    parcel = ParcelShipped(parcel_id=uuid.uuid4(), carrier="post")

    assert add_event(AsyncSession(), placed).message_key is None
    assert add_event(AsyncSession(), placed, key="order-7").message_key == "order-7"
    assert add_event(AsyncSession(), parcel).message_key == str(parcel.parcel_id)
    assert add_event(AsyncSession(), parcel, key="by-hand").message_key == "by-hand"


@pytest.mark.parametrize(
    ("key", "error", "words"),
    [
        ("", ValueError, "1 to 200 characters, not 0"),
        ("k" * 201, ValueError, "1 to 200 characters, not 201"),
        ("order\x00-1", ValueError, "no control characters"),
        ("order\n1", ValueError, "no control characters"),
        ("order\x851", ValueError, "no control characters"),
        ("order\ud8001", ValueError, "valid Unicode"),
        (42, TypeError, "a str, not int"),
    ],
)
def test_a_bad_key_is_refused_before_anything_is_staged(
    key: object, error: type[Exception], words: str
) -> None:
    session = AsyncSession()
    placed = OrderPlaced(
        order_id=uuid.uuid4(), product_id=uuid.uuid4(), customer_name="Di", quantity=1
    )
    with pytest.raises(error, match=words):
        add_event(session, placed, key=key)  # type: ignore[arg-type]
    assert not session.new


async def test_create_all_numbers_keys_as_the_schema_steps_do(tmp_path: Path) -> None:
    """A service that makes its tables with ``metadata.create_all`` gets the trigger too."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(outbox_tables().metadata.create_all)
        sessions = make_sessionmaker(engine)
        parcels = [ParcelShipped(parcel_id=uuid.UUID(int=7), carrier="post") for _ in range(3)]
        async with sessions() as session, session.begin():
            for parcel in parcels:
                add_event(session, parcel)
        async with engine.connect() as connection:
            numbered = (
                (await connection.execute(text("SELECT key_sequence FROM outbox ORDER BY 1")))
                .scalars()
                .all()
            )
        assert numbered == [1, 2, 3]
    finally:
        await engine.dispose()


PLACED = OrderPlaced(order_id=uuid.uuid4(), product_id=uuid.uuid4(), customer_name="E", quantity=1)


class Nameless(IntegrationEvent):
    event_name: ClassVar[str] = ""


@pytest.mark.parametrize(
    ("event", "correlation_id", "error", "words"),
    [
        (Nameless(), None, ValueError, "an event_name has 1 to 200 characters"),
        (PLACED, "c" * 256, ValueError, "255 bytes"),
        (PLACED, 7, TypeError, "a str, not int"),
    ],
)
def test_what_no_broker_could_take_is_refused_before_it_is_staged(
    event: IntegrationEvent, correlation_id: object, error: type[Exception], words: str
) -> None:
    session = AsyncSession()
    with pytest.raises(error, match=words):
        add_event(session, event, correlation_id=correlation_id)  # type: ignore[arg-type]
    assert not session.new


def test_a_key_field_naming_no_field_is_refused_when_the_class_is_defined() -> None:
    with pytest.raises(TypeError, match="key_field names no field of it: 'order'"):

        class Misnamed(IntegrationEvent):
            event_name: ClassVar[str] = "Misnamed"
            key_field: ClassVar[str | None] = "order"
            order_id: uuid.UUID
