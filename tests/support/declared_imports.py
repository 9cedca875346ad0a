"""Which distributions a source tree imports directly, and which of them pyproject.toml does
not declare. ``python -m tests.support.declared_imports`` prints those (exit 1 if any): the
library (app/outbox) against pyproject.toml with its extras, the demo (the rest of app/, and
examples/) against demo/pyproject.toml; tests/unit/test_dependencies.py runs it.

A module is mapped to the distribution that installed its file (``importlib.metadata``), so
namespace packages (``opentelemetry.sdk`` vs ``opentelemetry.api``) map to the right one."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
import tomllib
from collections.abc import Iterable
from functools import cache
from importlib.metadata import distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = frozenset({"app", "cloudcrm_outbox", "examples", "tests", "bench"})
LIBRARY = ROOT / "app" / "outbox"
DEMO_PYPROJECT = ROOT / "demo" / "pyproject.toml"
NAMESPACE = "<namespace package>"


def imported_modules(directory: Path, *, exclude: Path | None = None) -> dict[str, set[Path]]:
    """Every absolute import under ``directory`` (dotted name as written) and its files,
    ``exclude``'s files left out; the standard library and first-party packages left out."""
    found: dict[str, set[Path]] = {}
    for path in sorted(directory.rglob("*.py")):
        if exclude is not None and path.is_relative_to(exclude):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: Iterable[str] = ()
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # ``from opentelemetry import trace`` imports a submodule of a namespace
                # package: resolved as ``opentelemetry.trace`` (a plain name falls back to
                # its module in ``distribution_of``).
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                    found.setdefault(name, set()).add(path)
    return found


@cache
def _files_to_distribution() -> dict[Path, str]:
    owners: dict[Path, str] = {}
    for distribution in distributions():
        name = _normalise(distribution.metadata["Name"])
        for file in distribution.files or ():
            owners[Path(str(distribution.locate_file(file))).resolve()] = name
    return owners


def distribution_of(module: str) -> str | None:
    """The (normalised) distribution that installed ``module``; None when it is not
    installed (a platform-only module such as uvloop on Windows) or not from one."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a name inside a module, not a module
        spec = None
    if spec is None:
        parent = module.rpartition(".")[0]
        return distribution_of(parent) if parent else None
    if spec.origin in (None, "namespace"):
        return NAMESPACE  # only its submodules come from distributions
    return _files_to_distribution().get(Path(spec.origin).resolve())


def declared_distributions(
    pyproject: Path = ROOT / "pyproject.toml", *, extras: bool = False
) -> set[str]:
    """The normalised names of ``[project] dependencies``, and of every extra's when
    ``extras``."""
    project = tomllib.loads(pyproject.read_text())["project"]
    specs = list(project["dependencies"])
    if extras:
        specs += [spec for group in project.get("optional-dependencies", {}).values()
                  for spec in group]  # fmt: skip
    return {_normalise(re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0]) for spec in specs}


def undeclared(
    directories: Iterable[Path],
    *,
    pyproject: Path = DEMO_PYPROJECT,
    extras: bool = False,
    exclude: Path | None = LIBRARY,
) -> dict[str, list[str]]:
    """Distribution → the modules of it imported directly under ``directories`` (without
    ``exclude``) but not declared in ``pyproject`` (with its extras when ``extras``)."""
    declared = declared_distributions(pyproject, extras=extras)
    missing: dict[str, list[str]] = {}
    for directory in directories:
        for module in imported_modules(directory, exclude=exclude):
            owner = distribution_of(module)
            if owner == NAMESPACE:
                continue
            if owner is None:
                if importlib.util.find_spec(module.split(".")[0]) is None:
                    continue  # not installed here: platform-only (checked where it is)
                owner = f"<no distribution> {module}"
            if owner not in declared:
                missing.setdefault(owner, []).append(module)
    return {name: sorted(set(modules)) for name, modules in sorted(missing.items())}


def _normalise(name: str) -> str:
    # PEP 503: runs of -, _ and . are one -, case-insensitive.
    return re.sub(r"[-_.]+", "-", name).lower()


def library_undeclared() -> dict[str, list[str]]:
    """What the library imports and pyproject.toml (dependencies and extras) does not declare."""
    return undeclared([LIBRARY], pyproject=ROOT / "pyproject.toml", extras=True, exclude=None)


def demo_undeclared() -> dict[str, list[str]]:
    """What the demo (app/ without the library, examples/) imports and demo/pyproject.toml
    does not declare."""
    return undeclared([ROOT / "app", ROOT / "examples"])


def main(argv: list[str]) -> int:
    failed = 0
    for where, missing in (("pyproject.toml", library_undeclared()),
                           ("demo/pyproject.toml", demo_undeclared())):  # fmt: skip
        for distribution, modules in missing.items():
            print(f"{distribution}: imported ({', '.join(modules)}) but not declared in {where}")
            failed = 1
    return failed


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
