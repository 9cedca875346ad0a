"""Tokens from an identity provider (a local test server): JWKS keys fetched, cached and
refreshed on rotation; unknown keys, issuers, audiences and algorithms refused; ordering's
own token for catalog by the client credentials grant."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import jwt
import pytest

from app.auth.jwks import JwksKeys
from app.auth.tokens import Authenticator, InvalidTokenError, VerifierUnavailableError
from app.catalog.app import create_app as create_catalog
from app.core.settings import Settings
from app.ordering.app import create_app as create_ordering
from tests.support.identity import AUDIENCE, ISSUER, SigningKey, identity_provider
from tests.support.servers import serving


def _authenticator(jwks_url: str) -> Authenticator:
    return Authenticator(jwks=JwksKeys(jwks_url), issuer=ISSUER, audience=AUDIENCE)


async def test_a_rotated_key_is_accepted_after_the_refresh_an_unknown_one_never() -> None:
    old, new, stranger = SigningKey.rsa(), SigningKey.rsa(), SigningKey.rsa()
    async with identity_provider(old) as provider:
        verify = _authenticator(provider.jwks_url)
        first = await verify.authenticate(old.sign("orders:read", subject="ann"))
        assert first.subject == "ann" and first.scopes == {"orders:read"}
        await verify.authenticate(old.sign("orders:read"))
        assert provider.key_fetches == 1  # cached

        provider.published = [old, new]  # the provider rotates
        rotated = await verify.authenticate(new.sign("orders:write"))
        assert rotated.scopes == {"orders:write"}
        assert provider.key_fetches == 2  # refreshed once, for the unknown kid

        for _ in range(5):
            with pytest.raises(InvalidTokenError, match="unknown key"):
                await verify.authenticate(stranger.sign("admin"))
        # Made-up key ids cannot make every request call the provider.
        assert provider.key_fetches <= 3
        await verify.authenticate(old.sign("orders:read"))  # the held keys still work


async def test_es256_keys_work_too() -> None:
    key = SigningKey.ec()
    async with identity_provider(key) as provider:
        principal = await _authenticator(provider.jwks_url).authenticate(key.sign("admin"))
        assert principal.scopes == {"admin"}


@pytest.mark.parametrize(
    ("claims", "refusal"),
    [
        ({"iss": "https://evil.example/"}, "issuer"),
        ({"aud": "someone-else"}, "audience"),
        ({"exp": 1}, "expired"),
    ],
)
async def test_wrong_issuer_audience_or_expiry_is_refused(
    claims: dict[str, object], refusal: str
) -> None:
    key = SigningKey.rsa()
    async with identity_provider(key) as provider:
        with pytest.raises(InvalidTokenError, match=refusal):
            await _authenticator(provider.jwks_url).authenticate(key.sign("admin", **claims))


async def test_no_algorithm_confusion() -> None:
    """An HS256 token "signed" with the provider's public key, or an unsigned one, is
    refused when only the provider's keys are trusted."""
    key = SigningKey.rsa()
    public_pem = key.public_jwk()["n"]
    async with identity_provider(key) as provider:
        verify = _authenticator(provider.jwks_url)
        forged = jwt.encode({"scope": "admin", "exp": 9_999_999_999}, public_pem, "HS256")
        with pytest.raises(InvalidTokenError, match="not accepted"):
            await verify.authenticate(forged)
        unsigned = jwt.encode({"scope": "admin", "exp": 9_999_999_999}, None, "none")
        with pytest.raises(InvalidTokenError):
            await verify.authenticate(unsigned)
        with pytest.raises(InvalidTokenError, match="malformed"):
            await verify.authenticate("not-a-token")


async def test_an_unreachable_provider_is_unavailable_not_unauthorised() -> None:
    key = SigningKey.rsa()
    verify = _authenticator("http://127.0.0.1:9/jwks")
    with pytest.raises(VerifierUnavailableError):
        await verify.authenticate(key.sign("admin"))


