"""Positions in the products list, which is sorted by (name, id): what its ``Link``
header's ``after=`` and ``before=`` carry.

A position is the (name, id) pair itself, as an opaque token (base64url of a JSON array,
unpadded): a product renamed or deleted between two reads still marks the same place, so
the next page neither skips nor repeats a product. Clients treat it as opaque. A bare
product id is still taken (the page after that product under its current name; gone is a
404), as clients built before the token did.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Query
from fastapi.exceptions import RequestValidationError

from app.catalog.models import Product

# A 200-character name of 4-byte characters, its id and the JSON around them, in base64.
MAX_TOKEN_LENGTH = 1_200
_NAME_LENGTH = 200


@dataclass(frozen=True)
class Position:
    """A place in the products list: just past (or before) the pair (``name``, ``id``)."""

    name: str
    id: uuid.UUID


Cursor = uuid.UUID | Position


def token_of(product: Product) -> str:
    """The opaque token of ``product``'s place in the list."""
    text = json.dumps([product.name, str(product.id)], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode("ascii")


def parse_cursor(text: str | None, parameter: str) -> Cursor | None:
    """``text`` as a bare product id or a token of ``token_of``; None for None. Raises
    RequestValidationError (a 422 naming ``parameter``) for anything else."""
    if text is None:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        pass
    position = _position(text) if len(text) <= MAX_TOKEN_LENGTH else None
    if position is None:
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
    return position


def _position(text: str) -> Position | None:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        name, product_id = json.loads(raw.decode("utf-8"))
        position = Position(name, uuid.UUID(product_id))
    except (ValueError, TypeError, binascii.Error):  # JSON, UTF-8, unpacking, uuid errors
        return None
    # Only what a product's name can be: the database is asked nothing it cannot hold
    # (NUL in PostgreSQL text, a lone surrogate in UTF-8).
    try:
        position.name.encode("utf-8")
    except (UnicodeEncodeError, AttributeError):
        return None
    if len(position.name) > _NAME_LENGTH or "\x00" in position.name:
        return None
    return position


def _cursor_query(direction: str) -> object:
    return Query(
        alias=direction,
        description=f"keyset page: the products {direction} this position, as the Link "
        f"header's rel={'next' if direction == 'after' else 'prev'} gives it (an opaque "
        "token: copy it as it is), or a product's id (the page "
        f"{direction} that product under its current name). Not with "
        f"{'before' if direction == 'after' else 'after'}",
    )


AfterPosition = Annotated[str | None, _cursor_query("after")]
BeforePosition = Annotated[str | None, _cursor_query("before")]
