"""Whose fault a database error is: the environment's (wait it out), another transaction's
(run again), or the message's (spend one of its deliveries).

SQLSTATE codes: PostgreSQL's Appendix A, "PostgreSQL Error Codes".
"""

from __future__ import annotations

import sqlite3
from functools import cache

from sqlalchemy.exc import DBAPIError


@cache
def psycopg_error() -> tuple[type[BaseException], ...]:
    """psycopg's base error, or nothing when psycopg is not installed (SQLite alone: no
    psycopg error can then be raised), for ``isinstance``."""
    try:
        import psycopg
    except ImportError:
        return ()
    return (psycopg.Error,)


# Connection exceptions (08…), and the server going away (57P01-3: admin shutdown,
# crash shutdown, cannot connect now).
_OUTAGE_STATES = ("08", "57P01", "57P02", "57P03")
# The deployment, not the message: undefined table/column/function (a database not
# migrated), insufficient privilege, no such database or schema, read-only transaction,
# insufficient resources (disk full, out of memory, too many connections), system errors.
_ENVIRONMENT_STATES = (
    "42P01",
    "42703",
    "42883",
    "42501",
    "3D000",
    "3F000",
    "25006",
    "53",
    "58",
)
# SQLite says the same in words (its exceptions carry no SQLSTATE).
_ENVIRONMENT_WORDS = ("no such table", "no such column", "readonly database", "disk i/o error")
# Lock timeout (55P03 lock_not_available) and statement timeout (57014 query_canceled):
# another transaction holds what this one needs. Worth trying again later, alone.
_BLOCKED_STATES = ("55P03", "57014")
# Deadlock detected, serialization failure: the transaction may simply be run again.
_CONFLICT_STATES = ("40P01", "40001")


def _driver_error(exc: BaseException) -> BaseException | None:
    """The driver's own exception: SQLAlchemy's wraps it; statements run on psycopg's
    connection directly (pipelines, array parameters) raise it bare."""
    if isinstance(exc, DBAPIError):
        return exc.orig
    if isinstance(exc, (*psycopg_error(), sqlite3.Error)):
        return exc
    return None


def _sqlstate(error: BaseException) -> str | None:
    return getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)


def is_database_outage(exc: BaseException) -> bool:
    """The database (or the way to it) is down: nothing about the messages is wrong."""
    if isinstance(exc, OSError | TimeoutError):
        return True
    error = _driver_error(exc)
    if error is None:
        return False
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    state = _sqlstate(error)
    if state is None:
        # Without a SQLSTATE (SQLite, or a driver that lost the connection), only an
        # operational or interface error is the environment's; a data or integrity
        # error is the message's.
        kind = type(error).__name__
        return kind in ("OperationalError", "InterfaceError") and not _locked_sqlite(error)
    return state.startswith(_OUTAGE_STATES)


def is_environment_fault(exc: BaseException) -> bool:
    """Down, not migrated, no permission, out of resources: no message is to blame, so
    none may be requeued against its delivery limit for it."""
    if is_database_outage(exc):
        return True
    error = _driver_error(exc)
    if error is None:
        return False
    state = _sqlstate(error)
    if state is not None:
        return state.startswith(_ENVIRONMENT_STATES)
    return any(words in str(error).lower() for words in _ENVIRONMENT_WORDS)


def is_blocked(exc: BaseException) -> bool:
    """A lock or statement timeout: another transaction holds a row this one needs."""
    error = _driver_error(exc)
    if error is None:
        return False
    state = _sqlstate(error)
    return state.startswith(_BLOCKED_STATES) if state else _locked_sqlite(error)


def _locked_sqlite(error: BaseException) -> bool:
    return "database is locked" in str(error).lower()


def is_retryable_conflict(exc: BaseException) -> bool:
    error = _driver_error(exc)
    return error is not None and (_sqlstate(error) or "").startswith(_CONFLICT_STATES)
