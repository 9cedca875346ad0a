"""Who is signed in: their access token, kept in an HttpOnly, SameSite=Strict cookie (the
browser sends it to this site's own requests only, so a form on another site cannot act
with it)."""

from __future__ import annotations

from fastapi import Request, Response

from app.auth.config import developer_token
from app.settings import Settings

COOKIE = "cloudcrm_token"
SESSION_SECONDS = 8 * 3600


class SignInRequiredError(Exception):
    """The page needs a signed-in user (or their token was refused): go to sign-in."""


def token_of(request: Request) -> str:
    """The signed-in user's token. Raises SignInRequiredError."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise SignInRequiredError
    return token


def development_sign_in(settings: Settings, *, development: bool) -> str | None:
    """A token with every scope signed with the development secret, when there is one
    (``dev``, or AUTH_JWT_SECRET); None with only an identity provider."""
    return developer_token(settings, development=development, ttl_seconds=SESSION_SECONDS)


def keep(response: Response, token: str, *, secure: bool, seconds: int = SESSION_SECONDS) -> None:
    """Set the session cookie for ``seconds`` (``secure``: only over HTTPS)."""
    response.set_cookie(
        COOKIE,
        token,
        max_age=seconds,
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def forget(response: Response) -> None:
    """Sign out."""
    response.delete_cookie(COOKIE)
