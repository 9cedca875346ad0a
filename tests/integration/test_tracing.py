"""One order, one trace: the POST's server span, the relay's publish, catalog's consumer
span, catalog's reply publish and ordering's consumer span, each the parent of the next
(an in-memory span exporter, the whole loop in one process: dev on SQLite + embedded)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.cli.dev import create_dev_app
from app.core.settings import Settings
from app.core.telemetry import instrument_sqlalchemy
from tests.support.auth import HEADERS

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def traced() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider, once (OpenTelemetry allows one per process)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)
        instrument_sqlalchemy()
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()  # the provider stays (one per process); its spans need not


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, f"{name}: {[s.name for s in spans]}"
    return found[0]


async def test_an_order_is_one_trace_from_post_to_reply(
    traced: InMemorySpanExporter, tmp_path: Path
) -> None:
    settings = Settings(
        ordering_database_url=f"sqlite+aiosqlite:///{tmp_path / 'ordering.db'}",
        catalog_database_url=f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}",
        broker_url="memory://",
        embedded_broker_path=str(tmp_path / "broker.db"),
    )
    app = create_dev_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(headers=HEADERS, transport=transport, base_url="http://t") as client,
    ):
        products = (await client.get("/api/catalog/products")).json()
        product = next(p for p in products if p["name"] == "Product A")
        placed = await client.post(
            "/api/ordering/order", json={"customerName": "Ann", "productId": product["id"]}
        )
        order_url = f"/api/ordering/order/{placed.json()['id']}"
        for _ in range(100):
            if (await client.get(order_url)).json()["state"] == "Confirmed":
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the order was not confirmed")
        await asyncio.sleep(0.3)  # the ordering consumer's span ends after its commit
    spans = list(traced.get_finished_spans())
    post = one(spans, "POST /api/ordering/order")
    chain = [
        post,
        one(spans, "OrderPlaced publish"),
        one(spans, "OrderPlaced process"),
        one(spans, "StockReserved publish"),
        one(spans, "StockReserved process"),
    ]
    assert {span.context.trace_id for span in chain} == {post.context.trace_id}
    # SQLAlchemy's statement spans, inside the trace (the inbox insert under the consumer's).
    consumer = chain[2]
    inside = [
        s for s in spans if s.parent is not None and s.parent.span_id == consumer.context.span_id
    ]
    assert any(
        (s.attributes and "db.statement" in s.attributes) or "INSERT" in s.name for s in inside
    ), [s.name for s in inside]
    for parent, child in itertools.pairwise(chain):
        assert child.parent is not None and child.parent.span_id == parent.context.span_id, (
            f"{child.name} is not a child of {parent.name}"
        )
