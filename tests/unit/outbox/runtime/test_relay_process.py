"""The relay worker loop: it backs off on any failure and never dies."""

from __future__ import annotations

import asyncio
import threading

import pytest

from cloudcrm_outbox.errors import BrokerUnavailableError, TopologyConflictError
from cloudcrm_outbox.observability.probes import ProcessHealth
from cloudcrm_outbox.relay.relay import BatchReport
from cloudcrm_outbox.relay.wakeup import Wakeup
from cloudcrm_outbox.runtime.process import RetentionPolicy
from cloudcrm_outbox.runtime.relay_process import RelayProcessConfig, _work, relay_until
from cloudcrm_outbox.storage.engine import make_engine


class FlakyRelay:
    """Fails with each of ``errors`` in turn, then reports an empty outbox."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.idle = asyncio.Event()

    async def relay_batch(self) -> BatchReport:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        self.idle.set()
        return BatchReport(claimed=0, published=0, rejected=0, failed=0, seconds=0.0)


async def test_worker_survives_unexpected_errors_and_stops_on_request() -> None:
    relay = FlakyRelay(
        BrokerUnavailableError("down"), StopAsyncIteration(), RuntimeError("library bug")
    )
    stop, wakeup = asyncio.Event(), Wakeup()
    woken = wakeup.subscribe()
    config = RelayProcessConfig(reconnect_max_seconds=0.01)

    worker = asyncio.create_task(_work(relay, wakeup, woken, stop, config, ProcessHealth()))  # type: ignore[arg-type]
    await asyncio.wait_for(relay.idle.wait(), timeout=5)
    assert relay.calls == 4 and not worker.done()

    wakeup.notify()  # a wake-up makes it drain again
    for _ in range(100):
        if relay.calls == 5:
            break
        await asyncio.sleep(0.01)
    assert relay.calls == 5

    stop.set()
    await asyncio.wait_for(worker, timeout=5)
    assert worker.exception() is None


async def test_worker_ends_when_the_broker_refuses_the_topology() -> None:
    # Not worth a retry: the process exits 1 rather than look alive relaying nothing.
    relay = FlakyRelay(TopologyConflictError("refused"))
    stop, wakeup = asyncio.Event(), Wakeup()
    config = RelayProcessConfig(reconnect_max_seconds=0.01)
    worker = asyncio.create_task(
        _work(relay, wakeup, wakeup.subscribe(), stop, config, ProcessHealth())
    )  # type: ignore[arg-type]
    await asyncio.wait({worker}, timeout=5)
    assert isinstance(worker.exception(), TopologyConflictError)


async def test_the_poll_wakes_the_workers_from_the_event_loop_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The only wake-up on SQLite. APScheduler runs a plain function in a worker thread,
    # where asyncio.Event.set() is not safe and may not wake the sleeping loop.
    threads: list[int] = []
    polled = asyncio.Event()
    notify = Wakeup.notify

    def recording_notify(self: Wakeup) -> None:
        threads.append(threading.get_ident())
        notify(self)
        if len(threads) >= 3:
            polled.set()

    monkeypatch.setattr(Wakeup, "notify", recording_notify)
    engine = make_engine("sqlite+aiosqlite:///:memory:")
    relay = FlakyRelay()
    monkeypatch.setattr("cloudcrm_outbox.runtime.relay_process.OutboxRelay", lambda *a, **k: relay)
    config = RelayProcessConfig(
        poll_interval_seconds=0.05, retention=RetentionPolicy(enabled=False)
    )
    stop = asyncio.Event()
    running = asyncio.create_task(
        relay_until(
            stop,
            config=config,
            engine=engine,
            publisher=None,
            listen_dsn=None,
            name="t",  # type: ignore[arg-type]
        )
    )
    try:
        await asyncio.wait_for(polled.wait(), timeout=10)
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=5)
        await engine.dispose()
    assert set(threads) == {threading.get_ident()}
    assert relay.calls >= 3  # each poll woke a worker, which looked at the outbox
