"""The name rule's pattern in the OpenAPI schema says what the validator enforces."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest
from pydantic import TypeAdapter, ValidationError

from app.core.names import (
    INVISIBLE_CATEGORIES,
    INVISIBLE_RANGES,
    KEPT_IGNORABLE,
    OTHER_DEFAULT_IGNORABLE,
    SHOWN_FORMAT,
    VARIATION_SELECTORS,
    Name,
    name_pattern,
)

NAME = TypeAdapter(Name)


def _accepted(name: str) -> bool:
    try:
        NAME.validate_python(name)
    except ValidationError:
        return False
    return True


def test_the_invisible_ranges_are_this_pythons_unicode_categories() -> None:
    """Regenerate INVISIBLE_RANGES when Python's Unicode database changes."""
    listed = {code for low, high in INVISIBLE_RANGES for code in range(low, high + 1)}
    found = {
        code
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in INVISIBLE_CATEGORIES
    }
    assert listed == found, unicodedata.unidata_version


@pytest.mark.parametrize("code", sorted({c + d for r in INVISIBLE_RANGES for c in r
                                         for d in (-1, 0, 1)} - {-1}))  # fmt: skip
def test_the_pattern_and_the_validator_agree_at_every_range_edge(code: int) -> None:
    pattern = re.compile(name_pattern())
    char = chr(code)
    for name in (char, f"a{char}", f"{char}a", f"{char}{char}"):
        assert bool(pattern.match(name)) == _accepted(name), (hex(code), name)


EDGES = sorted(
    {c + d for r in (*OTHER_DEFAULT_IGNORABLE, *VARIATION_SELECTORS, *SHOWN_FORMAT,
                     *KEPT_IGNORABLE, (0x0300, 0x036F), (0xD800, 0xDFFF), (0xE000, 0xF8FF),
                     (0x0378, 0x0379), (0xF0000, 0xFFFFD))
     for c in r for d in (-1, 0, 1)}
)  # fmt: skip


@pytest.mark.parametrize("code", EDGES, ids=hex)
def test_the_pattern_and_the_validator_agree_on_what_shows_nothing(code: int) -> None:
    pattern = re.compile(name_pattern())
    char = chr(code)
    for name in (char, f"a{char}", f"{char}a", f"{char}{char}", f"{char}\u0301"):
        assert bool(pattern.match(name)) == _accepted(name), (hex(code), name)
