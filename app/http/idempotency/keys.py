"""The ``Idempotency-Key`` request header (IETF httpapi draft "The Idempotency-Key HTTP
Header Field", with Stripe's semantics) on a route that creates something.

A client sends a unique key with a POST; if it cannot tell whether the POST was done (a
timeout, a lost connection, a 503), it sends the same POST with the same key again and
gets the first answer (same status and body, plus ``Idempotent-Replayed: true``), never
a second order or product. The key belongs to the caller (the token's whole subject, kept
as its SHA-256); the same key with another body is a 422. Keys are kept at least
IDEMPOTENCY_KEY_RETENTION_SECONDS (24 h by default), then deleted by housekeeping
(app.http.idempotency.retention).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.tokens import Principal, identity_of
from app.core.schemas import ErrorBody
from app.http.idempotency.models import MAX_KEY_LENGTH
from app.http.idempotency.store import KeyReusedError, RequestKey, claim, record

REPLAYED_HEADER = "Idempotent-Replayed"  # Stripe's name for "this is the first answer"

_RULE = (
    f"the Idempotency-Key header must be 1 to {MAX_KEY_LENGTH} printable ASCII characters "
    "(a UUID, say), bare or quoted as an RFC 8941 string"
)


def parse_key(raw: str) -> str:
    """The key a header value carries: the value itself, or the string it quotes (the
    draft's form, an RFC 8941 §3.3.3 sf-string: ``\\"`` and ``\\\\`` the only escapes).
    Raises ValueError saying what a key must be."""
    if not raw.startswith('"') and "," in raw:
        # A list, not an item: two keys, or two header lines a proxy folded into one
        # (RFC 9110 §5.3). Taking either would let one request count as two.
        raise ValueError(f"{_RULE}: one key, not a list (a bare key holds no comma)")
    value = _unquoted(raw) if raw.startswith('"') else raw
    if not 1 <= len(value) <= MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in value):
        raise ValueError(f"{_RULE}; got {len(value)} character(s)")
    return value


def _unquoted(raw: str) -> str:
    text, escaped, closed = [], False, False
    for position, char in enumerate(raw[1:], start=1):
        if escaped:
            if char not in '"\\':
                raise ValueError(f'{_RULE}: a quoted key escapes only \\" and \\\\')
            text.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            closed = position == len(raw) - 1
            break
        else:
            text.append(char)
    if not closed:
        raise ValueError(f"{_RULE}: a quoted key ends with its closing quote, and only there")
    return "".join(text)


def fingerprint(method: str, path: str, body: bytes) -> str:
    """SHA-256 (hex) of a request: method, path, and its JSON body in a canonical form
    (keys sorted, no spaces), so that spacing or key order is not another request."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    except ValueError:  # not JSON: FastAPI refuses it (422) before any key is claimed
        canonical = body.decode("latin-1")
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


async def request_key(
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="a unique key of this request; a retry with the same key and body "
            "answers the first result (1-255 printable ASCII characters, e.g. a UUID)",
        ),
    ] = None,
) -> RequestKey | None:
    """The request's key (None without the header). 400 in words for a malformed one."""
    if idempotency_key is None:
        return None
    if len(request.headers.getlist("idempotency-key")) > 1:
        # FastAPI hands over the first line only; the request meant more than one key.
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail=f"{_RULE}: one Idempotency-Key header, not several"
        )
    try:
        key = parse_key(idempotency_key)
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from None
    principal: Principal | None = getattr(request.state, "principal", None)
    # The digest of the whole subject: any length and any character fit the column, and
    # two subjects are never one caller.
    caller = principal.identity if principal is not None else identity_of("")
    return RequestKey(caller, key, fingerprint(request.method, request.url.path,
                                               await request.body()))  # fmt: skip


KeyDep = Annotated[RequestKey | None, Depends(request_key)]

IDEMPOTENCY_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "a malformed Idempotency-Key"},
    422: {"model": ErrorBody, "description": "invalid fields, or an Idempotency-Key first "
          "used with another request"},
}  # fmt: skip


async def answer_once(
    session: AsyncSession,
    key: RequestKey | None,
    status_code: int,
    work: Callable[[], Awaitable[BaseModel]],
    *,
    headers_of: Callable[[Any], dict[str, str]] | None = None,
) -> JSONResponse:
    """``work``'s result as the JSON answer with ``status_code``, done once per key: with a
    key seen before, the first answer instead (``Idempotent-Replayed: true``), and a 422
    when that key came with another request. The key, the work and the answer commit in
    the session's one transaction, or none of them does. ``headers_of``: the answer's
    headers from its JSON body (a replay's from the stored body, so both say the same)."""

    def answer(body: Any, status: int, **extra: str) -> JSONResponse:
        headers = {**(headers_of(body) if headers_of else {}), **extra}
        return JSONResponse(body, status_code=status, headers=headers)

    if key is None:
        return answer(_json(await work()), status_code)
    try:
        replay = await claim(session, key)
    except KeyReusedError:
        raise HTTPException(
            422,
            detail="this Idempotency-Key was first used with another request (another "
            "body or route): a retry must repeat the request exactly; use a new key for "
            "a new request",
        ) from None
    if replay is not None:
        return answer(replay.body, replay.status_code, **{REPLAYED_HEADER: "true"})
    body = _json(await work())
    await record(session, key, status_code, body)
    return answer(body, status_code)


def _json(model: BaseModel) -> Any:
    return model.model_dump(mode="json", by_alias=True)
