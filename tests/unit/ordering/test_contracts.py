from __future__ import annotations

import json
import uuid

import pytest
from pydantic import ValidationError

from app.ordering.contracts import OrderPlaced


def event(**overrides: object) -> OrderPlaced:
    fields: dict[str, object] = {
        "order_id": uuid.uuid4(),
        "product_id": uuid.uuid4(),
        "customer_name": "Ann",
        "quantity": 2,
    }
    fields.update(overrides)
    return OrderPlaced(**fields)  # type: ignore[arg-type]


def test_body_is_camel_case_without_the_id() -> None:
    placed = event()
    assert placed.body() == {
        "orderId": str(placed.order_id),
        "productId": str(placed.product_id),
        "customerName": "Ann",
        "quantity": 2,
    }
    assert OrderPlaced.event_name == "OrderPlaced"
    assert OrderPlaced.event_version == 1


def test_each_event_has_its_own_id() -> None:
    assert event().event_id != event().event_id


def test_events_are_frozen() -> None:
    with pytest.raises(ValidationError, match="frozen"):
        event().quantity = 5  # type: ignore[misc]


def test_body_round_trips_through_the_consumer_side_validation() -> None:
    placed = event()
    again = OrderPlaced.from_body(json.dumps(placed.body()))
    assert again.model_dump(exclude={"event_id"}) == placed.model_dump(exclude={"event_id"})


def test_a_body_read_as_a_message_carries_that_message_id_whatever_the_body_says() -> None:
    placed = event()
    message_id = uuid.uuid4()
    assert OrderPlaced.from_body(json.dumps(placed.body()), message_id).event_id == message_id
    claiming = placed.body() | {"eventId": str(uuid.uuid4())}  # a body naming an id of its own
    assert OrderPlaced.from_body(json.dumps(claiming), message_id).event_id == message_id
    # Outside a read, every new event gets a fresh id again.
    assert event().event_id != message_id and event().event_id != event().event_id


def test_the_consumer_ignores_a_field_a_newer_publisher_added() -> None:
    placed = event()
    again = OrderPlaced.from_body(json.dumps(placed.body() | {"discount": 5}))
    assert again.model_dump(exclude={"event_id"}) == placed.model_dump(exclude={"event_id"})


def test_the_publisher_cannot_build_an_event_with_an_unknown_field() -> None:
    with pytest.raises(ValidationError, match="discount"):
        event(discount=5)


@pytest.mark.parametrize(
    "change",
    [
        {"quantity": "2"},
        {"quantity": 2.0},
        {"quantity": 0},
        {"quantity": 10_001},
        {"customerName": ""},
        {"customerName": "x" * 201},
        {"productId": "nope"},
        {"quantity": None},
        {"quantity": "2", "discount": 5},
    ],
)
def test_consumer_side_validation_rejects_what_the_publisher_never_sends(
    change: dict[str, object],
) -> None:
    body = event().body() | change
    with pytest.raises(ValidationError):
        OrderPlaced.from_body(json.dumps(body))


def test_consumer_side_validation_rejects_a_missing_field() -> None:
    body = event().body()
    del body["customerName"]
    with pytest.raises(ValidationError, match="customerName"):
        OrderPlaced.from_body(json.dumps(body))
