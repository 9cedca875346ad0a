"""Alembic upgrades from code (``python -m app migrate``, ``dev`` at start, tests)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from alembic.config import Config

from alembic import command
from app.db import ensure_sqlite_directory
from app.settings import Settings
from app.startup import wait_for_database

logger = logging.getLogger(__name__)

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


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
