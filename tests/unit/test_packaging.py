"""What a library user expects of the package: a license, type information, one version."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import metadata
from pathlib import Path

import app
import cloudcrm_outbox

ROOT = Path(__file__).resolve().parents[2]


def test_the_version_is_the_one_in_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert cloudcrm_outbox.__version__ == project["version"]
    # Keep a Changelog: "## [0.1.0] - 2026-11-27", an ISO date after the bracketed version.
    changelog = (ROOT / "CHANGELOG.md").read_text()
    heading = rf"^## \[{re.escape(project['version'])}\] - \d{{4}}-\d{{2}}-\d{{2}}$"
    assert re.search(heading, changelog, re.MULTILINE), f"no {heading!r} in CHANGELOG.md"
    assert re.search(r"^## \[Unreleased\]$", changelog, re.MULTILINE)


def test_license_and_type_marker_ship_with_the_package() -> None:
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert metadata("cloudcrm-outbox")["License-Expression"] == "MIT"
    assert (Path(cloudcrm_outbox.__file__).parent / "py.typed").exists()
    assert (Path(app.__file__).parent / "py.typed").exists()


def test_the_library_imports_nothing_else_of_the_application() -> None:
    # app/outbox is a library with its own configuration objects.
    forbidden = ("app.core.settings", "app.db", "app.startup", "app.ordering", "app.catalog")
    for module in (ROOT / "app" / "outbox").rglob("*.py"):
        text = module.read_text()
        for name in forbidden:
            assert f"from {name} import" not in text and f"import {name}" not in text, (
                module,
                name,
            )


def _planned(target: str, tmp_path: Path) -> list[str]:
    # `make -n` on a virtualenv that does not exist yet: what a fresh clone would run.
    import subprocess

    done = subprocess.run(
        ["make", "-n", target, f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return [line for line in done.stdout.splitlines() if "pip install" in line]


def test_make_run_installs_the_runtime_dependencies_alone(tmp_path: Path) -> None:
    # `make run` on a bare machine needs no test runner, linter or browser driver.
    installs = _planned("run", tmp_path)
    assert installs and installs[-1].endswith("pip install --quiet -e . -e ./demo")
    assert not any("--group dev" in line for line in installs)


def test_make_test_installs_the_development_extras(tmp_path: Path) -> None:
    assert any(line.endswith("--group dev") for line in _planned("test", tmp_path))
