"""Bearer tokens whose time claims are not NumericDates are refused (RFC 7519 §2: a JSON
number of seconds since the epoch; PyJWT converts a string such as "9999999999")."""

from __future__ import annotations

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
        ({"exp": True}, "expired"),  # PyJWT reads true as 1
        ({"exp": [FAR]}, "exp"),
    ],
    ids=["exp text", "nbf text", "iat text", "iat boolean", "exp boolean", "exp list"],
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
