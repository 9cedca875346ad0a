"""The pages' calls to the ordering and catalog APIs, with the user's token."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from app.pages.numbers import json_text
from app.pages.session import SignInRequiredError


class ApiError(Exception):
    """An API answered 4xx/5xx: ``status`` and its ``detail``, shown on the page."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


# The API's words for the pages' words.
_FRIENDLIER = (
    (re.compile(r"\bstockCount\b"), "stock"),
    (re.compile(r"\bcustomerName\b"), "customer"),
    (re.compile(r"\bproductId\b"), "product"),
)


@dataclass
class Apis:
    """HTTP clients of the two services (in ``dev``, both the same in-process app)."""

    ordering: httpx.AsyncClient
    catalog: httpx.AsyncClient

    async def call(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        token: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """JSON of a 2xx answer (None for 204); ``body`` is sent as JSON (json_text: its
        JsonNumbers as typed), ``headers`` besides the token.
        Raises SignInRequiredError on 401, ApiError on any other 4xx/5xx or when the
        service is unreachable."""
        if not token.isascii():  # not a token this site set
            raise SignInRequiredError
        sent = {**(headers or {}), "Authorization": f"Bearer {token}"}
        if body is not None:  # numbers as typed (app.pages.numbers), not through a float
            sent["Content-Type"] = "application/json"
        try:
            response = await client.request(
                method,
                path,
                content=None if body is None else json_text(body).encode("utf-8"),
                headers=sent,
            )
        except httpx.HTTPError as exc:
            where = "ordering" if client is self.ordering else "catalog"
            raise ApiError(
                503, f"the {where} service is unreachable ({type(exc).__name__})"
            ) from exc
        if response.status_code == 401:
            raise SignInRequiredError
        if response.status_code >= 400:
            raise ApiError(response.status_code, _detail(response))
        return None if response.status_code == 204 else response.json()


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return response.text[:300]
    if isinstance(detail, list):  # 422: one line per invalid field
        text = "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', [])[1:])}: {item.get('msg')}"
            for item in detail
        )
    else:
        text = str(detail)
    for pattern, words in _FRIENDLIER:
        text = pattern.sub(words, text)
    return text
