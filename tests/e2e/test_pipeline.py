"""Ordering → relay → RabbitMQ → catalog consumer, as separate processes on real servers."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.ordering import service
from cloudcrm_outbox.storage.engine import make_engine, make_sessionmaker
from tests.conftest import query
from tests.e2e.processes import Background, command_env
from tests.support.consuming import wait_until
from tests.support.rabbit import queue_depth

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


@pytest.fixture
def background(tmp_path: Path) -> Iterator[list[Background]]:
    started: list[Background] = []
    yield started
    for process in started:
        process.stop()


async def test_an_order_lowers_stock_through_relay_and_consumer(
    ordering_db: str, catalog_db: str, broker: str, background: list[Background], tmp_path: Path
) -> None:
    env = command_env(
        ORDERING_DATABASE_URL=ordering_db, CATALOG_DATABASE_URL=catalog_db, BROKER_URL=broker
    )
    consumer = Background("consume", "catalog", env=env, log_path=tmp_path / "consumer.log")
    background.append(consumer)
    await consumer.wait_for_log("consuming queue=")  # the queue exists before anything is published
    relay = Background("relay", "ordering", env=env, log_path=tmp_path / "relay.log")
    background.append(relay)
    await relay.wait_for_log("listening for outbox inserts")

    product = uuid.uuid4()
    await query(
        catalog_db,
        "INSERT INTO products (id, name, price, stock_count) VALUES (%s, 'Product A', 1, 53)",
        product,
    )
    engine = make_engine(ordering_db)
    try:
        for quantity in (1, 2, 3):
            async with make_sessionmaker(engine)() as session, session.begin():
                await service.place_order(
                    session, customer_name="Ann", product_id=product, quantity=quantity
                )
    finally:
        await engine.dispose()

    async def stock() -> int:
        [(count,)] = await query(
            catalog_db, "SELECT stock_count FROM products WHERE id = %s", product
        )
        return int(count)

    await wait_until(lambda: _equals(stock, 47), timeout=10)
    rows = await query(catalog_db, "SELECT outcome FROM inbox")
    assert sorted(rows) == [("applied",)] * 3

    for process in (consumer, relay):
        process.process.send_signal(signal.SIGTERM)
    assert await consumer.wait_exit(timeout=10) == 0, consumer.log()
    assert await relay.wait_exit(timeout=10) == 0, relay.log()
    assert "consumer stopped" in consumer.log()
    # The contract's topology was declared: the queue and its dead-letter queue exist.
    assert await queue_depth(broker, "catalog.events") == 0
    assert await queue_depth(broker, "catalog.events.dlq") == 0


async def _equals(read, expected: int) -> bool:  # type: ignore[no-untyped-def]
    return bool(await read() == expected)


def test_consume_refuses_the_memory_broker() -> None:
    import subprocess
    import sys

    from tests.e2e.processes import PROJECT_ROOT

    def run(*args: str, broker: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app", *args],
            env=command_env(BROKER_URL=broker),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    memory = run("consume", "catalog", broker="memory://")
    assert memory.returncode == 2 and "BROKER_URL=amqp://" in memory.stderr
