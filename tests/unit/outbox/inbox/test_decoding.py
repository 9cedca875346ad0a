from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import pytest

from cloudcrm_outbox.events import KEY_HEADER, SEQUENCE_HEADER
from cloudcrm_outbox.inbox.decoding import Decoded, Poison, decode, message_key
from cloudcrm_outbox.subscriptions import Subscription, by_event_name
from tests.support.events import SUBSCRIPTIONS, OrderPlaced
from tests.support.events import record as reserve_stock

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


def run(
    raw: bytes,
    *,
    props: Mapping[str, str | None] | None = None,
    headers: Mapping[str, Any] | None = None,
    subscriptions: Mapping[str, Subscription] = INDEX,
) -> Decoded | Poison:
    given: dict[str, str | None] = {
        "message_id": MESSAGE_ID,
        "event_type": "OrderPlaced",
        "content_type": "application/json",
        **(props or {}),
    }
    return decode(
        message_id=given["message_id"],
        event_type=given["event_type"],
        content_type=given["content_type"],
        body=raw,
        subscriptions=subscriptions,
        headers=headers,
    )


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
        (body(), {"content_type": None}, "content type missing"),
        (body(), {"event_type": "OrderShipped"}, "unknown event type 'OrderShipped'"),
        (body(), {"event_type": None}, "no type"),
        (body(), {"event_type": ""}, "no type"),
        (body(quantity=0), {}, "quantity"),
        (body(quantity=-1), {}, "quantity"),
        (body(quantity=10_001), {}, "quantity"),
        (body(quantity="2"), {}, "quantity"),
        (body(quantity=2.5), {}, "quantity"),
        (body(productId="nope"), {}, "productId"),
        (body(customerName=""), {}, "customerName"),
        (body(discount=5, quantity="2"), {}, "quantity"),
        (json.dumps({"discount": 5, "quantity": 2}).encode(), {}, "orderId"),
        (body(customerName="x" * 70_000), {}, "over the 65536-byte limit"),
    ],
)
def test_poison_names_its_reason(raw: bytes, props: dict[str, str | None], reason: str) -> None:
    decoded = run(raw, props=props)
    assert isinstance(decoded, Poison)
    assert reason in decoded.reason
    assert len(decoded.reason) <= 700
    assert "'None'" not in decoded.reason  # a missing property is said to be missing


def test_an_unknown_field_is_ignored_and_the_known_ones_are_read() -> None:
    """The tolerant reader: a newer publisher added an optional field (a rolling deploy)."""
    raw = body(discount=5, note={"nested": [1, 2]})
    decoded = run(raw)
    assert isinstance(decoded, Decoded)
    assert decoded.event.body() == {
        key: value for key, value in json.loads(raw).items() if key not in {"discount", "note"}
    }


@pytest.mark.parametrize("headers", [None, {}, {"event_version": "1"}, {"event_version": 1}])
def test_the_current_version_or_no_version_header_is_read(
    headers: dict[str, object] | None,
) -> None:
    assert isinstance(run(body(), headers=headers), Decoded)


@pytest.mark.parametrize("version", ["2", 2, "0", "-1", 99, "1" * 18])
def test_a_version_the_consumer_cannot_read_is_poison_naming_it(version: object) -> None:
    decoded = run(body(), headers={"event_version": version, "correlation_id": "c-1"})
    assert isinstance(decoded, Poison)
    assert decoded.reason == (
        f"unsupported version {version} of OrderPlaced (this consumer reads 1)"
    )


@pytest.mark.parametrize("version", ["two", "", " 1", "1.0", "+1", "1" * 19, 1.0, True, None, b"1"])
def test_a_version_header_that_is_not_an_integer_is_poison(version: object) -> None:
    decoded = run(body(), headers={"event_version": version})
    assert isinstance(decoded, Poison)
    assert decoded.reason.startswith("invalid event_version ")


def _customer_renamed(old: dict[str, Any]) -> dict[str, Any]:
    """Version 0 called ``customerName`` ``customer`` (an example rename, tests only)."""
    new = {key: value for key, value in old.items() if key != "customer"}
    new["customerName"] = old["customer"]
    return new


UPCASTING = by_event_name(
    [Subscription(event=OrderPlaced, handle=reserve_stock, upcasters={0: _customer_renamed})]
)


def v0(**changes: object) -> bytes:
    fields = json.loads(body(**changes))
    fields["customer"] = fields.pop("customerName")
    return json.dumps(fields).encode()


def test_an_older_version_is_upcast_then_read_like_the_current_one() -> None:
    raw = v0(discount=5)  # unknown fields of an old version are ignored too
    decoded = run(raw, headers={"event_version": "0"}, subscriptions=UPCASTING)
    assert isinstance(decoded, Decoded)
    assert isinstance(decoded.event, OrderPlaced)
    assert decoded.event.customer_name == "Ann"
    assert str(decoded.event.order_id) == json.loads(raw)["orderId"]
    assert str(decoded.event.event_id) == MESSAGE_ID
    # The current version still goes straight to the model, without the upcaster.
    assert isinstance(run(body(), headers={"event_version": "1"}, subscriptions=UPCASTING), Decoded)


@pytest.mark.parametrize(
    ("raw", "version", "reason"),
    [
        (v0(), "2", "unsupported version 2 of OrderPlaced (this consumer reads 0, 1)"),
        (body(), "0", "invalid OrderPlaced version 0: its upcaster failed (KeyError('customer'))"),
        (b"{not json", "0", "invalid OrderPlaced version 0: not JSON"),
        (b"\xff\xfe", "0", "invalid OrderPlaced version 0: not JSON"),
        (b"[1]", "0", "invalid OrderPlaced version 0: the body is not a JSON object"),
        # 30,000 brackets in 60 KB: Python's reader raised RecursionError, past decode().
        (b"[" * 30000 + b"]" * 30000, "0", "invalid OrderPlaced version 0: nested too deeply"),
        (v0(quantity="2"), "0", "invalid OrderPlaced: quantity"),
        (v0(customerName=""), "0", "invalid OrderPlaced: customerName"),
    ],
)
def test_an_older_version_that_cannot_be_upcast_or_read_is_poison(
    raw: bytes, version: str, reason: str
) -> None:
    decoded = run(raw, headers={"event_version": version}, subscriptions=UPCASTING)
    assert isinstance(decoded, Poison)
    assert decoded.reason.startswith(reason), decoded.reason
    assert len(decoded.reason) <= 700


def test_an_upcaster_for_the_current_version_is_refused() -> None:
    with pytest.raises(ValueError, match="current version"):
        Subscription(event=OrderPlaced, handle=reserve_stock, upcasters={1: _customer_renamed})


def test_a_missing_type_or_content_type_keeps_its_metric_label() -> None:
    from cloudcrm_outbox.inbox.reporting import reason_kind

    for props, kind in (({"event_type": None}, "unknown_event_type"),
                        ({"content_type": None}, "bad_content_type")):  # fmt: skip
        decoded = run(body(), props=props)
        assert isinstance(decoded, Poison) and reason_kind(decoded.reason) == kind


@pytest.mark.parametrize("key", ["a\nb", "a\x7fb", "a\x85b", "a\x00b", "", "k" * 201])
def test_a_key_the_writer_would_refuse_is_poison(key: str) -> None:
    found = message_key({KEY_HEADER: key, SEQUENCE_HEADER: 1})
    assert isinstance(found, Poison) and "x-message-key" in found.reason
