"""The atomic write: an order exists if and only if its OrderPlaced outbox row exists."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.ordering import service
from cloudcrm_outbox.storage.engine import make_engine, make_sessionmaker
from tests.conftest import count, query

pytestmark = pytest.mark.postgres


async def test_order_and_outbox_row_are_written_in_one_transaction(
    ordering: httpx.AsyncClient, ordering_db: str
) -> None:
    product_id = uuid.uuid4()
    response = await ordering.post(
        "/api/ordering/order",
        json={"customerName": "Ann", "productId": str(product_id), "quantity": 3},
        headers={"X-Correlation-ID": "corr-42"},
    )

    assert response.status_code == 201, response.text
    order = response.json()
    assert set(order) == {
        "id",
        "customerName",
        "productId",
        "quantity",
        "state",
        "rejectionReason",
        "createdAt",
    }
    assert order["customerName"] == "Ann"
    assert order["productId"] == str(product_id)
    assert order["quantity"] == 3
    assert order["state"] == "Placed"
    assert order["createdAt"].endswith(("+00:00", "Z"))

    orders = await query(ordering_db, "SELECT id::text, xmin::text FROM orders")
    outbox = await query(
        ordering_db,
        "SELECT id, event_type, payload, headers, published_at, attempts, xmin::text FROM outbox",
    )
    assert len(orders) == 1 and len(outbox) == 1
    [(order_id, order_xid)] = orders
    [(message_id, event_type, payload, headers, published_at, attempts, outbox_xid)] = outbox
    assert order_id == order["id"]
    assert event_type == "OrderPlaced"
    assert payload == {
        "orderId": order["id"],
        "productId": str(product_id),
        "customerName": "Ann",
        "quantity": 3,
    }
    assert headers == {"event_version": "1", "correlation_id": "corr-42"}
    assert isinstance(message_id, uuid.UUID) and str(message_id) != order["id"]
    assert published_at is None and attempts == 0
    # Same xmin: both rows were written by the same PostgreSQL transaction.
    assert order_xid == outbox_xid


async def test_each_order_gets_its_own_event(ordering: httpx.AsyncClient, ordering_db: str) -> None:
    for quantity in (1, 2, 3):
        body = {"customerName": "Bo", "productId": str(uuid.uuid4()), "quantity": quantity}
        assert (await ordering.post("/api/ordering/order", json=body)).status_code == 201

    pairs = await query(
        ordering_db,
        "SELECT o.quantity, (x.payload->>'quantity')::int FROM orders o "
        "JOIN outbox x ON (x.payload->>'orderId')::uuid = o.id ORDER BY o.quantity",
    )
    assert pairs == [(1, 1), (2, 2), (3, 3)]
    assert await count(ordering_db, "outbox") == 3


async def test_quantity_defaults_to_one(ordering: httpx.AsyncClient, ordering_db: str) -> None:
    body = {"customerName": "Cy", "productId": str(uuid.uuid4())}
    response = await ordering.post("/api/ordering/order", json=body)
    assert response.status_code == 201
    assert response.json()["quantity"] == 1
    [(payload_quantity,)] = await query(ordering_db, "SELECT payload->>'quantity' FROM outbox")
    assert payload_quantity == "1"


FAIL_AT_COMMIT = """
CREATE FUNCTION fail_injected() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;
CREATE CONSTRAINT TRIGGER fail_at_commit AFTER INSERT ON orders
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_injected();
"""

FAIL_ON_OUTBOX_INSERT = """
CREATE FUNCTION fail_injected() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;
CREATE TRIGGER fail_on_outbox BEFORE INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION fail_injected();
"""


@pytest.mark.parametrize(
    "injection", [FAIL_AT_COMMIT, FAIL_ON_OUTBOX_INSERT], ids=["at-commit", "on-outbox-insert"]
)
async def test_failure_after_the_order_insert_leaves_neither_row(
    ordering: httpx.AsyncClient, ordering_db: str, injection: str
) -> None:
    await query(ordering_db, injection)
    body = {"customerName": "Di", "productId": str(uuid.uuid4()), "quantity": 2}

    response = await ordering.post("/api/ordering/order", json=body)

    assert response.status_code == 503
    assert "retry" in response.json()["detail"]
    assert await count(ordering_db, "orders") == 0
    assert await count(ordering_db, "outbox") == 0


async def test_rollback_after_the_service_call_discards_both_rows(ordering_db: str) -> None:
    """The service flushes both rows, then the caller's transaction aborts: nothing stays."""
    engine = make_engine(ordering_db)
    sessions = make_sessionmaker(engine)
    try:
        with pytest.raises(RuntimeError, match="caller failed"):
            async with sessions() as session, session.begin():
                await service.place_order(
                    session, customer_name="Eve", product_id=uuid.uuid4(), quantity=1
                )
                # The rows are in the database, inside this open transaction.
                assert await _visible(session, "orders") == 1
                assert await _visible(session, "outbox") == 1
                raise RuntimeError("caller failed")
    finally:
        await engine.dispose()

    assert await count(ordering_db, "orders") == 0
    assert await count(ordering_db, "outbox") == 0


async def _visible(session: AsyncSession, table: str) -> int:
    from sqlalchemy import text

    return int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_database_down_is_a_clear_503(ordering_db: str) -> None:
    from urllib.parse import urlsplit

    from app.core.settings import Settings
    from app.ordering.app import create_app
    from tests.support.proxy import TcpProxy
    from tests.support.servers import asgi_client

    target = urlsplit(ordering_db.replace("postgresql+psycopg", "postgresql"))
    proxy = await TcpProxy(target.hostname or "127.0.0.1", target.port or 5432).start()
    settings = Settings(
        ordering_database_url=ordering_db.replace(f":{target.port}/", f":{proxy.port}/")
    )
    try:
        async with asgi_client(create_app(settings)) as client:
            proxy.block()  # the database goes away after the service started
            proxy.cut()
            body = {"customerName": "Flo", "productId": str(uuid.uuid4())}
            response = await client.post("/api/ordering/order", json=body)
    finally:
        await proxy.close()
    assert response.status_code == 503
    assert "retry" in response.json()["detail"]
    assert await count(ordering_db, "orders") == 0
