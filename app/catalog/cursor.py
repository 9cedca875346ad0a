"""Positions in the products list, which is sorted by (name, id): what its ``Link``
header's ``after=`` and ``before=`` carry.

A position is the (name, id) pair itself, as an opaque token: ``p`` and the base64url
(unpadded) of the id's 16 bytes followed by the name in UTF-8. A product renamed or deleted
between two reads still marks the same place, so the next page neither skips nor repeats
a product. Clients treat it as opaque. Any text of that form is a place in the list (a
forged one is just another place: nothing is looked up), so the OpenAPI ``pattern`` says
exactly what is taken. A bare product id is still taken (the page after that product
under its current name; gone is a 404), as clients built before the token did.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Query
from fastapi.exceptions import RequestValidationError

from app.catalog.models import Product

_ID = r"[0-9a-fA-F]{8}(-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}"
# 16 bytes of id (22 characters) and at most a 200-character name of 4-byte characters.
_TOKEN = r"p[A-Za-z0-9_-]{22,1100}"
CURSOR_PATTERN = rf"^({_ID}|{_TOKEN})$"
# A position as a query's value: a product's or an order's id, or a token of ``token``.
POSITION = rf"({_ID}|{_TOKEN})"
_ID_FORM, _TOKEN_FORM = re.compile(rf"^{_ID}$"), re.compile(rf"^{_TOKEN}$")


@dataclass(frozen=True)
class Position:
    """A place in the products list: just past (or before) the pair (``name``, ``id``)."""

    name: str
    id: uuid.UUID


Cursor = uuid.UUID | Position


def token_of(product: Product) -> str:
    """The opaque token of ``product``'s place in the list."""
    return token(product.id, product.name)


def token(product_id: uuid.UUID, name: str) -> str:
    """The opaque token of the place (``name``, ``product_id``) in the list: what the
    ``Link`` header carries, for a client that holds the product as listed (the pages)."""
    packed = product_id.bytes + name.encode("utf-8")
    return "p" + base64.urlsafe_b64encode(packed).rstrip(b"=").decode("ascii")


def parse_cursor(text: str | None, parameter: str) -> Cursor | None:
    """``text`` as a bare product id or a token of ``token_of``; None for None. Raises
    RequestValidationError (a 422 naming ``parameter``) for anything else."""
    if text is None:
        return None
    if _ID_FORM.match(text):
        return uuid.UUID(text)
    if _TOKEN_FORM.match(text):
        return _position(text[1:])
    raise RequestValidationError(
        [
            {
                "loc": ("query", parameter),
                "msg": "is neither a position from the list's Link header (copy it as it "
                "is: it is opaque) nor a product id",
                "type": "cursor",
            }
        ]
    )


def _position(body: str) -> Position:
    # A last character alone carries 6 bits, no whole byte: dropped, as base64 decoders do.
    body = body[: len(body) - (len(body) % 4 == 1)]
    packed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    # Only what the database can be asked: no lone surrogate (undecodable bytes become
    # U+FFFD) and no NUL (PostgreSQL text holds none; no name holds a control character,
    # so a forged one marks no place a name could be, and the name is cut there).
    name = packed[16:].decode("utf-8", errors="replace").split("\x00", 1)[0]
    return Position(name, uuid.UUID(bytes=packed[:16]))


def _cursor_query(direction: str) -> object:
    return Query(
        alias=direction,
        json_schema_extra={"pattern": CURSOR_PATTERN},
        description=f"keyset page: the products {direction} this position, as the Link "
        f"header's rel={'next' if direction == 'after' else 'prev'} gives it (an opaque "
        "token: copy it as it is), or a product's id (the page "
        f"{direction} that product under its current name). Not with "
        f"{'before' if direction == 'after' else 'after'}",
    )


AfterPosition = Annotated[str | None, _cursor_query("after")]
BeforePosition = Annotated[str | None, _cursor_query("before")]
