"""The dead-letter copy's headers fit in one frame (AMQP 0-9-1 §4.2.6.1)."""

from __future__ import annotations

from pamqp.commands import Basic

from cloudcrm_outbox.brokers.rabbitmq.consuming.dead_letter_copy import (
    DROPPED_HEADERS,
    fitted_headers,
    header_frame_size,
)

FRAME_MAX = 131_072
ADDED = {"x-poison-reason": "invalid OrderPlaced", "x-poison-queue": "catalog.events"}


def test_headers_that_fit_are_all_kept() -> None:
    own = {"traceparent": "00-abc-def-01", "event_version": "1"}
    assert fitted_headers(own, ADDED, Basic.Properties(), body_size=10, frame_max=FRAME_MAX) == {
        **own,
        **ADDED,
    }


def test_the_largest_own_headers_go_first_until_the_copy_fits() -> None:
    own = {"small": "kept", "big": "x" * 130_900, "medium": "y" * 100}
    properties = Basic.Properties(message_id="m", message_type="OrderPlaced")
    headers = fitted_headers(own, ADDED, properties, body_size=10, frame_max=FRAME_MAX)
    assert headers == {"small": "kept", "medium": "y" * 100, **ADDED, DROPPED_HEADERS: "big"}
    properties.headers = headers
    assert header_frame_size(properties, 10) <= FRAME_MAX
