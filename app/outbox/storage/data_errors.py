"""Database errors that a message's own values cause, the same way on every delivery.

A handler that writes a value the database refuses — out of range, text it cannot read
as the column's type, a CHECK or NOT NULL the row breaks — fails again on every
redelivery: retrying it to the delivery limit only delays the dead letter and loses the
reason. The consumer dead-letters such a message as soon as it fails alone, with the
database's words as the reason (``data error: …``).

Deterministic: PostgreSQL's class 22 (data exception: 22003 numeric value out of range,
22P02 invalid text representation, 22001 string too long…), 23502 not_null_violation and
23514 check_violation (PostgreSQL Appendix A, "PostgreSQL Error Codes"); SQLite's
"CHECK constraint failed" / "NOT NULL constraint failed" and its DataError (SQLite has no
SQLSTATE: https://www.sqlite.org/rescode.html); and Python's OverflowError, raised when
sqlite3 binds an int beyond 64 bits. Not deterministic, so left to the retries: the rest
of class 23 — a unique, foreign-key or exclusion violation is what a transaction that
raced another one meets (run again, the handler sees the winner's row), and a row
referenced may yet arrive — and a trigger's own RAISE (P0001, or SQLite's RAISE(ABORT),
which SQLite reports as a constraint failure too): it says what it checks, not why.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError

from cloudcrm_outbox.storage.faults import psycopg_error

_DATA_EXCEPTION = "22"
_DETERMINISTIC_INTEGRITY = ("23502", "23514")
_SQLITE_DETERMINISTIC = ("CHECK constraint failed", "NOT NULL constraint failed")
REASON_PREFIX = "data error: "
_MAX_DETAIL = 300


def data_error_reason(exc: BaseException) -> str | None:
    """The dead-letter reason for a deterministic data error (``data error: <the
    database's message> (SQLSTATE nnnnn)``, one line, at most ~330 characters), or None
    when ``exc`` is anything else (a fault of timing or of the environment, a bug)."""
    if isinstance(exc, OverflowError):
        return _reason(str(exc))
    error = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(error, psycopg_error()):
        state = getattr(error, "sqlstate", None) or ""
        if state.startswith(_DATA_EXCEPTION) or state in _DETERMINISTIC_INTEGRITY:
            primary = getattr(error, "diag").message_primary or str(error)  # noqa: B009
            return _reason(primary, f" (SQLSTATE {state})")
        return None
    if isinstance(error, sqlite3.DataError) or (
        isinstance(error, sqlite3.IntegrityError) and str(error).startswith(_SQLITE_DETERMINISTIC)
    ):
        return _reason(str(error))
    return None


def _reason(message: str, suffix: str = "") -> str:
    first_line = message.strip().splitlines()[0] if message.strip() else "no message"
    if len(first_line) > _MAX_DETAIL:
        first_line = first_line[: _MAX_DETAIL - 1] + "…"
    return f"{REASON_PREFIX}{first_line}{suffix}"
