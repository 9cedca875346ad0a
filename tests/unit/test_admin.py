"""The operators' commands and admin API refuse bad input clearly: usage errors exit 2,
failures exit 1 with one line, the API answers 4xx. On SQLite + the embedded defaults."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from app.cli.main import main
from app.core.settings import Settings
from app.ordering.app import create_app
from tests.support.auth import HEADERS

# An id no row has (the databases are fresh); fixed, so that every test process collects
# the same parametrized ids.
NO_SUCH_ID = "0b1d5e6f-0000-4000-8000-000000000404"


@pytest.fixture
def migrated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory with both SQLite databases migrated, BROKER_URL=memory://."""
    monkeypatch.chdir(tmp_path)
    for name in ("ORDERING_DATABASE_URL", "CATALOG_DATABASE_URL", "BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["migrate"]) == 0
    yield tmp_path


@pytest.mark.parametrize(
    "argv",
    [
        ["outbox", "replay", "ordering"],  # neither --id nor --all
        ["outbox", "replay", "ordering", "--all", "--id", str(uuid.uuid4())],
        ["outbox", "replay", "ordering", "--id", "not-a-uuid"],
        ["outbox", "failed", "ordering", "--limit", "0"],
        ["outbox", "failed", "ordering", "--limit", "many"],
        ["outbox", "failed", "billing"],
        ["dlq", "list", "catalog", "--limit", "10001"],
        ["dlq", "purge", "catalog"],
        ["inbox", "show", "catalog", "not-a-uuid"],
        ["outbox", "replay", "ordering", "--all", "--error-contains", ""],
        ["outbox", "replay", "ordering", "--all", "--error-contains", "a\x00b"],
        ["outbox", "failed", "ordering", "--event-type", "x" * 201],
        ["dlq", "replay", "catalog", "--all", "--reason", ""],
        ["dlq", "purge", "catalog", "--id", "x" * 256, "--yes"],
        ["outbox", "replay", "ordering", "--all", "--error-contains", "\udcff"],  # not UTF-8
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_purge_without_yes_and_no_terminal_is_refused(migrated: Path) -> None:
    assert main(["dlq", "purge", "catalog", "--all"]) == 2


def test_a_refused_purge_names_the_filter_it_was_given(
    migrated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["dlq", "purge", "catalog", "--all", "--reason", "unknown event"]) == 2
    [refusal] = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    assert (
        "refusing to purge every dead letter of catalog whose reason contains 'unknown event'"
        " without --yes" in refusal
    ), refusal


def test_the_purge_question_names_the_filter_too(
    migrated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "n")
    assert main(["dlq", "purge", "catalog", "--all", "--reason", "quantity"]) == 2
    assert asked == [
        "Delete every dead letter of catalog whose reason contains 'quantity' for good? [y/N] "
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["dlq", "list", "catalog"],  # the embedded broker lives inside dev
        ["dlq", "replay", "catalog", "--all"],
        ["inbox", "show", "catalog", str(uuid.uuid4())],  # no such row
    ],
)
def test_failures_exit_1_with_one_line(
    migrated: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(argv) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    assert len(errors) == 1, errors


def test_replaying_nothing_is_not_a_failure(
    migrated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["outbox", "replay", "ordering", "--all", "--json"]) == 0
    assert capsys.readouterr().out.strip() == '{"replayed": 0, "ids": [], "dry_run": false}'


@pytest.fixture
async def admin(migrated: Path) -> AsyncIterator[httpx.AsyncClient]:
    """Ordering's API alone with the embedded broker: no dead letters reachable here."""
    app = create_app(Settings())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            headers=HEADERS, transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client,
    ):
        yield client


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("post", "/admin/api/ordering/outbox/replay", {}, 422),
        (
            "post",
            "/admin/api/ordering/outbox/replay",
            {"all": True, "ids": [str(uuid.uuid4())]},
            422,
        ),
        ("post", "/admin/api/ordering/outbox/replay", {"ids": []}, 422),
        ("post", "/admin/api/ordering/outbox/replay", {"ids": ["x"]}, 422),
        ("post", "/admin/api/ordering/outbox/replay", {"all": True, "extra": 1}, 422),
        ("get", "/admin/api/ordering/outbox/failed?limit=0", None, 422),
        ("get", "/admin/api/ordering/outbox/failed?eventType=%00x", None, 422),
        (
            "post",
            "/admin/api/ordering/outbox/replay",
            {"all": True, "errorContains": "a\u0000"},
            422,
        ),
        ("post", "/admin/api/ordering/outbox/replay", {"all": False}, 422),
        ("post", "/admin/api/ordering/outbox/replay", {"all": 1}, 422),
        ("post", "/admin/api/ordering/outbox/replay", {"all": True, "dryRun": "false"}, 422),
        ("post", "/admin/api/ordering/outbox/replay", {"all": True, "dryRun": 0}, 422),
        ("get", "/admin/api/ordering/outbox/events", None, 422),  # orderId required
        ("get", "/admin/api/ordering/outbox/events?orderId=nope", None, 422),
        ("get", "/admin/api/billing/outbox/status", None, 422),
        ("get", "/admin/api/catalog/outbox/status", None, 404),  # not served here
        ("get", "/admin/api/ordering/inbox/not-a-uuid", None, 422),
        ("get", f"/admin/api/ordering/inbox/{NO_SUCH_ID}", None, 404),
        ("get", "/admin/api/ordering/dlq", None, 409),  # no broker reachable from here
        ("get", "/admin/api/catalog/dlq", None, 404),  # the other service's dead letters
        ("post", "/admin/api/catalog/dlq/replay", {"all": True}, 404),
        ("post", "/admin/api/ordering/dlq/purge", {"all": True}, 409),
    ],
)
async def test_the_admin_api_answers_bad_requests_with_4xx(
    admin: httpx.AsyncClient, method: str, path: str, body: object, status: int
) -> None:
    response = await admin.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert "detail" in response.json()


