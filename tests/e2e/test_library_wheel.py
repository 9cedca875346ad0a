"""The library as a service installs it: the wheel holds ``cloudcrm_outbox`` alone, and a
service whose own package is named ``app`` (examples/fastapi_service.py as its
app/main.py) runs on it from a fresh virtualenv with the ``sqlite`` extra."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "app" / "outbox"
EXAMPLE = ROOT / "examples" / "fastapi_service.py"
# What a service on SQLite and the embedded broker installs beside the wheel.
EXTRAS = "sqlite"
SERVICE_NEEDS = ("fastapi", "uvicorn")
# Left out of the copy the wheel is built from: nothing of them may reach it anyway, and a
# stale build/ would (setuptools reuses it).
NOT_COPIED = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "var")
DIST_INFO = re.compile(r"cloudcrm_outbox-[^/]+\.dist-info/")


@dataclass(frozen=True)
class Installed:
    wheel: Path
    python: Path  # the fresh virtualenv's interpreter
    service: Path  # the folder holding the service's package, app/


def _run(*command: str | Path, cwd: Path | None = None, timeout: float = 180) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{done.stderr}"
    return done.stdout


def _clean_env() -> dict[str, str]:
    """This environment without what would let the test's own packages leak in."""
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The library's wheel, built from a copy of the repository, installed with its
    ``sqlite`` extra (and what the service needs) in a new virtualenv, beside the service."""
    work = tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, work / "source", ignore=shutil.ignore_patterns(*NOT_COPIED))
    _run(sys.executable, "-m", "build", "--wheel", "--outdir", work / "dist", work / "source")
    [wheel] = (work / "dist").glob("cloudcrm_outbox-*.whl")
    _run(sys.executable, "-m", "venv", "--without-pip", work / "venv")
    python = work / "venv" / "bin" / "python"
    # This interpreter's pip installs into the new one (pip --python): no pip to bootstrap.
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
         f"{wheel}[{EXTRAS}]", *SERVICE_NEEDS)  # fmt: skip
    service = work / "service"
    (service / "app").mkdir(parents=True)
    (service / "app" / "__init__.py").write_text("")
    shutil.copy(EXAMPLE, service / "app" / "main.py")
    return Installed(wheel, python, service)


def test_the_wheel_holds_the_library_alone(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    outside = [n for n in names if not n.startswith("cloudcrm_outbox/") and not DIST_INFO.match(n)]
    assert outside == []
    assert "cloudcrm_outbox/py.typed" in names
    # Every module of the library, no more: a subpackage missing from pyproject.toml's
    # package list would be left out of the wheel silently.
    modules = {
        f"cloudcrm_outbox/{p.relative_to(LIBRARY).as_posix()}" for p in LIBRARY.rglob("*.py")
    }
    assert {n for n in names if n.endswith(".py")} == modules


def test_app_is_the_service_and_the_library_is_installed(installed: Installed) -> None:
    probe = (
        "import json, sysconfig, app, cloudcrm_outbox\n"
        "print(json.dumps([app.__file__, cloudcrm_outbox.__file__,\n"
        "                  sysconfig.get_paths()['purelib'], cloudcrm_outbox.__version__]))\n"
    )
    output = _run(installed.python, "-c", probe, cwd=installed.service)
    service_app, library, site_packages, version = json.loads(output)
    assert Path(service_app) == installed.service / "app" / "__init__.py"
    assert Path(library).is_relative_to(site_packages), (library, site_packages)
    assert installed.wheel.name.startswith(f"cloudcrm_outbox-{version}-")


def test_an_extra_not_installed_is_named(installed: Installed) -> None:
    """Installed with ``[sqlite]`` alone: PostgreSQL and RabbitMQ URLs name their extras."""
    probe = (
        "from cloudcrm_outbox import broker_for\n"
        "from cloudcrm_outbox.storage.engine import make_engine\n"
        "for attempt in (lambda: make_engine('postgresql+psycopg://u@h/d'),\n"
        "                lambda: broker_for('amqp://u:p@h/v')):\n"
        "    try:\n"
        "        attempt()\n"
        "    except ValueError as error:\n"
        "        print(error)\n"
    )
    output = _run(installed.python, "-c", probe, cwd=installed.service)
    assert "pip install 'cloudcrm-outbox[postgres]'" in output, output
    assert "pip install 'cloudcrm-outbox[rabbitmq]'" in output, output


def test_the_service_runs_on_the_installed_library(installed: Installed) -> None:
    with _serving(installed) as (base, log):
        created = httpx.post(f"{base}/notes", timeout=10)
        assert created.status_code == 201, created.text
        note = created.json()["id"]
        deadline, state = time.monotonic() + 20, None
        while state != "seen" and time.monotonic() < deadline:
            state = httpx.get(f"{base}/notes/{note}", timeout=10).json()["state"]
            time.sleep(0.1)
        assert state == "seen", f"the consumer did not apply the event:\n{log.read_text()}"


@contextmanager
def _serving(installed: Installed) -> Iterator[tuple[str, Path]]:
    """``uvicorn app.main:app`` in the virtualenv, from the service's folder, until the
    block ends; yields its base URL and log file. Fails with the log when it does not
    answer, or does not stop cleanly on SIGTERM."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = installed.service / "uvicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [installed.python, "-m", "uvicorn", "app.main:app", "--port", str(port)],
            cwd=installed.service,
            env=_clean_env(),
            stdout=out,
            stderr=out,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_answering(process, f"{base}/openapi.json", log)
            yield base, log
        finally:
            process.terminate()
            try:
                code = process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
    # uvicorn re-raises the SIGTERM it handled once its shutdown is done.
    text = log.read_text()
    assert code in {0, -signal.SIGTERM} and "Traceback" not in text, text
    assert "Application shutdown complete." in text, text


def _wait_answering(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"uvicorn exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered:\n{log.read_text()}")
