"""A handler's deterministic data error (a value out of range, invalid text, a CHECK or
NOT NULL it breaks) fails the same way on every delivery: once the message is isolated it
is dead-lettered at once with the error as its reason. Faults of timing or of the
environment keep being retried (PostgreSQL Appendix A, "PostgreSQL Error Codes")."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from psycopg import errors
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError

from cloudcrm_outbox.inbox.reporting import reason_kind
from cloudcrm_outbox.storage.data_errors import data_error_reason
from cloudcrm_outbox.storage.engine import AbortedTransactionError

DETERMINISTIC: list[tuple[BaseException, str]] = [
    (DataError("UPDATE", {}, errors.NumericValueOutOfRange("integer out of range")),
     "data error: integer out of range (SQLSTATE 22003)"),
    (errors.NumericValueOutOfRange("integer out of range"),  # raised bare by psycopg
     "data error: integer out of range (SQLSTATE 22003)"),
    (DataError("INSERT", {}, errors.InvalidTextRepresentation(
        'invalid input syntax for type uuid: "x"\nLINE 1: …')),
     'data error: invalid input syntax for type uuid: "x" (SQLSTATE 22P02)'),
    (DataError("INSERT", {}, errors.StringDataRightTruncation("value too long")),
     "data error: value too long (SQLSTATE 22001)"),
    (IntegrityError("UPDATE", {}, errors.CheckViolation(
        'new row for relation "products" violates check constraint "ck_products_x"')),
     'data error: new row for relation "products" violates check constraint "ck_products_x" '
     "(SQLSTATE 23514)"),
    (IntegrityError("INSERT", {}, errors.NotNullViolation("null value in column")),
     "data error: null value in column (SQLSTATE 23502)"),
    (IntegrityError("UPDATE", {}, sqlite3.IntegrityError(
        "CHECK constraint failed: ck_products_stock_count_int4")),
     "data error: CHECK constraint failed: ck_products_stock_count_int4"),
    (IntegrityError("INSERT", {}, sqlite3.IntegrityError("NOT NULL constraint failed: t.c")),
     "data error: NOT NULL constraint failed: t.c"),
    (DataError("INSERT", {}, sqlite3.DataError("string or blob too big")),
     "data error: string or blob too big"),
    (OverflowError("Python int too large to convert to SQLite INTEGER"),
     "data error: Python int too large to convert to SQLite INTEGER"),
]  # fmt: skip

RETRIED: list[BaseException] = [
    DBAPIError("UPDATE", {}, errors.DeadlockDetected("deadlock detected")),
    DBAPIError("UPDATE", {}, errors.SerializationFailure("could not serialize")),
    DBAPIError("UPDATE", {}, errors.LockNotAvailable("canceling statement due to lock timeout")),
    DBAPIError("UPDATE", {}, errors.QueryCanceled("canceling statement due to statement timeout")),
    DBAPIError("UPDATE", {}, errors.AdminShutdown("terminating connection")),
    OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused")),
    OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked")),
    # A race another transaction won: run again, the handler may well see its row.
    IntegrityError("INSERT", {}, errors.UniqueViolation("duplicate key value")),
    IntegrityError("INSERT", {}, errors.ForeignKeyViolation("is not present in table")),
    IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed: t.id")),
    # A trigger's RAISE(ABORT, …) is an IntegrityError on SQLite, PL/pgSQL's RAISE P0001:
    # whatever the trigger checks, it is not a malformed value.
    IntegrityError("INSERT", {}, sqlite3.IntegrityError("the stock system is down")),
    DBAPIError("UPDATE", {}, errors.RaiseException("cursed product")),
    AbortedTransactionError("the transaction was aborted by an earlier error"),
    ConnectionResetError("reset by peer"),
    RuntimeError("a handler's own bug"),
]


@pytest.mark.parametrize(("error", "reason"), DETERMINISTIC, ids=lambda v: type(v).__name__)
def test_a_deterministic_data_error_gives_a_reason_naming_it(
    error: BaseException, reason: str
) -> None:
    assert data_error_reason(error) == reason
    assert reason_kind(reason) == "data_error"


@pytest.mark.parametrize("error", RETRIED, ids=lambda v: f"{type(v).__name__}-{v!s:.40}")
def test_a_fault_of_timing_or_environment_is_not_a_data_error(error: BaseException) -> None:
    assert data_error_reason(error) is None


def test_a_long_error_message_gives_a_bounded_one_line_reason() -> None:
    error = DataError("x", {}, errors.InvalidTextRepresentation("bad value " + "y" * 5000))
    reason = data_error_reason(error)
    assert reason is not None and len(reason) <= 400 and "\n" not in reason
    assert reason.endswith("(SQLSTATE 22P02)")
