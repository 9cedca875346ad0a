"""The settings that bound how long a process waits on its database, and their wiring."""

from __future__ import annotations

import pytest

from app.core.settings import Settings
from app.messaging.wiring import consumer_config, relay_config
from cloudcrm_outbox.storage.liveness import TcpKeepalives


def test_the_blocked_lock_timeout_reaches_the_consumer_and_is_the_shorter() -> None:
    settings = Settings(consumer_blocked_lock_timeout_seconds=0.25)
    assert consumer_config(settings).consumer.blocked_lock_timeout_seconds == 0.25
    with pytest.raises(ValueError, match="must not exceed CONSUMER_LOCK_TIMEOUT_SECONDS"):
        Settings(consumer_lock_timeout_seconds=1, consumer_blocked_lock_timeout_seconds=2)


def test_the_liveness_settings_reach_the_relay_and_the_consumer() -> None:
    settings = Settings(
        database_keepalives_idle_seconds=7,
        database_keepalives_interval_seconds=3,
        database_keepalives_count=4,
        database_tcp_user_timeout_seconds=9,
        database_answer_timeout_seconds=12,
        consumer_statement_timeout_seconds=10,
        relay_claim_timeout_seconds=45,
    )
    keepalives = TcpKeepalives(idle_seconds=7, interval_seconds=3, count=4, user_timeout_seconds=9)
    relay, consumer = relay_config(settings), consumer_config(settings)
    assert relay.keepalives == consumer.keepalives == keepalives
    assert (relay.answer_timeout_seconds, relay.claim_timeout_seconds) == (12, 45)
    assert consumer.consumer.answer_timeout_seconds == 12
    assert consumer.idle_in_transaction_timeout_seconds == 12
    assert keepalives.libpq_parameters() == {
        "keepalives": 1,
        "keepalives_idle": 7,
        "keepalives_interval": 3,
        "keepalives_count": 4,
        "tcp_user_timeout": 9000,
    }


def test_a_silent_connection_is_never_confused_with_a_slow_statement_or_publish() -> None:
    with pytest.raises(ValueError, match="must exceed CONSUMER_STATEMENT_TIMEOUT_SECONDS"):
        Settings(database_answer_timeout_seconds=15, consumer_statement_timeout_seconds=15)
    with pytest.raises(ValueError, match="at least 3 x RELAY_PUBLISH_TIMEOUT_SECONDS"):
        Settings(relay_claim_timeout_seconds=29, relay_publish_timeout_seconds=10)
    assert Settings().relay_claim_timeout_seconds < 90  # another relay within 90 s
