"""Dead letters read whatever their headers hold; names that SQL would misread are refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cloudcrm_outbox import MessagingNames
from cloudcrm_outbox.brokers.dead_letters import check_limit, dead_letter_of, in_death_order

HOSTILE: list[dict[str, Any] | None] = [
    None,
    {"x-death": 5},
    {"x-death": [{"routing-keys": 7}]},
    {"x-death": [{"routing-keys": {"a": 1}}]},
    {"x-death": [{"count": float("inf")}]},
    {"x-replay-count": float("inf")},
    {"x-replay-count": "many"},
    {"x-death": [{"time": datetime(2026, 1, 1)}, {"time": datetime(2026, 1, 2, tzinfo=UTC)}]},
    {"x-first-dead-lettered-at": "yesterday"},
    {"x-poison-reason": b"\xff bytes"},
]


@pytest.mark.parametrize("headers", HOSTILE)
def test_any_headers_still_make_a_dead_letter(headers: dict[str, Any] | None) -> None:
    letter = dead_letter_of(
        body=b"x", headers=headers, message_id=None, event_type="E", routing_key="q"
    )
    assert letter.routing_key == "E" and letter.deaths >= 1 and letter.reason
    assert letter.first_death_at is None or letter.first_death_at.tzinfo is not None


def test_a_routing_keys_string_is_not_read_letter_by_letter() -> None:
    headers = {"x-death": [{"routing-keys": "order.placed"}]}
    letter = dead_letter_of(body=b"", headers=headers, message_id="1", event_type=None,
                            routing_key=None)  # fmt: skip
    assert letter.routing_key == ""


def test_listings_are_oldest_death_first() -> None:
    def died(day: int | None) -> Any:
        stamp = (
            {} if day is None else {"x-first-dead-lettered-at": f"2026-01-0{day}T00:00:00+00:00"}
        )
        return dead_letter_of(body=b"", headers=stamp, message_id=str(day), event_type="E",
                              routing_key=None)  # fmt: skip

    ordered = in_death_order([died(3), died(None), died(1), died(2)])
    assert [letter.message_id for letter in ordered] == ["1", "2", "3", "None"]


@pytest.mark.parametrize("limit", [-1, 1.5, True, "10"])
def test_a_limit_that_is_no_count_is_refused(limit: Any) -> None:
    with pytest.raises(ValueError, match="limit"):
        check_limit(limit)


@pytest.mark.parametrize("field", ["outbox_table", "inbox_table", "notify_channel"])
@pytest.mark.parametrize("value", ["order", "select", "user", "sqlite_outbox", "Outbox", "1x", ""])
def test_names_sql_would_misread_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=field):
        MessagingNames(**{field: value})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"exchange": "amq.topic"}, "exchange"),
        ({"exchange": ""}, "exchange"),
        ({"exchange": "a b"}, "exchange"),
        ({"queue_pattern": "events"}, "queue_pattern"),
        ({"queue_pattern": "{service}.{service}"}, "queue_pattern"),
        ({"outbox_table": "same", "inbox_table": "same"}, "outbox_table"),
    ],
)
def test_broker_names_rabbitmq_would_refuse_are_refused(
    changes: dict[str, str], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        MessagingNames(**changes)
