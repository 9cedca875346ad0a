"""The generated reference pages match the code they are generated from."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.reference_docs import CLI_PAGE, PAGES, SETTINGS_PAGE, main


@pytest.mark.parametrize("page", sorted(PAGES), ids=lambda page: page.name)
def test_the_page_is_what_the_code_gives(page: Path) -> None:
    render = PAGES[page]
    assert page.read_text() == render(), (
        f"{page} is stale: run `make docs` (python -m tools.reference_docs) and commit it"
    )


def test_every_setting_and_command_is_on_its_page() -> None:
    from app.cli.main import _parser
    from app.core.settings import Settings

    settings = SETTINGS_PAGE.read_text()
    for name, field in Settings.model_fields.items():
        assert f"| `{name.upper()}` |" in settings
        assert field.description, f"{name.upper()} has no docstring to describe it"
    cli = CLI_PAGE.read_text()
    commands = _parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for command in commands:
        assert f"## `python -m app {command}" in cli


def test_the_check_mode_reports_a_stale_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tools.reference_docs as reference

    stale = tmp_path / "settings.md"
    stale.write_text("old\n")
    monkeypatch.setattr(reference, "PAGES", {stale: reference.settings_page})
    assert main(["--check"]) == 1
    assert stale.read_text() == "old\n"  # --check writes nothing
    assert main([]) == 0 and main(["--check"]) == 0
