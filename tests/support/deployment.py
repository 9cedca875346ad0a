"""The separate-process deployment the reliability suite injects faults into."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.e2e.processes import Background, command_env
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
    _started: int = 0

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

    def _start(self, *args: str, **overrides: str) -> Background:
        self._started += 1
        return Background(
            *args, env=self._env(**overrides), log_path=self.logs / f"{self._started}-{args[0]}.log"
        )

    async def start(self, *, relays: int = 1, consumers: int = 1, **overrides: str) -> None:
        ordering_port, catalog_port = free_port(), free_port()
        self.ordering_url = f"http://127.0.0.1:{ordering_port}"
        self.catalog_url = f"http://127.0.0.1:{catalog_port}"
        for _ in range(consumers):
            await self.add_consumer(**overrides)
        for _ in range(relays):
            await self.add_relay(**overrides)
        self.apis = [
            self._start("api", "catalog", "--port", str(catalog_port)),
            self._start("api", "ordering", "--port", str(ordering_port)),
        ]
        for api in self.apis:
            await api.wait_for_log("Application startup complete")

    async def add_consumer(self, **overrides: str) -> Background:
        consumer = self._start("consume", "catalog", **overrides)
        self.consumers.append(consumer)
        await consumer.wait_for_log("consuming")
        return consumer

    async def add_relay(self, **overrides: str) -> Background:
        relay = self._start("relay", "ordering", **overrides)
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
        if process in self.relays:
            self.relays.remove(process)
            return await self.add_relay()
        self.consumers.remove(process)
        return await self.add_consumer()

    async def new_product(self, client: httpx.AsyncClient, stock: int) -> str:
        created = await client.post(
            f"{self.catalog_url}/api/catalog/products",
            json={"name": "reliability", "price": 1, "stockCount": stock},
        )
        assert created.status_code == 201, created.text
        product_id: str = created.json()["id"]
        return product_id

    def stop(self) -> None:
        for process in [*self.apis, *self.relays, *self.consumers]:
            process.stop()


async def pause(seconds: float) -> None:
    await asyncio.sleep(seconds)
