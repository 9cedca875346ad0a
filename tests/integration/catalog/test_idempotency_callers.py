"""Idempotency keys are the caller's: whatever the token's subject holds (long, or
characters a database column would balk at), two callers' keys never meet. On each
backend (PostgreSQL, then SQLite)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.auth import token

PRODUCTS = "/api/catalog/products"
BODY = {"name": "Pear", "price": 1, "stockCount": 1}


def _as(subject: str, key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(subject=subject)}", "Idempotency-Key": key}


async def test_two_long_subjects_sharing_200_characters_do_not_share_keys(
    catalog_api: httpx.AsyncClient,
) -> None:
    prefix = "service-account:" + "x" * 184  # 200 characters
    ann, bob = prefix + "-ann", prefix + "-bob"

    first = await catalog_api.post(PRODUCTS, json=BODY, headers=_as(ann, "k"))
    other = await catalog_api.post(PRODUCTS, json={**BODY, "name": "Plum"}, headers=_as(bob, "k"))
    again = await catalog_api.post(PRODUCTS, json=BODY, headers=_as(ann, "k"))

    assert first.status_code == other.status_code == again.status_code == 201, other.text
    assert other.json()["name"] == "Plum" and other.json()["id"] != first.json()["id"]
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize(
    "subject", ["s" * 5_000, "nul\x00inside", "\u00e9\u4e2d\U0001f600" * 100, "\ud800"],
    ids=["5000 characters", "NUL", "non-ASCII", "lone surrogate"],
)  # fmt: skip
async def test_any_subject_keeps_keys(catalog_api: httpx.AsyncClient, subject: str) -> None:
    first = await catalog_api.post(PRODUCTS, json=BODY, headers=_as(subject, "k"))
    again = await catalog_api.post(PRODUCTS, json=BODY, headers=_as(subject, "k"))

    assert first.status_code == again.status_code == 201, first.text
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    listed = (await catalog_api.get(PRODUCTS)).json()
    assert len(listed) == 1
