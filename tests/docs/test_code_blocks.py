"""Every Python and shell block of README.md and docs/**/*.md runs, or is checked.

- ``python`` blocks: a page's blocks, in order, are one program, run in a subprocess on the
  embedded defaults (SQLite files and ``memory://`` in a scratch folder), top-level
  ``await`` allowed.
- ``sh`` blocks that talk to ``localhost:8000`` (the tutorial) run whole in bash against a
  ``python -m app dev`` the test starts on a free port.
- Other ``sh`` blocks: each command is checked by its kind (commands.py): ``python -m app``
  commands are parsed by the real parser, and those that can run here run on a throwaway
  SQLite pair (migrated first); long-running ones (dev, api, relay, consume, web) and those
  needing RabbitMQ are parsed only. ``make TARGET`` runs as ``make -n``; ``docker compose``
  is checked against docker-compose.yml; HTTP calls against the APIs' OpenAPI schema.
- ``text`` blocks are output or pictures, never run. Any other language fails.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from packaging.requirements import Requirement

from app.cli.main import _parser
from app.core.settings import Settings
from tests.docs.blocks import ROOT, Block, blocks_of, pages
from tests.docs.commands import Command, commands_of
from tests.e2e.processes import command_env, running
from tests.support.servers import free_port

PYTHON_LANGUAGES = {"python", "py"}
SHELL_LANGUAGES = {"sh", "shell", "bash", "console"}
NOT_RUN = {"text"}

# `python -m app` commands that finish on their own on SQLite and the embedded broker.
RUNS_HERE = {
    ("migrate",),
    ("outbox", "status"),
    ("outbox", "events"),
    ("outbox", "failed"),
    ("outbox", "replay"),
    ("outbox", "republish"),
    ("token",),
    ("broker", "accounts"),
}
# Names a page may export beside the settings.
OTHER_VARIABLES = {"TOKEN"}

ALL_BLOCKS = [block for page in pages() for block in blocks_of(page)]

_RUN_PYTHON = """
import ast, asyncio, sys
source = open(sys.argv[1]).read()
code = compile(source, sys.argv[2], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
result = eval(code, {"__name__": "__docs__"})
if asyncio.iscoroutine(result):
    asyncio.run(result)
"""


def _sandbox_env(folder: Path) -> dict[str, str]:
    return command_env(
        ORDERING_DATABASE_URL=f"sqlite+aiosqlite:///{folder}/ordering.db",
        CATALOG_DATABASE_URL=f"sqlite+aiosqlite:///{folder}/catalog.db",
        BROKER_URL="memory://",
        EMBEDDED_BROKER_PATH=f"{folder}/broker.db",
        PYTHONPATH=str(ROOT),
    )


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite pair at the Alembic head, made once and copied for each block."""
    folder = tmp_path_factory.mktemp("migrated")
    done = subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        env=_sandbox_env(folder),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture
def sandbox(tmp_path: Path, migrated: Path) -> Path:
    for name in ("ordering.db", "catalog.db"):
        shutil.copy(migrated / name, tmp_path / name)
    shutil.copy(ROOT / ".env.example", tmp_path / ".env.example")
    return tmp_path


def _dev_env() -> dict[str, str]:
    """The environment of a user's shell: no AUTH_* the test run may carry, so that dev
    and `python -m app token` both use dev's own secret under ./var."""
    env = {key: value for key, value in command_env().items() if not key.startswith("AUTH_")}
    env.update(BROKER_URL="memory://", PYTHONPATH=str(ROOT))
    env.pop("EMBEDDED_BROKER_PATH", None)
    return env


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``python -m app dev`` on a free port, in a folder of its own: (its URL, the folder)."""
    folder = tmp_path_factory.mktemp("dev")
    port = free_port()
    env = _dev_env()
    url = f"http://127.0.0.1:{port}"
    with running("dev", "--port", str(port), env=env, ready_url=f"{url}/health/ready", cwd=folder):
        yield url, folder


@pytest.fixture(scope="module")
def openapi(dev_server: tuple[str, Path]) -> dict[str, Any]:
    schema: dict[str, Any] = httpx.get(f"{dev_server[0]}/openapi.json", timeout=10).json()
    return schema


def _id(block: Block) -> str:
    return f"{block.where}-{block.language or 'none'}"


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=_id)
def test_every_block_is_of_a_known_kind(block: Block) -> None:
    known = PYTHON_LANGUAGES | SHELL_LANGUAGES | NOT_RUN
    assert block.language in known, (
        f"{block.where}: a ```{block.language} block; mark it python, sh or text"
    )
    if block.language in SHELL_LANGUAGES and not _talks_to_dev(block):
        for command in commands_of(block.text):
            assert command.words == [] or command.words[0] in _known_words(), (
                f"{block.where}: no check for {command.words[0]!r} ({command.text})"
            )


def _known_words() -> set[str]:
    from tests.docs.commands import KINDS

    return set(KINDS)


PYTHON_PAGES = sorted({block.page for block in ALL_BLOCKS if block.language in PYTHON_LANGUAGES})


@pytest.mark.parametrize("page", PYTHON_PAGES)
def test_the_python_blocks_of_a_page_run_as_one_program(page: str, tmp_path: Path) -> None:
    source = "\n\n".join(
        block.text for block in blocks_of(ROOT / page) if block.language in PYTHON_LANGUAGES
    )
    program = tmp_path / "page.py"
    program.write_text(source)
    done = subprocess.run(
        [sys.executable, "-c", _RUN_PYTHON, str(program), page],
        env=_sandbox_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{page}'s Python blocks failed:\n{done.stderr[-4000:]}"


def _talks_to_dev(block: Block) -> bool:
    return "localhost:8000" in block.text


DEV_BLOCKS = [b for b in ALL_BLOCKS if b.language in SHELL_LANGUAGES and _talks_to_dev(b)]
SHELL_BLOCKS = [b for b in ALL_BLOCKS if b.language in SHELL_LANGUAGES and not _talks_to_dev(b)]


@pytest.mark.parametrize("block", DEV_BLOCKS, ids=_id)
def test_the_tutorial_runs_against_dev(block: Block, dev_server: tuple[str, Path]) -> None:
    url, folder = dev_server
    script = block.text.replace("http://localhost:8000", url).replace(
        "localhost:8000", url.removeprefix("http://")
    )
    script = script.replace(".venv/bin/python", sys.executable)
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\nshopt -s expand_aliases\n" + script],
        cwd=folder,  # the token is signed with the secret dev made under ./var
        env=_dev_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{block.where}:\n{done.stdout}\n{done.stderr}"
    out = done.stdout.replace(" ", "")
    # What the comments of the tutorial promise.
    for promised in ('"stockCount":52', '"state":"Confirmed"', '"state":"Cancelled"'):
        assert promised in out, f"{block.where}: {promised} not printed:\n{done.stdout}"
    assert "missing bearer token" in done.stdout


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=_id)
def test_every_shell_command_runs_or_is_checked(
    block: Block, sandbox: Path, request: pytest.FixtureRequest
) -> None:
    commands = commands_of(block.text)
    assert commands, f"{block.where}: an empty shell block"
    for command in commands:
        if command.kind != "python":
            _run_pending(block, sandbox)
        _CHECKS[command.kind](command, block, sandbox, request)
    _run_pending(block, sandbox)


def _check_make(command: Command, block: Block, sandbox: Path, _: pytest.FixtureRequest) -> None:
    done = subprocess.run(
        ["make", "-n", *command.words[1:]], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, f"{block.where}: {command.text}: {done.stderr}"


def _check_python(command: Command, block: Block, sandbox: Path, _: pytest.FixtureRequest) -> None:
    words = command.words
    assert words[1] == "-m", f"{block.where}: {command.text}: only `python -m MODULE` is known"
    module, argv = words[2], words[3:]
    if module != "app":
        # A long-running example or tool: it imports (its own tests run it).
        done = subprocess.run(
            [sys.executable, "-c", f"import {module}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{block.where}: {command.text}: {done.stderr}"
        return
    try:
        _parser().parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"{block.where}: `{command.text}` does not parse") from exc
    path = tuple(word for word in argv[:2] if not word.startswith("-"))
    if path[:1] in RUNS_HERE or path in RUNS_HERE:
        _pending(sandbox).append(argv)


# The `python -m app` commands of a block that run here, run together in one interpreter
# (each start costs seconds) before the next command of another kind, and at the end.
_PENDING: dict[Path, list[list[str]]] = {}

_RUN_COMMANDS = """
import json, sys
from app.cli.main import main
for argv in json.loads(sys.argv[1]):
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code
    if status:
        sys.exit(f"python -m app {' '.join(argv)}: exit {status}")
"""


def _pending(sandbox: Path) -> list[list[str]]:
    return _PENDING.setdefault(sandbox, [])


def _run_pending(block: Block, sandbox: Path) -> None:
    commands = _PENDING.pop(sandbox, [])
    if not commands:
        return
    done = subprocess.run(
        [sys.executable, "-c", _RUN_COMMANDS, json.dumps(commands)],
        env=_sandbox_env(sandbox),
        cwd=sandbox,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{block.where}: {done.stderr[-4000:]}"


def _check_pip(command: Command, block: Block, sandbox: Path, _: pytest.FixtureRequest) -> None:
    """The library with extras it declares; anything else beside it must be a distribution
    the demo depends on (the versions the tests run with)."""
    assert command.words[1] == "install", command.text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    demo = tomllib.loads((ROOT / "demo" / "pyproject.toml").read_text())["project"]
    companions = {Requirement(line).name for line in demo["dependencies"]}
    for word in command.words[2:]:
        requirement = Requirement(word)
        if requirement.name != project["name"]:
            assert requirement.name in companions, f"{block.where}: {word}"
            continue
        assert requirement.extras <= set(project["optional-dependencies"]), (
            f"{block.where}: {word} names an extra the library does not declare"
        )


def _check_assignment(
    command: Command, block: Block, sandbox: Path, _: pytest.FixtureRequest
) -> None:
    settings = {name.upper() for name in Settings.model_fields}
    for name in command.assignments:
        assert name in settings | OTHER_VARIABLES, f"{block.where}: {name} is no setting"


def _check_alias(command: Command, block: Block, sandbox: Path, _: pytest.FixtureRequest) -> None:
    name, _, value = command.words[1].partition("=")
    assert name == "api" and value.startswith("curl "), f"{block.where}: {command.text}"


def _check_http(
    command: Command, block: Block, sandbox: Path, request: pytest.FixtureRequest
) -> None:
    schema = request.getfixturevalue("openapi")
    method = "get"
    path = None
    words = command.words[1:]
    for index, word in enumerate(words):
        if word == "-X":
            method = words[index + 1].lower()
        match = re.match(r"^(?:https?://)?(?:localhost|127\.0\.0\.1):\d+(/[^?\s]*)", word)
        if match:
            path = match[1]
    assert path is not None, f"{block.where}: no URL in {command.text}"
    for template, operations in schema["paths"].items():
        pattern = "^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method in operations:
            return
    raise AssertionError(f"{block.where}: no route {method.upper()} {path}")


def _check_compose(command: Command, block: Block, sandbox: Path, _: pytest.FixtureRequest) -> None:
    words = command.words
    assert words[1] == "compose", f"{block.where}: {command.text}"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    profiles = {p for service in services.values() for p in service.get("profiles", [])}
    for index, word in enumerate(words):
        if word == "--profile":
            assert words[index + 1] in profiles, f"{block.where}: no profile {words[index + 1]}"
    assert {"up", "--build"} <= set(words) or "config" in words, command.text
    assert all("build" in s or "image" in s for s in services.values())
    # With the compose plugin at hand, compose itself reads the file too.
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    if shutil.which("docker") and plugin.returncode == 0:
        done = subprocess.run(
            ["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr


def _check_server_tool(
    command: Command, block: Block, sandbox: Path, _: pytest.FixtureRequest
) -> None:
    # createdb and rabbitmqctl change the shared servers: they are never run here.
    assert shutil.which(command.words[0]), f"{block.where}: {command.words[0]} is not installed"


def _check_file(command: Command, block: Block, sandbox: Path, _: pytest.FixtureRequest) -> None:
    if command.words[0].endswith("()"):
        return  # a function definition: nothing runs until it is called
    done = subprocess.run(
        ["bash", "-c", command.text], cwd=sandbox, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, f"{block.where}: `{command.text}` failed: {done.stderr}"


_CHECKS = {
    "make": _check_make,
    "python": _check_python,
    "pip": _check_pip,
    "assignment": _check_assignment,
    "alias": _check_alias,
    "http": _check_http,
    "compose": _check_compose,
    "server tool": _check_server_tool,
    "file": _check_file,
}
