"""Every distribution the code imports directly is declared, with bounds, so an install
from pyproject.toml (or the Docker image) has it, in a version the code was tested on."""

from __future__ import annotations

import re
import tomllib

from tests.support.declared_imports import ROOT, undeclared


def test_every_directly_imported_distribution_is_declared() -> None:
    # aiormq, pamqp, yarl and starlette were imported by app/ without being declared: an
    # aio-pika or FastAPI release that dropped or bumped them would break the relay.
    assert undeclared([ROOT / "app", ROOT / "examples"]) == {}


def test_every_runtime_dependency_has_a_lower_bound() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        assert re.search(r">=\s*\d", spec), f"{spec!r} has no lower bound"
