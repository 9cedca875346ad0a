"""``python -m app dev``: both APIs, both relays and both consumers, one process.

Embedded defaults: SQLite files under ./var and the in-memory broker. With the database
URLs and BROKER_URL set, the same command runs on PostgreSQL and RabbitMQ.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import httpx
from fastapi import FastAPI

from app.admin.router import router as admin_router
from app.auth.config import SigningKeys, developer_token
from app.auth.service_token import ordering_credentials
from app.catalog.app import ROUTERS as CATALOG_ROUTERS
from app.catalog.app import catalog_resources
from app.catalog.demo import seed_demo_products
from app.cli.signing import signing_keys
from app.core import migrations as migrate
from app.core.settings import SERVICES, Settings
from app.http.service_app import build_app
from app.http.serving import stop_app
from app.messaging.housekeeping import housekeeping
from app.messaging.registry import subscriptions_of
from app.messaging.wiring import consumer_config, messaging_names, relay_config
from app.ordering.app import ordering_resources
from app.ordering.reply_timeouts import STATUS_FIGURES
from app.ordering.router import router as ordering_router
from app.pages.serving import install_in_dev, pages_in_process
from cloudcrm_outbox.brokers import broker_for
from cloudcrm_outbox.relay.wakeup import libpq_dsn
from cloudcrm_outbox.runtime.consumer_process import consumer_engine
from cloudcrm_outbox.runtime.in_process import InProcessConfig, MessagingService, in_process
from cloudcrm_outbox.storage.engine import make_engine, make_sessionmaker

logger = logging.getLogger(__name__)

DEV_TOKEN_TTL_SECONDS = 24 * 3600


def create_dev_app(settings: Settings, *, base_url: str = "http://127.0.0.1:8000") -> FastAPI:
    """Ordering and catalog in one app; ordering reaches catalog in-process, not over TCP.
    At start it prints a development token for every scope and a curl that uses it
    (``base_url``: where the app is served).

    Without AUTH_JWT_SECRET or AUTH_JWKS_URL, tokens are signed with the development secret
    under ./var (created on first use).

    Raises AuthNotConfiguredError when ordering could not get its own token for catalog.
    """
    keys = signing_keys(settings, development=True)
    ordering_credentials(settings, keys)  # refuse now, not in the lifespan

    @asynccontextmanager
    async def migrated(_app: FastAPI, settings: Settings) -> AsyncIterator[None]:
        for service in SERVICES:
            # Alembic's env runs its own event loop, so it runs in a worker thread.
            await asyncio.to_thread(migrate.upgrade, service, settings=settings)
        if settings.seed_demo_products:
            await _seed(settings)
        print(development_welcome(settings, base_url, keys), flush=True)
        yield

    @asynccontextmanager
    async def ordering_in_process(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
        transport = httpx.ASGITransport(app=app)
        async with ordering_resources(app, settings, keys=keys, catalog_transport=transport):
            yield

    app = build_app(
        title="CloudCrm (ordering + catalog)",
        settings=settings,
        routers=[ordering_router, *CATALOG_ROUTERS, admin_router],
        resources=[
            migrated,
            catalog_resources,
            ordering_in_process,
            messaging_in_process,
            pages_in_process,
        ],
        keys=keys,
    )
    install_in_dev(app, settings, keys)  # the web pages at /
    app.state.status_figures = {"ordering": STATUS_FIGURES}
    return app


def this_python() -> str:
    """The interpreter running this process as a user would type it here: relative to the
    working directory when inside it (``.venv/bin/python`` after ``make run``), else
    ``python``: a bare ``python`` in a fresh shell is not the virtualenv's."""
    try:
        relative = Path(sys.executable).relative_to(Path.cwd())
    except ValueError:
        return "python"
    return str(relative)


def development_welcome(settings: Settings, base_url: str, keys: SigningKeys) -> str:
    """What ``dev`` prints at start: a token (all scopes, 24 h, signed with ``keys``) and
    a request to try."""
    if settings.auth_disabled:
        return "Authentication is disabled (AUTH_DISABLED=true): no token needed."
    token = developer_token(settings, keys, ttl_seconds=DEV_TOKEN_TTL_SECONDS)
    if token is None:
        return "Tokens come from the identity provider at AUTH_JWKS_URL."
    return (
        f"\nDevelopment token (every scope, valid 24 h; `{this_python()} -m app token "
        "--scope ...` makes others):\n\n"
        f"  export TOKEN={token}\n\n"
        "Then try:\n\n"
        f'  curl -H "Authorization: Bearer $TOKEN" {base_url}/api/catalog/products\n\n'
        f"or the web pages at {base_url}/ (Sign in as developer).\n"
    )


async def _seed(settings: Settings) -> None:
    engine = make_engine(settings.catalog_database_url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            added = await seed_demo_products(session)
    finally:
        await engine.dispose()
    if added:
        logger.info("seeded demo products", extra={"products": added})


@asynccontextmanager
async def messaging_in_process(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """Both relays and both consumers (catalog takes OrderPlaced and OrderCancelled,
    ordering takes catalog's replies), as tasks of this process."""
    consuming = consumer_config(settings)
    relaying = relay_config(settings)
    # Without LISTEN/NOTIFY (SQLite) the poll is the wake-up: keep the tutorial snappy.
    relaying = replace(relaying, poll_interval_seconds=min(relaying.poll_interval_seconds, 0.2))
    # One engine per database, shared by its relay and its consumer: its sessions may stay
    # idle in a transaction as long as a relay's claim may (while a batch publishes).
    shared = replace(consuming, idle_in_transaction_timeout_seconds=relaying.claim_timeout_seconds)
    pool_size = settings.relay_concurrency + 3
    engines = {
        service: consumer_engine(shared, settings.database_url(service), pool_size=pool_size)
        for service in SERVICES
    }
    services = [
        MessagingService(
            service,
            engines[service],
            subscriptions_of(service),
            listen_dsn=libpq_dsn(settings.database_url(service)),
        )
        for service in SERVICES
    ]
    broker = broker_for(
        settings.broker_url,
        embedded_path=settings.embedded_broker_path,
        publish_timeout=settings.relay_publish_timeout_seconds,
        publish_path=settings.relay_publish_path,
        names=messaging_names(settings),
    )
    config = InProcessConfig(relay=relaying, consumer=consuming.consumer)
    try:
        async with (
            # A relay or consumer that stops for good stops dev, as its process would.
            in_process(
                broker, services, config=config, on_failure=lambda reason: stop_app(app, reason)
            ),
            housekeeping(settings, "catalog", "consumer"),
            housekeeping(settings, "ordering", "relay", broker=broker),
        ):
            logger.info("messaging in process", extra={"broker": type(broker).__name__})
            app.state.broker = broker  # the admin API's dead letters
            yield
    finally:
        app.state.broker = None
        await broker.close()
        for engine in engines.values():
            await engine.dispose()
