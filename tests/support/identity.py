"""A test identity provider on a local port: a JWKS document whose keys the test rotates,
and a token endpoint for the client credentials grant (RFC 6749 §4.4)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote_plus

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support.servers import serving

ISSUER = "https://id.test.example/"
AUDIENCE = "cloudcrm"


@dataclass
class SigningKey:
    """A private key, the algorithm it signs with and its key id."""

    kid: str
    algorithm: str
    private: Any

    @classmethod
    def rsa(cls, kid: str | None = None) -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(kid or f"rsa-{uuid.uuid4().hex[:8]}", "RS256", key)

    @classmethod
    def ec(cls, kid: str | None = None) -> SigningKey:
        return cls(
            kid or f"ec-{uuid.uuid4().hex[:8]}", "ES256", ec.generate_private_key(ec.SECP256R1())
        )

    def public_jwk(self) -> dict[str, Any]:
        codec = RSAAlgorithm if self.algorithm == "RS256" else ECAlgorithm
        jwk: dict[str, Any] = codec.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def sign(self, *scopes: str, subject: str = "alice", ttl: float = 300, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "scope": " ".join(scopes),
                "iat": now, "exp": now + int(ttl), **claims}  # fmt: skip
        return jwt.encode(body, self.private, self.algorithm, headers={"kid": self.kid})


@dataclass
class IdentityProvider:
    """What the provider publishes (``published``) and signs with (``signing``); counts."""

    url: str = ""
    published: list[SigningKey] = field(default_factory=list)
    signing: SigningKey | None = None
    clients: dict[str, str] = field(default_factory=dict)
    # Public clients allowed the authorization code grant (with PKCE), and the user who
    # signs in there (the test's provider approves at once).
    public_clients: set[str] = field(default_factory=set)
    user: str = "alice"
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    key_fetches: int = 0
    tokens_issued: int = 0

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def authorize_url(self) -> str:
        return f"{self.url}/authorize"


def _exchange_code(provider: IdentityProvider, form: dict[str, str]) -> dict[str, Any]:
    # RFC 6749 §4.1.3 and RFC 7636 §4.6: the code once, for the same client and redirect
    # URI, with the verifier whose S256 is the challenge.
    asked = provider.codes.pop(form.get("code", ""), None)
    if asked is None or asked["client_id"] != form.get("client_id"):
        raise HTTPException(400, "invalid_grant")
    if asked["redirect_uri"] != form.get("redirect_uri"):
        raise HTTPException(400, "invalid_grant: redirect_uri")
    digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
    if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != asked["code_challenge"]:
        raise HTTPException(400, "invalid_grant: code_verifier")
    assert provider.signing is not None
    provider.tokens_issued += 1
    access = provider.signing.sign(*asked.get("scope", "").split(), subject=provider.user)
    return {"access_token": access, "token_type": "Bearer", "expires_in": 300}


@contextmanager
def identity_provider_in_thread(*keys: SigningKey) -> Iterator[IdentityProvider]:
    """``identity_provider`` served from a thread of its own (for synchronous tests, such
    as the browser's)."""
    started: queue.Queue[IdentityProvider | BaseException] = queue.Queue()
    stop = threading.Event()

    async def serve() -> None:
        async with identity_provider(*keys) as provider:
            started.put(provider)
            await asyncio.to_thread(stop.wait)

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # reported to the test
            started.put(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    first = started.get(timeout=30)
    if isinstance(first, BaseException):
        raise first
    try:
        yield first
    finally:
        stop.set()
        thread.join(timeout=10)


@asynccontextmanager
async def identity_provider(*keys: SigningKey) -> AsyncIterator[IdentityProvider]:
    """Serve a provider publishing ``keys`` (the first signs client-credentials tokens)."""
    provider = IdentityProvider(published=list(keys), signing=keys[0] if keys else None)
    app = FastAPI()

    @app.get("/jwks")
    async def jwks() -> dict[str, Any]:
        provider.key_fetches += 1
        return {"keys": [key.public_jwk() for key in provider.published]}

    @app.get("/authorize")
    async def authorize(request: Request) -> RedirectResponse:
        asked = dict(request.query_params)
        if asked.get("client_id") not in provider.public_clients:
            raise HTTPException(400, "unknown client")
        if asked.get("response_type") != "code" or asked.get("code_challenge_method") != "S256":
            raise HTTPException(400, "authorization code with PKCE (S256) only")
        code = uuid.uuid4().hex
        provider.codes[code] = asked
        target = f"{asked['redirect_uri']}?code={code}&state={quote(asked.get('state', ''))}"
        return RedirectResponse(target, status_code=303)

    @app.post("/token")
    async def token(request: Request) -> dict[str, Any]:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") == "authorization_code":
            return _exchange_code(provider, form)
        basic = base64.b64decode(request.headers.get("authorization", "").removeprefix("Basic "))
        # RFC 6749 §2.3.1: id and secret are form-urlencoded, then joined and Basic-encoded.
        client_id, _, secret = (unquote_plus(part) for part in basic.decode().partition(":"))
        known = provider.clients.get(client_id) == secret
        if form.get("grant_type") != "client_credentials" or not known:
            raise HTTPException(401, "invalid_client")
        assert provider.signing is not None
        provider.tokens_issued += 1
        scopes = form.get("scope", "").split()
        access = provider.signing.sign(*scopes, subject=client_id, ttl=120)
        return {"access_token": access, "token_type": "Bearer", "expires_in": 120}

    async with serving(app) as url:
        provider.url = url
        yield provider
