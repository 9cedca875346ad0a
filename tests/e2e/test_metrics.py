"""The processes' metrics and probes, as Prometheus would read them: after N orders, the
relay's and the consumer's ``/metrics`` (parsed with prometheus-client's own parser) show
the exact counts; the backlog gauges rise while the relay is stopped and fall to 0 after."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.auth import HEADERS
from tests.support.consuming import wait_until
from tests.support.deployment import Deployment, place
from tests.support.servers import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]
ORDERS = 5


async def scrape(
    client: httpx.AsyncClient, url: str
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample at ``url``/metrics, by name and labels."""
    response = await client.get(f"{url}/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_counts_gauges_and_probes_of_relay_and_consumer(deployment: Deployment) -> None:
    await deployment.start(relays=0, consumers=0)  # the APIs; messaging added below
    consumer_port, relay_port = free_port(), free_port()
    await deployment.add_consumer("catalog", METRICS_PORT=str(consumer_port))
    await deployment.add_consumer("ordering")
    await deployment.add_relay("catalog")
    consumer_url = f"http://127.0.0.1:{consumer_port}"
    relay_url = f"http://127.0.0.1:{relay_port}"
    async with httpx.AsyncClient(headers=HEADERS, timeout=10) as client:
        product = await deployment.new_product(client, stock=ORDERS)
        orders = [await place(client, deployment, product) for _ in range(ORDERS)]
        backlog = await scrape(client, deployment.ordering_url)  # the API reads its outbox
        assert value(backlog, "outbox_pending_messages", service="ordering") == ORDERS
        assert value(backlog, "outbox_oldest_pending_age_seconds", service="ordering") > 0
        requests = value(backlog, "http_requests_total", method="POST",
                         route="/api/ordering/order", status="201")  # fmt: skip
        assert requests == ORDERS

        await deployment.add_relay("ordering", METRICS_PORT=str(relay_port))

        async def all_confirmed() -> bool:
            for order in orders:
                found = await client.get(f"{deployment.ordering_url}/api/ordering/order/{order}")
                if found.json()["state"] != "Confirmed":
                    return False
            return True

        await wait_until(all_confirmed, timeout=30)
        relay = await scrape(client, relay_url)
        published = value(relay, "outbox_published_total", service="ordering",
                          event_type="OrderPlaced")  # fmt: skip
        assert published == ORDERS
        assert value(relay, "outbox_pending_messages", service="ordering") == 0
        assert value(relay, "outbox_oldest_pending_age_seconds", service="ordering") == 0
        assert value(relay, "outbox_batch_duration_seconds_count", service="ordering") >= 1
        consumer = await scrape(client, consumer_url)
        assert (
            value(consumer, "inbox_processed_total", consumer="catalog", outcome="applied")
            == ORDERS
        )
        assert value(consumer, "inbox_lag_seconds_count", consumer="catalog") == ORDERS
        assert value(consumer, "inbox_duplicates_total", consumer="catalog") == 0
        for url in (relay_url, consumer_url):
            assert (await client.get(f"{url}/health/live")).status_code == 200
            ready = await client.get(f"{url}/health/ready")
            assert ready.status_code == 200, ready.text
