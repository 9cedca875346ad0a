"""FastAPI's side of authentication: ``require(scope)`` on a route, errors per RFC 6750."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from app.auth.tokens import Authenticator, InvalidTokenError, Principal, VerifierUnavailableError
from app.schemas import ErrorBody

# The OpenAPI security scheme: Swagger's "Authorize" takes a pasted token.
bearer = HTTPBearer(
    scheme_name="bearerAuth",
    bearerFormat="JWT",
    description="an access token (`python -m app token --scope …` in development)",
    auto_error=False,
)
REALM = "cloudcrm"


def _challenge(error: str | None = None, **params: str) -> dict[str, str]:
    # RFC 6750 §3: the WWW-Authenticate header of a refused bearer token.
    fields = {"realm": REALM, **({"error": error} if error else {}), **params}
    # A quoted-string may not hold a raw quote or backslash (RFC 9110 §5.6.4).
    quoted = ", ".join(
        f'{name}="{value.replace(chr(92), "/").replace(chr(34), chr(39))}"'
        for name, value in fields.items()
    )
    return {"WWW-Authenticate": f"Bearer {quoted}"}


async def authorize(
    security_scopes: SecurityScopes,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The request's principal, holding every scope the route requires.

    401 (with ``WWW-Authenticate``) without a valid bearer token, 403 without a scope,
    503 when the identity provider's keys cannot be fetched.
    """
    authenticator: Authenticator = request.app.state.authenticator
    if authenticator.disabled:
        principal = await authenticator.authenticate("")
    elif credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing bearer token (Authorization: Bearer <token>)",
            headers=_challenge(),
        )
    else:
        try:
            principal = await authenticator.authenticate(credentials.credentials)
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
    missing = [scope for scope in security_scopes.scopes if scope not in principal.scopes]
    if missing:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"the token lacks the scope {' '.join(missing)}",
            headers=_challenge("insufficient_scope", scope=" ".join(security_scopes.scopes)),
        )
    request.state.principal = principal
    return principal


def require(scope: str) -> Any:
    """A route dependency: the request's token must hold ``scope``."""
    return Security(authorize, scopes=[scope])


AUTH_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "missing, invalid or expired bearer token"},
    403: {"model": ErrorBody, "description": "the token lacks the route's scope"},
}
