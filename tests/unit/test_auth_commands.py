"""``python -m app token``, the development secret, AUTH_DISABLED and the refusal to serve
an API nobody can authenticate to."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import jwt
import pytest

from app.auth.config import AuthNotConfiguredError, authenticator_for
from app.catalog.app import create_app as create_catalog
from app.cli.main import main
from app.cli.signing import signing_keys
from app.core import migrations as migrate
from app.core.settings import Settings
from tests.support.auth import TEST_SECRET


def _claims(token: str, secret: str = TEST_SECRET) -> dict[str, object]:
    return jwt.decode(token, secret, algorithms=["HS256"])


def test_token_prints_a_token_with_the_scopes_subject_and_ttl(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["token", "--scope", "orders:read orders:write", "--subject", "ann", "--ttl", "60"])
    assert code == 0
    claims = _claims(capsys.readouterr().out.strip())
    assert claims["scope"] == "orders:read orders:write" and claims["sub"] == "ann"
    assert int(claims["exp"]) - int(claims["iat"]) == 60  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--scope", "orders:read bogus"], "unknown scope bogus; known scopes: orders:read"),
        (["--scope", "  "], "no scope given"),
        (["--scope", "admin", "--ttl", "0"], "--ttl must be between 1 and"),
        (["--scope", "admin", "--ttl", "99999999"], "--ttl must be between 1 and"),
        (["--scope", "admin", "--subject", "two words"], "--subject must be"),
    ],
)
def test_token_refuses_bad_input_in_one_line(
    arguments: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", *arguments]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.strip().splitlines()
    assert "cannot make a token: " in line and said in line


def test_token_refuses_when_only_a_provider_is_configured(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUTH_JWT_SECRET")
    monkeypatch.setenv("AUTH_JWKS_URL", "https://idp.example/jwks")
    monkeypatch.setenv("AUTH_ISSUER", "https://idp.example/")
    monkeypatch.setenv("AUTH_AUDIENCE", "cloudcrm")
    assert main(["token", "--scope", "admin"]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "AUTH_JWT_SECRET is not set" in line


def test_without_settings_token_and_dev_share_the_development_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AUTH_JWT_SECRET")
    monkeypatch.chdir(tmp_path)
    assert main(["token", "--scope", "admin"]) == 0
    secret_file = tmp_path / "var" / "dev-jwt-secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    secret = secret_file.read_text().strip()
    assert _claims(capsys.readouterr().out.strip(), secret)["scope"] == "admin"
    verifier = authenticator_for(Settings(), signing_keys(Settings(), development=True))
    assert verifier.secret == secret  # what dev verifies with


@pytest.mark.parametrize(
    ("variables", "said"),
    [
        ({"AUTH_JWT_SECRET": "short"}, "AUTH_JWT_SECRET: Value error, must be at least 32"),
        (
            {"AUTH_JWKS_URL": "https://idp/jwks"},
            "AUTH_JWKS_URL needs AUTH_ISSUER and AUTH_AUDIENCE",
        ),
        ({"AUTH_CLIENT_ID": "ordering"}, "AUTH_CLIENT_ID and AUTH_CLIENT_SECRET go together"),
        ({"AUTH_AUTHORIZE_URL": "https://idp/auth"}, "AUTH_AUTHORIZE_URL needs AUTH_WEB_CLIENT_ID"),
        ({"BROKER_PUBLISHERS": "billing=x"}, "BROKER_PUBLISHERS: Value error, 'billing=x' is not"),
    ],
)
def test_bad_auth_settings_are_one_line_and_exit_1(
    variables: dict[str, str],
    said: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert main(["token", "--scope", "admin"]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert said in line
    assert "short" not in line.split(said)[1]  # the secret's value is never echoed


def test_an_api_nobody_can_authenticate_to_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTH_JWT_SECRET")
    with pytest.raises(AuthNotConfiguredError, match="AUTH_DISABLED=true turns"):
        create_catalog(Settings())


def test_api_command_exits_1_in_one_line_before_touching_the_database(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AUTH_JWT_SECRET")
    monkeypatch.setenv("CATALOG_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:9/none")
    assert main(["api", "catalog"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "authentication: no way to verify tokens" in errors[0]


async def test_auth_disabled_opens_every_route_and_warns_at_every_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("AUTH_JWT_SECRET")
    settings = Settings(
        auth_disabled=True, catalog_database_url=f"sqlite+aiosqlite:///{tmp_path}/c.db"
    )
    with caplog.at_level(logging.WARNING):
        create_catalog(settings)
        app = create_catalog(settings)
    warnings = [r for r in caplog.records if "AUTH_DISABLED=true" in r.getMessage()]
    assert len(warnings) == 2
    await asyncio.to_thread(migrate.upgrade, "catalog", settings=settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        response = await client.get("/api/catalog/products")  # no token
        assert response.status_code == 200 and response.json() == []
