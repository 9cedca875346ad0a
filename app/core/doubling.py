"""Waits that double up to a cap: when the k-th retry of something comes, and the last."""

from __future__ import annotations


def doubled_delay(first_seconds: float, retries: int, cap_seconds: float) -> float:
    """Seconds until the next try after ``retries`` tries: ``first_seconds * 2**retries``,
    at most ``cap_seconds`` (the exponent is bounded so that no float overflows)."""
    return min(first_seconds * 2.0 ** min(retries, 60), cap_seconds)


def last_retry_seconds(first_seconds: float, retries: int, cap_seconds: float) -> float:
    """Seconds from the start to the last of ``retries`` retries: the first comes after
    ``first_seconds`` (never capped), each next one ``doubled_delay`` after the previous;
    0 when there are none."""
    if retries == 0:
        return 0.0
    later = sum(doubled_delay(first_seconds, k, cap_seconds) for k in range(1, retries))
    return first_seconds + later
