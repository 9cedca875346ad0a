"""When a row that could not be published is tried again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloudcrm_outbox.relay.policy import RelayPolicy


def test_a_nacked_row_waits_longer_each_time_up_to_the_cap() -> None:
    policy = RelayPolicy(retry_base_seconds=1, retry_max_seconds=300)
    written = datetime(2026, 11, 30, tzinfo=UTC)
    due, delays = written, []
    for attempt in range(12):  # nacked at each attempt: the queue stays full
        delay = policy.nacked_delay(written, due, nacked_before=attempt > 0)
        delays.append(delay)
        due += timedelta(seconds=delay)
    assert delays[:6] == [1, 1, 2, 4, 8, 16]  # doubles: no copy a second to other queues
    assert delays[-1] == 300 and max(delays) == 300


def test_an_old_row_first_nacked_waits_the_base_delay_then_as_long_as_it_waited() -> None:
    # A backlog after an outage, a republished row: a queue between leaders takes it a
    # second later, not after the cap.
    policy = RelayPolicy(retry_base_seconds=1, retry_max_seconds=300)
    written = datetime(2026, 11, 30, tzinfo=UTC)
    assert policy.nacked_delay(written, written + timedelta(days=2), nacked_before=False) == 1
    assert policy.nacked_delay(written, written + timedelta(seconds=40), nacked_before=True) == 40
    assert policy.nacked_delay(written, written + timedelta(days=2), nacked_before=True) == 300


def test_a_topic_refusal_is_charged_only_to_the_message_it_names() -> None:
    from aiormq.exceptions import ChannelAccessRefused

    from cloudcrm_outbox.brokers.rabbitmq.publishing.confirms import refused_over

    error = ChannelAccessRefused(
        "ACCESS_REFUSED - access to topic 'Forbidden' in exchange 'cloudcrm.events' in vhost "
        "'/' refused for user 'guest'"
    )
    assert refused_over("Forbidden", error)
    assert not refused_over("OrderPlaced", error)  # another worker's, on the shared channel


def test_an_unroutable_probe_retries_soon_the_others_wait_and_both_give_up_by_age() -> None:
    policy = RelayPolicy(retry_max_seconds=300, unroutable_give_up_seconds=3600)
    since = datetime(2026, 11, 30, tzinfo=UTC)
    soon = since + timedelta(seconds=10)
    assert policy.unroutable_delay(since, soon, probe=True) == (0.5, False)
    assert policy.unroutable_delay(since, soon, probe=False) == (300, False)
    late = since + timedelta(hours=1)
    assert policy.unroutable_delay(since, late, probe=True)[1]
    assert policy.unroutable_delay(since, late, probe=False)[1]
    assert policy.unroutable_delay(None, soon, probe=True) == (0.5, False)  # the first return
