"""The pages' calls to the ordering and catalog APIs, with the user's token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from app.pages.session import SignInRequiredError


class ApiError(Exception):
    """An API answered 4xx/5xx: ``status`` and its ``detail``, shown on the page."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class Apis:
    """HTTP clients of the two services (in ``dev``, both the same in-process app)."""

    ordering: httpx.AsyncClient
    catalog: httpx.AsyncClient

    async def call(
        self, client: httpx.AsyncClient, method: str, path: str, token: str, body: Any = None
    ) -> Any:
        """JSON of a 2xx answer (None for 204). Raises SignInRequiredError on 401, ApiError
        on any other 4xx/5xx or when the service is unreachable."""
        try:
            response = await client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as exc:
            raise ApiError(503, f"the service is unreachable: {exc!r}"[:300]) from exc
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
        return "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', [])[1:])}: {item.get('msg')}"
            for item in detail
        )
    return str(detail)
