"""The command line's argument types: each turns one word into a value, or refuses it
with ``argparse.ArgumentTypeError`` (argparse prints the message and exits 2).

Standard library only: the parser, and so ``--help``, must stay fast to import."""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime

from app.admin.limits import MAX_LIMIT


def uuid_argument(text: str) -> uuid.UUID:
    """A UUID in any form ``uuid.UUID`` reads."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {text!r}") from None


def _utf8(text: str) -> str:
    try:
        text.encode()
    except UnicodeEncodeError:  # bytes the terminal's encoding could not decode
        raise argparse.ArgumentTypeError(f"not valid UTF-8: {text[:50]!r}") from None
    return text


def text_argument(text: str) -> str:
    """A filter's text: 1 to 200 characters, valid UTF-8, no control character."""
    _utf8(text)
    if not 1 <= len(text) <= 200 or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise argparse.ArgumentTypeError(
            f"must be 1 to 200 characters, without control characters: {text[:50]!r}"
        )
    return text


def moment_argument(text: str) -> datetime:
    """An ISO 8601 time; one without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time (2026-11-30T09:00:00Z): {text[:50]!r}"
        ) from None
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    try:
        moment.astimezone(UTC)  # a time near year 1 or 9999 may fall off the calendar in UTC
    except OverflowError:
        raise argparse.ArgumentTypeError(
            f"a time between years 1 and 9999 in UTC: {text[:50]!r}"
        ) from None
    return moment


def port_argument(text: str) -> int:
    """A TCP port to listen on: a whole number from 1 to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text[:50]!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1 to 65535: {port}")
    return port


def message_id_argument(text: str) -> str:
    """A broker message id: 1 to 255 characters of valid UTF-8."""
    _utf8(text)
    if not 1 <= len(text) <= 255:
        raise argparse.ArgumentTypeError(f"a message id is 1 to 255 characters: {text[:50]!r}")
    return text


def limit_argument(text: str) -> int:
    """A listing's ``--limit``: a whole number from 1 to ``MAX_LIMIT``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_LIMIT}: {value}")
    return value


def message_key_argument(text: str) -> str:
    """A message key: 1 to 200 characters, valid UTF-8, no control character (the rule
    ``add_event`` applies to the keys it writes)."""
    _utf8(text)
    if not 1 <= len(text) <= 200 or any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text):
        raise argparse.ArgumentTypeError(
            f"a message key is 1 to 200 characters, without control characters: {text[:50]!r}"
        )
    return text
