"""Names people give (customers, products): they must show something, and show it the way
it was typed.

Refused, each with a 422 in words: a control character (PostgreSQL text cannot hold NUL,
and no name means one); a bidirectional embedding, override or isolate (U+202A to U+202E,
U+2066 to U+2069: ``"\\u202eevil"`` displays as "live"; Unicode Standard Annex #9 §2 — LRM,
RLM and ALM stay allowed, right-to-left names need them and they reorder nothing around
them); a name with no visible character, where characters of the Unicode general
categories Cf (format), Zs, Zl, Zp (separators) and Cc (control) do not count — a zero
width space alone is a blank row on the pages. Decided with ``unicodedata``; the OpenAPI
schema states the same rule as a ``pattern``.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

INVISIBLE_CATEGORIES = frozenset({"Cf", "Zs", "Zl", "Zp", "Cc"})
# The code points of INVISIBLE_CATEGORIES in Python 3.11's Unicode 14.0, as ranges, for the
# schema's pattern only (tests/unit/test_names.py checks them against unicodedata).
INVISIBLE_RANGES = (
    (0x0000, 0x0020), (0x007F, 0x00A0), (0x00AD, 0x00AD), (0x0600, 0x0605),
    (0x061C, 0x061C), (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891),
    (0x08E2, 0x08E2), (0x1680, 0x1680), (0x180E, 0x180E), (0x2000, 0x200F),
    (0x2028, 0x202F), (0x205F, 0x2064), (0x2066, 0x206F), (0x3000, 0x3000),
    (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD),
    (0x13430, 0x13438), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
)  # fmt: skip
CONTROL_RANGES = ((0x0000, 0x001F), (0x007F, 0x009F))  # category Cc
BIDI_CONTROL_RANGES = ((0x202A, 0x202E), (0x2066, 0x2069))
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")

NAME_RULES = (
    "1\u2013200 characters with at least one visible character (spaces, invisible and "
    "formatting characters do not count); no control characters (U+0000\u2013U+001F, "
    "U+007F\u2013U+009F) and no bidirectional control characters (U+202A\u2013U+202E, "
    "U+2066\u2013U+2069); leading and trailing spaces are removed"
)


def _class(ranges: tuple[tuple[int, int], ...]) -> str:
    # \uXXXX within the Basic Multilingual Plane (read alike by ECMA-262 and Python), the
    # characters themselves beyond it (ECMA-262 has no \U escape, Python no \u{…}).
    def one(code: int) -> str:
        return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)

    return "".join(one(a) if a == b else f"{one(a)}-{one(b)}" for a, b in ranges)


def name_pattern() -> str:
    """The rule as a JSON Schema ``pattern`` (documentation: the validator enforces it)."""
    allowed = _class(CONTROL_RANGES + BIDI_CONTROL_RANGES)
    return f"^[^{allowed}]*[^{_class(INVISIBLE_RANGES)}][^{allowed}]*$"


def _readable(value: str) -> str:
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise PydanticCustomError(
            "name_control",
            "must not contain control characters (U+0000\u2013U+001F, U+007F\u2013U+009F)",
        )
    if _BIDI_CONTROLS.search(value):
        raise PydanticCustomError(
            "name_bidi",
            "must not contain bidirectional control characters (U+202A\u2013U+202E, "
            "U+2066\u2013U+2069): they reorder how the name is shown",
        )
    if all(unicodedata.category(char) in INVISIBLE_CATEGORIES for char in value):
        raise PydanticCustomError(
            "name_invisible",
            "needs at least one visible character (spaces, invisible and formatting "
            "characters do not count)",
        )
    return value.strip()


def _document(schema: dict[str, Any]) -> None:
    schema["pattern"] = name_pattern()


Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(_readable),
    Field(description=NAME_RULES, json_schema_extra=_document),
]
"""A customer's or a product's name, stripped of leading and trailing spaces."""
