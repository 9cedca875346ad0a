"""Throwaway PostgreSQL databases, so test runs never collide on the shared server."""

from __future__ import annotations

import uuid
from concurrent.futures import Future, ThreadPoolExecutor

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from tests.support.config import SERVERS

START_HINT = (
    "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
)


def admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit superuser connection; fails the test, never skips, when unreachable."""
    try:
        return psycopg.connect(SERVERS.postgres_admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is unreachable at {SERVERS.postgres_admin_url} ({exc}); {START_HINT}",
            pytrace=False,
        )


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def create_database(name: str, *, template: str | None = None) -> str:
    """Create database ``name`` (optionally cloned from ``template``); return its async URL."""
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with admin_connection() as connection:
        connection.execute(statement)
    return async_url(name)


def drop_database(name: str) -> None:
    # FORCE: a test that failed may have left connections open.
    statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with admin_connection() as connection:
        connection.execute(statement)


# One thread drops the per-test databases behind the tests: a drop waits on the server's
# disk (about a second), which no test needs to wait for.
_DROPPER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-database")
_PENDING: list[Future[None]] = []


def drop_database_later(name: str) -> None:
    """Drop database ``name`` on a background thread; ``finish_drops`` waits for them."""
    _PENDING.append(_DROPPER.submit(drop_database, name))


def finish_drops() -> None:
    """Wait for every ``drop_database_later`` (raising the first failure)."""
    pending, _PENDING[:] = list(_PENDING), []
    for future in pending:
        future.result()


def async_url(database: str) -> str:
    """The SQLAlchemy URL (psycopg 3, async) of ``database`` on the test server."""
    url = make_url(SERVERS.postgres_admin_url).set(
        drivername="postgresql+psycopg", database=database
    )
    return url.render_as_string(hide_password=False)


def sync_dsn(async_database_url: str) -> str:
    """A plain libpq DSN for the same database (for psycopg in tests)."""
    url = make_url(async_database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)
