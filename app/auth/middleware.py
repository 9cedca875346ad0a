"""Authentication before anything else reads the request: a body that is not JSON, or one
over the size limit, from a client without a valid token is a 401, not a 422 or 413."""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth.dependencies import authenticate
from app.auth.tokens import Authenticator

# The APIs: everything under these wants a bearer token. The rest (probes, metrics, the
# documentation and its assets, the web pages with their own sign-in) does not.
PROTECTED_PREFIXES = ("/api/", "/integration-api/", "/admin/api/")


class BearerAuthMiddleware:
    """Checks the bearer token of every HTTP request to the APIs (PROTECTED_PREFIXES;
    401/503 as ``authenticate`` says) and leaves the principal in the request's state,
    where each route's ``require(scope)`` checks its scope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIXES):
            await self.app(scope, receive, send)
            return
        authenticator: Authenticator = scope["app"].state.authenticator
        try:
            principal = await authenticate(authenticator, bearer_token(scope))
        except HTTPException as refusal:
            response = JSONResponse(
                {"detail": refusal.detail}, status_code=refusal.status_code, headers=refusal.headers
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def bearer_token(scope: Scope) -> str | None:
    """The token of the first ``Authorization: Bearer …`` header (the scheme is
    case-insensitive, RFC 9110 §11.1), or None."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None
