"""Signing keys published by an identity provider as a JSON Web Key Set (RFC 7517)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx
import jwt

logger = logging.getLogger(__name__)

# A key set holds a handful of keys (a few KiB); a larger answer is refused unread.
MAX_KEY_SET_BYTES = 256 * 1024


class KeysUnavailableError(Exception):
    """The key set could not be fetched and none is cached: tokens cannot be checked."""


class UnknownKeyError(Exception):
    """The token names a key (``kid``) the provider does not publish, even after a refresh."""


class JwksKeys:
    """The keys at ``url``, cached for ``max_age_seconds`` (seconds).

    A token signed with a key not in the cache (a rotation) triggers a fetch. Such fetches,
    and fetches after a failure, happen at most once per ``min_refresh_seconds``, so that
    tokens naming made-up keys, or a provider that is down, cannot make every request call
    the provider. When a refresh fails, the keys already held stay in use.
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
        self._fetched_at: float | None = None  # the last successful fetch
        self._attempted_at: float | None = None  # the last fetch, whatever its end
        self._problem: str | None = None  # why the last fetch failed
        self._forced_at: float | None = None  # the last fetch for an unknown kid
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """The key with id ``kid`` (None: the set's only key).

        Raises UnknownKeyError when no such key is published, KeysUnavailableError when
        the set cannot be fetched and none is held.
        """
        if self._stale() and not (self._keys and self._lock.locked()):
            # With keys held, a request does not wait for a refresh already under way.
            await self._refresh()
        found = self._find(kid)
        if found is None and self._keys:
            await self._refresh(unknown_kid=True)
            found = self._find(kid)
        if found is not None:
            return found
        if not self._keys:
            raise KeysUnavailableError(self._problem or "the identity provider published no key")
        raise UnknownKeyError(f"no key {kid!r} in the identity provider's key set")

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _stale(self) -> bool:
        return self._fetched_at is None or time.monotonic() - self._fetched_at > self._max_age

    async def _refresh(self, *, unknown_kid: bool = False) -> None:
        # Fetches are spaced: a failed one (or one for an unknown kid) is not retried
        # within min_refresh_seconds, and requests that queued behind a fetch take its
        # result rather than each fetching in turn. So neither made-up key ids nor a
        # provider that is down or slow multiply the calls, or the waits.
        started = time.monotonic()
        async with self._lock:
            if self._attempted_at is not None and self._attempted_at >= started:
                return  # another request fetched while this one waited
            if not unknown_kid and not self._stale():
                return  # fetched by a request that was already fetching
            if self._problem is not None and self._failed_recently(started):
                return
            if unknown_kid:
                if self._forced_at is not None and started - self._forced_at < self._min_refresh:
                    return
                self._forced_at = started
            self._attempted_at = time.monotonic()
            try:
                # One deadline for the whole fetch: httpx's timeout is per read, and a
                # provider dripping a byte at a time would otherwise hold every request.
                async with asyncio.timeout(self._timeout):
                    self._keys = await self._fetch()
            except Exception as exc:  # anything a hostile or broken provider can cause
                self._problem = f"cannot fetch the signing keys from {self.url}: {exc!r}"[:300]
                if self._keys:
                    logger.warning(
                        "cannot refresh the signing keys; using the ones held",
                        extra={"jwks_url": self.url, "error": repr(exc)[:300]},
                    )
                return
            self._problem = None
            self._fetched_at = time.monotonic()

    def _failed_recently(self, now: float) -> bool:
        return self._attempted_at is not None and now - self._attempted_at < self._min_refresh

    async def _fetch(self) -> dict[str | None, jwt.PyJWK]:
        async with (
            httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as client,
            client.stream("GET", self.url) as response,
        ):
            response.raise_for_status()
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_KEY_SET_BYTES:
                    raise ValueError(f"the key set is over {MAX_KEY_SET_BYTES} bytes")
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError("the key set is not a JSON object")
        # PyJWKSet skips keys of types it cannot use and raises when none is left.
        keys = jwt.PyJWKSet.from_dict(document).keys
        by_id = {key.key_id if isinstance(key.key_id, str) else None: key for key in keys}
        logger.info("signing keys fetched", extra={"jwks_url": self.url, "keys": len(keys)})
        return by_id
