"""The life of one relay or consumer process, whatever its role: it stops on SIGTERM or
SIGINT, serves its probes from the start, waits for its database and broker, runs the
role's loop, and disposes of its engine on the way out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox.brokers.base import Broker
from cloudcrm_outbox.observability.health import ProcessHealth
from cloudcrm_outbox.runtime.process import stop_on_signals
from cloudcrm_outbox.runtime.startup import started

# A role's work once its dependencies are up: returns when ``stop`` is set, raises
# FatalError when it cannot go on. ``health`` is the process's readiness.
RoleLoop = Callable[[asyncio.Event, ProcessHealth], Awaitable[None]]


class ProcessSettings(Protocol):
    """What the skeleton reads of a role's config (RelayProcessConfig, ConsumerProcessConfig):
    the start-up wait's bound (seconds) and where the probes listen (no port: none)."""

    @property
    def startup_timeout_seconds(self) -> float: ...

    @property
    def probe_host(self) -> str: ...

    @property
    def probe_port(self) -> int | None: ...


async def run_process(
    engine: AsyncEngine,
    loop: RoleLoop,
    *,
    settings: ProcessSettings,
    broker: Broker,
    database_url: str,
    refresh: Callable[[], Awaitable[None]] | None = None,
    checks: Sequence[Callable[[], str | None]] = (),
    check_database: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run ``loop(stop, health)`` as a process until SIGTERM or SIGINT sets ``stop``.

    ``engine`` (the database at ``database_url``) is the process's from here on: disposed
    on the way out, whatever happens. ``checks``: readiness checks in place before the
    probes answer (a check returns why the process is not ready, or None); ``refresh``
    runs before each /metrics answer. The loop starts once the database and ``broker``
    answer and ``check_database`` (the caller's schema check) passed, within
    ``settings.startup_timeout_seconds``; a stop during that wait returns without running
    it. Raises DependencyUnavailableError when they never answer, FatalError when the
    probes could not be served, and whatever the loop raises."""
    try:
        stop = stop_on_signals()
        health = ProcessHealth()
        for check in checks:
            health.add_check(check)
        # The probes' web server (Starlette, uvicorn) only for a process: not for in_process.
        from cloudcrm_outbox.observability.probes import probes_served

        probes = probes_served(
            health, engine, refresh, host=settings.probe_host, port=settings.probe_port, stop=stop
        )
        async with probes:
            within = settings.startup_timeout_seconds
            up = started(stop, health, database_url, broker, within=within,
                         check_database=check_database)  # fmt: skip
            if not await up:
                return
            await loop(stop, health)
    finally:
        await engine.dispose()
