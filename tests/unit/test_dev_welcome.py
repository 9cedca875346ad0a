"""What `dev` prints at start names the interpreter a user can type in that directory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from app.cli.dev import this_python


def test_the_virtualenvs_python_is_named_relative_to_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `make run` runs .venv/bin/python; in a fresh shell a bare `python` is not it.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "executable", str(tmp_path / ".venv" / "bin" / "python"))
    assert this_python() == ".venv/bin/python"


def test_an_interpreter_elsewhere_is_plain_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "executable", "/usr/local/bin/python3")
    assert this_python() == "python"
