"""When a row that could not be published is tried again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.outbox.relay_policy import RelayPolicy


def test_a_nacked_row_waits_longer_each_time_up_to_the_cap() -> None:
    policy = RelayPolicy(retry_base_seconds=1, retry_max_seconds=300)
    written = datetime(2026, 11, 30, tzinfo=UTC)
    due, delays = written, []
    for _ in range(12):  # nacked at each attempt: the queue stays full
        delay = policy.nacked_delay(written, due)
        delays.append(delay)
        due += timedelta(seconds=delay)
    assert delays[:6] == [1, 1, 2, 4, 8, 16]  # doubles: no copy a second to other queues
    assert delays[-1] == 300 and max(delays) == 300


def test_an_old_row_nacked_waits_as_long_as_it_has_waited_capped() -> None:
    policy = RelayPolicy(retry_base_seconds=1, retry_max_seconds=300)
    written = datetime(2026, 11, 30, tzinfo=UTC)
    assert policy.nacked_delay(written, written + timedelta(seconds=40)) == 40
    assert policy.nacked_delay(written, written + timedelta(days=2)) == 300
