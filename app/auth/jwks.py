"""Signing keys published by an identity provider as a JSON Web Key Set (RFC 7517)."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import jwt

logger = logging.getLogger(__name__)


class KeysUnavailableError(Exception):
    """The key set could not be fetched and none is cached: tokens cannot be checked."""


class UnknownKeyError(Exception):
    """The token names a key (``kid``) the provider does not publish, even after a refresh."""


class JwksKeys:
    """The keys at ``url``, cached for ``max_age_seconds`` (seconds).

    A token signed with a key not in the cache (a rotation) triggers a fetch; such fetches
    happen at most once per ``min_refresh_seconds``, so that tokens naming made-up keys
    cannot make every request call the provider. When a refresh fails, the keys already
    held stay in use.
    """

    def __init__(
        self,
        url: str,
        *,
        max_age_seconds: float = 300.0,
        min_refresh_seconds: float = 10.0,
        timeout_seconds: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self._max_age = max_age_seconds
        self._min_refresh = min_refresh_seconds
        self._timeout = timeout_seconds
        self._transport = transport
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._forced_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """The key with id ``kid`` (None: the set's only key).

        Raises UnknownKeyError when no such key is published, KeysUnavailableError when
        the set cannot be fetched and none is cached.
        """
        if self._stale():
            await self._refresh(force=False)
        found = self._find(kid)
        if found is None:
            await self._refresh(force=True)
            found = self._find(kid)
        if found is None:
            raise UnknownKeyError(f"no key {kid!r} in the identity provider's key set")
        return found

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _stale(self) -> bool:
        return self._fetched_at is None or time.monotonic() - self._fetched_at > self._max_age

    async def _refresh(self, *, force: bool) -> None:
        started = time.monotonic()
        async with self._lock:
            if self._fetched_at is not None and self._fetched_at >= started:
                return  # another request fetched while this one waited
            if force:
                if self._forced_at is not None and started - self._forced_at < self._min_refresh:
                    return
                self._forced_at = started
            try:
                self._keys = await self._fetch()
            except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
                if not self._keys:
                    raise KeysUnavailableError(
                        f"cannot fetch the signing keys from {self.url}: {exc!r}"[:300]
                    ) from exc
                logger.warning(
                    "cannot refresh the signing keys; using the ones held",
                    extra={"jwks_url": self.url, "error": repr(exc)[:300]},
                )
            self._fetched_at = time.monotonic()

    async def _fetch(self) -> dict[str | None, jwt.PyJWK]:
        async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as client:
            response = await client.get(self.url)
            response.raise_for_status()
            document = response.json()
        if not isinstance(document, dict):
            raise ValueError("the key set is not a JSON object")
        # PyJWKSet skips keys of types it cannot use and raises when none is left.
        keys = jwt.PyJWKSet.from_dict(document).keys
        logger.info("signing keys fetched", extra={"jwks_url": self.url, "keys": len(keys)})
        return {key.key_id: key for key in keys}
