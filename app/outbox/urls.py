"""Broker URLs as text: one setting may name several nodes, ``amqp://…@h1/,amqp://…@h2/``."""

from __future__ import annotations

import re

# A comma starts the next node only where a URL follows it: a comma inside a password
# (better percent-encoded, %2C) stays in its URL.
_NEXT_NODE = re.compile(r"\s*,[\s,]*(?=[a-zA-Z][\w+.-]*://)")


def split_urls(url: str) -> list[str]:
    """``url`` cut at each comma that a ``scheme://`` follows, parts stripped, empty ones
    (a trailing comma) dropped."""
    return [part.strip(" ,") for part in _NEXT_NODE.split(url.strip(" ,")) if part.strip(" ,")]


def hosts_of(url: str) -> str:
    """The nodes of ``url`` as ``host:port/vhost``, comma-separated, never the credentials
    (for a log line; nothing is validated)."""
    return ",".join(part.split("@")[-1] for part in split_urls(url))
