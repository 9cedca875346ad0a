"""``python -m app token``: a development token signed with AUTH_JWT_SECRET (its arguments
are in ``app.cli.parser``)."""

from __future__ import annotations

import argparse
import logging
import re

from app.auth.scopes import parse_scopes
from app.auth.tokens import issue_token
from app.cli.signing import signing_keys
from app.core.settings import Settings

logger = logging.getLogger("app")

MAX_TTL_SECONDS = 30 * 24 * 3600
SUBJECT = re.compile(r"^[\x21-\x7e]{1,200}$")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Print one token on standard output; 0, or 1 with one line saying why not."""
    problem = _problem(args, settings)
    if problem is not None:
        logger.error("cannot make a token: %s", problem)
        return 1
    # Without AUTH_JWT_SECRET and AUTH_JWKS_URL: `dev`'s secret under ./var (made if new).
    secret = signing_keys(settings, development=True).secret
    assert secret is not None  # _problem refused the JWKS-only configuration
    print(
        issue_token(
            secret,
            parse_scopes(args.scope),
            subject=args.subject,
            ttl_seconds=args.ttl,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
        )
    )
    return 0


def _problem(args: argparse.Namespace, settings: Settings) -> str | None:
    try:
        parse_scopes(args.scope)
    except ValueError as exc:
        return str(exc)
    if not 1 <= args.ttl <= MAX_TTL_SECONDS:
        return f"--ttl must be between 1 and {MAX_TTL_SECONDS} seconds (30 days)"
    if not SUBJECT.match(args.subject):
        return "--subject must be 1-200 printable ASCII characters without spaces"
    if settings.auth_jwt_secret is None and settings.auth_jwks_url is not None:
        return (
            "AUTH_JWT_SECRET is not set: with AUTH_JWKS_URL, tokens come from the identity "
            "provider, which the APIs trust instead"
        )
    return None
