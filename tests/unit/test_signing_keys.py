"""The signing secret is decided once, on the command line: ``dev`` and ``token`` may fall
back to the development secret under ./var, nothing below the command line may choose to."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.auth.config import SigningKeys
from app.cli.signing import signing_keys
from app.core.settings import Settings
from tests.support.auth import TEST_SECRET

APP = Path(__file__).resolve().parents[2] / "app"
FLAG = "development"


def _parameters_named(name: str, root: Path) -> list[str]:
    """``path:line function`` for every function or lambda under ``root`` with a parameter
    called ``name`` (positional, keyword-only, ``*args`` or ``**kwargs``)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            arguments = node.args
            every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
            every += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
            if any(argument.arg == name for argument in every):
                what = getattr(node, "name", "<lambda>")
                found.append(f"{path.relative_to(APP.parent)}:{node.lineno} {what}")
    return found


def test_no_signature_outside_the_command_line_takes_a_development_flag() -> None:
    found = [line for line in _parameters_named(FLAG, APP) if not line.startswith("app/cli/")]
    assert found == [], "pass SigningKeys from app/cli instead: " + ", ".join(found)


def test_the_scan_sees_the_command_lines_own_flag() -> None:
    # The scan above would pass vacuously if it read no signature: it finds this one.
    assert any("app/cli/signing.py" in line for line in _parameters_named(FLAG, APP))


def test_the_configured_secret_wins_even_in_development(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert signing_keys(Settings(), development=True) == SigningKeys(TEST_SECRET)
    assert signing_keys(Settings(), development=False) == SigningKeys(TEST_SECRET)
    assert not (tmp_path / "var").exists()


def test_only_development_makes_the_secret_under_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUTH_JWT_SECRET")
    monkeypatch.chdir(tmp_path)
    assert signing_keys(Settings(), development=False) == SigningKeys(None)
    assert not (tmp_path / "var").exists()
    made = signing_keys(Settings(), development=True)
    assert made.secret == (tmp_path / "var" / "dev-jwt-secret").read_text().strip()
    assert signing_keys(Settings(), development=True) == made  # the same file, read again


def test_beside_an_identity_provider_development_makes_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUTH_JWT_SECRET")
    monkeypatch.chdir(tmp_path)
    settings = Settings(auth_jwks_url="https://idp.example/jwks",
                        auth_issuer="https://idp.example/", auth_audience="cloudcrm")  # fmt: skip
    assert signing_keys(settings, development=True) == SigningKeys(None)
    assert not (tmp_path / "var").exists()
