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
    """Run ``python -m app ARGS`` to completion; fail with its output if it fails.
    Returns what it logged (stderr); ``command_output`` returns what it printed."""
    return _completed(*args, env=env, cwd=cwd).stderr


def command_output(*args: str, env: dict[str, str], cwd: Path = PROJECT_ROOT) -> str:
    """Run ``python -m app ARGS`` to completion; its standard output."""
    return _completed(*args, env=env, cwd=cwd).stdout


def _completed(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"python -m app {' '.join(args)} failed:\n{done.stderr}"
    return done


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


class Background:
    """A ``python -m app`` process (or ``-m module``) whose log the test reads (for
    processes without HTTP)."""

    def __init__(
        self, *args: str, env: dict[str, str], log_path: Path, module: str = "app"
    ) -> None:
        self.args = args
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=self._log,
            stderr=self._log,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_for_log(self, text: str, *, timeout: float = 30.0, count: int = 1) -> None:
        import asyncio

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log().count(text) >= count:
                return
            if self.process.poll() is not None:
                raise AssertionError(
                    f"exited {self.process.returncode} before {text!r}:\n{self.log()}"
                )
            await asyncio.sleep(0.05)
        raise AssertionError(f"{text!r} not logged within {timeout}s:\n{self.log()}")

    async def wait_exit(self, timeout: float) -> int | None:
        import asyncio

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (code := self.process.poll()) is not None:
                return code
            await asyncio.sleep(0.05)
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()
