"""Authentication from Settings: the verifier of incoming tokens, the development secret."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from app.auth.jwks import JwksKeys
from app.auth.scopes import SCOPES
from app.auth.tokens import Authenticator, issue_token
from app.core.settings import Settings

logger = logging.getLogger(__name__)

# Where `dev` (and `token`, beside it) keep the development signing secret: under ./var,
# with the embedded databases, never in the repository.
DEV_SECRET_PATH = Path("var") / "dev-jwt-secret"


class AuthNotConfiguredError(Exception):
    """No way to verify tokens was configured, and authentication was not turned off."""


def authenticator_for(settings: Settings, *, development: bool = False) -> Authenticator:
    """The API's token verifier. ``development``: without AUTH_JWT_SECRET or AUTH_JWKS_URL,
    use (creating it) the development secret under ./var — ``dev`` only.

    Raises AuthNotConfiguredError when nothing is configured and AUTH_DISABLED is not set.
    Logs a WARNING every time authentication is disabled.
    """
    if settings.auth_disabled:
        logger.warning(
            "AUTH_DISABLED=true: every endpoint is open to anyone who can reach it "
            "(local experiments only)"
        )
        return Authenticator(disabled=True)
    secret = signing_secret(settings, development=development)
    jwks = JwksKeys(settings.auth_jwks_url) if settings.auth_jwks_url else None
    if secret is None and jwks is None:
        raise AuthNotConfiguredError(
            "no way to verify tokens: set AUTH_JWKS_URL, AUTH_ISSUER and AUTH_AUDIENCE "
            "(an identity provider) or AUTH_JWT_SECRET (development, HS256); "
            "AUTH_DISABLED=true turns authentication off"
        )
    return Authenticator(
        secret=secret, jwks=jwks, issuer=settings.auth_issuer, audience=settings.auth_audience
    )


def signing_secret(settings: Settings, *, development: bool) -> str | None:
    """AUTH_JWT_SECRET; or, for ``development`` without a JWKS URL, the development secret."""
    if settings.auth_jwt_secret is not None:
        return settings.auth_jwt_secret.get_secret_value()
    if development and settings.auth_jwks_url is None:
        return development_secret()
    return None


def development_secret(path: Path = DEV_SECRET_PATH) -> str:
    """The secret in ``path``, created (32 random bytes, mode 0600) on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text(encoding="ascii").strip()
        if len(value) >= 32:
            return value
        raise AuthNotConfiguredError(
            f"{path} holds no usable secret: delete it to have a new one made"
        ) from None
    value = secrets.token_urlsafe(32)
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(value + "\n")
    logger.info("development signing secret created", extra={"path": str(path)})
    return value


def developer_token(settings: Settings, *, development: bool, ttl_seconds: float) -> str | None:
    """A token for subject "developer" with every scope, valid ``ttl_seconds``, signed
    with ``signing_secret``; None when there is none (only an identity provider)."""
    secret = signing_secret(settings, development=development)
    if secret is None:
        return None
    return issue_token(
        secret,
        SCOPES,
        subject="developer",
        ttl_seconds=ttl_seconds,
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
    )
