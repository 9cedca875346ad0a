"""The services as separate processes on PostgreSQL, and ``dev`` on the embedded defaults."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import command_env, run_command, running
from tests.support import postgres
from tests.support.servers import free_port


@pytest.fixture
def databases() -> Iterator[dict[str, str]]:
    names = {s: postgres.unique_name(f"cc_e2e_{s}") for s in ("ordering", "catalog")}
    try:
        yield {service: postgres.create_database(name) for service, name in names.items()}
    finally:
        for name in names.values():
            postgres.drop_database(name)


def tutorial_flow(ordering_url: str, catalog_url: str) -> tuple[dict[str, object], str]:
    """Create a product, order it, list orders; returns the listed order and product id."""
    product = httpx.post(
        f"{catalog_url}/api/catalog/products",
        json={"name": "Product A", "price": 10.5, "stockCount": 53},
    )
    assert product.status_code == 201, product.text
    product_id = product.json()["id"]
    order = httpx.post(
        f"{ordering_url}/api/ordering/order",
        json={"customerName": "Ann", "productId": product_id, "quantity": 1},
    )
    assert order.status_code == 201, order.text
    listed = httpx.get(f"{ordering_url}/api/ordering/order")
    assert listed.status_code == 200
    [only] = listed.json()
    assert only["id"] == order.json()["id"]
    return only, product_id


@pytest.mark.postgres
def test_separate_processes_on_postgresql(databases: dict[str, str]) -> None:
    ordering_port, catalog_port = free_port(), free_port()
    catalog_url = f"http://127.0.0.1:{catalog_port}"
    env = command_env(
        ORDERING_DATABASE_URL=databases["ordering"],
        CATALOG_DATABASE_URL=databases["catalog"],
        CATALOG_API_URL=catalog_url,
    )
    log = run_command("migrate", env=env)
    assert "ordering" in log and "catalog" in log

    ordering_url = f"http://127.0.0.1:{ordering_port}"
    with running(
        "api",
        "ordering",
        "--port",
        str(ordering_port),
        env=env,
        ready_url=f"{ordering_url}/docs",
    ):
        with running(
            "api",
            "catalog",
            "--port",
            str(catalog_port),
            env=env,
            ready_url=f"{catalog_url}/docs",
        ):
            order, _ = tutorial_flow(ordering_url, catalog_url)
            assert order["productName"] == "Product A"
        # Catalog stopped: ordering still lists, without names.
        listed = httpx.get(f"{ordering_url}/api/ordering/order")
        assert listed.status_code == 200
        assert listed.json()[0]["productName"] is None


def test_dev_on_embedded_defaults(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(
        "dev", "--port", str(port), env=command_env(), ready_url=f"{url}/docs", cwd=tmp_path
    ):
        order, _ = tutorial_flow(url, url)
        assert order["productName"] == "Product A"
        assert httpx.get(f"{url}/openapi.json").json()["info"]["title"]
    assert (tmp_path / "var" / "ordering.db").exists()
    assert (tmp_path / "var" / "catalog.db").exists()
