from __future__ import annotations

import uuid
from typing import ClassVar

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from cloudcrm_outbox import IntegrationEvent, OutboxMessage, add_event
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
