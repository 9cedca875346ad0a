"""HTTP plumbing shared by both services: body limit, error mapping, the session boundary."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.config import SigningKeys, authenticator_for
from app.auth.middleware import BearerAuthMiddleware
from app.core.database import tcp_keepalives
from app.core.settings import Settings
from app.core.telemetry import instrument_api
from app.http.health import router as health_router
from app.http.metrics import install_metrics
from app.http.request_deadline import RequestDeadlineMiddleware
from cloudcrm_outbox.errors import BrokerUnavailableError
from cloudcrm_outbox.runtime.startup import wait_for_database
from cloudcrm_outbox.storage.engine import make_engine, make_sessionmaker

logger = logging.getLogger(__name__)


class BodySizeLimitMiddleware:
    """Answers 413 for bodies over ``max_bytes``, whether declared or streamed (chunked).

    The body is read (at most ``max_bytes``) before the app runs and then replayed: an
    error raised from inside the app's body parsing would be turned into a 400 by FastAPI.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._reject(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        # An app may answer its own paths otherwise (the pages: a page in words, for a
        # browser's form): ``app.state.body_too_large(scope, max_bytes)``, a Response or None.
        app = scope.get("app")
        answer_otherwise: BodyTooLarge | None = getattr(
            getattr(app, "state", None), "body_too_large", None
        )
        response = answer_otherwise(scope, self.max_bytes) if answer_otherwise else None
        if response is None:
            detail = f"request body larger than {self.max_bytes} bytes"
            response = JSONResponse({"detail": detail}, status_code=413)
        await response(scope, receive, send)


# What an app may set as ``app.state.body_too_large`` (BodySizeLimitMiddleware).
BodyTooLarge = Callable[[Scope, int], Response | None]


# The documentation pages load only this site's assets: nothing from a CDN, ever (ReDoc's
# "powered by" logo would otherwise be fetched from cdn.redoc.ly). Swagger UI's and
# ReDoc's pages start them with an inline script and style; ReDoc searches in a worker.
DOCS_POLICY = (
    b"default-src 'self'; img-src 'self' data:; script-src 'self' 'unsafe-inline'; "
    b"style-src 'self' 'unsafe-inline'; worker-src 'self' blob:; connect-src 'self'"
)
DOCS_PATHS = frozenset({"/docs", "/redoc"})


