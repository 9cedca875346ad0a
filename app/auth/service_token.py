"""Ordering's own access token for catalog's integration API (scope ``catalog:integration``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from urllib.parse import quote_plus

import httpx

from app.auth.config import AuthNotConfiguredError, SigningKeys
from app.auth.scopes import CATALOG_INTEGRATION
from app.auth.tokens import issue_token
from app.core.settings import Settings

# A token is replaced this long before it expires, so none expires in flight.
RENEW_BEFORE_SECONDS = 60.0
# The lifetime of a token ordering signs itself (AUTH_JWT_SECRET).
SIGNED_TTL_SECONDS = 300.0

TokenSource = Callable[[], Awaitable[tuple[str, float]]]  # (token, expires at, epoch s)


class ServiceTokenError(httpx.HTTPError):
    """No token could be obtained (the identity provider is down or refuses the client)."""


class ServiceCredentials(httpx.Auth):
    """An httpx auth flow adding ``Authorization: Bearer …`` from ``source``, reusing a
    token until shortly before it expires; after a 401 it fetches a new one and retries
    once (the provider may have rotated keys or revoked the token)."""

    def __init__(self, source: TokenSource) -> None:
        self._source = source
        self._token: tuple[str, float] | None = None
        self._lock = asyncio.Lock()

    async def _current(self, *, renew: bool = False) -> str:
        async with self._lock:
            if renew or self._token is None or self._token[1] - time.time() < RENEW_BEFORE_SECONDS:
                try:
                    self._token = await self._source()
                except ServiceTokenError:
                    raise
                except Exception as exc:  # authlib's OAuthError, httpx errors, bad JSON
                    raise ServiceTokenError(f"cannot obtain a token: {exc!r}"[:300]) from exc
            return self._token[0]

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = f"Bearer {await self._current()}"
        response = yield request
        if response.status_code == httpx.codes.UNAUTHORIZED:
            request.headers["Authorization"] = f"Bearer {await self._current(renew=True)}"
            yield request


def signed_tokens(secret: str, *, issuer: str | None, audience: str | None) -> TokenSource:
    """Tokens ordering signs itself with the shared secret."""

    async def sign() -> tuple[str, float]:
        token = issue_token(
            secret,
            [CATALOG_INTEGRATION],
            subject="ordering",
            ttl_seconds=SIGNED_TTL_SECONDS,
            issuer=issuer,
            audience=audience,
        )
        return token, time.time() + SIGNED_TTL_SECONDS

    return sign


def client_credentials(
    token_url: str, client_id: str, client_secret: str, *, timeout: float
) -> TokenSource:
    """Tokens from the identity provider by the client credentials grant (RFC 6749 §4.4),
    the client authenticated with HTTP Basic (``client_secret_basic``, §2.3.1).

    One form POST: Authlib 1.9's httpx client is deprecated in favour of a second HTTP
    library, which this does not warrant.
    """

    async def fetch() -> tuple[str, float]:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.post(
                token_url,
                data={"grant_type": "client_credentials", "scope": CATALOG_INTEGRATION},
                auth=(quote_plus(client_id), quote_plus(client_secret)),
                headers={"Accept": "application/json"},
            )
        if response.status_code != httpx.codes.OK:
            raise ServiceTokenError(
                f"the token endpoint answered {response.status_code}: {response.text[:200]}"
            )
        answer = response.json()
        expires_in = float(answer.get("expires_in", SIGNED_TTL_SECONDS))
        return str(answer["access_token"]), time.time() + expires_in

    return fetch


def ordering_credentials(settings: Settings, keys: SigningKeys) -> httpx.Auth | None:
    """How ordering authenticates to catalog: None when authentication is disabled;
    client credentials when AUTH_TOKEN_URL is set; else tokens signed with ``keys``' secret.

    Raises AuthNotConfiguredError when none of these is possible (only a JWKS URL).
    """
    if settings.auth_disabled:
        return None
    if settings.auth_token_url and settings.auth_client_id and settings.auth_client_secret:
        return ServiceCredentials(
            client_credentials(
                settings.auth_token_url,
                settings.auth_client_id,
                settings.auth_client_secret.get_secret_value(),
                timeout=settings.catalog_api_timeout_seconds,
            )
        )
    secret = keys.secret
    if secret is None:
        raise AuthNotConfiguredError(
            "ordering needs a token for catalog's integration API: set AUTH_TOKEN_URL, "
            "AUTH_CLIENT_ID and AUTH_CLIENT_SECRET (client credentials) or AUTH_JWT_SECRET"
        )
    return ServiceCredentials(
        signed_tokens(secret, issuer=settings.auth_issuer, audience=settings.auth_audience)
    )
