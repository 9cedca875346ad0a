"""A relay's or consumer's own small HTTP server: ``/health/live``, ``/health/ready`` and
``/metrics`` (Prometheus' text format), on its own port, beside the work in one event loop.

Ready means: the process's database answers and no part of the process reports a problem
(a relay backing off from the broker, a consumer not consuming).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cloudcrm_outbox.errors import FatalError
from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.observability.health import ProcessHealth
from cloudcrm_outbox.observability.redaction import mask_secrets

__all__ = ["ProbesUnavailableError", "ProcessHealth", "probe_app", "probes_served"]

logger = library_logger(__name__)

PROBE_TIMEOUT_SECONDS = 3.0
Refresh = Callable[[], Awaitable[None]]


async def _database_problem(engine: AsyncEngine) -> str | None:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to answer is "not ready", in its own words
        return f"the database does not answer: {exc!r:.200}"
    return None


def probe_app(health: ProcessHealth, engine: AsyncEngine, refresh: Refresh | None) -> Starlette:
    """The three endpoints; ``refresh`` updates the gauges read at scrape time."""

    async def live(_: Request) -> Response:
        return JSONResponse({"status": "live"})

    async def ready(_: Request) -> Response:
        reasons = health.problems
        problem = await _database_problem(engine)
        if problem is not None:
            reasons.insert(0, problem)
        if reasons:
            masked = [mask_secrets(reason) for reason in reasons]
            return JSONResponse({"status": "unavailable", "reasons": masked}, status_code=503)
        return JSONResponse({"status": "ready", "reasons": []})

    async def metrics(_: Request) -> Response:
        if refresh is not None:
            try:
                await refresh()
            except Exception:  # the counters are still worth reading
                logger.warning("metrics: the gauges could not be read", exc_info=True)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/health/live", live),
            Route("/health/ready", ready),
            Route("/metrics", metrics),
        ]
    )


class _Server(uvicorn.Server):
    """uvicorn without its signal handling: the process's own handlers stop it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def start_probes(
    app: Starlette, *, host: str, port: int, stop: asyncio.Event
) -> asyncio.Task[None]:
    """Serve ``app`` as a task; if it cannot (the port is taken), ``stop`` is set and the
    task holds the FatalError for the process to raise (``raise_if_failed``)."""
    task = asyncio.create_task(serve_probes(app, host=host, port=port), name="probes")

    def failed(done: asyncio.Task[None]) -> None:
        if not done.cancelled() and done.exception() is not None:
            stop.set()

    task.add_done_callback(failed)
    return task


@contextlib.asynccontextmanager
async def probes_served(
    health: ProcessHealth,
    engine: AsyncEngine,
    refresh: Refresh | None,
    *,
    host: str,
    port: int | None,
    stop: asyncio.Event,
) -> AsyncIterator[None]:
    """The probes for the block's duration (none when ``port`` is None), from the start:
    live at once, not ready while ``health`` says why. Raises FatalError at the end when
    they could not be served."""
    task = None
    if port is not None:
        task = start_probes(probe_app(health, engine, refresh), host=host, port=port, stop=stop)
    try:
        yield
    finally:
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    raise_if_failed(task)


class ProbesUnavailableError(Exception):
    """The probes could not be served (their port is taken)."""


def raise_if_failed(task: asyncio.Task[None] | None) -> None:
    """When the probes task failed: a FatalError (one line, exit 1) saying why."""
    if task is None or not task.done() or task.cancelled():
        return
    failure = task.exception()
    if failure is not None:
        raise FatalError(f"{failure} (see the line above)")


async def serve_probes(app: Starlette, *, host: str, port: int) -> None:
    """Serve ``app`` until cancelled (uvicorn, in the caller's event loop)."""
    server = _Server(
        uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="off",
                       access_log=False)
    )  # fmt: skip
    logger.info("probes and metrics served", extra={"host": host, "port": port})
    try:
        await server.serve()
    except SystemExit:  # uvicorn exits on a port it cannot bind, having said why
        # Not a FatalError here: asyncio does not keep a SystemExit inside a task.
        raise ProbesUnavailableError(f"cannot serve probes on {host}:{port}") from None
    finally:
        server.should_exit = True
