"""Engines and sessions. Built in a lifespan or a CLI command, never at import
(no I/O at import time: importing a module opens no connection)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from cloudcrm_outbox.storage.liveness import TcpKeepalives

# The databases and async drivers the outbox runs on: PostgreSQL through psycopg 3 (the
# fast path: pipelines, array parameters, LISTEN/NOTIFY) and SQLite through aiosqlite
# (the portable path, for the embedded default).
SUPPORTED = {"postgresql": "psycopg", "sqlite": "aiosqlite"}


class UnsupportedDatabaseError(ValueError):
    """A database URL or engine whose database or driver the outbox does not run on."""


# The library's extra that installs each driver.
_EXTRAS = {"psycopg": "postgres", "aiosqlite": "sqlite"}


def check_supported(url: str) -> None:
    """Raise UnsupportedDatabaseError unless ``url`` names a supported database+driver
    that is installed (the message names the extra that installs a missing one)."""
    parsed = make_url(url)
    _check(parsed.get_backend_name(), parsed.get_driver_name())
    driver = parsed.get_driver_name()
    if importlib.util.find_spec(driver) is None:
        raise UnsupportedDatabaseError(
            f"{parsed.get_backend_name()}+{driver} needs the {_EXTRAS[driver]!r} extra "
            f"({driver} is not installed): pip install 'cloudcrm-outbox[{_EXTRAS[driver]}]'"
        )


def _check(database: str, driver: str) -> None:
    if SUPPORTED.get(database) != driver:
        supported = ", ".join(f"{name}+{drv}" for name, drv in SUPPORTED.items())
        hint = ""
        if database in SUPPORTED:
            # postgresql:// alone means psycopg2 to SQLAlchemy; sqlite:// the sync driver.
            hint = f": write the URL as {database}+{SUPPORTED[database]}://…"
        raise UnsupportedDatabaseError(
            f"the outbox runs on {supported}; got {database}+{driver}{hint}"
        )


def is_psycopg(dialect: Dialect) -> bool:
    """True on PostgreSQL through psycopg 3 (the fast path), False on SQLite; raises
    UnsupportedDatabaseError for any other database or driver (an asyncpg engine, say,
    whose connection has none of psycopg's methods)."""
    _check(dialect.name, dialect.driver)
    return dialect.name == "postgresql"


class AbortedTransactionError(RuntimeError):
    """A COMMIT refused because the transaction was aborted by an error someone caught and
    went on from: PostgreSQL would answer it with a ROLLBACK, silently, and the caller
    would take its work for committed."""


def refuse_aborted(driver: Any) -> None:
    """Raise AbortedTransactionError if psycopg's connection ``driver`` is in a transaction
    an error aborted (PostgreSQL's INERROR status), where any statement but ROLLBACK fails."""
    # psycopg is imported where it is used: the library runs without it on SQLite.
    from psycopg.pq import TransactionStatus

    if driver.info.transaction_status == TransactionStatus.INERROR:
        raise AbortedTransactionError(
            "the transaction was aborted by an earlier error: nothing of it can commit"
        )


def _refuse_aborted_commit(connection: Any) -> None:
    # ConnectionEvents.commit: just before the DBAPI commit, after SQLAlchemy's flushes and
    # before_commit hooks.
    refuse_aborted(connection.connection.driver_connection)


EngineHook = Callable[[AsyncEngine], None]
ENGINE_HOOKS: list[EngineHook] = []  # run on every engine made here (tracing, for one)


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    pre_ping: bool = True,
    lock_timeout: float | None = None,
    statement_timeout: float | None = None,
    idle_in_transaction_timeout: float | None = None,
    keepalives: TcpKeepalives | None = None,
) -> AsyncEngine:
    """An async engine for a service database (PostgreSQL via psycopg 3, or SQLite).

    ``pre_ping`` costs a round trip per checkout. The relay and the consumer turn it off:
    they retry any failed batch anyway, and SQLAlchemy discards the whole pool on the first
    disconnect error, so a dead connection costs them one retried batch, not a round trip
    on every batch.

    ``lock_timeout`` / ``statement_timeout`` (seconds; PostgreSQL only) are set for every
    connection at connect time (libpq ``options``), so they cost no round trip per
    transaction; a statement past them fails with SQLSTATE 55P03 / 57014. The session's
    ``TimeZone`` is UTC the same way. ``idle_in_transaction_timeout`` likewise: PostgreSQL
    ends a session left idle in a transaction that long (its client cut off: its locks go
    with it).

    ``keepalives``: libpq's TCP keepalives and user timeout (``TcpKeepalives()``, the
    defaults, when None), so that a database gone silent is noticed (PostgreSQL only).

    Raises UnsupportedDatabaseError for a database or driver the outbox does not run on."""
    check_supported(url)
    if ensure_sqlite_directory(url):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return _hooked(engine)
    options = " ".join(
        # Every session in UTC: the times PostgreSQL hands back (and any text cast of one)
        # never depend on the database's or the server's TimeZone setting.
        ["-c timezone=UTC"]
        + [
            f"-c {name}={round(seconds * 1000)}"
            for name, seconds in (
                ("lock_timeout", lock_timeout),
                ("statement_timeout", statement_timeout),
                ("idle_in_transaction_session_timeout", idle_in_transaction_timeout),
            )
            if seconds is not None
        ]
    )
    connect_args: dict[str, Any] = {
        **(keepalives or TcpKeepalives()).libpq_parameters(),
        "options": options,
    }
    engine = create_async_engine(
        url,
        connect_args=connect_args,
        pool_size=pool_size,
        max_overflow=pool_size,
        # A connection cut by a restart or a proxy is found before use, not mid-request.
        pool_pre_ping=pre_ping,
    )
    event.listen(engine.sync_engine, "commit", _refuse_aborted_commit)
    return _hooked(engine)


def _hooked(engine: AsyncEngine) -> AsyncEngine:
    for hook in ENGINE_HOOKS:
        hook(engine)
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (responses are built after it)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def missing_sqlite_file(url: str) -> Path | None:
    """The file a SQLite ``url`` names when it does not exist yet (connecting would make
    it, empty); None for an existing file, an in-memory database or another database."""
    path = _sqlite_file(url)
    return None if path is None or path.exists() else path


def ensure_sqlite_directory(url: str) -> bool:
    """Create the folder of a SQLite database file; True when ``url`` is SQLite."""
    if make_url(url).get_backend_name() != "sqlite":
        return False
    path = _sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return True


def _sqlite_file(url: str) -> Path | None:
    """The file a SQLite ``url`` names; None for an in-memory or URI-named database, or
    another database."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return None if database.startswith("file:") else Path(database)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling defers BEGIN and ignores SAVEPOINT semantics;
    # turning it off and emitting BEGIN ourselves (below) gives real transactions.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL lets readers run while a writer commits (the API and the relay share the file).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock at BEGIN, so two writers queue on busy_timeout instead
    # of failing with "database is locked" when the second upgrades its read lock.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


async def driver_connection(connection: AsyncConnection) -> Any:
    """The DBAPI driver's own connection under SQLAlchemy's (psycopg's AsyncConnection on
    PostgreSQL): for what SQLAlchemy does not drive, such as a client-side cursor sending
    several statements in one message (``transactions.simple_query``)."""
    raw = await connection.get_raw_connection()
    return raw.driver_connection
