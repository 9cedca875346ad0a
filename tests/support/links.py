"""Following an API's ``Link`` header (RFC 8288) through its keyset pages."""

from __future__ import annotations

import re
from typing import Any

import httpx

_LINK = re.compile(r'<([^>]*)>;\s*rel="([^"]*)"')


def links(response: httpx.Response) -> dict[str, str]:
    """The response's links by relation: ``{"next": "/api/…?after=…", "prev": …}``."""
    return {rel: url for url, rel in _LINK.findall(response.headers.get("link", ""))}


async def walk(
    client: httpx.AsyncClient, url: str, rel: str = "next"
) -> tuple[list[list[dict[str, Any]]], httpx.Response]:
    """Every page from ``url`` on, following ``rel`` until a page has no such link; the
    pages' rows, and the last response."""
    pages: list[list[dict[str, Any]]] = []
    while True:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        following = links(response).get(rel)
        if following is None:
            return pages, response
        assert len(pages) < 1_000, "the links go round in circles"
        url = following
