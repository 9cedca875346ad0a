"""RETENTION_ENABLED=false keeps a process from cleaning (another one does)."""

from __future__ import annotations

from typing import Any

from app.core.settings import Settings
from app.messaging.wiring import consumer_config, relay_config
from cloudcrm_outbox.runtime.process import RetentionPolicy, scheduler_with_retention


async def _job(*_: Any, **__: Any) -> int:
    return 0


def test_a_process_with_retention_disabled_schedules_no_cleaning() -> None:
    engine: Any = None  # never used: nothing runs
    assert scheduler_with_retention(RetentionPolicy(enabled=False), engine, _job).get_jobs() == []
    assert len(scheduler_with_retention(RetentionPolicy(), engine, _job).get_jobs()) == 1


def test_the_settings_reach_both_processes() -> None:
    settings = Settings(retention_enabled=False, retention_pause_seconds=0.5)
    for config in (relay_config(settings), consumer_config(settings)):
        assert config.retention.enabled is False
        assert config.retention.pause_seconds == 0.5