class DocsPolicyMiddleware:
    """Adds DOCS_POLICY as the Content-Security-Policy of the documentation pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in DOCS_PATHS:
            await self.app(scope, receive, send)
            return

        async def with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"content-security-policy", DOCS_POLICY),
                ]
            await send(message)

        await self.app(scope, receive, with_policy)


async def _database_error(_request: Request, exc: Exception) -> JSONResponse:
    # The transaction was rolled back, or its fate is unknown (the connection died at
    # COMMIT: it may have committed); either way the client must retry, so this is
    # "unavailable", not "bad input". A retry is safe only with the request's
    # Idempotency-Key (app.http.idempotency): without one, a POST that did commit is done twice.
    logger.error("database error", extra={"error": repr(exc)[:500]})
    return JSONResponse(
        {
            "detail": "the database could not complete the request, and it may or may not "
            "have been done; retry later with the same Idempotency-Key header (a POST "
            "retried without one may be done twice)"
        },
        status_code=503,
    )


# A 64 KiB body of bad array items or unknown fields holds tens of thousands of errors;
# the answer lists the first ones and counts them all.
MAX_LISTED_ERRORS = 20


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """422: ``{"detail": [{"loc", "msg", "type"}, …], "errorCount": N}``, the first
    MAX_LISTED_ERRORS errors of the N found."""
    # FastAPI's default echoes each offending input back. That input may be NaN (which
    # JSON cannot encode, turning a 422 into a 500) or a 60 KiB string, so only the
    # location, the reason and its code are returned.
    assert isinstance(exc, RequestValidationError)
    # A path parameter that the route and its dependencies both declare is validated once
    # per declaration: the same error, reported once.
    found: list[dict[str, Any]] = []
    seen: set[tuple[object, ...]] = set()
    for error in exc.errors():
        shown = {
            "loc": list(error.get("loc", ())),
            "msg": error.get("msg", ""),
            "type": error.get("type"),
        }
        identity = (tuple(shown["loc"]), shown["msg"], shown["type"])
        if identity not in seen:
            seen.add(identity)
            found.append(shown)
    return JSONResponse(
        {"detail": found[:MAX_LISTED_ERRORS], "errorCount": len(found)}, status_code=422
    )


async def _broker_error(_request: Request, exc: Exception) -> JSONResponse:
    # The admin API's dead letters: the broker is down or refused us; nothing was lost
    # (what was done before it failed is logged), and a retry is safe.
    if "ACCESS_REFUSED" in str(exc):
        # A retry cannot help: this process's broker account may not do that (a
        # least-privilege API account lists and purges; only the admin account replays).
        detail = (
            "RabbitMQ refused this process's account; use `python -m app dlq …` with the "
            f"admin account, or grant the permission (docs/secure.md): {exc}"
        )
        return JSONResponse(status_code=502, content={"detail": detail})
    return JSONResponse(
        status_code=503, content={"detail": f"the broker is unavailable; retry: {exc}"}
    )


# The admin API's dead-letter routes work on the broker alone (app/admin/router.py).
BROKER_BOUND = re.compile(r"^/admin/api/[^/]+/dlq(/|$)")


def install_common(
    app: FastAPI, *, max_body_bytes: int, answer_timeout_seconds: float | None = None
) -> None:
    """Add the body limit, the request deadline (``answer_timeout_seconds``; none when
    None) and the error mapping every service shares."""
    if answer_timeout_seconds is not None:
        # Inside the body limit: reading a slow client's body is not the database's time.
        app.add_middleware(
            RequestDeadlineMiddleware, seconds=answer_timeout_seconds, exempt=BROKER_BOUND
        )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_body_bytes)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(BrokerUnavailableError, _broker_error)


def unit_of_work(service: str) -> Callable[[Request], AsyncIterator[AsyncSession]]:
    """The request's transaction on ``service``'s database, as a FastAPI dependency.

    Commits if the endpoint returns, rolls back if it raises; the only place the HTTP
    side commits (use cases never do). Used with ``scope="function"`` so the commit finishes
    before the response is sent: a 201 is never answered for a transaction that then
    fails to commit.
    """

    async def transaction(request: Request) -> AsyncIterator[AsyncSession]:
        factory = session_factory(service)(request)
        async with factory() as session, session.begin():
            yield session

    return transaction


def session_factory(service: str) -> Callable[[Request], async_sessionmaker[AsyncSession]]:
    """``service``'s session factory, for reads that must not hold a connection for long."""

    def sessions(request: Request) -> async_sessionmaker[AsyncSession]:
        factories: dict[str, async_sessionmaker[AsyncSession]] = request.app.state.sessionmakers
        return factories[service]

    return sessions


ResourceFactory = Callable[[FastAPI, Settings], AbstractAsyncContextManager[None]]


def build_app(
    *,
    title: str,
    settings: Settings,
    routers: Sequence[APIRouter],
    resources: Sequence[ResourceFactory],
    keys: SigningKeys,
) -> FastAPI:
    """A FastAPI app serving ``routers`` with each resource opened for its lifetime, every
    route behind the token verifier from ``settings`` and ``keys``.

    Raises AuthNotConfiguredError when no token verification is configured.
    """
    authenticator = authenticator_for(settings, keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.sessionmakers = {}
        app.state.engines = {}
        app.state.broker = None
        async with AsyncExitStack() as stack:
            for resource in resources:
                await stack.enter_async_context(resource(app, settings))
            yield

    # Swagger UI and ReDoc from fastapi-offline's assets: /docs renders with no internet.
    app = FastAPIOffline(title=title, lifespan=lifespan)
    app.state.authenticator = authenticator
    install_common(
        app,
        max_body_bytes=settings.max_request_body_bytes,
        answer_timeout_seconds=settings.database_answer_timeout_seconds,
    )
    # Added after the body limit, so it runs first: no body is read before the token.
    app.add_middleware(BearerAuthMiddleware)
    app.add_middleware(DocsPolicyMiddleware)
    for router in [*routers, health_router]:
        app.include_router(router)
    install_metrics(app)
    instrument_api(app)
    return app


@asynccontextmanager
async def database(app: FastAPI, settings: Settings, service: str) -> AsyncIterator[None]:
    """Open ``service``'s engine for the app's lifetime and register its sessions."""
    await wait_for_database(settings.database_url(service), within=settings.startup_timeout_seconds)
    engine = make_engine(
        settings.database_url(service),
        pool_size=settings.database_pool_size,
        keepalives=tcp_keepalives(settings),
    )
    app.state.sessionmakers[service] = make_sessionmaker(engine)
    app.state.engines[service] = engine
    try:
        yield
    finally:
        await engine.dispose()
