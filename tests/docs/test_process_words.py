"""What users read carries no words of the project's own process: no issue numbers of this
project, no review or stop talk, no files outside the repository. Scanned: README.md,
docs/**/*.md, every command's --help, and the docstrings, comments and strings of app/
(which hold the log lines). Other projects' public issues (``docker/compose#10663``,
``rabbitmq-server#10327``) are references, and fine."""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.blocks import ROOT, pages

PROCESS_WORDS = re.compile(
    r"\bissues?\s*#?\d+"  # this project's issues (another's is written owner/repo#N)
    r"|\bthis stop\b|\bthe reviews?\b|\bwhat moved\b"
    r"|\bSTYLE\.md\b|\bARCHITECTURE\.md\b|\bSTYLE rule",
    re.IGNORECASE,
)


def _hits(text: str) -> list[str]:
    found = []
    for match in PROCESS_WORDS.finditer(text):
        start = text.rfind("\n", 0, match.start()) + 1
        end = text.find("\n", match.end())
        line = text[start : end if end != -1 else None].strip()
        found.append(line)
    return found


@pytest.mark.parametrize("page", pages(), ids=lambda page: str(page.relative_to(ROOT)))
def test_the_pages_carry_no_process_words(page: Path) -> None:
    assert _hits(page.read_text()) == []


def _help_texts() -> Iterator[tuple[str, str]]:
    import argparse

    from app.cli.main import _parser

    def walk(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str]]:
        yield parser.prog, parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    yield from walk(child)

    yield from walk(_parser())


def test_the_command_help_carries_no_process_words() -> None:
    found = {prog: hits for prog, text in _help_texts() if (hits := _hits(text))}
    assert found == {}


def _readable_text(source: str) -> str:
    """A module's comments, docstrings and string literals (log lines among them)."""
    # Python 3.12 splits f-strings into FSTRING_MIDDLE tokens; 3.11 keeps them STRING.
    kinds = {tokenize.COMMENT, tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", -1)}
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return "\n".join(token.string for token in tokens if token.type in kinds)


MODULES = sorted((ROOT / "app").rglob("*.py"))


def test_the_code_under_app_carries_no_process_words() -> None:
    found = {
        str(module.relative_to(ROOT)): hits
        for module in MODULES
        if (hits := _hits(_readable_text(module.read_text())))
    }
    assert found == {}


def test_the_scan_finds_what_it_looks_for() -> None:
    # Held to its own words, so that a loosened pattern fails here rather than passes all.
    for text in (
        "see issue #14",
        "Issue 14 (part)",
        "what this stop changed",
        "as the reviews asked",
        "What moved the figures",
        "per STYLE.md",
        "the ARCHITECTURE.md rule",
        "a STYLE rule",
    ):
        assert _hits(text), text
    for text in ("docker/compose#10663", "rabbitmq-server#10327", "Unicode TR #9", "(#7-names)"):
        assert not _hits(text), text
