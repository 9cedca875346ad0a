"""``python -m app relay ordering`` as a user runs it, on PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from app.ordering import service
from cloudcrm_outbox.storage.engine import make_engine, make_sessionmaker
from tests.conftest import query
from tests.e2e.processes import Background, command_env
from tests.integration.outbox.conftest import QUEUE, stage_events
from tests.support.consuming import wait_until
from tests.support.proxy import TcpProxy
from tests.support.rabbit import bind_queue, read_queue

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


@pytest.fixture
async def broker(broker: str) -> str:
    """The shared fresh vhost, with a queue bound to OrderPlaced to read from (and to the
    keyed ones, ``OrderPlaced.pN``: the demo keys its orders)."""
    await bind_queue(broker, QUEUE, "OrderPlaced", "OrderPlaced.*")
    return broker


@pytest.fixture
def start_relay(ordering_db: str, tmp_path: Path) -> AsyncIterator[Callable[..., Background]]:
    started: list[Background] = []

    def start(broker_url: str, **settings: str) -> Background:
        env = command_env(ORDERING_DATABASE_URL=ordering_db, BROKER_URL=broker_url, **settings)
        relay = Background(
            "relay", "ordering", env=env, log_path=tmp_path / f"relay-{len(started)}.log"
        )
        started.append(relay)
        return relay

    yield start  # type: ignore[misc]
    for relay in started:
        relay.stop()


async def pending(database_url: str) -> int:
    [(count,)] = await query(database_url, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
    return int(count)


async def wait_drained(database_url: str, *, within: float = 30.0) -> None:
    async def drained() -> bool:
        return await pending(database_url) == 0

    await wait_until(drained, timeout=within)


async def staged(database_url: str, count: int) -> list[uuid.UUID]:
    engine = make_engine(database_url)
    try:
        return await stage_events(engine, count, chunk=5000)
    finally:
        await engine.dispose()


async def test_notify_wakes_the_relay_for_an_order_written_in_a_multi_statement_transaction(
    ordering_db: str, broker: str, start_relay: Callable[..., Background]
) -> None:
    # Polling every hour: only LISTEN/NOTIFY can deliver within the test's time.
    relay = start_relay(broker, RELAY_POLL_INTERVAL_SECONDS="3600")
    await relay.wait_for_log("listening for outbox inserts")

    engine = make_engine(ordering_db)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            await session.execute(text("SELECT pg_sleep(0.3)"))  # the transaction is old ...
            await service.place_order(
                session, customer_name="first", product_id=uuid.uuid4(), quantity=1
            )
            await session.execute(text("SELECT count(*) FROM orders"))
            order = await service.place_order(  # ... and writes more after other statements
                session, customer_name="second", product_id=uuid.uuid4(), quantity=2
            )
            committed = time.monotonic()
    finally:
        await engine.dispose()

    messages = await read_queue(broker, QUEUE, expected=2, timeout=10)
    assert len(messages) == 2
    assert time.monotonic() - committed < 10
    assert str(order.id) in {json.loads(m.body)["orderId"] for m in messages}


async def test_sigterm_exits_zero_promptly_and_loses_nothing(
    ordering_db: str, broker: str, start_relay: Callable[..., Background]
) -> None:
    ids = await staged(ordering_db, 20_000)
    relay = start_relay(broker, RELAY_BATCH_SIZE="200")
    await relay.wait_for_log("relayed batch", count=3)  # mid-drain

    relay.process.send_signal(signal.SIGTERM)
    code = await relay.wait_exit(timeout=8)

    assert code == 0, relay.log()
    assert "relay stopped" in relay.log()
    left = await pending(ordering_db)
    assert left > 0, "the drain finished before SIGTERM; the test proves nothing"
    successor = start_relay(broker)
    await wait_drained(ordering_db)
    messages = await read_queue(broker, QUEUE, expected=len(ids), timeout=60)
    assert {m.message_id for m in messages} == {str(i) for i in ids}
    successor.process.send_signal(signal.SIGTERM)
    assert await successor.wait_exit(timeout=8) == 0


async def test_kill_9_mid_drain_then_restart_loses_nothing(
    ordering_db: str, broker: str, start_relay: Callable[..., Background]
) -> None:
    ids = await staged(ordering_db, 10_000)
    relay = start_relay(broker, RELAY_BATCH_SIZE="500")
    await relay.wait_for_log("relayed batch", count=2)

    relay.process.kill()
    relay.process.wait()
    assert await pending(ordering_db) > 0

    start_relay(broker)
    await wait_drained(ordering_db)
    messages = await read_queue(broker, QUEUE, expected=len(ids), timeout=60)
    seen = Counter(m.message_id for m in messages)
    assert set(seen) == {str(i) for i in ids}  # none lost; duplicates allowed


async def test_broker_down_backs_off_without_busy_looping_then_resumes(
    ordering_db: str, broker: str, start_relay: Callable[..., Background]
) -> None:
    target = urlsplit(broker)
    proxy = await TcpProxy(target.hostname or "127.0.0.1", target.port or 5672).start()
    try:
        relay = start_relay(
            broker.replace(f":{target.port}/", f":{proxy.port}/"),
            BROKER_RECONNECT_MAX_SECONDS="1",
        )
        await relay.wait_for_log("relay started")  # it met the broker once ...
        proxy.block()  # ... then the broker vanishes: connections refused and cut
        proxy.cut()
        attempts_before = proxy.connections
        ids = await staged(ordering_db, 50)
        await asyncio.sleep(4)

        assert await pending(ordering_db) == 50
        # Full-jitter backoff capped at 1 s, two workers: a handful of tries, not thousands.
        assert 1 <= proxy.connections - attempts_before <= 40, proxy.connections
        assert "backing off" in relay.log()

        proxy.unblock()
        try:
            await wait_drained(ordering_db)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nrelay log:\n{relay.log()[-5000:]}") from None
        messages = await read_queue(broker, QUEUE, expected=50)
        assert {m.message_id for m in messages} == {str(i) for i in ids}
    finally:
        await proxy.close()


def test_relay_refuses_the_in_memory_broker() -> None:
    import subprocess
    import sys

    from tests.e2e.processes import PROJECT_ROOT

    done = subprocess.run(
        [sys.executable, "-m", "app", "relay", "ordering"],
        env=command_env(BROKER_URL="memory://"),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "BROKER_URL=amqp://" in done.stderr
