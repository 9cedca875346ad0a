"""Checking a bearer token: signature, expiry, issuer, audience; then who and which scopes."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from app.auth.jwks import JwksKeys, KeysUnavailableError, UnknownKeyError
from app.auth.scopes import SCOPES

# Tokens signed with the shared secret (development, tests) and with a provider's keys.
SECRET_ALGORITHM = "HS256"
KEY_ALGORITHMS = ("RS256", "ES256")
# Longer tokens are refused before parsing; real access tokens are well under 2 KiB.
MAX_TOKEN_BYTES = 8 * 1024


class InvalidTokenError(Exception):
    """The token is missing, malformed, expired or not signed by a trusted key (HTTP 401);
    the message says which, without echoing the token."""


class VerifierUnavailableError(Exception):
    """The identity provider's keys cannot be fetched: the token cannot be checked (503)."""


def identity_of(subject: str) -> str:
    """SHA-256 (hex, 64 characters) of the whole ``subject`` as UTF-8 (a lone surrogate,
    which a JWT's JSON may carry, as itself): a key for what a caller owns that holds any
    subject, of any length, and never makes two of one."""
    return hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: the token's ``sub`` (or client id), cut to 200 characters
    for logs and pages, and its scopes. ``identity``: ``identity_of`` the whole subject,
    for what the caller owns (its idempotency keys); by default, of ``subject``."""

    subject: str
    scopes: frozenset[str]
    identity: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.identity:
            object.__setattr__(self, "identity", identity_of(self.subject))


ANONYMOUS = Principal("anonymous (AUTH_DISABLED)", frozenset(SCOPES))


class Authenticator:
    """Verifies bearer tokens (JWT, RFC 7519).

    HS256 tokens are checked with ``secret``; RS256 and ES256 ones with the key the token's
    ``kid`` names in ``jwks``. ``issuer`` and ``audience``, when given, must match the
    ``iss`` and ``aud`` claims; ``exp`` is required, with ``leeway_seconds`` for clock skew.
    ``disabled`` lets every request through as ANONYMOUS (``AUTH_DISABLED=true``).
    """

    def __init__(
        self,
        *,
        secret: str | None = None,
        jwks: JwksKeys | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        disabled: bool = False,
        leeway_seconds: float = 30.0,
    ) -> None:
        self.secret = secret
        self.jwks = jwks
        self.issuer = issuer
        self.audience = audience
        self.disabled = disabled
        self._leeway = leeway_seconds

    async def authenticate(self, token: str) -> Principal:
        """The principal ``token`` stands for.

        Raises InvalidTokenError (HTTP 401) or VerifierUnavailableError (HTTP 503).
        """
        if self.disabled:
            return ANONYMOUS
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidTokenError(f"token longer than {MAX_TOKEN_BYTES} bytes")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidTokenError("malformed token") from exc
        algorithm = header.get("alg")
        key = await self._key(algorithm, header.get("kid"))
        # The signature, issuer and audience first, then the time claims' types, and only
        # then their times: PyJWT reads true as 1 and "0" as 0, and would call such a token
        # expired when what is wrong is the claim's type.
        options = {"require": ["exp"], "verify_aud": self.audience is not None}
        claims = self._decode(token, key, algorithm, {**options, **_NO_TIME_CHECKS})
        _check_numeric_dates(claims)
        self._decode(token, None, algorithm, _ONLY_TIME_CHECKS)  # the signature verified above
        return principal_of(claims)

    def _decode(self, token: str, key: Any, algorithm: object, options: Any) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[str(algorithm)],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self._leeway,
                options=options,
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidTokenError("token expired") from exc
        except jwt.InvalidSignatureError as exc:
            raise InvalidTokenError("token signature does not verify") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidTokenError(f"token audience is not {self.audience!r}") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidTokenError(f"token issuer is not {self.issuer!r}") from exc
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(f"invalid token: {exc}"[:200]) from exc
        return claims

    async def _key(self, algorithm: object, kid: object) -> Any:
        if algorithm == SECRET_ALGORITHM and self.secret is not None:
            return self.secret
        if algorithm in KEY_ALGORITHMS and self.jwks is not None:
            try:
                return await self.jwks.key(kid if isinstance(kid, str) else None)
            except UnknownKeyError as exc:
                raise InvalidTokenError("token signed by an unknown key") from exc
            except KeysUnavailableError as exc:
                raise VerifierUnavailableError(str(exc)) from exc
        accepted = [SECRET_ALGORITHM] if self.secret is not None else []
        accepted += list(KEY_ALGORITHMS) if self.jwks is not None else []
        raise InvalidTokenError(
            f"token algorithm {str(algorithm)[:20]!r} is not accepted here ({', '.join(accepted)})"
        )


# The registered claims that are NumericDates (RFC 7519 §4.1.4 to §4.1.6).
TIME_CLAIMS = ("exp", "nbf", "iat")
_NO_TIME_CHECKS = {"verify_exp": False, "verify_nbf": False, "verify_iat": False}
_ONLY_TIME_CHECKS = {"verify_signature": False, "verify_exp": True, "verify_nbf": True,
                     "verify_iat": True, "verify_aud": False, "verify_iss": False}  # fmt: skip


def _check_numeric_dates(claims: Mapping[str, Any]) -> None:
    # RFC 7519 §2: a NumericDate is a JSON number. PyJWT compares int(claim), so it takes
    # "9999999999" (a string) and true (as 1); a token carrying such a claim was not made
    # by a conforming issuer, and is refused.
    for name in TIME_CLAIMS:
        value = claims.get(name)
        if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise InvalidTokenError(
                f"token claim {name!r} is not a NumericDate (a JSON number; RFC 7519 §2)"
            )


def principal_of(claims: Mapping[str, Any]) -> Principal:
    """Subject and scopes from verified claims: ``scope`` (space-separated, RFC 8693 §4.2)
    or ``scp`` (a list or string, as some providers issue)."""
    raw = claims.get("scope", claims.get("scp", ""))
    words: Iterable[object] = (
        raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else ()
    )
    subject = str(claims.get("sub") or claims.get("client_id") or claims.get("azp") or "unknown")
    # Cut for display only: two subjects sharing their first 200 characters are two callers.
    return Principal(subject[:200], frozenset(str(w) for w in words), identity_of(subject))


def issue_token(
    secret: str,
    scopes: Iterable[str],
    *,
    subject: str,
    ttl_seconds: float,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """An HS256 token for ``subject`` with ``scopes``, valid ``ttl_seconds`` from now."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "scope": " ".join(scopes),
        "iat": now,
        "exp": now + int(ttl_seconds),
        "jti": str(uuid.uuid4()),
    }
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm=SECRET_ALGORITHM)
