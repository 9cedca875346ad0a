"""Which distributions a source tree imports directly, and which of them pyproject.toml does
not declare. ``python -m tests.support.declared_imports [DIR ...]`` prints those (exit 1 if
any), for app/ and examples/ by default; tests/unit/test_dependencies.py runs it.

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
FIRST_PARTY = frozenset({"app", "examples", "tests", "bench"})
NAMESPACE = "<namespace package>"


def imported_modules(directory: Path) -> dict[str, set[Path]]:
    """Every absolute import under ``directory`` (dotted name as written) and its files;
    the standard library and first-party packages left out."""
    found: dict[str, set[Path]] = {}
    for path in sorted(directory.rglob("*.py")):
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


def declared_distributions(pyproject: Path = ROOT / "pyproject.toml") -> set[str]:
    """The normalised names of ``[project] dependencies`` (not the extras)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return {_normalise(re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0]) for spec in
            project["dependencies"]}  # fmt: skip


def undeclared(directories: Iterable[Path]) -> dict[str, list[str]]:
    """Distribution → the modules of it imported directly but not declared."""
    declared = declared_distributions()
    missing: dict[str, list[str]] = {}
    for directory in directories:
        for module in imported_modules(directory):
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


def main(argv: list[str]) -> int:
    directories = [ROOT / name for name in (argv or ["app", "examples"])]
    missing = undeclared(directories)
    for distribution, modules in missing.items():
        print(f"{distribution}: imported ({', '.join(modules)}) but not declared in pyproject.toml")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
