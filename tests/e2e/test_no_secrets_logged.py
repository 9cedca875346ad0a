"""No log line of a full run carries a password: the processes run with credentials in
every URL (PostgreSQL's trust authentication ignores the password it is given), an
order goes through the whole loop, a process fails to start, and every line is read."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.e2e.processes import run_command
from tests.support.auth import HEADERS
from tests.support.consuming import wait_until
from tests.support.deployment import Deployment, place

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

PASSWORD = "s3cret-never-logged"


def with_password(url: str) -> str:
    return make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


def read_logs(directory: Path) -> list[str]:
    return [path.read_text(errors="replace") for path in directory.rglob("*.log")]


async def test_a_full_run_logs_no_password(
    ordering_db: str, catalog_db: str, broker: str, tmp_path: Path
) -> None:
    deployment = Deployment(with_password(ordering_db), with_password(catalog_db), broker, tmp_path)
    try:
        await deployment.start(replies=True, LOG_LEVEL="DEBUG")
        async with httpx.AsyncClient(headers=HEADERS, timeout=10) as client:
            product = await deployment.new_product(client, stock=3)
            order = await place(client, deployment, product)
            url = f"{deployment.ordering_url}/api/ordering/order/{order}"

            async def confirmed() -> bool:
                return (await client.get(url)).json()["state"] == "Confirmed"

            await wait_until(confirmed, timeout=30)
    finally:
        await deployment.stop()
    failed_start = deployment._env(
        BROKER_URL=f"amqp://guest:{PASSWORD}@127.0.0.1:1/", STARTUP_TIMEOUT_SECONDS="1"
    )
    with pytest.raises(AssertionError) as failure:
        run_command("relay", "ordering", env=failed_start)
    logs = read_logs(tmp_path)
    assert logs and any("relay started" in log for log in logs)
    assert any("database='postgresql+psycopg://postgres:***@" in log for log in logs)
    for text in [*logs, str(failure.value)]:
        assert PASSWORD not in text
        assert ":guest@" not in text  # the broker's own password (guest/guest)
