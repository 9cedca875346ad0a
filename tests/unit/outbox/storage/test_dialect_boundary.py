"""Which database the code runs on is decided in app/outbox/storage only: everything else
asks the store (``store_for``) to do what differs, and never tests the dialect itself."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
STORAGE = ROOT / "app" / "outbox" / "storage"
# A dialect's name, the psycopg test, the driver's own connection.
ASKED = {"is_psycopg", "driver_connection"}


def _asks_the_dialect(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr == "name":
            owner = node.value
            if isinstance(owner, ast.Attribute) and owner.attr == "dialect":
                found.append(f"{path.relative_to(root)}:{node.lineno}: dialect.name")
        if isinstance(node, ast.Name) and node.id in ASKED:
            found.append(f"{path.relative_to(root)}:{node.lineno}: {node.id}")
        if isinstance(node, ast.ImportFrom) and node.module in {
            "sqlalchemy.dialects.postgresql",
            "sqlalchemy.dialects.sqlite",
        }:
            found.append(f"{path.relative_to(root)}:{node.lineno}: imports {node.module}")
        if isinstance(node, ast.ImportFrom) and node.module == "sqlalchemy.dialects":
            found.append(f"{path.relative_to(root)}:{node.lineno}: imports a dialect")
    return found


def test_no_module_outside_storage_asks_which_database_it_is_on() -> None:
    outside = [p for p in (ROOT / "app").rglob("*.py") if not p.is_relative_to(STORAGE)]
    assert outside
    assert [line for path in outside for line in _asks_the_dialect(path)] == []


def test_the_check_finds_each_way_of_asking(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from sqlalchemy.dialects import postgresql\n"
        "from sqlalchemy.dialects.sqlite import insert\n"
        "def f(engine):\n"
        "    return engine.dialect.name == 'sqlite' or is_psycopg(engine.dialect)\n"
        "async def g(connection):\n    return await driver_connection(connection)\n"
    )
    found = [line.split(": ", 1)[1] for line in _asks_the_dialect(probe, tmp_path)]
    assert sorted(found) == [
        "dialect.name",
        "driver_connection",
        "imports a dialect",
        "imports sqlalchemy.dialects.sqlite",
        "is_psycopg",
    ]
