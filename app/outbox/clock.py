"""The database clock in SQL, on PostgreSQL and SQLite alike.

Leases, retry times and retention ages are computed by the database, never by a
process: several relays on several hosts never agree on the time, the database does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement, literal


class db_now_plus(FunctionElement[Any]):  # noqa: N801 - reads as the SQL function it renders
    """``now + seconds`` on the database clock (seconds may be negative or a bind)."""

    type = DateTime(timezone=True)
    inherit_cache = True

    def __init__(self, seconds: float | ColumnElement[Any]) -> None:
        if not isinstance(seconds, ColumnElement):
            seconds = literal(float(seconds))
        super().__init__(seconds)


@compiles(db_now_plus, "postgresql")
def _postgresql(element: db_now_plus, compiler: Any, **kw: Any) -> str:
    # statement_timestamp, neither now() nor clock_timestamp(): now() is frozen at the
    # start of a transaction that may have waited on locks (a retry time must count from
    # when the failure happened), and clock_timestamp() is volatile, so a bound on it is a
    # filter the planner cannot push into an index: the relay's claim read every waiting
    # row and retention every retained one. statement_timestamp() is stable: read once per
    # statement, it is an index condition (PostgreSQL docs, "Current Date/Time" and
    # "Function Volatility Categories").
    seconds = compiler.process(element.clauses, **kw)
    return f"(statement_timestamp() + make_interval(secs => CAST({seconds} AS double precision)))"


@compiles(db_now_plus, "sqlite")
def _sqlite(element: db_now_plus, compiler: Any, **kw: Any) -> str:
    # Same text format as CURRENT_TIMESTAMP (the column defaults), so comparisons hold.
    seconds = compiler.process(element.clauses, **kw)
    return f"datetime('now', printf('%+.6f seconds', {seconds}))"


def as_utc(value: datetime | str) -> datetime:
    """A timestamp read back from the database, as an aware UTC datetime: SQLite hands
    timestamps back naive (or, for an expression, as text); all are UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
