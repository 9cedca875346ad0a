"""A node named first in BROKER_URL stops under load: the relay and consumer move to the
next node and the history checker finds every order answered, none lost, none applied
twice. The first "node" is a proxy to the shared server (the three-node cluster run,
with quorum queues, is tests/reliability/test_rabbitmq_cluster.py under `make soak`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.reliability.conftest import run_load
from tests.support.deployment import Deployment
from tests.support.proxy import TcpProxy

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


async def test_the_first_node_stopping_under_load_moves_relay_and_consumer_to_the_next(
    ordering_db: str, catalog_db: str, broker: str, tmp_path: Path
) -> None:
    port = urlsplit(broker).port or 5672
    first_node = await TcpProxy("127.0.0.1", port).start()
    nodes = f"{broker.replace(f':{port}/', f':{first_node.port}/')},{broker}"
    deployment = Deployment(ordering_db, catalog_db, nodes, tmp_path)
    try:
        await deployment.start()

        async def stop_the_first_node() -> None:
            await asyncio.sleep(1)
            await first_node.close()  # open connections reset, new ones refused

        verdict = await run_load(
            deployment,
            scenario="first RabbitMQ node of two stopped",
            faults="the node every process was connected to stopped at 50 orders/s",
            orders=150,
            rate=50,
            during=stop_the_first_node,
        )
        assert verdict.clean, verdict
        assert verdict.attempts["ok"] == 151  # every POST answered, the sentinel included
        for process in (*deployment.relays, *deployment.consumers):
            assert "connected to another RabbitMQ node" in process.log(), process.args
    finally:
        await deployment.stop()
        await first_node.close()
