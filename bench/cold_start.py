"""Cold start: every process started at the same instant, an order POSTed at once.

As compose starts the system, on PostgreSQL and RabbitMQ with the least-privilege accounts
(app/messaging/broker_accounts.py): ordering's API, relay and consumer, catalog's API, relay and
consumer, and ``broker declare`` (the admin account), all started together. The order is
POSTed as soon as ordering's API answers; the figure is the seconds from that POST to the
product's stock falling in catalog's database. Until ``broker declare`` and catalog's
consumer are up, the order's event may be returned unroutable: the relay's probe
(app/outbox/relay/unroutable.py) carries it once they are.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import quote, urlsplit

import aio_pika
import httpx
import psycopg

from app.messaging.broker_accounts import accounts, definitions
from bench import infra

STOCK = 1_000
PROCESSES = (
    ("api", "ordering"),
    ("relay", "ordering"),
    ("consume", "ordering"),
    ("api", "catalog"),
    ("relay", "catalog"),
    ("consume", "catalog"),
)
ROLES = {"api": "api", "relay": "relay", "consume": "consumer"}


@contextmanager
def least_privilege_vhost() -> Iterator[Callable[[str], str]]:
    """A throwaway vhost with the system's accounts (a definitions import); yields
    ``url(role)``, e.g. ``url("ordering-relay")``. Users and vhost deleted afterwards."""
    prefix = f"cc-bench-{uuid.uuid4().hex[:8]}"
    vhost = f"{prefix}-vhost"
    chosen = accounts(prefix)
    passwords = {account.name: uuid.uuid4().hex for account in chosen}
    document = json.dumps(definitions(passwords, vhost=vhost, prefix=prefix))
    subprocess.run(
        ["rabbitmqctl", "-q", "import_definitions", "--format", "json"],
        input=document, text=True, check=True, capture_output=True,
    )  # fmt: skip
    base = urlsplit(infra.AMQP_BASE)
    host = f"{base.hostname}:{base.port or 5672}"

    def url(role: str) -> str:
        name = f"{prefix}-{role}"
        return f"amqp://{name}:{passwords[name]}@{host}/{quote(vhost, safe='')}"

    try:
        _await_login(url("admin"))
        yield url
    finally:
        for account in chosen:
            subprocess.run(["rabbitmqctl", "-q", "delete_user", account.name], check=False)
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)


def _await_login(url: str) -> None:
    async def attempt() -> None:
        connection = await aio_pika.connect(url, timeout=5)
        await connection.close()

    for _ in range(100):  # the import is asynchronous
        try:
            asyncio.run(attempt())
            return
        except Exception:  # not yet usable
            time.sleep(0.1)
    raise RuntimeError("the imported accounts never became usable")


def _new_product(catalog_db: str) -> uuid.UUID:
    product = uuid.uuid4()
    with psycopg.connect(infra.libpq(catalog_db), autocommit=True) as connection:
        connection.execute(
            "INSERT INTO products (id, name, price, stock_count) VALUES (%s, 'cold', 1, %s)",
            (product, STOCK),
        )
    return product


def _post_when_up(base_url: str, product: uuid.UUID, deadline: float) -> float:
    """POST one order as soon as ordering's API takes it; the perf_counter time the
    accepted POST was sent."""
    headers = {"Authorization": f"Bearer {infra.bench_token()}"}
    body = {"customerName": "cold", "productId": str(product), "quantity": 1}
    with httpx.Client(timeout=10, headers=headers) as client:
        while time.monotonic() < deadline:
            sent = time.perf_counter()
            try:
                response = client.post(f"{base_url}/api/ordering/order", json=body)
            except httpx.TransportError:  # not listening yet
                time.sleep(0.01)
                continue
            if response.status_code == 201:
                return sent
            time.sleep(0.01)  # 503 while its database or broker is not ready
    raise RuntimeError("ordering's API never took the order")


def _stock_fell_at(catalog_db: str, product: uuid.UUID, deadline: float) -> float:
    with psycopg.connect(infra.libpq(catalog_db), autocommit=True) as connection:
        while time.monotonic() < deadline:
            row = connection.execute(
                "SELECT stock_count FROM products WHERE id = %s", (product,)
            ).fetchone()
            if row is not None and row[0] < STOCK:
                return time.perf_counter()
            time.sleep(0.005)
    raise RuntimeError("the stock never fell")


def cold_start_once(log_prefix: str) -> dict[str, float]:
    """One cold start on fresh databases and a fresh vhost: seconds from the start to
    the accepted POST, and from the POST to the stock falling."""
    with (
        infra.service_database("ordering") as ordering_db,
        infra.service_database("catalog") as catalog_db,
        least_privilege_vhost() as url,
        ExitStack() as stack,
    ):
        product = _new_product(catalog_db)
        ordering_port, catalog_port = _free_port(), _free_port()
        base = infra.service_env(ordering_db, catalog_db, url("admin"))
        relays = {
            service: urlsplit(url(f"{service}-relay")).username
            for service in ("ordering", "catalog")
        }
        base.update(
            CATALOG_API_URL=f"http://127.0.0.1:{catalog_port}",
            BROKER_PUBLISHERS=",".join(f"{service}={user}" for service, user in relays.items()),
        )
        commands = [(("broker", "declare"), url("admin"))]
        for role, service in PROCESSES:
            extra: tuple[str, ...] = ()
            if role == "api":
                port = ordering_port if service == "ordering" else catalog_port
                extra = ("--port", str(port))
            commands.append(((role, service, *extra), url(f"{service}-{ROLES[role]}")))
        started = time.perf_counter()
        for index, (args, broker_url) in enumerate(commands):
            log = (
                infra.ROOT / "bench" / "results" / f"{log_prefix}-{index}-{'-'.join(args[:2])}.log"
            )
            handle = stack.enter_context(log.open("wb"))
            process = subprocess.Popen(
                [sys.executable, "-m", "app", *args],
                env={**base, "BROKER_URL": broker_url},
                cwd=infra.ROOT, stdout=handle, stderr=handle,
            )  # fmt: skip
            stack.callback(_stop, process)
        deadline = time.monotonic() + 120
        posted = _post_when_up(f"http://127.0.0.1:{ordering_port}", product, deadline)
        fell = _stock_fell_at(catalog_db, product, deadline)
    return {
        "start_to_post_s": round(posted - started, 3),
        "post_to_stock_s": round(fell - posted, 3),
    }


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
