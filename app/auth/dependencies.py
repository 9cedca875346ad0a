"""FastAPI's side of authentication: ``require(scope)`` on a route, errors per RFC 6750."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from app.auth.tokens import Authenticator, InvalidTokenError, Principal, VerifierUnavailableError
from app.core.schemas import ErrorBody

# The OpenAPI security scheme: Swagger's "Authorize" takes a pasted token.
bearer = HTTPBearer(
    scheme_name="bearerAuth",
    bearerFormat="JWT",
    description="an access token (`python -m app token --scope …` in development)",
    auto_error=False,
)
REALM = "cloudcrm"


def _challenge(error: str | None = None, **params: str) -> dict[str, str]:
    # RFC 6750 §3: the WWW-Authenticate header of a refused bearer token. A quoted-string
    # holds no raw quote or backslash (RFC 9110 §5.6.4), and a header only ASCII.
    def quoted(value: str) -> str:
        printable = "".join(c if " " <= c <= "~" else "?" for c in value)
        return printable.replace("\\", "/").replace('"', "'")

    fields = {"realm": REALM, **({"error": error} if error else {}), **params}
    listed = ", ".join(f'{name}="{quoted(value)}"' for name, value in fields.items())
    return {"WWW-Authenticate": f"Bearer {listed}"}


async def authenticate(request_authenticator: Authenticator, token: str | None) -> Principal:
    """The principal of a request bearing ``token`` (None: no bearer token sent).

    Raises HTTPException: 401 (with ``WWW-Authenticate``) without a valid token, 503 when
    the identity provider's keys cannot be fetched.
    """
    if request_authenticator.disabled:
        return await request_authenticator.authenticate("")
    if token is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing bearer token (Authorization: Bearer <token>)",
            headers=_challenge(),
        )
    try:
        return await request_authenticator.authenticate(token)
    except InvalidTokenError as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=str(exc),
            headers=_challenge("invalid_token", error_description=str(exc)),
        ) from exc
    except VerifierUnavailableError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="cannot check the token now: the identity provider's keys are "
            "unavailable; retry",
        ) from exc


async def authorize(
    security_scopes: SecurityScopes,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The request's principal, holding every scope the route requires: the one
    BearerAuthMiddleware found, else from the request's token.

    401 (with ``WWW-Authenticate``) without a valid bearer token, 403 without a scope,
    503 when the identity provider's keys cannot be fetched.
    """
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        token = credentials.credentials if credentials is not None else None
        principal = await authenticate(request.app.state.authenticator, token)
        request.state.principal = principal
    missing = [scope for scope in security_scopes.scopes if scope not in principal.scopes]
    if missing:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"the token lacks the scope {' '.join(missing)}",
            headers=_challenge("insufficient_scope", scope=" ".join(security_scopes.scopes)),
        )
    return principal


def require(scope: str) -> Any:
    """A route dependency: the request's token must hold ``scope``."""
    return Security(authorize, scopes=[scope])


AUTH_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "missing, invalid or expired bearer token"},
    403: {"model": ErrorBody, "description": "the token lacks the route's scope"},
}
