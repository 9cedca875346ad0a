"""Alembic upgrades from code (``python -m app migrate``, ``dev`` at start, tests)."""

from __future__ import annotations

import asyncio
import functools
import logging
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from alembic import command
from app.core.settings import Settings
from cloudcrm_outbox.errors import FatalError
from cloudcrm_outbox.observability.redaction import safe_url
from cloudcrm_outbox.runtime.startup import wait_for_database
from cloudcrm_outbox.storage.engine import ensure_sqlite_directory, make_engine

logger = logging.getLogger(__name__)

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def alembic_config(service: str, url: str) -> Config:
    """Alembic's config for ``service``'s version history against the database at ``url``."""
    config = Config(str(ALEMBIC_INI), ini_section=service)
    config.attributes["service"] = service
    config.attributes["url"] = url
    # The caller (CLI, dev server, tests) owns logging; env.py must not reconfigure it.
    config.attributes["skip_logging_config"] = True
    return config


def upgrade(service: str, *, settings: Settings, revision: str = "head") -> None:
    """Upgrade ``service``'s database to ``revision``. Blocking: call it off the event loop."""
    url = settings.database_url(service)
    ensure_sqlite_directory(url)
    asyncio.run(wait_for_database(url, within=settings.startup_timeout_seconds))
    logger.info("migrating", extra={"service": service, "revision": revision})
    command.upgrade(alembic_config(service, url), revision)


class DatabaseNotAtHeadError(FatalError):
    """The service's database is not at the Alembic head this code expects: the process
    exits rather than fail every request or message later, far from the cause."""


@functools.cache
def head_revisions(service: str) -> frozenset[str]:
    """The Alembic head(s) this code expects ``service``'s database at."""
    return frozenset(ScriptDirectory.from_config(alembic_config(service, "sqlite://")).get_heads())


@functools.cache
def known_revisions(service: str) -> frozenset[str]:
    """Every revision this code's history of ``service`` holds."""
    scripts = ScriptDirectory.from_config(alembic_config(service, "sqlite://"))
    return frozenset(script.revision for script in scripts.walk_revisions())


async def revision_problem(
    service: str, engine: AsyncEngine, *, allow_ahead: bool = False
) -> str | None:
    """None when ``service``'s database (``engine``) is at the head (or, ``allow_ahead``,
    at a revision this code does not know: a newer release migrated it, as in a rolling
    deploy); else what is wrong and what to run. Raises what the connection raises when
    the database does not answer."""
    async with engine.connect() as connection:
        current = await connection.run_sync(
            lambda sync: set(MigrationContext.configure(sync).get_current_heads())
        )
    heads = head_revisions(service)
    if current == heads or (allow_ahead and current and not current <= known_revisions(service)):
        return None
    where = safe_url(engine.url.render_as_string(hide_password=False))
    found = ", ".join(sorted(current)) or "no revision (empty database)"
    return (
        f"the {service} database at {where} is at {found}, not at {', '.join(sorted(heads))}"
        f": run `python -m app migrate {service}`"
    )


async def ensure_at_head(service: str, *, url: str) -> None:
    """Return if ``service``'s database at ``url`` is at the head revision; else raise
    DatabaseNotAtHeadError saying which revision it is at and what to run."""
    engine = make_engine(url, pool_size=1)
    try:
        problem = await revision_problem(service, engine)
    finally:
        await engine.dispose()
    if problem is not None:
        raise DatabaseNotAtHeadError(problem)
