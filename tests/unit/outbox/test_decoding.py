from __future__ import annotations

import json
import uuid

import pytest

from app.catalog.handlers import SUBSCRIPTIONS
from app.ordering.contracts import OrderPlaced
from app.outbox.decoding import Decoded, Poison, decode
from app.outbox.subscriptions import by_event_name

INDEX = by_event_name(SUBSCRIPTIONS)
MESSAGE_ID = str(uuid.uuid4())


def body(**changes: object) -> bytes:
    fields: dict[str, object] = {
        "orderId": str(uuid.uuid4()),
        "productId": str(uuid.uuid4()),
        "customerName": "Ann",
        "quantity": 2,
    }
    fields.update(changes)
    return json.dumps(fields).encode()


def run(raw: bytes, **props: str | None) -> Decoded | Poison:
    given: dict[str, str | None] = {
        "message_id": MESSAGE_ID,
        "event_type": "OrderPlaced",
        "content_type": "application/json",
    }
    given.update(props)
    return decode(body=raw, subscriptions=INDEX, **given)  # type: ignore[arg-type]


def test_a_valid_message_carries_its_message_id_as_the_event_id() -> None:
    decoded = run(body())
    assert isinstance(decoded, Decoded)
    assert isinstance(decoded.event, OrderPlaced)
    assert str(decoded.message_id) == MESSAGE_ID == str(decoded.event.event_id)


@pytest.mark.parametrize(
    ("raw", "props", "reason"),
    [
        (b"{not json", {}, "invalid OrderPlaced"),
        (b"[]", {}, "invalid OrderPlaced"),
        (b'"text"', {}, "invalid OrderPlaced"),
        (body(), {"message_id": None}, "missing message_id"),
        (body(), {"message_id": ""}, "missing message_id"),
        (body(), {"message_id": "42"}, "not a UUID"),
        (body(), {"content_type": "text/plain"}, "content type 'text/plain'"),
        (body(), {"content_type": None}, "content type 'None'"),
        (body(), {"event_type": "OrderShipped"}, "unknown event type 'OrderShipped'"),
        (body(), {"event_type": None}, "unknown event type"),
        (body(quantity=0), {}, "quantity"),
        (body(quantity=-1), {}, "quantity"),
        (body(quantity=10_001), {}, "quantity"),
        (body(quantity="2"), {}, "quantity"),
        (body(quantity=2.5), {}, "quantity"),
        (body(productId="nope"), {}, "productId"),
        (body(customerName=""), {}, "customerName"),
        (body(extra=True), {}, "extra"),
        (body(customerName="x" * 70_000), {}, "over the 65536-byte limit"),
    ],
)
def test_poison_names_its_reason(raw: bytes, props: dict[str, str | None], reason: str) -> None:
    decoded = run(raw, **props)
    assert isinstance(decoded, Poison)
    assert reason in decoded.reason
    assert len(decoded.reason) <= 700
