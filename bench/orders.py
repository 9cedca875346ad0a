"""Orders written the way ordering writes them, and clocks on both ends of the pipeline.

Load: ``pgbench`` (shipped with PostgreSQL) runs the order + outbox transaction, open
loop with ``--rate``. It is a C client, so a 2-core machine spends itself on the pipeline
under test and not on the generator (a Python generator took a third of a core at 1,000
orders/s here).

Clocks: a bench-only trigger NOTIFYs the ids at each outbox commit (ordering) and each
inbox commit (catalog); a listener process per database stamps every id on
CLOCK_MONOTONIC when the notification arrives, that is just after the commit. Both ends
are stamped the same way, so "commit -> inbox commit" is measured without polling and
without trusting a client's event loop.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import multiprocessing.connection
import multiprocessing.synchronize
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from bench.infra import libpq

CLOCK_CHANNEL = "bench_clock"

# A notification carries at most 8000 bytes, so the ids go out in chunks of 150.
_CLOCK_TRIGGER = """
CREATE FUNCTION bench_clock() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE chunk text;
BEGIN
    FOR chunk IN
        SELECT string_agg(id::text, ',')
        FROM (SELECT {column} AS id, (row_number() OVER ()) / 150 AS part FROM new_rows) AS ids
        GROUP BY part
    LOOP
        PERFORM pg_notify('bench_clock', chunk);
    END LOOP;
    RETURN NULL;
END $$;
CREATE TRIGGER bench_clock AFTER INSERT ON {table}
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bench_clock();
"""


def install_clock(database_url: str, *, table: str, column: str) -> None:
    """Bench-only: NOTIFY the new ``column`` values of ``table`` at each commit."""
    statement = sql.SQL(_CLOCK_TRIGGER).format(
        table=sql.Identifier(table), column=sql.Identifier(column)
    )
    with psycopg.connect(libpq(database_url), autocommit=True) as connection:
        connection.execute(statement)


@dataclass
class Clock:
    """A listener process; ``collect`` returns the arrival time of every id it saw."""

    process: multiprocessing.process.BaseProcess
    stop: multiprocessing.synchronize.Event
    results: multiprocessing.connection.Connection

    def collect(self) -> dict[str, float]:
        self.stop.set()
        stamps: dict[str, float] = self.results.recv()
        self.process.join(timeout=10)
        return stamps


def _listen(
    dsn: str,
    ready: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
    results: multiprocessing.connection.Connection,
) -> None:
    stamps: dict[str, float] = {}
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f"LISTEN {CLOCK_CHANNEL}")
        ready.set()
        while not stop.is_set():
            for notification in connection.notifies(timeout=0.1):
                now = time.monotonic()  # CLOCK_MONOTONIC: the same clock in every process
                for stamped_id in notification.payload.split(","):
                    stamps[stamped_id] = now
    results.send(stamps)


@contextmanager
def clock(database_url: str) -> Iterator[Clock]:
    """Stamp the ids the database's clock trigger announces, from a process of its own
    (so stamps are not delayed by another process's event loop or GIL)."""
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(
        target=_listen, args=(libpq(database_url), ready, stop, sending), daemon=True
    )
    process.start()
    try:
        if not ready.wait(timeout=30):
            raise RuntimeError("the clock did not start listening")
        yield Clock(process, stop, receiving)
    finally:
        stop.set()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()


def product_id(index: int) -> uuid.UUID:
    """The id of bench product ``index``: computable in SQL too, as the pgbench script does."""
    return uuid.UUID(hashlib.md5(f"bench-product-{index}".encode()).hexdigest())


def stock_products(catalog_db: str, count: int = 100) -> list[uuid.UUID]:
    """``count`` products with stock that never runs out, so every order reserves."""
    products = [product_id(index) for index in range(1, count + 1)]
    with (
        psycopg.connect(libpq(catalog_db), autocommit=True) as connection,
        connection.cursor() as cursor,
    ):
        cursor.executemany(
            "INSERT INTO products (id, name, price, stock_count) VALUES (%s, %s, 1, 1000000000)",
            [(product, f"bench {index}") for index, product in enumerate(products)],
        )
    return products


# ---- the order + outbox transaction, as pgbench runs it -----------------------------------

# The same two rows as ``place_order`` writes, in one transaction and one round trip
# (pipelined). The order id is an md5 of client id and a random number: pgbench cannot
# make UUIDs, and RETURNING + \gset would cost a round trip. ``{with_outbox}`` is false for
# the order-only baseline.
_ORDER_SCRIPT = """\\set n random(1, 1000000000000000)
\\set p random(1, {products})
\\startpipeline
BEGIN;
INSERT INTO orders (id, customer_name, product_id, quantity, state)
    VALUES (md5(CAST(:client_id AS text) || ':' || CAST(:n AS text))::uuid, 'bench',
            md5('bench-product-' || CAST(:p AS text))::uuid, 1, 'Placed');
{outbox}COMMIT;
\\endpipeline
"""
_OUTBOX_INSERT = """INSERT INTO outbox (id, event_type, payload, headers)
    VALUES (gen_random_uuid(), 'OrderPlaced',
            json_build_object(
                'orderId', md5(CAST(:client_id AS text) || ':' || CAST(:n AS text))::uuid,
                'productId', md5('bench-product-' || CAST(:p AS text))::uuid,
                'customerName', 'bench', 'quantity', 1),
            '{"event_version": "1"}');
"""


def pgbench_path() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))
    if candidates:
        return str(candidates[-1])
    raise RuntimeError("make bench needs pgbench (it comes with PostgreSQL): put it on PATH")


