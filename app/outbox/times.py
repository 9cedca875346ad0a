"""How a time is read back and shown: UTC, to the millisecond, ending in ``Z``.

Milliseconds because that is what SQLite's clock gives (``strftime('%f')``), so both
databases show the same precision; PostgreSQL keeps its microseconds in the table (finer
ordering), and a shown time is truncated, never rounded up, so a shown time is never later
than the stored one (``--since`` a shown time keeps it).
"""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(value: datetime | str) -> datetime:
    """A timestamp read back from the database, as an aware UTC datetime: SQLite hands
    timestamps back naive (or, for an expression, as text), all UTC; PostgreSQL hands them
    back in the session's time zone."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def utc_text(moment: datetime) -> str:
    """``moment`` as shown everywhere: ISO 8601 in UTC, milliseconds (truncated), ``Z``
    (RFC 3339 §5.6), e.g. ``2026-11-30T05:00:00.123Z``. A naive ``moment`` is taken as UTC."""
    utc = as_utc(moment)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"
