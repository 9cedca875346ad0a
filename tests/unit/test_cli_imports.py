"""The command line answers ``--help`` without loading what its commands run on: the web
framework, the broker client, the database drivers and toolkit, the tracing SDK. Each
case starts a real ``python -m app … --help`` under ``-X importtime`` and reads the
modules it imported."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli.main import COMMANDS, _parser, command

# Top-level packages (a dotted name: that subpackage) a `--help` must not import.
FORBIDDEN = (
    "fastapi",
    "starlette",
    "uvicorn",
    "aio_pika",
    "aiormq",
    "pamqp",
    "psycopg",
    "psycopg_binary",
    "aiosqlite",
    "sqlalchemy",
    "alembic",
    "opentelemetry.sdk",
    "jinja2",
    "apscheduler",
    "prometheus_client",
    "pydantic",
    "pydantic_settings",
    "httpx",
)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def _every_command_line() -> list[tuple[str, ...]]:
    """``()`` for the top level, then every command and every command's verbs."""
    lines: list[tuple[str, ...]] = [()]
    for name, sub in _subcommands(_parser()).items():
        lines.append((name,))
        lines.extend((name, verb) for verb in _subcommands(sub))
    return lines


def _imported(argv: tuple[str, ...]) -> tuple[set[str], str]:
    """The modules ``python -m app *argv --help`` imported, and what it printed."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "app", *argv, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and not line.rstrip().endswith("imported package")
    }
    assert "app.cli.parser" in modules  # the reading works: it saw the parser imported
    return modules, done.stdout


def _loaded(modules: set[str], package: str) -> list[str]:
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


@pytest.mark.parametrize("argv", _every_command_line(), ids=lambda a: " ".join(a) or "top")
def test_help_imports_nothing_heavy(argv: tuple[str, ...]) -> None:
    modules, out = _imported(argv)
    loaded = {package: _loaded(modules, package)[:3] for package in FORBIDDEN}
    assert {p: found for p, found in loaded.items() if found} == {}
    assert out.startswith("usage: python -m app")


def test_the_top_level_help_lists_every_command() -> None:
    _, out = _imported(())
    commands = set(_subcommands(_parser()))
    assert commands == set(COMMANDS)
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("    ")}
    assert commands <= listed, commands - listed


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_resolves_to_a_function(name: str) -> None:
    assert callable(command(name))


@pytest.mark.parametrize(
    ("argv", "status"),
    [
        (["dlq", "list", "ordering"], 1),  # the embedded broker's dead letters: not here
        (["broker", "declare"], 2),  # needs RabbitMQ
        (["outbox", "nope"], 2),  # usage
    ],
)
def test_the_process_exits_with_the_commands_status(
    argv: list[str], status: int, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "BROKER_URL": "memory://"},
    )
    assert done.returncode == status, done.stderr[-2000:]
