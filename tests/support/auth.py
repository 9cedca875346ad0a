"""Tokens for the tests: one HS256 secret for the whole run, set in the environment by
tests/conftest.py so that apps built in-process and commands started as subprocesses
verify what the tests sign."""

from __future__ import annotations

import httpx

from app.auth.scopes import SCOPES
from app.auth.tokens import issue_token

TEST_SECRET = "test-secret-for-the-suite-only-0123456789abcdef"


def token(*scopes: str, subject: str = "tester", ttl_seconds: float = 3600) -> str:
    """A token with ``scopes`` (every scope when none is named)."""
    return issue_token(
        TEST_SECRET, scopes or tuple(SCOPES), subject=subject, ttl_seconds=ttl_seconds
    )


def bearer(*scopes: str) -> dict[str, str]:
    """An Authorization header with ``scopes`` (every scope when none is named)."""
    return {"Authorization": f"Bearer {token(*scopes)}"}


# Every scope: the header the tests not about authentication send.
HEADERS = bearer()


# For tests that call a running API synchronously.
API = httpx.Client(headers=HEADERS)
