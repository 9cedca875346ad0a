"""Numbers typed in the pages' forms, sent to the APIs exactly as typed.

The APIs judge a price's decimals on the number as written (``app.http.exact_json``): a page
that read "1.0000000000000001" into a float and sent 1.0 would have a price saved that
the API refuses. So a typed number travels as its own text, a JSON number (RFC 8259 §6);
text that is no number is refused here, in words, before any API is asked."""

from __future__ import annotations

import json
import re
from typing import Any

# A browser's number field gives a "valid floating-point number" (HTML Living Standard,
# §2.3.4.3): an optional "-", digits and/or "." and digits, an optional exponent. JSON
# wants what HTML leaves out: a digit before the point, no leading zeros.
_TYPED = re.compile(r"(-?)([0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
# Longer texts are no price, stock or quantity anyone types (and past 4,300 digits an
# integer cannot even be read by Python's JSON parser).
MAX_TYPED = 100


class JsonNumber(str):
    """The text of a JSON number, written into a body as it is (json_text)."""


class NotANumberError(ValueError):
    """Typed text that is no number; the message says so in words, for the page."""


def typed_number(field: str, text: str) -> JsonNumber:
    """``text`` (typed in ``field``) as a JSON number with exactly its value: ".5" is
    0.5, "007" is 7, "1e2" stays 1e2. Raises NotANumberError ("price: write a number …")."""
    typed = text.strip()
    match = _TYPED.fullmatch(typed)
    if match is None or not (match[2] or match[3]) or len(typed) > MAX_TYPED:
        raise NotANumberError(
            f"{field}: write a number in digits, with a point for decimals (such as 12.50)"
        )
    sign, whole, fraction, exponent = match.groups()
    return JsonNumber(f"{sign}{whole.lstrip('0') or '0'}{fraction or ''}{exponent or ''}")


def json_text(value: Any) -> str:
    """``value`` as JSON text, each JsonNumber in it written as it is (json.dumps would
    write it as a string)."""
    if isinstance(value, JsonNumber):
        return str(value)
    if isinstance(value, dict):
        items = (f"{json.dumps(str(key))}:{json_text(item)}" for key, item in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(json_text(item) for item in value) + "]"
    return json.dumps(value)
