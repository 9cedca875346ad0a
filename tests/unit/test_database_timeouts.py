"""The settings that bound how long a process waits on its database, and their wiring."""

from __future__ import annotations

import pytest

from app.settings import Settings
from app.wiring import consumer_config


def test_the_blocked_lock_timeout_reaches_the_consumer_and_is_the_shorter() -> None:
    settings = Settings(consumer_blocked_lock_timeout_seconds=0.25)
    assert consumer_config(settings).consumer.blocked_lock_timeout_seconds == 0.25
    with pytest.raises(ValueError, match="must not exceed CONSUMER_LOCK_TIMEOUT_SECONDS"):
        Settings(consumer_lock_timeout_seconds=1, consumer_blocked_lock_timeout_seconds=2)
