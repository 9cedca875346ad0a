"""Which database errors are worth waiting out, and which are a retry away."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

# Connection exceptions (08…), and the server going away (57P01-3: admin shutdown,
# crash shutdown, cannot connect now).
_OUTAGE_STATES = ("08", "57P01", "57P02", "57P03")
# Deadlock detected, serialization failure: the transaction may simply be run again.
_CONFLICT_STATES = ("40P01", "40001")


def _sqlstate(exc: BaseException) -> str | None:
    original = getattr(exc, "orig", None)
    return getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)


def is_database_outage(exc: BaseException) -> bool:
    """The database (or the way to it) is down: nothing about the messages is wrong."""
    if isinstance(exc, OSError | TimeoutError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = _sqlstate(exc)
    return state is None or state.startswith(_OUTAGE_STATES)


def is_retryable_conflict(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and (_sqlstate(exc) or "").startswith(_CONFLICT_STATES)
