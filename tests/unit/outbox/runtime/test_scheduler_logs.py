"""The retention scheduler logs like a library: nothing per run at INFO, its routine lines
are DEBUG records under the library's own logger name."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox import make_engine, outbox_metadata
from cloudcrm_outbox.runtime.process import (
    SCHEDULER_LOGGER,
    RetentionPolicy,
    scheduler_with_retention,
)
from cloudcrm_outbox.storage.retention import delete_published_outbox_rows

# First run 0.1 s after the start, then every 0.1 s: three runs within a second.
POLICY = RetentionPolicy(interval_seconds=0.1, pause_seconds=0.0)


async def _three_retention_runs(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'service.db'}")
    runs: list[int] = []
    three_runs = asyncio.Event()

    async def retention(db: AsyncEngine, **options: Any) -> int:
        runs.append(await delete_published_outbox_rows(db, **options))
        if len(runs) >= 3:
            three_runs.set()
        return runs[-1]

    try:
        async with engine.begin() as connection:
            await connection.run_sync(outbox_metadata.create_all)
        scheduler = scheduler_with_retention(POLICY, engine, retention)
        scheduler.start()
        try:
            await asyncio.wait_for(three_runs.wait(), timeout=10)
        finally:
            scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # let the last run's completion callback go
    finally:
        await engine.dispose()


async def test_no_line_per_run_reaches_the_root_logger_at_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # the root logger and the capturing handler
    await _three_retention_runs(tmp_path)
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == []


async def test_the_routine_lines_are_debug_records_of_the_library(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=SCHEDULER_LOGGER)
    await _three_retention_runs(tmp_path)
    lines = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert not [line for line in lines if line[0].startswith("apscheduler")], lines
    ran = [line for line in lines if "executed successfully" in line[2]]
    added = [line for line in lines if line[2].startswith("Added job")]
    assert len(ran) >= 3 and added, lines
    assert {(name, level) for name, level, _ in ran + added} == {(SCHEDULER_LOGGER, "DEBUG")}
