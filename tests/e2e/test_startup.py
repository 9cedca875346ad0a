"""Every process waits for its dependencies, then fails with a clear message."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.e2e.processes import PROJECT_ROOT, command_env, run_command
from tests.support.servers import free_port


@pytest.mark.parametrize(
    ("args", "setting", "words"),
    [
        (["relay", "ordering"], "ORDERING_DATABASE_URL", "the database"),
        (["consume", "catalog"], "CATALOG_DATABASE_URL", "the database"),
        (["migrate", "ordering"], "ORDERING_DATABASE_URL", "the database"),
        (["api", "catalog"], "CATALOG_DATABASE_URL", "the database"),
        (["relay", "ordering"], "BROKER_URL", "RabbitMQ"),
    ],
)
def test_a_dependency_that_never_comes_is_a_clear_failure(
    args: list[str], setting: str, words: str, tmp_path: object
) -> None:
    dead = free_port()
    settings = {
        "ORDERING_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/o.db",
        "CATALOG_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/c.db",
        "BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/",
        "STARTUP_TIMEOUT_SECONDS": "1.5",
    }
    settings[setting] = (
        f"amqp://guest:guest@127.0.0.1:{dead}/"
        if setting == "BROKER_URL"
        else f"postgresql+psycopg://postgres@127.0.0.1:{dead}/nowhere"
    )
    if args[0] == "api":
        args = [*args, "--port", str(free_port())]
    if setting == "BROKER_URL":  # the database is there: it must be at head to go on
        run_command("migrate", env=command_env(**settings))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=command_env(**settings),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert f"{words} at" in done.stderr and "not reachable after 2s" in done.stderr, done.stderr
    assert "waiting for" in done.stderr  # it did retry, and said so
    assert time.monotonic() - started < 30
