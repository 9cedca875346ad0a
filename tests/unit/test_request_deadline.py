"""The request deadline: a request the database leaves hanging is answered 503; the admin
API's dead-letter routes, which are the broker's work, are left to their own timeouts."""

from __future__ import annotations

import asyncio

import httpx
from starlette.types import Receive, Scope, Send

from app.http.request_deadline import RequestDeadlineMiddleware
from app.http.service_app import BROKER_BOUND


async def _slow(scope: Scope, receive: Receive, send: Send) -> None:
    await asyncio.sleep(0.3)  # a statement on a connection that does not answer
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"done"})


def _client() -> httpx.AsyncClient:
    app = RequestDeadlineMiddleware(_slow, seconds=0.05, exempt=BROKER_BOUND)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_a_request_past_the_deadline_is_answered_503_in_words() -> None:
    async with _client() as client:
        answer = await client.get("/api/ordering/order")
    assert answer.status_code == 503
    assert "Idempotency-Key" in answer.json()["detail"]


async def test_the_dead_letter_routes_are_left_to_the_brokers_own_timeouts() -> None:
    async with _client() as client:
        replay = await client.post("/admin/api/catalog/dlq/replay")
        listing = await client.get("/admin/api/catalog/dlq")
        status = await client.get("/admin/api/catalog/outbox/status")
    assert (replay.status_code, replay.text) == (200, "done")
    assert (listing.status_code, listing.text) == (200, "done")
    assert status.status_code == 503  # the database's work: under the deadline
