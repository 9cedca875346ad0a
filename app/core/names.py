"""Names people give (customers, products): they must show something, and show it the way
it was typed.

Refused, each with a 422 in words: a control character (PostgreSQL text cannot hold NUL,
and no name means one); a line or paragraph separator (U+2028, U+2029: they break the name
over lines as "\\n" does, Unicode Standard Annex #14 class BK); a bidirectional embedding,
override or isolate (U+202A to U+202E, U+2066 to U+2069: ``"\\u202eevil"`` displays as
"live"; Unicode Standard Annex #9 §2 — LRM, RLM and ALM stay allowed, right-to-left names
need them and they reorder nothing around them); a name with no visible character, where
characters of the Unicode general categories Cf (format), Zs, Zl, Zp (separators) and Cc
(control) do not count — a zero width space alone is a blank row on the pages; a character
that shows as nothing or as something else on every other device (named as U+XXXX): a
default-ignorable code point (Unicode §5.21; ``"A\\u200bnn"`` would be another "Ann") but
for the joiners, direction marks and variation selectors that scripts and emoji need, a
Hangul filler, an unassigned (Cn), private-use (Co) or surrogate (Cs) code point; and a
name of combining marks alone (categories Mn, Mc, Me: nothing of its own to show, they
stack on whatever is shown before it). Decided with ``unicodedata``; the OpenAPI schema
states the same rule as a ``pattern``.
"""

from __future__ import annotations

import functools
import re
import sys
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
# Categories Zl and Zp: the mandatory line breaks that are not controls (Cc).
LINE_BREAKS = frozenset({0x2028, 0x2029})
_LINE_BREAKS = re.compile("[\u2028\u2029]")

# Default_Ignorable_Code_Point (Unicode's DerivedCoreProperties.txt), which unicodedata
# does not hold: Other_Default_Ignorable_Code_Point (PropList.txt), every Cf and every
# Variation_Selector, less the Cf that show (prepended concatenation marks, interlinear
# annotation and Egyptian hieroglyph format controls). White_Space holds none of them.
OTHER_DEFAULT_IGNORABLE = (
    (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x2065, 0x2065),
    (0x3164, 0x3164), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0xE0000, 0xE0000),
    (0xE0002, 0xE001F), (0xE0080, 0xE00FF), (0xE01F0, 0xE0FFF),
)  # fmt: skip
VARIATION_SELECTORS = ((0x180B, 0x180D), (0x180F, 0x180F), (0xFE00, 0xFE0F), (0xE0100, 0xE01EF))
SHOWN_FORMAT = (
    (0x0600, 0x0605), (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2),
    (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0xFFF9, 0xFFFB), (0x13430, 0x13440),
)  # fmt: skip
# Default-ignorable, and kept: ZWNJ and ZWJ (Persian, Indic scripts; emoji sequences), LRM,
# RLM and ALM (right-to-left names), and the variation selectors (emoji and CJK forms).
KEPT_IGNORABLE = ((0x061C, 0x061C), (0x200C, 0x200F), *VARIATION_SELECTORS)
HANGUL_FILLERS = frozenset({0x115F, 0x1160, 0x3164, 0xFFA0})
_COMBINING = frozenset({"Mn", "Mc", "Me"})

NAME_RULES = (
    "1\u2013200 characters with at least one visible character (spaces, invisible and "
    "formatting characters do not count); no control characters (U+0000\u2013U+001F, "
    "U+007F\u2013U+009F), no line or paragraph separators (U+2028, U+2029) and no "
    "bidirectional control characters (U+202A\u2013U+202E, U+2066\u2013U+2069); no "
    "default-ignorable characters such as U+200B or U+00AD (but U+200C\u2013U+200F, "
    "U+061C and variation selectors), Hangul fillers, unassigned, private-use or "
    "surrogate code points; not combining marks alone; leading and trailing spaces are "
    "removed"
)


def _codes(ranges: tuple[tuple[int, int], ...]) -> frozenset[int]:
    return frozenset(code for low, high in ranges for code in range(low, high + 1))


def _within(code: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= code <= high for low, high in ranges)


# As sets: name_pattern asks about every code point (a few thousand members in all).
_IGNORABLE = _codes(OTHER_DEFAULT_IGNORABLE) | _codes(VARIATION_SELECTORS)
_SHOWN_FORMAT = _codes(SHOWN_FORMAT)
_KEPT = _codes(KEPT_IGNORABLE)
_BIDI_CODES = _codes(BIDI_CONTROL_RANGES)
_NOT_SHOWN = frozenset({"Cc", "Cn", "Co", "Cs"})


