"""Authentication from Settings: the verifier of incoming tokens, the development secret."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
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


@dataclass(frozen=True)
class SigningKeys:
    """The HS256 secret a process signs and verifies tokens with, resolved once where the
    process is put together (the command line): AUTH_JWT_SECRET, or for ``dev`` and
    ``token`` the development secret under ./var. ``secret`` None: there is none (an
    identity provider's keys only, or nothing configured)."""

    secret: str | None = None

    @classmethod
    def configured(cls, settings: Settings) -> SigningKeys:
        """AUTH_JWT_SECRET alone, never the development secret."""
        configured = settings.auth_jwt_secret
        return cls(None if configured is None else configured.get_secret_value())


def authenticator_for(settings: Settings, keys: SigningKeys) -> Authenticator:
    """The API's token verifier: ``keys``' secret and AUTH_JWKS_URL's keys.

    Raises AuthNotConfiguredError when neither is there and AUTH_DISABLED is not set.
    Logs a WARNING every time authentication is disabled.
    """
    if settings.auth_disabled:
        logger.warning(
            "AUTH_DISABLED=true: every endpoint is open to anyone who can reach it "
            "(local experiments only)"
        )
        return Authenticator(disabled=True)
    secret = keys.secret
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


def developer_token(settings: Settings, keys: SigningKeys, *, ttl_seconds: float) -> str | None:
    """A token for subject "developer" with every scope, valid ``ttl_seconds``, signed
    with ``keys``' secret; None when there is none (only an identity provider)."""
    if keys.secret is None:
        return None
    return issue_token(
        keys.secret,
        SCOPES,
        subject="developer",
        ttl_seconds=ttl_seconds,
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
    )
