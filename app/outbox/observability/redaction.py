"""Secrets out of text: every credential a URL or DSN may carry, masked, for log lines,
error messages and HTTP answers alike."""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from cloudcrm_outbox.urls import split_urls

# scheme://user:password@host (RFC 3986 userinfo; the password runs to the last '@' of the
# authority). A missing ':' after the scheme (a typo) still masks.
_USERINFO = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*:?//[^\s:/@'\"]*:)(?:(?!//)[^\s'\"])*@")
# user:password@host:port without a scheme (a URL written without one).
_BARE = re.compile(r"(?P<head>(?:^|(?<=[\s'\"=(]))[\w.%-]+:)[^@\s'\"/:]+@(?=[\w.-]+[:/])")
# user:password@ anywhere else: a URL mangled past both forms above
# ("amqp:user:password@host://") still keeps its password to itself.
_LOOSE = re.compile(r"(?P<head>[\w.%+-]+:)[^\s@'\"/:]+@")
# password=... in a query string or a libpq key=value DSN.
_KEY = re.compile(r"(?P<head>\b(?:ssl)?password\s*=\s*)[^&\s'\"]+", re.IGNORECASE)


# The placeholder the hints write (`BROKER_URL=amqp://USER:PASSWORD@HOST:5672/`): masked,
# a hint to copy would read as a wrong URL.
PLACEHOLDER = "PASSWORD"


def _masked(found: re.Match[str]) -> str:
    if found[0] == f"{found['head']}{PLACEHOLDER}@":
        return found[0]
    return f"{found['head']}***@"


def mask_secrets(text: str) -> str:
    """``text`` with every URL's or DSN's password replaced by ``***`` (except the hints'
    placeholder, the word ``PASSWORD`` itself)."""
    # Every log line passes here: skip the patterns that cannot match (both URL forms
    # need an '@', the key form the word), a substring test being far cheaper.
    if "@" in text:
        text = _USERINFO.sub(_masked, text)
        text = _BARE.sub(_masked, text)
        text = _LOOSE.sub(_masked, text)
    if "password" in text.casefold():  # casefold, like IGNORECASE (U+017F is s)
        text = _KEY.sub(lambda found: f"{found['head']}***", text)
    return text


def safe_url(url: str) -> str:
    """``url`` as it may be shown: parsed, its password and any password query argument
    hidden; text that is no URL is masked as text. A comma-separated list of URLs (a
    RabbitMQ cluster's nodes) is shown URL by URL."""
    if "," in url and len(parts := split_urls(url)) > 1:
        return ",".join(safe_url(part) for part in parts)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return mask_secrets(url)
    return mask_secrets(parsed.render_as_string(hide_password=True))
