"""Shell blocks of the pages, cut into commands, each of a kind the docs tests know.

A command is a logical line (backslash continuations joined, the trailing comment dropped),
split at ``&&``. Its kind comes from its first word once leading ``NAME=value``
assignments are set aside; a word no kind claims is an error, so no command slips through
unchecked.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

# The kinds, by first word. Each kind's check is in test_code_blocks.py.
KINDS: dict[str, str] = {
    "make": "make",  # make -n TARGET: the target exists and its recipe expands
    "python": "python",  # python -m app ...: parsed, and run on SQLite when it can run here
    ".venv/bin/python": "python",
    "pip": "pip",  # the requirement names this project and extras it declares
    "export": "assignment",  # every name is a setting (or TOKEN)
    "alias": "alias",  # the api alias: curl with a bearer token
    "api": "http",  # the route and method exist in the APIs' OpenAPI schema
    "curl": "http",
    "docker": "compose",  # the compose file, its services and profiles
    "createdb": "server tool",  # changes the shared servers: never run, must be installed
    "rabbitmqctl": "server tool",
    "mkdir": "file",  # harmless file commands: run in the block's scratch folder
    "for": "file",
    "cp": "file",
    "openssl": "file",
    "pw()": "file",
}


@dataclass(frozen=True)
class Command:
    """One command of a shell block: its text, its words (shlex, unexpanded), the
    ``NAME=value`` assignments before them, and its kind."""

    text: str
    words: list[str]
    assignments: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The kind of ``words[0]``; raises KeyError for an unknown first word."""
        if not self.words:
            return "assignment"
        return KINDS[self.words[0]]


_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
_SUBSTITUTION = re.compile(r"\$\((?:[^()]|\([^()]*\))*\)")


def logical_lines(text: str) -> list[str]:
    """The block's lines with continuations joined and comments (``  # …``) dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = []
    for raw in joined.splitlines():
        line = _without_comment(raw).strip()
        if line:
            lines.append(line)
    return lines


def _without_comment(line: str) -> str:
    """``line`` up to a ``#`` that starts a comment (outside quotes, after a blank)."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


def commands_of(text: str) -> list[Command]:
    """Every command of a shell block, in order."""
    found = []
    for line in logical_lines(text):
        for part in line.split(" && "):
            # A command substitution is one opaque word: its own command is not this one's.
            words = shlex.split(_SUBSTITUTION.sub("SUBSTITUTED", part), posix=True)
            assignments: dict[str, str] = {}
            while words and _ASSIGNMENT.match(words[0]):
                name, _, value = words.pop(0).partition("=")
                assignments[name] = value
            if words and words[0] == "export":
                for word in words[1:]:
                    name, _, value = word.partition("=")
                    assignments[name] = value
            if words and words[0].endswith("()"):
                words = [words[0]]  # a function definition: pw() { …; }
            found.append(Command(part, words, assignments))
    return found
