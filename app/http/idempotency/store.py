"""Claiming an idempotency key and recording its answer, in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.http.idempotency.models import IDEMPOTENCY_KEYS
from cloudcrm_outbox.storage.store import store_for

keys = IDEMPOTENCY_KEYS


@dataclass(frozen=True)
class RequestKey:
    """A request's ``Idempotency-Key``: whose (``caller``, the token's subject), the key,
    and the request's fingerprint (SHA-256 hex of method, path and JSON body)."""

    caller: str
    key: str
    fingerprint: str


@dataclass(frozen=True)
class Replay:
    """The first answer given to a key: its status code and JSON body."""

    status_code: int
    body: Any


class KeyReusedError(Exception):
    """The key was first used with another request (another body, or another route)."""


async def claim(session: AsyncSession, request: RequestKey) -> Replay | None:
    """Take ``request``'s key in the session's transaction: None when this is its first
    use (do the work, then ``record`` the answer, in the same transaction); else the
    first answer, to give again. Raises KeyReusedError when the key was first used with
    another request.

    The INSERT … ON CONFLICT DO NOTHING is the lock: while another transaction holds an
    uncommitted row with this key, PostgreSQL makes this INSERT wait for it (PostgreSQL
    docs, INSERT, "ON CONFLICT Clause"); if that transaction commits, this one conflicts
    and reads its answer (READ COMMITTED: the next statement sees the commit), if it rolls
    back, this one inserts and does the work. So two requests with one key never both do
    it, and the second gets the first's answer rather than a 409 to retry. On SQLite the
    writers queue on BEGIN IMMEDIATE (cloudcrm_outbox.storage.engine), with the same result.
    """
    insert = store_for(session.get_bind().dialect).insert_ignoring_conflicts(
        keys, index_elements=[keys.c.caller, keys.c.idempotency_key]
    )
    taken = insert.values(
        caller=request.caller, idempotency_key=request.key, request_hash=request.fingerprint
    ).returning(keys.c.caller)
    if (await session.execute(taken)).first() is not None:
        return None
    first = (
        await session.execute(
            select(keys.c.request_hash, keys.c.status_code, keys.c.response_body).where(
                keys.c.caller == request.caller, keys.c.idempotency_key == request.key
            )
        )
    ).one()
    if first.request_hash != request.fingerprint:
        raise KeyReusedError(request.key)
    return Replay(first.status_code, first.response_body)


async def record(session: AsyncSession, request: RequestKey, status_code: int, body: Any) -> None:
    """Keep the answer to ``request``'s key (claimed in this transaction)."""
    await session.execute(
        update(keys)
        .where(keys.c.caller == request.caller, keys.c.idempotency_key == request.key)
        .values(status_code=status_code, response_body=body)
    )
