"""The database clock in SQL, on PostgreSQL and SQLite alike.

Leases, retry times and retention ages are computed by the database, never by a
process: several relays on several hosts never agree on the time, the database does.
Every time shown (HTTP bodies, commands, dead-letter headers) is ``times.utc_text``.
"""

from __future__ import annotations

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


# SQLite's clock as text to the millisecond ('2026-11-30 05:00:00.123'): the format of the
# column defaults (db_now), so that text comparisons hold. Rows written before the
# defaults had milliseconds hold '2026-11-30 05:00:00', which sorts just before the same
# second with milliseconds: the order of the times, as it should be.
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now'{modifier})"


@compiles(db_now_plus, "sqlite")
def _sqlite(element: db_now_plus, compiler: Any, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return _SQLITE_NOW.format(modifier=f", printf('%+.6f seconds', {seconds})")


class db_now(FunctionElement[Any]):  # noqa: N801 - reads as the SQL function it renders
    """The database clock as a column's server default: ``now()`` on PostgreSQL (its
    microseconds), SQLite's clock to the millisecond (CURRENT_TIMESTAMP has whole seconds)."""

    type = DateTime(timezone=True)
    inherit_cache = True


@compiles(db_now, "postgresql")
def _postgresql_now(_element: db_now, _compiler: Any, **_kw: Any) -> str:
    return "now()"


@compiles(db_now, "sqlite")
def _sqlite_now(_element: db_now, _compiler: Any, **_kw: Any) -> str:
    return _SQLITE_NOW.format(modifier="")
