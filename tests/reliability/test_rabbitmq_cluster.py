"""Past one machine: a RabbitMQ cluster of three nodes of the test's own (the shared server
untouched) loses the node that leads ``catalog.events`` under a steady load. Two relays and
two consumers, given every node in BROKER_URL, move to the remaining nodes; the history
checker finds every order answered, none lost, none applied twice, and the backlog drained
through the nodes that are left."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import query
from tests.e2e.processes import command_env, run_command
from tests.reliability.conftest import run_load
from tests.support.config import SERVERS
from tests.support.consuming import wait_until
from tests.support.deployment import Deployment
from tests.support.rabbit import queue_depth
from tests.support.rabbit_cluster import RabbitCluster

# Soak-sized (three brokers of its own to start): `make soak`. `make test` keeps the same
# move to another node on one shared server (tests/e2e/test_broker_failover.py).
pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.soak]

RATE = 50  # orders/s offered


@pytest.fixture
def cluster() -> Iterator[RabbitCluster]:
    with RabbitCluster(size=3) as nodes:
        yield nodes


async def test_the_node_leading_catalog_events_stops_under_load(
    cluster: RabbitCluster, ordering_db: str, catalog_db: str, tmp_path: Path
) -> None:
    # Declared through the first node: the quorum queues' leaders start there.
    run_command("broker", "declare", env=command_env(BROKER_URL=cluster.url))
    leader = await asyncio.to_thread(cluster.queue_leader, "catalog.events")
    deployment = Deployment(ordering_db, catalog_db, cluster.url, tmp_path)
    try:
        await deployment.start(relays=1, consumers=1, replies=True)

        async def stop_the_leader() -> None:
            await asyncio.sleep(2)
            await asyncio.to_thread(cluster.stop_node, leader)

        orders = max(SERVERS.reliability_orders // 2, 150)
        verdict = await run_load(
            deployment,
            scenario="RabbitMQ cluster: catalog.events' leader node stopped",
            faults=f"of three nodes, the leader of catalog.events stopped at {RATE} orders/s",
            orders=orders,
            rate=RATE,
            during=stop_the_leader,
        )
        assert verdict.clean, verdict

        async def all_answered() -> bool:
            [(placed,)] = await query(
                ordering_db, "SELECT count(*) FROM orders WHERE state = 'Placed'"
            )
            return placed == 0

        await wait_until(all_answered, timeout=60)
        new_leader = await asyncio.to_thread(cluster.wait_for_new_leader, "catalog.events", leader)
        assert new_leader != leader
        survivor = cluster.urls[new_leader]
        for queue in ("catalog.events", "ordering.events"):
            assert await queue_depth(survivor, queue) == 0  # the backlog drained
        moved = [
            p
            for p in [*deployment.relays, *deployment.consumers]
            if "another RabbitMQ node" in p.log()
        ]
        assert moved, "no process reconnected to another node"
    finally:
        await deployment.stop()
