"""The shared HTTP plumbing, on a tiny app with no database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

import httpx
import pytest
from fastapi import Depends, FastAPI, Path
from pydantic import BaseModel

from app.http.service_app import install_common

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


async def test_a_422_lists_the_first_errors_and_counts_them_all() -> None:
    app = FastAPI()
    install_common(app, max_body_bytes=64 * 1024)

    @app.post("/numbers")
    async def numbers(body: list[int]) -> int:
        return len(body)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        many = await c.post("/numbers", json=["x"] * 10_000)
        few = await c.post("/numbers", json=[1, "x", "y"])

    assert many.status_code == 422
    assert len(many.content) < 4096  # not one entry per bad item
    body = many.json()
    assert body["errorCount"] == 10_000 and len(body["detail"]) == 20
    assert [e["loc"] for e in body["detail"]] == [["body", n] for n in range(20)]
    assert few.json()["errorCount"] == 2 and len(few.json()["detail"]) == 2


Service = Annotated[Literal["ordering", "catalog"], Path()]


Service = Annotated[Literal["ordering", "catalog"], Path()]


def served(service: Service) -> str:
    return service


async def test_a_path_parameter_its_dependency_repeats_is_one_error() -> None:
    app = FastAPI()
    install_common(app, max_body_bytes=64 * 1024)

    @app.get("/things/{service}")
    async def things(service: Service, _served: Annotated[str, Depends(served)]) -> str:
        return service

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        response = await c.get("/things/nope")

    assert response.status_code == 422
    assert response.json()["errorCount"] == 1, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["path", "service"]]