@pytest.mark.postgres
async def test_the_apis_trust_the_provider_and_ordering_gets_its_own_token(
    ordering_db: str, catalog_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production wiring: no shared secret. Catalog and ordering verify the provider's
    tokens; ordering obtains its catalog:integration token by client credentials."""
    monkeypatch.delenv("AUTH_JWT_SECRET")
    key = SigningKey.rsa()
    async with identity_provider(key) as provider:
        provider.clients["ordering-service"] = "s3cret:with/odd chars"
        auth = {
            "auth_jwks_url": provider.jwks_url,
            "auth_issuer": ISSUER,
            "auth_audience": AUDIENCE,
        }
        catalog = create_catalog(Settings(catalog_database_url=catalog_db, **auth))
        async with serving(catalog) as catalog_url:
            ordering = create_ordering(
                Settings(
                    ordering_database_url=ordering_db,
                    catalog_api_url=catalog_url,
                    auth_token_url=provider.token_url,
                    auth_client_id="ordering-service",
                    auth_client_secret="s3cret:with/odd chars",
                    **auth,
                )
            )
            async with serving(ordering) as ordering_url, httpx.AsyncClient() as client:
                scopes = ("products:write", "orders:write", "orders:read")
                user = {"Authorization": f"Bearer {key.sign(*scopes)}"}
                created = await client.post(
                    f"{catalog_url}/api/catalog/products",
                    json={"name": "Product A", "price": 1.0, "stockCount": 5},
                    headers=user,
                )
                assert created.status_code == 201, created.text
                order = await client.post(
                    f"{ordering_url}/api/ordering/order",
                    json={"customerName": "Ann", "productId": created.json()["id"]},
                    headers=user,
                )
                assert order.status_code == 201, order.text
                for _ in range(2):
                    listed = await client.get(f"{ordering_url}/api/ordering/order", headers=user)
                    assert listed.json()[0]["productName"] == "Product A"
                assert provider.tokens_issued == 1  # reused until it nears its expiry
                # The user's token is not catalog's integration token.
                refused = await client.post(
                    f"{catalog_url}/integration-api/catalog/products/by-ids",
                    json=[str(uuid.uuid4())],
                    headers=user,
                )
                assert refused.status_code == 403


def test_ordering_refuses_to_start_without_a_way_to_get_its_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.auth.config import AuthNotConfiguredError

    monkeypatch.delenv("AUTH_JWT_SECRET")
    settings = Settings(auth_jwks_url="http://idp/jwks", auth_issuer=ISSUER, auth_audience=AUDIENCE)
    create_catalog(settings)  # catalog needs nothing more
    with pytest.raises(AuthNotConfiguredError, match="AUTH_TOKEN_URL"):
        create_ordering(settings)


async def test_a_broken_provider_is_called_once_per_interval_not_per_request() -> None:
    """A provider answering 500, garbage, a key whose kid is a list, or a huge document:
    503 (never a 500), one fetch for many requests, concurrent ones included."""
    key = SigningKey.rsa()
    answers = [
        httpx.Response(500),
        httpx.Response(200, content=b"not json"),
        httpx.Response(200, json={"keys": [{**key.public_jwk(), "kid": ["a", "list"]}]}),
        httpx.Response(200, content=b"[" * 100_000),
        httpx.Response(200, content=b'{"keys": []}' + b" " * 300_000),
    ]
    for answer in answers:
        calls = 0

        def respond(_request: httpx.Request, answer: httpx.Response = answer) -> httpx.Response:
            nonlocal calls
            calls += 1
            return answer

        keys = JwksKeys("http://idp/jwks", transport=httpx.MockTransport(respond))
        verify = Authenticator(jwks=keys, issuer=ISSUER, audience=AUDIENCE)
        token = key.sign("admin")
        results = await asyncio.gather(
            *(verify.authenticate(token) for _ in range(20)), return_exceptions=True
        )
        if answer.status_code == 200 and b"list" in answer.content:
            # The key is usable; only its id is odd: it serves a token without a kid.
            continue
        assert all(isinstance(r, VerifierUnavailableError) for r in results), (answer, results)
        assert calls == 1, (answer, calls)


async def test_held_keys_survive_a_provider_that_turns_hostile() -> None:
    key = SigningKey.rsa()
    good = {"keys": [key.public_jwk()]}
    answer = httpx.Response(200, json=good)
    keys = JwksKeys(
        "http://idp/jwks",
        max_age_seconds=0,
        min_refresh_seconds=0,
        transport=httpx.MockTransport(lambda _: answer),
    )
    verify = Authenticator(jwks=keys, issuer=ISSUER, audience=AUDIENCE)
    await verify.authenticate(key.sign("admin"))
    # Stale at every request, each refresh fails: the held key serves.
    for answer in (httpx.Response(500), httpx.Response(200, content=b"[" * 100_000)):  # noqa: B007
        assert (await verify.authenticate(key.sign("admin"))).scopes == {"admin"}


async def test_a_provider_dripping_its_answer_cannot_hold_requests() -> None:
    """httpx's timeout is per read: a provider sending a byte at a time is cut off by one
    deadline on the whole fetch, and with keys held nobody waits for it."""
    key = SigningKey.rsa()
    dripping = False

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if not dripping:
            body = json.dumps({"keys": [key.public_jwk()]}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n")
        for _ in range(60):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.2)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        keys = JwksKeys(f"http://127.0.0.1:{port}/jwks", max_age_seconds=0, timeout_seconds=1)
        verify = Authenticator(jwks=keys, issuer=ISSUER, audience=AUDIENCE)
        await verify.authenticate(key.sign("admin"))
        dripping = True
        started = asyncio.get_running_loop().time()
        results = await asyncio.gather(*(verify.authenticate(key.sign("admin")) for _ in range(10)))
        elapsed = asyncio.get_running_loop().time() - started
        assert all(r.scopes == {"admin"} for r in results)
        assert elapsed < 2.5, elapsed  # one request waited for the 1 s deadline at most

        fresh = JwksKeys(f"http://127.0.0.1:{port}/jwks", timeout_seconds=1)
        started = asyncio.get_running_loop().time()
        with pytest.raises(VerifierUnavailableError):
            await Authenticator(jwks=fresh, issuer=ISSUER, audience=AUDIENCE).authenticate(
                key.sign("admin")
            )
        assert asyncio.get_running_loop().time() - started < 2.5
    finally:
        server.close()