async def test_the_admin_api_reads_and_replays(admin: httpx.AsyncClient) -> None:
    status = (await admin.get("/admin/api/ordering/outbox/status")).json()
    assert status["pending"] == 0 and status["deadLetters"] is None
    assert (await admin.get("/admin/api/ordering/outbox/failed")).json() == {"failed": []}
    replay = await admin.post("/admin/api/ordering/outbox/replay", json={"all": True})
    assert replay.json() == {"replayed": 0, "ids": [], "dryRun": False}


CLOSED_PORT = "amqp://guest:guest@127.0.0.1:1/"


@pytest.fixture
async def admin_without_rabbitmq(
    migrated: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    """Ordering's API whose BROKER_URL names a RabbitMQ nobody listens for."""
    monkeypatch.setenv("BROKER_URL", CLOSED_PORT)
    app = create_app(Settings())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            headers=HEADERS, transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client,
    ):
        yield client


async def test_rabbitmq_down_is_a_503_and_status_still_answers(
    admin_without_rabbitmq: httpx.AsyncClient,
) -> None:
    listing = await admin_without_rabbitmq.get("/admin/api/ordering/dlq")
    assert listing.status_code == 503 and "cannot reach RabbitMQ" in listing.json()["detail"]
    purge = await admin_without_rabbitmq.post("/admin/api/ordering/dlq/purge", json={"all": True})
    assert purge.status_code == 503
    status = await admin_without_rabbitmq.get("/admin/api/ordering/outbox/status")
    assert status.status_code == 200 and status.json()["deadLetters"] is None


def test_rabbitmq_down_is_one_line_and_exit_1(
    migrated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BROKER_URL", CLOSED_PORT)
    capsys.readouterr()
    assert main(["dlq", "list", "catalog"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "cannot reach RabbitMQ" in errors[0]
    assert main(["outbox", "status", "--json"]) == 0  # the databases' figures still


async def test_a_broker_refusing_the_account_is_a_502_not_a_retry() -> None:
    import json

    from app.http.service_app import _broker_error
    from cloudcrm_outbox.errors import BrokerUnavailableError

    refused = BrokerUnavailableError(
        "RabbitMQ failed: ChannelAccessRefused('ACCESS_REFUSED - access to exchange')"
    )
    response = await _broker_error(None, refused)  # type: ignore[arg-type]
    assert response.status_code == 502
    assert "admin account" in json.loads(bytes(response.body))["detail"]
    down = await _broker_error(None, BrokerUnavailableError("cannot reach RabbitMQ"))  # type: ignore[arg-type]
    assert down.status_code == 503


@pytest.mark.parametrize(
    ("broker_url", "says", "never"),
    [
        ("memory://", "the embedded broker's live inside `python -m app dev`", "logged above"),
        (CLOSED_PORT, "RabbitMQ did not answer", "embedded"),
    ],
)
def test_status_says_why_dead_letters_are_not_counted(
    migrated: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    broker_url: str,
    says: str,
    never: str,
) -> None:
    # On the embedded broker nothing is logged above: the line must not send one there.
    monkeypatch.setenv("BROKER_URL", broker_url)
    capsys.readouterr()
    assert main(["outbox", "status"]) == 0
    printed = capsys.readouterr().out
    assert says in printed and never not in printed, printed
