"""A request whose database stopped answering is answered 503, never left hanging."""

from __future__ import annotations

import asyncio
import logging
import re

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

DETAIL = (
    "the database did not answer in time, and the request may or may not have been done; "
    "retry later with the same Idempotency-Key header (a POST retried without one may be "
    "done twice)"
)


class RequestDeadlineMiddleware:
    """Answers 503 to a request still running ``seconds`` after it came, and cancels it.

    A connection gone dark (a failover, a dropped NAT mapping, a proxy whose server is
    gone) never answers, and a request waiting on it would hang for ever (sqlx PR #4355).
    The answer does not wait for the cancelled request to end: cancelling its database
    call makes psycopg ask the server to cancel the query, and a dark connection answers
    that no better (recent psycopg gives up and closes it after some seconds; SQLAlchemy
    then discards it). The request's transaction is rolled back, or its COMMIT's fate is
    unknown: either way the client retries, as after any other 503 (with its
    Idempotency-Key). A response already started is left to finish.
    """

    def __init__(
        self, app: ASGIApp, *, seconds: float, exempt: re.Pattern[str] | None = None
    ) -> None:
        """``exempt``: paths whose work is not the database's (the admin API's dead
        letters: the broker's, bounded by its own timeouts, and a replay of many dead
        letters may rightly take longer than the database's deadline)."""
        self.app = app
        self.seconds = seconds
        self.exempt = exempt
        self._abandoned: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exempt and self.exempt.match(scope["path"])):
            await self.app(scope, receive, send)
            return
        started = answered = False

        async def sending(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the 503 went out: whatever the cancelled request still says
            started = started or message["type"] == "http.response.start"
            await send(message)

        request = asyncio.ensure_future(self.app(scope, receive, sending))
        try:
            await asyncio.wait({request}, timeout=self.seconds)
        except BaseException:
            request.cancel()  # this request was cancelled itself (the server stopping)
            raise
        if request.done() or started:
            await request
            return
        answered = True
        request.cancel()
        self._abandoned.add(request)
        request.add_done_callback(self._forget)
        logger.error(
            "request cancelled: the database did not answer in time",
            extra={"path": str(scope.get("path", ""))[:200], "timeout_s": self.seconds},
        )
        await JSONResponse({"detail": DETAIL}, status_code=503)(scope, receive, send)

    def _forget(self, request: asyncio.Task[None]) -> None:
        self._abandoned.discard(request)
        if not request.cancelled():
            request.exception()  # retrieved: it failed after its 503, as expected
