"""Alembic environment for both service databases.

The service is the ini section (``alembic -n ordering ...``) or, from code, the
``service`` config attribute; the URL comes from the settings unless a caller passes
``url`` in the config attributes (tests do, for their throwaway databases).
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from alembic import context
from app.catalog.models import catalog_metadata
from app.core.settings import SERVICES, Settings
from app.ordering.models import ordering_metadata

METADATA: dict[str, tuple[MetaData, ...]] = {
    "ordering": ordering_metadata,
    "catalog": catalog_metadata,
}

config = context.config
service: str = config.attributes.get("service") or config.config_ini_section
if service not in SERVICES:
    raise SystemExit(
        f"choose a service database: `alembic -n ordering|catalog ...` (got section {service!r})"
    )
if config.config_file_name is not None and not config.attributes.get("skip_logging_config"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

url: str = config.attributes.get("url") or Settings().database_url(service)
target_metadata = list(METADATA[service])


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=url.startswith("sqlite"),
        compare_type=True,
        **kwargs,
    )


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    _configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_online())
