"""POST /api/ordering/order/{id}/cancel: the state change and OrderCancelled commit together."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import query

pytestmark = pytest.mark.postgres


async def place(ordering: httpx.AsyncClient, quantity: int = 2) -> dict[str, Any]:
    response = await ordering.post(
        "/api/ordering/order",
        json={"customerName": "Ann", "productId": str(uuid.uuid4()), "quantity": quantity},
    )
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    return order


async def cancellations(ordering_db: str) -> list[tuple[Any, ...]]:
    return await query(
        ordering_db,
        "SELECT payload->>'orderId', payload->>'productId', payload->>'quantity', "
        "headers->>'correlation_id' FROM outbox WHERE event_type = 'OrderCancelled'",
    )


async def set_state(ordering_db: str, order_id: str, state: str) -> None:
    await query(ordering_db, "UPDATE orders SET state = %s WHERE id = %s", state, order_id)


@pytest.mark.parametrize("state", ["Placed", "Confirmed"])
async def test_cancel_stages_order_cancelled_once(
    ordering: httpx.AsyncClient, ordering_db: str, state: str
) -> None:
    order = await place(ordering)
    await set_state(ordering_db, order["id"], state)

    first = await ordering.post(
        f"/api/ordering/order/{order['id']}/cancel", headers={"X-Correlation-ID": "c-1"}
    )
    again = await ordering.post(f"/api/ordering/order/{order['id']}/cancel")

    assert first.status_code == 200, first.text
    assert first.json()["state"] == "Cancelled" and first.json()["id"] == order["id"]
    assert again.status_code == 200 and again.json()["state"] == "Cancelled"  # a no-op
    assert await cancellations(ordering_db) == [(order["id"], order["productId"], "2", "c-1")]
    fetched = await ordering.get(f"/api/ordering/order/{order['id']}")
    assert fetched.json()["state"] == "Cancelled"


async def test_concurrent_cancels_stage_one_event(
    ordering: httpx.AsyncClient, ordering_db: str
) -> None:
    order = await place(ordering)
    answers = await asyncio.gather(
        *(ordering.post(f"/api/ordering/order/{order['id']}/cancel") for _ in range(10))
    )
    assert {answer.status_code for answer in answers} == {200}
    assert len(await cancellations(ordering_db)) == 1


async def test_a_rejected_order_cannot_be_cancelled(
    ordering: httpx.AsyncClient, ordering_db: str
) -> None:
    order = await place(ordering)
    await set_state(ordering_db, order["id"], "Rejected")

    response = await ordering.post(f"/api/ordering/order/{order['id']}/cancel")

    assert response.status_code == 409
    assert "rejected" in response.json()["detail"]
    assert await cancellations(ordering_db) == []
    fetched = await ordering.get(f"/api/ordering/order/{order['id']}")
    assert fetched.json()["state"] == "Rejected"


async def test_unknown_and_malformed_ids(ordering: httpx.AsyncClient) -> None:
    unknown = await ordering.post(f"/api/ordering/order/{uuid.uuid4()}/cancel")
    malformed = await ordering.post("/api/ordering/order/not-a-uuid/cancel")

    assert unknown.status_code == 404 and "not found" in unknown.json()["detail"]
    assert malformed.status_code == 422
