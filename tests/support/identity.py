"""A test identity provider on a local port: a JWKS document whose keys the test rotates,
and a token endpoint for the client credentials grant (RFC 6749 §4.4)."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI, HTTPException, Request
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
    key_fetches: int = 0
    tokens_issued: int = 0

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"


@asynccontextmanager
async def identity_provider(*keys: SigningKey) -> AsyncIterator[IdentityProvider]:
    """Serve a provider publishing ``keys`` (the first signs client-credentials tokens)."""
    provider = IdentityProvider(published=list(keys), signing=keys[0] if keys else None)
    app = FastAPI()

    @app.get("/jwks")
    async def jwks() -> dict[str, Any]:
        provider.key_fetches += 1
        return {"keys": [key.public_jwk() for key in provider.published]}

    @app.post("/token")
    async def token(request: Request) -> dict[str, Any]:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
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
