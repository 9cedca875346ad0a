"""The one place deciding which secret a process signs and verifies tokens with."""

from __future__ import annotations

from app.auth.config import SigningKeys, development_secret
from app.core.settings import Settings


def signing_keys(settings: Settings, *, development: bool) -> SigningKeys:
    """AUTH_JWT_SECRET; or, for ``development`` (``dev`` and ``token`` only) without
    AUTH_JWKS_URL, the development secret under ./var, created on first use.

    Raises AuthNotConfiguredError when the development secret's file holds no usable
    secret.
    """
    keys = SigningKeys.configured(settings)
    if keys.secret is None and development and settings.auth_jwks_url is None:
        return SigningKeys(development_secret())
    return keys
