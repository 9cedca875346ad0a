"""Bearer tokens whose time claims are not NumericDates are refused (RFC 7519 §2: a JSON
number of seconds since the epoch; PyJWT converts a string such as "9999999999")."""

from __future__ import annotations

import time

import jwt
import pytest

from app.auth.tokens import Authenticator, InvalidTokenError

SECRET = "a-secret-of-at-least-thirty-two-characters"
FAR = 9_999_999_999


@pytest.mark.parametrize(
    ("claims", "words"),
    [
        ({"exp": str(FAR)}, "'exp' is not a NumericDate"),
        ({"exp": FAR, "nbf": "0"}, "'nbf' is not a NumericDate"),
        ({"exp": FAR, "iat": "0"}, "'iat' is not a NumericDate"),
        ({"exp": FAR, "iat": True}, "'iat' is not a NumericDate"),
        # PyJWT reads true as 1 and "0" as 0, and would call these expired: the type is
        # what is wrong, and is said first.
        ({"exp": True}, "'exp' is not a NumericDate"),
        ({"exp": "0"}, "'exp' is not a NumericDate"),
        ({"exp": FAR, "nbf": str(FAR)}, "'nbf' is not a NumericDate"),
        ({"exp": [FAR]}, "'exp' is not a NumericDate"),
    ],
    ids=[
        "exp text",
        "nbf text",
        "iat text",
        "iat boolean",
        "exp boolean",
        "exp past text",
        "nbf future text",
        "exp list",
    ],
)
async def test_a_time_claim_that_is_not_a_number_is_refused(
    claims: dict[str, object], words: str
) -> None:
    token = jwt.encode({"sub": "x", "scope": "admin", **claims}, SECRET, algorithm="HS256")
    with pytest.raises(InvalidTokenError, match=words):
        await Authenticator(secret=SECRET).authenticate(token)


async def test_numeric_dates_with_a_fraction_are_accepted() -> None:
    claims = {"sub": "x", "scope": "admin", "exp": FAR + 0.5, "nbf": 1.5, "iat": 2}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    principal = await Authenticator(secret=SECRET).authenticate(token)
    assert principal.subject == "x" and principal.scopes == {"admin"}


async def test_the_signature_is_checked_before_the_claims() -> None:
    token = jwt.encode({"sub": "x", "exp": True}, "another-secret-of-thirty-two-chars!", "HS256")
    with pytest.raises(InvalidTokenError, match="signature does not verify"):
        await Authenticator(secret=SECRET).authenticate(token)
    expired = jwt.encode({"sub": "x", "exp": 1}, SECRET, algorithm="HS256")
    with pytest.raises(InvalidTokenError, match="token expired"):
        await Authenticator(secret=SECRET).authenticate(expired)
    early = jwt.encode({"sub": "x", "exp": FAR, "nbf": FAR - 10}, SECRET, algorithm="HS256")
    with pytest.raises(InvalidTokenError, match="not yet valid"):
        await Authenticator(secret=SECRET).authenticate(early)
    # Expired within the leeway (30 s by default): still accepted.
    late = jwt.encode({"sub": "x", "exp": int(time.time()) - 5}, SECRET, algorithm="HS256")
    assert (await Authenticator(secret=SECRET).authenticate(late)).subject == "x"
