"""``python -m app outbox status``: the service's outbox figures, as JSON."""

from __future__ import annotations

import json

import pytest

from cloudcrm_outbox.storage.engine import make_engine
from tests.e2e.processes import command_env, command_output
from tests.integration.outbox.ops.test_status import make_figures

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


async def test_the_command_prints_the_figures(ordering_db: str, broker: str) -> None:
    engine = make_engine(ordering_db)
    try:
        await make_figures(ordering_db, engine, broker)
    finally:
        await engine.dispose()
    printed = command_output(
        "outbox", "status", "ordering", "--json", env=command_env(ORDERING_DATABASE_URL=ordering_db)
    )
    figures = json.loads(printed)["ordering"]
    assert (figures["pending"], figures["unroutable"], figures["failed"]) == (2, 1, 1)
    assert figures["published_last_hour"] == 4
