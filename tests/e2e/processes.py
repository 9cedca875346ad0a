"""Start the project's commands as a user does: ``python -m app ...`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def command_env(**settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.endswith("_DATABASE_URL")}
    env.update(settings)
    return env


def run_command(*args: str, env: dict[str, str], cwd: Path = PROJECT_ROOT) -> str:
    """Run ``python -m app ARGS`` to completion; fail with its output if it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"python -m app {' '.join(args)} failed:\n{done.stderr}"
    return done.stderr


@contextmanager
def running(
    *args: str, env: dict[str, str], ready_url: str, cwd: Path = PROJECT_ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``python -m app ARGS`` until the block ends; wait until ``ready_url`` answers."""
    log = (cwd / f".e2e-{args[0]}-{time.monotonic_ns()}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "app", *args], env=env, cwd=cwd, stdout=log, stderr=log
    )
    try:
        _wait_ready(process, ready_url, Path(log.name))
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        Path(log.name).unlink(missing_ok=True)


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered:\n{log.read_text()}")
