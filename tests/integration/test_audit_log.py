"""The admin audit line writes the operator's token subject escaped: a signed ``sub`` with a
newline and terminal escapes cannot forge a second log line nor clear the terminal, in
the text format or the JSON one. Ordering's API on PostgreSQL, dead letters on RabbitMQ."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import text

from app.core.logs import configure_logging
from app.core.settings import Settings
from app.ordering.app import create_app
from cloudcrm_outbox.storage.engine import make_engine
from tests.support.auth import token

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

FORGED = "2026-12-07 06:00:00,000 WARNING app.admin operator cli:root purged everything"
MALLORY = f"mallory\n{FORGED}\x1b[2J"


@pytest.fixture
async def admin(ordering_db: str, broker: str) -> AsyncIterator[httpx.AsyncClient]:
    """Ordering's API; its bearer is a token signed for MALLORY with the admin scope."""
    settings = Settings(ordering_database_url=ordering_db, broker_url=broker,
                        catalog_api_url="http://127.0.0.1:9")  # fmt: skip
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {token('admin', subject=MALLORY)}"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ordering", headers=headers
        ) as client,  # fmt: skip
    ):
        yield client


@pytest.fixture
def restore_logging() -> Iterator[None]:
    yield
    configure_logging()  # back to the default for the other tests


async def _replay_a_failed_row(admin: httpx.AsyncClient, ordering_db: str) -> None:
    engine = make_engine(ordering_db)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO outbox (id, event_type, payload, headers, attempts, last_error, "
                    "failed_at) VALUES (:id, 'OrderPlaced', '{}', '{}', 10, 'gave up', now())"
                ),
                {"id": uuid.uuid4()},
            )
    finally:
        await engine.dispose()
    replayed = await admin.post("/admin/api/ordering/outbox/replay", json={"all": True})
    assert replayed.status_code == 200 and replayed.json()["replayed"] == 1, replayed.text


def _audit_lines(capsys: pytest.CaptureFixture[str]) -> tuple[str, list[str]]:
    written = capsys.readouterr().err
    return written, [line for line in written.splitlines() if "replayed failed" in line]


async def test_a_forged_subject_stays_on_its_line_in_the_text_format(
    admin: httpx.AsyncClient, ordering_db: str, capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:  # fmt: skip
    configure_logging("INFO", log_format="text", service="ordering", role="api")
    capsys.readouterr()
    await _replay_a_failed_row(admin, ordering_db)
    written, [audit] = _audit_lines(capsys)
    assert not any(line.startswith(FORGED) for line in written.splitlines()), written
    assert "\x1b" not in written
    assert "operator api:mallory\\n2026-12-07 06:00:00,000 WARNING" in audit, audit
    assert "purged everything\\x1b[2J@" in audit, audit


async def test_a_forged_subject_stays_escaped_in_the_json_format(
    admin: httpx.AsyncClient, ordering_db: str, capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:  # fmt: skip
    configure_logging("INFO", log_format="json", service="ordering", role="api")
    capsys.readouterr()
    await _replay_a_failed_row(admin, ordering_db)
    written, [audit] = _audit_lines(capsys)
    assert all(json.loads(line) for line in written.splitlines())  # one object per line
    entry = json.loads(audit)
    # Escaped in the values themselves: a viewer that decodes the JSON and prints the
    # message (jq -r .message) shows the escapes, not a second line or a cleared screen.
    for field in ("message", "actor"):
        assert "\n" not in entry[field] and "\x1b" not in entry[field], (field, entry[field])
        assert "mallory\\n2026-12-07" in entry[field] and "everything\\x1b[2J" in entry[field]
