"""A relay's or consumer's probes: ready only while its database answers and no part of
it reports a problem; the reasons say which."""

from __future__ import annotations

from pathlib import Path

import httpx

from cloudcrm_outbox.observability.probes import ProcessHealth, probe_app
from cloudcrm_outbox.storage.engine import make_engine


async def test_ready_reports_each_problem(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    health = ProcessHealth()
    consuming = {"now": False}
    health.add_check(lambda: None if consuming["now"] else "not consuming")
    refreshed: list[bool] = []

    async def refresh() -> None:
        refreshed.append(True)

    transport = httpx.ASGITransport(app=probe_app(health, engine, refresh))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/health/live")).status_code == 200
        health.failing("relay", "the relay cannot proceed: ConnectionError()")
        down = await client.get("/health/ready")
        assert down.status_code == 503
        assert down.json()["reasons"] == ["the relay cannot proceed: ConnectionError()",
                                          "not consuming"]  # fmt: skip
        health.recovered("relay")
        consuming["now"] = True
        assert (await client.get("/health/ready")).json() == {"status": "ready", "reasons": []}
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200 and refreshed == [True]
        assert metrics.headers["content-type"].startswith("text/plain")
    await engine.dispose()

    unreachable = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nothing")  # refused
    transport = httpx.ASGITransport(app=probe_app(ProcessHealth(), unreachable, None))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        gone = await client.get("/health/ready")
        assert gone.status_code == 503 and "does not answer" in gone.json()["reasons"][0]
    await unreachable.dispose()
