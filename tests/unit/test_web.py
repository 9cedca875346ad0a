"""The shared HTTP plumbing, on a tiny app with no database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from app.web import install_common

LIMIT = 1024


class Body(BaseModel):
    text: str
    number: float


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_common(app, max_body_bytes=LIMIT)

    @app.post("/echo")
    async def echo(body: Body) -> Body:
        return body

    transport = httpx.ASGITransport(app=app)
    json_headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers=json_headers
    ) as c:
        yield c


async def test_body_at_the_limit_passes(client: httpx.AsyncClient) -> None:
    text = "a" * (LIMIT - len('{"text": "", "number": 1}'))
    response = await client.post("/echo", content=f'{{"text": "{text}", "number": 1}}')
    assert response.status_code == 200
    assert response.json()["text"] == text


async def test_declared_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/echo", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.json() == {"detail": f"request body larger than {LIMIT} bytes"}


async def test_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 400

    response = await client.post("/echo", content=chunks())
    assert response.status_code == 413


async def test_bogus_content_length_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/echo", content=b"{}", headers={"content-length": "-3"})
    assert response.status_code == 413


async def test_validation_errors_do_not_echo_the_input(client: httpx.AsyncClient) -> None:
    response = await client.post("/echo", content=b'{"text": "secret", "number": NaN}')
    assert response.status_code == 200  # NaN is a valid float here; the app decides
    response = await client.post("/echo", content=b'{"text": 5, "number": "x"}')
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert {tuple(e["loc"]) for e in errors} == {("body", "text"), ("body", "number")}
    assert all(set(e) == {"loc", "msg", "type"} for e in errors)