@dataclass(frozen=True)
class PgbenchResult:
    transactions: int
    per_second: float


def run_orders(
    database_url: str,
    *,
    products: int,
    seconds: float,
    clients: int,
    rate: float | None = None,
    with_outbox: bool = True,
) -> PgbenchResult:
    """pgbench placing orders for ``seconds``: as fast as it can, or open loop at ``rate``."""
    script = _ORDER_SCRIPT.format(products=products, outbox=_OUTBOX_INSERT if with_outbox else "")
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as handle:
        handle.write(script)
        handle.flush()
        command = [
            pgbench_path(),
            "--no-vacuum",
            "--protocol=prepared",
            f"--client={clients}",
            f"--jobs={min(clients, 2)}",
            f"--time={max(1, round(seconds))}",
            f"--file={handle.name}",
        ]
        if rate is not None:
            command.append(f"--rate={rate}")
        completed = subprocess.run(
            [*command, libpq(database_url)], capture_output=True, text=True, check=False
        )
    output = completed.stdout + completed.stderr
    processed = re.search(r"number of transactions actually processed: (\d+)", output)
    tps = re.search(r"tps = ([\d.]+)", output)
    failed = re.search(r"number of failed transactions: (\d+)", output)
    if completed.returncode != 0 or not processed or not tps or (failed and failed[1] != "0"):
        raise RuntimeError(f"pgbench failed:\n{output}")
    return PgbenchResult(int(processed[1]), float(tps[1]))


# ---- one order at a time, from Python (the idle wake-up measure) --------------------------


async def place_order(connection: psycopg.AsyncConnection, product_id: uuid.UUID) -> None:  # type: ignore[type-arg]
    """One order and its OrderPlaced row in one transaction."""
    order_id = uuid.uuid4()
    payload = json.dumps(
        {
            "orderId": str(order_id),
            "productId": str(product_id),
            "customerName": "bench",
            "quantity": 1,
        }
    )
    async with connection.transaction():
        await connection.execute(
            "INSERT INTO orders (id, customer_name, product_id, quantity, state) "
            "VALUES (%s, 'bench', %s, 1, 'Placed')",
            (order_id, product_id),
        )
        await connection.execute(
            "INSERT INTO outbox (id, event_type, payload, headers) VALUES "
            "(%s, 'OrderPlaced', %s::json, '{\"event_version\": \"1\"}'::json)",
            (uuid.uuid4(), payload),
        )
