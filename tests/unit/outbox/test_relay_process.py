"""The relay worker loop: it backs off on any failure and never dies."""

from __future__ import annotations

import asyncio

from app.outbox.probes import ProcessHealth
from app.outbox.publisher import BrokerUnavailableError
from app.outbox.relay import BatchReport
from app.outbox.relay_process import RelayProcessConfig, _work
from app.outbox.topology import TopologyConflictError
from app.outbox.wakeup import Wakeup


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
    config = RelayProcessConfig(broker_url="amqp://", reconnect_max_seconds=0.01)

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
    config = RelayProcessConfig(broker_url="amqp://", reconnect_max_seconds=0.01)
    worker = asyncio.create_task(
        _work(relay, wakeup, wakeup.subscribe(), stop, config, ProcessHealth())
    )  # type: ignore[arg-type]
    await asyncio.wait({worker}, timeout=5)
    assert isinstance(worker.exception(), TopologyConflictError)
