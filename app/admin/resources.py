"""The broker an API process's admin endpoints reach dead letters through."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.core.settings import Settings
from cloudcrm_outbox.brokers import broker_for, is_amqp


@asynccontextmanager
async def admin_broker(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """RabbitMQ, when BROKER_URL names it (connections are made per operation); with the
    embedded broker, none: it lives inside ``dev``, which sets its own."""
    if not is_amqp(settings.broker_url):
        yield
        return
    broker = broker_for(settings.broker_url, connect_timeout=10)
    app.state.broker = broker
    try:
        yield
    finally:
        app.state.broker = None
        await broker.close()
