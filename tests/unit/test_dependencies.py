"""Every distribution the code imports directly is declared, with bounds, so an install
from pyproject.toml (or the Docker image) has it, in a version the code was tested on."""

from __future__ import annotations

import re
import tomllib

from tests.support.declared_imports import ROOT, demo_undeclared, library_undeclared


def test_every_directly_imported_distribution_is_declared() -> None:
    # aiormq, pamqp, yarl and starlette were imported by app/ without being declared: an
    # aio-pika or FastAPI release that dropped or bumped them would break the relay.
    assert library_undeclared() == {}
    assert demo_undeclared() == {}


def test_every_runtime_dependency_has_a_lower_bound() -> None:
    for pyproject in (ROOT / "pyproject.toml", ROOT / "demo" / "pyproject.toml"):
        project = tomllib.loads(pyproject.read_text())["project"]
        specs = list(project["dependencies"])
        specs += [spec for group in project.get("optional-dependencies", {}).values()
                  for spec in group]  # fmt: skip
        for spec in specs:
            assert re.search(r"(>=|==)\s*\d", spec), f"{pyproject}: {spec!r} has no lower bound"
