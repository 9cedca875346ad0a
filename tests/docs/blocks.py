"""The fenced code blocks of the pages a user reads: README.md and docs/**/*.md."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# An opening fence at the start of a line (``` or ~~~, three or more), its info string, the
# body, and the same fence closing it.
_FENCE = re.compile(
    r"^(?P<fence>```+|~~~+)(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$",
    re.DOTALL | re.MULTILINE,
)


@dataclass(frozen=True)
class Block:
    """One fenced block: the page it is on (relative to the repository), the line its
    fence opens on (1-based), its language (the info string's first word, lower case; ""
    when none) and its text."""

    page: str
    line: int
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    """README.md and every Markdown page of the documentation site, sorted."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


# pymdownx.snippets: a line that is only ``--8<-- "path"`` stands for that file (the path
# relative to the repository), as the site shows it.
_SNIPPET = re.compile(r'^--8<-- "(?P<path>[^"]+)"[ \t]*$', re.MULTILINE)


def _with_snippets(body: str) -> str:
    return _SNIPPET.sub(lambda match: (ROOT / match["path"]).read_text(), body)


def blocks_of(page: Path) -> list[Block]:
    """The fenced blocks of one page, in order (snippet lines replaced by their files)."""
    text = page.read_text()
    found = []
    for match in _FENCE.finditer(text):
        info = match["info"].strip().split()
        found.append(
            Block(
                page=str(page.relative_to(ROOT)),
                line=text.count("\n", 0, match.start()) + 1,
                language=info[0].lower() if info else "",
                text=_with_snippets(match["body"]),
            )
        )
    return found
