"""Checks of the numbers a policy or config is built with: a wrong one fails at once with
its field's name, not later as a loop that does nothing or never ends."""

from __future__ import annotations

import math


def require_counts(owner: str, **counts: int) -> None:
    """Each of ``counts`` is an int of at least 1 (a bool is not); ValueError naming the
    first that is not, as ``owner.field``."""
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{owner}.{name} must be a whole number of at least 1, not {value!r}")


def require_seconds(owner: str, *, zero_allowed: bool = False, **seconds: float | None) -> None:
    """Each of ``seconds`` that is not None is a finite number above 0 (or 0 too, with
    ``zero_allowed``); ValueError naming the first that is not, as ``owner.field``."""
    for name, value in seconds.items():
        if value is None:
            continue
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value < 0 or (value == 0 and not zero_allowed):
            least = "0 or more" if zero_allowed else "above 0"
            raise ValueError(
                f"{owner}.{name} must be a finite number of seconds {least}, not {value!r}"
            )
