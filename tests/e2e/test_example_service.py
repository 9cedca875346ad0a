"""The example service (examples/parcels.py) works through the public API alone, on each
backend pair: SQLite + the embedded broker, and PostgreSQL + RabbitMQ."""

from __future__ import annotations

import ast
from pathlib import Path

import httpx
import pytest

from cloudcrm_outbox import make_engine
from cloudcrm_outbox.testing import staged_events
from examples.parcels import create_app
from tests.support import postgres
from tests.support.auth import HEADERS
from tests.support.consuming import wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_on_sqlite_and_the_embedded_broker(tmp_path: Path) -> None:
    await _a_parcel_is_published_and_applied_once(
        f"sqlite+aiosqlite:///{tmp_path / 'parcels.db'}", "memory://", tmp_path
    )


@pytest.mark.postgres
@pytest.mark.rabbitmq
async def test_on_postgresql_and_rabbitmq(broker: str, tmp_path: Path) -> None:
    name = postgres.unique_name("cc_parcels")
    url = postgres.create_database(name)
    try:
        await _a_parcel_is_published_and_applied_once(url, broker, tmp_path)
    finally:
        postgres.drop_database(name)


async def _a_parcel_is_published_and_applied_once(
    database_url: str, broker_url: str, tmp_path: Path
) -> None:
    app = create_app(database_url, broker_url, broker_path=str(tmp_path / "broker.db"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            headers=HEADERS, transport=transport, base_url="http://parcels"
        ) as client:
            created = await client.post("/parcels", json={"address": "1 Main St"})
            assert created.status_code == 201, created.text
            parcel = created.json()["id"]

            async def notified() -> bool:
                shown = await client.get(f"/parcels/{parcel}")
                return bool(shown.json()["state"] == "notified")

            await wait_until(notified, timeout=20)
            assert (
                await client.get("/parcels/00000000-0000-0000-0000-000000000000")
            ).status_code == 404

    engine = make_engine(database_url)
    try:
        [event] = await staged_events(engine, event_type="ParcelShipped")
        assert event.published and event.body == {"parcelId": parcel, "address": "1 Main St"}
        async with engine.connect() as connection:
            from sqlalchemy import text

            inbox = (await connection.execute(text("SELECT consumer, outcome FROM inbox"))).all()
        assert [tuple(row) for row in inbox] == [("parcels", "applied")]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("example", ["parcels.py", "fastapi_service.py"])
def test_the_example_uses_only_the_public_api(example: str) -> None:
    tree = ast.parse((EXAMPLES / example).read_text())
    assert _project_imports(tree) == {"cloudcrm_outbox"}


def _project_imports(tree: ast.Module) -> set[str]:
    """The modules of the library or of the demo that ``tree`` imports."""
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return {name for name in modules if name.split(".")[0] in {"app", "cloudcrm_outbox"}}
