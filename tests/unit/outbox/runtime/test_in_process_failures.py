"""A relay or consumer run by ``in_process`` that stops for good is reported, never lost
in a task, and never lets a SystemExit out of the host's event loop."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from cloudcrm_outbox.brokers import broker_for
from cloudcrm_outbox.errors import TopologyConflictError
from cloudcrm_outbox.runtime.in_process import InProcessConfig, MessagingService, in_process
from cloudcrm_outbox.runtime.relay_process import RelayProcessConfig, RelayStoppedError
from cloudcrm_outbox.storage.engine import make_engine
from tests.support.events import SUBSCRIPTIONS, create_outbox_schema

FAST = InProcessConfig(relay=RelayProcessConfig(shutdown_grace_seconds=1))


async def test_a_relay_that_stops_for_good_is_reported_and_the_loop_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(*_: Any, **__: Any) -> None:
        raise RelayStoppedError("relay of parcels stopped: the broker refused its topology")

    # The module itself: cloudcrm_outbox exports the function under the module's name.
    monkeypatch.setattr(sys.modules["cloudcrm_outbox.runtime.in_process"], "relay_until", refused)
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'parcels.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(create_outbox_schema)
    reasons: list[str] = []
    reported = asyncio.Event()

    def on_failure(reason: str) -> None:
        reasons.append(reason)
        reported.set()

    broker = broker_for("memory://", embedded_path=str(tmp_path / "queues"))
    try:
        # A SystemExit escaping the task would end this test's event loop here.
        async with in_process(
            broker, [MessagingService("parcels", engine)], config=FAST, on_failure=on_failure
        ):
            await asyncio.wait_for(reported.wait(), timeout=5)
            await asyncio.sleep(0.05)  # the loop is still serving
    finally:
        await broker.close()
        await engine.dispose()
    assert reasons == ["relay of parcels stopped: the broker refused its topology"]


async def test_one_relay_stopping_leaves_the_other_services_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # relay_until must not set the stop event in_process shares between services.
    relay_module = sys.modules["cloudcrm_outbox.runtime.relay_process"]

    class RefusedForA(relay_module.OutboxRelay):  # type: ignore[name-defined,misc]
        async def relay_batch(self) -> Any:
            if self._service == "a":
                raise TopologyConflictError("406 PRECONDITION_FAILED")
            return await super().relay_batch()

    monkeypatch.setattr(relay_module, "OutboxRelay", RefusedForA)
    engines = {}
    for name in ("a", "b"):
        engines[name] = make_engine(f"sqlite+aiosqlite:///{tmp_path / name}.db")
        async with engines[name].begin() as connection:
            await connection.run_sync(create_outbox_schema)
    reported = asyncio.Event()
    broker = broker_for("memory://", embedded_path=str(tmp_path / "queues"))
    services = [
        MessagingService("a", engines["a"]),
        MessagingService("b", engines["b"], SUBSCRIPTIONS),
    ]
    try:
        async with in_process(broker, services, config=FAST, on_failure=lambda _: reported.set()):
            await asyncio.wait_for(reported.wait(), timeout=5)
            await asyncio.sleep(0.3)
            alive = {t.get_name() for t in asyncio.all_tasks() if not t.done()}
            assert {"b-relay", "b-consumer"} <= alive
            assert "a-relay" not in alive
    finally:
        await broker.close()
        for engine in engines.values():
            await engine.dispose()
