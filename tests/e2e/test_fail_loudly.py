"""Processes that cannot work say so in one line and exit 1; those that can, heal.

Each command is started as a user starts it, on PostgreSQL and RabbitMQ.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import aio_pika
import httpx
import pytest

from app.cli.main import main
from tests.conftest import query
from tests.e2e.processes import PROJECT_ROOT, Background, command_env
from tests.support import postgres
from tests.support.catalog import new_product, stock_of
from tests.support.consuming import order_placed, publish, valid_props, wait_until
from tests.support.rabbit import queue_depth
from tests.support.servers import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


def run(*args: str, timeout: float = 60, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=command_env(**{"STARTUP_TIMEOUT_SECONDS": "5", **settings}),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in line]


@pytest.fixture
def empty_database() -> object:
    name = postgres.unique_name("cc_unmigrated")
    url = postgres.create_database(name)
    yield url
    postgres.drop_database(name)


@pytest.mark.parametrize(
    "args",
    [["consume", "catalog"], ["relay", "catalog"], ["api", "catalog"]],
    ids=["consume", "relay", "api"],
)
def test_a_database_without_migrations_stops_every_process_with_one_line(
    args: list[str], empty_database: str, broker: str
) -> None:
    if args[0] == "api":
        args = [*args, "--port", str(free_port())]
    started = time.monotonic()
    done = run(*args, CATALOG_DATABASE_URL=empty_database, BROKER_URL=broker)
    assert done.returncode == 1, done.stderr
    [line] = error_lines(done.stderr)
    assert "no revision (empty database)" in line
    assert "run `python -m app migrate catalog`" in line
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 30


def test_broker_declare_is_idempotent_and_refusals_are_one_line(broker: str) -> None:
    for _ in range(2):
        done = run("broker", "declare", BROKER_URL=broker)
        assert done.returncode == 0, done.stderr
    assert "declared the topology" in done.stderr


async def _classic_queue(broker: str, name: str) -> None:
    async with await aio_pika.connect(broker) as connection:
        channel = await connection.channel()
        await channel.declare_queue(name, durable=True)  # classic: not what we declare


async def test_a_conflicting_queue_stops_the_consumer_and_broker_declare(
    catalog_db: str, broker: str, tmp_path: Path
) -> None:
    await _classic_queue(broker, "catalog.events")
    done = run("broker", "declare", BROKER_URL=broker)
    assert done.returncode == 1
    [line] = error_lines(done.stderr)
    assert "queue catalog.events" in line and "inequivalent arg" in line

    consumer = Background(
        "consume",
        "catalog",
        env=command_env(CATALOG_DATABASE_URL=catalog_db, BROKER_URL=broker),
        log_path=tmp_path / "consume.log",
    )
    try:
        # Not a reconnect loop: the process ends, with the broker's words.
        assert await consumer.wait_exit(timeout=30) == 1, consumer.log()
    finally:
        consumer.stop()
    assert "RabbitMQ refused to declare queue catalog.events" in consumer.log()
    assert "reconnecting" not in consumer.log()
    assert "Traceback" not in consumer.log()
    assert len(error_lines(consumer.log())) == 1


async def test_a_new_delivery_limit_applies_at_restart(
    catalog_db: str, broker: str, tmp_path: Path
) -> None:
    product = await new_product(catalog_db, 10)
    env = command_env(CATALOG_DATABASE_URL=catalog_db, BROKER_URL=broker)
    first = Background("consume", "catalog", env=env, log_path=tmp_path / "1.log")
    try:
        await first.wait_for_log("consuming queue=")
    finally:
        first.stop()
    env["CONSUMER_DELIVERY_LIMIT"] = "5"
    second = Background("consume", "catalog", env=env, log_path=tmp_path / "2.log")
    try:
        await second.wait_for_log("consuming queue=")
        await publish(broker, [(order_placed(product, 2), valid_props())])
        await wait_until(lambda: _stock_is(catalog_db, product, 8))
    finally:
        second.stop()
    assert "PRECONDITION_FAILED" not in second.log()


async def test_a_queue_deleted_under_a_running_consumer_is_declared_again(
    catalog_db: str, broker: str, tmp_path: Path
) -> None:
    product = await new_product(catalog_db, 10)
    env = command_env(
        CATALOG_DATABASE_URL=catalog_db, BROKER_URL=broker, BROKER_RECONNECT_MAX_SECONDS="1"
    )
    consumer = Background("consume", "catalog", env=env, log_path=tmp_path / "consume.log")
    try:
        await consumer.wait_for_log("consuming queue=")
        async with await aio_pika.connect(broker) as connection:
            channel = await connection.channel()
            await channel.queue_delete("catalog.events")
        # The consumer notices the broker's cancel and declares its queue again.
        await consumer.wait_for_log("consuming queue=", count=2, timeout=15)
        assert await queue_depth(broker, "catalog.events") == 0
        await publish(broker, [(order_placed(product, 3), valid_props())])
        await wait_until(lambda: _stock_is(catalog_db, product, 7), timeout=15)
        assert consumer.process.poll() is None
    finally:
        consumer.stop()
    assert "cancelled the consumer" in consumer.log()


async def test_dev_exits_1_when_rabbitmq_refuses_its_queues_mid_run(
    ordering_db: str, catalog_db: str, broker: str, tmp_path: Path
) -> None:
    # What makes a `consume` process exit 1 stops `dev`, whose consumers are its tasks:
    # not a dead consumer behind a live API, nor an exit 0.
    env = command_env(
        ORDERING_DATABASE_URL=ordering_db,
        CATALOG_DATABASE_URL=catalog_db,
        BROKER_URL=broker,
        BROKER_RECONNECT_MAX_SECONDS="1",
    )
    port = str(free_port())
    dev = Background("dev", "--port", port, env=env, log_path=tmp_path / "dev.log")
    try:
        await dev.wait_for_log("Application startup complete")
        # catalog's consumer is past its first declarations (the test is of a refusal
        # mid-run, not at the start).
        await dev.wait_for_log("consuming queue=catalog.events", timeout=60)
        async with await aio_pika.connect(broker) as connection:
            channel = await connection.channel()
            # catalog's dead-letter queue made again as a classic queue: the consumer's
            # next declaration (a quorum queue) is refused, 406 PRECONDITION_FAILED.
            await channel.queue_delete("catalog.events.dlq")
            await channel.declare_queue("catalog.events.dlq", durable=True)
            await channel.queue_delete("catalog.events")  # the consumer reconnects
        assert await dev.wait_exit(timeout=60) == 1, dev.log()
    finally:
        dev.stop()
    log = dev.log()
    assert any("consumer of catalog stopped" in line for line in error_lines(log)), log
    assert "stopped: consumer of catalog stopped" in log  # serve's last line: why exit 1
    assert "Waiting for application shutdown" in log  # a clean shutdown, not an abort


async def _stock_is(database_url: str, product: object, expected: int) -> bool:
    return await stock_of(database_url, product) == expected  # type: ignore[arg-type]


async def test_the_relay_publishes_into_queues_no_consumer_declared_yet(
    ordering_db: str, broker: str, tmp_path: Path
) -> None:
    # A fresh vhost, the relay started first: nothing is returned unroutable, the events
    # wait in catalog.events for the consumer that starts later.
    from cloudcrm_outbox.storage.engine import make_engine
    from tests.integration.outbox.conftest import stage_events

    engine = make_engine(ordering_db)
    try:
        await stage_events(engine, 5)
    finally:
        await engine.dispose()
    env = command_env(ORDERING_DATABASE_URL=ordering_db, BROKER_URL=broker)
    relay = Background("relay", "ordering", env=env, log_path=tmp_path / "relay.log")
    try:
        await wait_until(lambda: _published(ordering_db, 5), timeout=20)
    finally:
        relay.stop()
    assert await queue_depth(broker, "catalog.events") == 5
    assert "returned unroutable" not in relay.log()


async def _published(database_url: str, expected: int) -> bool:
    rows = await query(database_url, "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
    return bool(rows[0][0] == expected)


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("CONSUMER_DELIVERY_LIMIT", "abc", "invalid settings: CONSUMER_DELIVERY_LIMIT"),
        ("RELAY_BATCH_SIZE", "0", "invalid settings: RELAY_BATCH_SIZE"),
        ("CATALOG_DATABASE_URL", "bogus://nowhere", "invalid database URL"),
        ("CATALOG_DATABASE_URL", "not a url", "invalid database URL"),
        (
            "CATALOG_DATABASE_URL",
            "postgresql+asyncpg://postgres@127.0.0.1/x",
            "the outbox runs on postgresql+psycopg, sqlite+aiosqlite; got postgresql+asyncpg",
        ),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_1(
    setting: str,
    value: str,
    words: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # In-process: the settings are read before anything starts, the same in every command
    # (the commands' own process starts are tested above and below).
    monkeypatch.setenv(setting, value)
    assert main(["outbox", "status", "catalog"]) == 1
    stderr = capsys.readouterr().err
    [line] = error_lines(stderr)
    assert words in line
    assert "Traceback" not in stderr


def test_outbox_status_on_a_database_without_migrations_says_what_to_run(
    empty_database: str,
) -> None:
    done = run("outbox", "status", "catalog", CATALOG_DATABASE_URL=empty_database)
    assert done.returncode == 1
    [line] = error_lines(done.stderr)
    assert "run `python -m app migrate catalog`" in line


@pytest.mark.parametrize(
    ("args", "settings", "says"),
    [
        (("relay", "ordering"), {"BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/no_such_vhost"},
         "RabbitMQ at 127.0.0.1:5672/no_such_vhost refused this process"),
        (("consume", "catalog"), {"BROKER_URL": "amqp://guest:wrong@127.0.0.1:5672/"},
         "refused this process"),
        (("api", "ordering"),
         {"ORDERING_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/cc_no_such_db"},
         'database "cc_no_such_db" does not exist'),
    ],
)  # fmt: skip
def test_a_refusal_ends_the_start_at_once(
    args: tuple[str, ...], settings: dict[str, str], says: str, ordering_db: str, catalog_db: str
) -> None:
    databases = {"ORDERING_DATABASE_URL": ordering_db, "CATALOG_DATABASE_URL": catalog_db}
    started = time.monotonic()
    done = run(*args, STARTUP_TIMEOUT_SECONDS="60", **{**databases, **settings})  # not waited out
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - started < 20
    [line] = error_lines(done.stderr)
    assert says in line and "waiting cannot help" in line
    assert ":wrong@" not in done.stderr  # the password is masked even here


def test_the_api_exits_0_on_sigterm_and_1_when_it_cannot_start(ordering_db: str) -> None:
    port = free_port()
    env = {"ORDERING_DATABASE_URL": ordering_db, "BROKER_URL": "memory://"}
    first = subprocess.Popen(
        [sys.executable, "-m", "app", "api", "ordering", "--port", str(port)],
        env=command_env(**env), cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "Application startup complete" not in (
            line := first.stderr.readline() if first.stderr else ""
        ):
            assert time.monotonic() < deadline and line != "", "the API did not start"
        second = run("api", "ordering", "--port", str(port), **env)  # the port is taken
        assert second.returncode == 1
        [line] = error_lines(second.stderr)
        assert f"cannot listen on 127.0.0.1:{port}" in line and "--port" in line, line
        assert "Traceback" not in second.stderr
    finally:
        first.terminate()
        assert first.wait(timeout=15) == 0  # SIGTERM: a clean exit


def test_dev_on_a_taken_port_prints_no_token_and_names_the_way_out(tmp_path: Path) -> None:
    # A token and a curl for a port another process answers on (signed with another
    # secret) would send the newcomer to the wrong server: the port is bound first.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "app", "dev", "--port", str(port)],
            env=command_env(SEED_DEMO_PRODUCTS="false"), cwd=tmp_path,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "TOKEN" not in done.stdout and "curl" not in done.stdout, done.stdout
    [line] = error_lines(done.stderr)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "make run PORT=" in line, line
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["relay", "consume"])
@pytest.mark.parametrize("unreachable", ["broker", "database"])
def test_probes_answer_while_a_process_waits(
    ordering_db: str, broker: str, command: str, unreachable: str
) -> None:
    port = free_port()
    env = command_env(
        ORDERING_DATABASE_URL=ordering_db if unreachable == "broker"
        else "postgresql+psycopg://postgres@127.0.0.1:1/nothing",
        BROKER_URL="amqp://guest:guest@127.0.0.1:1/" if unreachable == "broker" else broker,
        STARTUP_TIMEOUT_SECONDS="60",
    )  # fmt: skip
    waiting = subprocess.Popen(
        [sys.executable, "-m", "app", command, "ordering", "--metrics-port", str(port)],
        env=env, cwd=PROJECT_ROOT, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                live = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the probes never answered"
                time.sleep(0.2)
        assert live.status_code == 200
        ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5)
        reasons = ready.json()["reasons"]
        assert ready.status_code == 503 and any("starting" in reason for reason in reasons)
    finally:
        waiting.terminate()
        assert waiting.wait(timeout=15) == 0  # SIGTERM while waiting: a clean exit