def _default_ignorable(code: int, category: str) -> bool:
    return code in _IGNORABLE or (category == "Cf" and code not in _SHOWN_FORMAT)


def unshown(char: str) -> str | None:
    """Why ``char`` may not be in a name, or None when it may (of the rules on single
    characters past controls and bidirectional controls)."""
    code, category = ord(char), unicodedata.category(char)
    if category == "Cn":
        return f"is not a character (unassigned in Unicode {unicodedata.unidata_version})"
    if category == "Co":
        return "is a private-use character: it shows differently on every device, if at all"
    if category == "Cs":
        return "is a lone surrogate, half of a character that no text holds alone"
    if code in HANGUL_FILLERS:
        return "is a Hangul filler: it shows as blank space"
    if _default_ignorable(code, category) and code not in _KEPT:
        return "is a default-ignorable character: it shows as nothing"
    return None


def _named(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" {name}" if name else "")


def _class(ranges: tuple[tuple[int, int], ...]) -> str:
    # \uXXXX within the Basic Multilingual Plane (read alike by ECMA-262 and Python), the
    # characters themselves beyond it (ECMA-262 has no \U escape, Python no \u{…}).
    def one(code: int) -> str:
        return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)

    return "".join(one(a) if a == b else f"{one(a)}-{one(b)}" for a, b in ranges)


@functools.cache
def name_pattern() -> str:
    """The rule as a JSON Schema ``pattern`` (documentation: the validator enforces it),
    built from this Python's ``unicodedata`` when first asked (a scan of every code point,
    half a second) and kept."""
    refused, unseen = [], []  # code points no name holds; those that show nothing of a name
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        category = unicodedata.category(char)
        no = (
            category in _NOT_SHOWN
            or code in _BIDI_CODES
            or code in LINE_BREAKS
            or (_default_ignorable(code, category) and code not in _KEPT)
        )
        if no:
            refused.append(code)
        if no or category in INVISIBLE_CATEGORIES or category in _COMBINING:
            unseen.append(code)
    # Written as the classes of what may be, not as negations of what may not: alike to a
    # validator, but a generator that walks a class range by range (Hypothesis's
    # from_regex, under schemathesis) walks the ~150,000 characters a name may hold
    # rather than the ~960,000 code points it may not.
    allowed = _class(_complement(_as_ranges(refused)))
    return f"^[{allowed}]*[{_class(_complement(_as_ranges(unseen)))}][{allowed}]*$"


def _complement(ranges: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    """The code points 0..sys.maxunicode outside ``ranges`` (sorted, disjoint), as ranges."""
    found: list[tuple[int, int]] = []
    next_free = 0
    for low, high in ranges:
        if low > next_free:
            found.append((next_free, low - 1))
        next_free = high + 1
    if next_free <= sys.maxunicode:
        found.append((next_free, sys.maxunicode))
    return tuple(found)


def _as_ranges(codes: list[int]) -> tuple[tuple[int, int], ...]:
    found: list[tuple[int, int]] = []
    for code in codes:
        if found and found[-1][1] == code - 1:
            found[-1] = (found[-1][0], code)
        else:
            found.append((code, code))
    return tuple(found)


def _readable(value: str) -> str:
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise PydanticCustomError(
            "name_control",
            "must not contain control characters (U+0000\u2013U+001F, U+007F\u2013U+009F)",
        )
    if _LINE_BREAKS.search(value):
        raise PydanticCustomError(
            "name_line_break",
            "must not contain line or paragraph separators (U+2028, U+2029): they break "
            "the name over lines",
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
    for char in value:
        why = unshown(char)
        if why is not None:
            raise PydanticCustomError(
                "name_unshown", "must not contain {char}, which {why}",
                {"char": _named(char), "why": why},
            )  # fmt: skip
    shown = [char for char in value if unicodedata.category(char) not in INVISIBLE_CATEGORIES]
    if all(unicodedata.category(char) in _COMBINING for char in shown):
        raise PydanticCustomError(
            "name_combining_only",
            "needs a character other than combining marks: {char} is a combining mark, "
            "which alone shows nothing of its own and stacks on whatever is shown before it",
            {"char": _named(shown[0])},
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
