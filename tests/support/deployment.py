"""The separate-process deployment the reliability suite injects faults into."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.e2e.processes import Background, command_env
from tests.support.proxy import TcpProxy
from tests.support.servers import free_port


@dataclass
class Deployment:
    ordering_db: str
    catalog_db: str
    broker: str
    logs: Path
    relays: list[Background] = field(default_factory=list)
    consumers: list[Background] = field(default_factory=list)
    apis: list[Background] = field(default_factory=list)
    ordering_url: str = ""
    catalog_url: str = ""
    # Optional proxies between the relay/consumer and the servers, for network faults.
    postgres_proxy: TcpProxy | None = None
    rabbitmq_proxy: TcpProxy | None = None
    _started: int = 0

    async def with_proxies(self) -> None:
        """Route the relay's and consumer's connections through proxies the test owns."""
        pg = urlsplit(self.ordering_db.replace("postgresql+psycopg", "postgresql"))
        amqp = urlsplit(self.broker)
        self.postgres_proxy = await TcpProxy(pg.hostname or "127.0.0.1", pg.port or 5432).start()
        self.rabbitmq_proxy = await TcpProxy(
            amqp.hostname or "127.0.0.1", amqp.port or 5672
        ).start()

    def _via_proxies(self, args: tuple[str, ...]) -> dict[str, str]:
        if args[0] not in ("relay", "consume") or self.postgres_proxy is None:
            return {}
        assert self.rabbitmq_proxy is not None
        pg_port = urlsplit(self.ordering_db.replace("postgresql+psycopg", "postgresql")).port
        amqp_port = urlsplit(self.broker).port
        return {
            "ORDERING_DATABASE_URL": self.ordering_db.replace(
                f":{pg_port}/", f":{self.postgres_proxy.port}/"
            ),
            "CATALOG_DATABASE_URL": self.catalog_db.replace(
                f":{pg_port}/", f":{self.postgres_proxy.port}/"
            ),
            "BROKER_URL": self.broker.replace(f":{amqp_port}/", f":{self.rabbitmq_proxy.port}/"),
        }

    def _env(self, **overrides: str) -> dict[str, str]:
        settings = {
            "ORDERING_DATABASE_URL": self.ordering_db,
            "CATALOG_DATABASE_URL": self.catalog_db,
            "BROKER_URL": self.broker,
            "CATALOG_API_URL": self.catalog_url,
            "BROKER_RECONNECT_MAX_SECONDS": "1",
            "DATABASE_RECONNECT_MAX_SECONDS": "1",
        }
        settings.update(overrides)
        return command_env(**settings)

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment the deployment's processes run with: for a command a test runs
        as the operator would."""
        return self._env(**overrides)

    def _start(self, *args: str, **overrides: str) -> Background:
        self._started += 1
        env = self._env(**{**self._via_proxies(args), **overrides})
        return Background(*args, env=env, log_path=self.logs / f"{self._started}-{args[0]}.log")

    async def start(
        self, *, relays: int = 1, consumers: int = 1, replies: bool = False, **overrides: str
    ) -> None:
        """APIs, ordering's relays and catalog's consumers; with ``replies``, also catalog's
        relays and ordering's consumers (the same numbers), which close the order loop."""
        ordering_port, catalog_port = free_port(), free_port()
        self.ordering_url = f"http://127.0.0.1:{ordering_port}"
        self.catalog_url = f"http://127.0.0.1:{catalog_port}"
        sides = (
            [("ordering", "catalog"), ("catalog", "ordering")]
            if replies
            else [("ordering", "catalog")]
        )
        # Started side by side (each start is mostly imports, so the two cores share
        # them); the consumers first, so their queues exist before anything is relayed.
        started = [
            self._start("consume", consuming, **overrides)
            for _, consuming in sides
            for _ in range(consumers)
        ]
        self.consumers.extend(started)
        await asyncio.gather(
            *(consumer.wait_for_log("consuming queue=", timeout=60) for consumer in started)
        )
        started = [
            self._start("relay", relaying, **overrides)
            for relaying, _ in sides
            for _ in range(relays)
        ]
        self.relays.extend(started)
        self.apis = [
            self._start("api", "catalog", "--port", str(catalog_port)),
            self._start("api", "ordering", "--port", str(ordering_port)),
        ]
        await asyncio.gather(
            *(relay.wait_for_log("relay started", timeout=60) for relay in started),
            *(api.wait_for_log("Application startup complete", timeout=60) for api in self.apis),
        )

    async def add_consumer(self, service: str = "catalog", **overrides: str) -> Background:
        consumer = self._start("consume", service, **overrides)
        self.consumers.append(consumer)
        await consumer.wait_for_log("consuming queue=")
        return consumer

    async def add_relay(self, service: str = "ordering", **overrides: str) -> Background:
        relay = self._start("relay", service, **overrides)
        self.relays.append(relay)
        await relay.wait_for_log("relay started")
        return relay

    async def kill_and_restart(self, process: Background, *, hard: bool = True) -> Background:
        """kill -9 (or SIGTERM) ``process`` and start the same command again."""
        if hard:
            process.process.kill()
        else:
            process.process.send_signal(signal.SIGTERM)
        await process.wait_exit(timeout=15)
        process.stop()
        service = process.args[1]
        if process in self.relays:
            self.relays.remove(process)
            return await self.add_relay(service)
        self.consumers.remove(process)
        return await self.add_consumer(service)

    async def new_product(self, client: httpx.AsyncClient, stock: int) -> str:
        created = await client.post(
            f"{self.catalog_url}/api/catalog/products",
            json={"name": "reliability", "price": 1, "stockCount": stock},
        )
        assert created.status_code == 201, created.text
        product_id: str = created.json()["id"]
        return product_id

    async def stop(self) -> None:
        for process in [*self.apis, *self.relays, *self.consumers]:
            process.stop()
        for proxy in (self.postgres_proxy, self.rabbitmq_proxy):
            if proxy is not None:
                await proxy.close()


async def place(client: httpx.AsyncClient, deployment: Deployment, product: str) -> str:
    """Place an order for one unit of ``product`` through ordering's API; its id."""
    response = await client.post(
        f"{deployment.ordering_url}/api/ordering/order",
        json={"customerName": "Ann", "productId": product, "quantity": 1},
    )
    assert response.status_code == 201, response.text
    order_id: str = response.json()["id"]
    return order_id
