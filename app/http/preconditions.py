"""Entity tags and ``If-Match`` (RFC 9110 §8.8.3 and §13.1.1), for resources whose ETag is
their version number.

``If-Match: *`` or ``If-Match: "7", "8"`` (a list, possibly over several header lines)
holds when the resource exists and, for a list, when one tag equals its current ETag by
the strong comparison: a weak tag (``W/"7"``) never matches. A field that is neither
``*`` nor a list of quoted entity tags is malformed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from app.core.schemas import ErrorBody

# RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E /
# obs-text; list elements separated by commas and optional whitespace, empty ones allowed.
_ELEMENT = re.compile(r'[ \t]*(?:(W/)?"([\x21\x23-\x7e\x80-\xff]*)")?[ \t]*(?:,|$)')

IF_MATCH_RULES = (
    'the product\'s ETag as GET answered it (e.g. "3"), several separated by commas, or *; '
    "without it, the write overwrites whatever the product holds now"
)


def etag(version: int) -> str:
    """The strong ETag of a resource at ``version``: the number in double quotes."""
    return f'"{version}"'


class MalformedIfMatchError(ValueError):
    """An ``If-Match`` field that is neither ``*`` nor a list of entity tags."""


@dataclass(frozen=True)
class IfMatch:
    """A parsed ``If-Match``: ``any`` for ``*``, else the strong tags it lists (weak ones
    are dropped: they can never match)."""

    any: bool
    tags: frozenset[str]

    def holds(self, current: str) -> bool:
        """Whether the condition holds for a resource whose ETag is ``current``."""
        return self.any or current in self.tags


def parse_if_match(fields: Sequence[str] | None) -> IfMatch | None:
    """The ``If-Match`` header field lines, parsed; None when there is none. Raises
    MalformedIfMatchError (in words) for anything but ``*`` or a list of entity tags."""
    if not fields:
        return None
    value = ", ".join(fields)
    if value.strip() == "*":
        return IfMatch(any=True, tags=frozenset())
    tags: set[str] = set()
    listed = 0
    position = 0
    while position < len(value):
        element = _ELEMENT.match(value, position)
        if element is None or element.end() == position:
            raise MalformedIfMatchError(
                f"If-Match must be * or entity tags in double quotes separated by commas, "
                f'such as "3" (the ETag header of the product); got {value[:100]!r}'
            )
        weak, opaque = element.groups()
        listed += opaque is not None
        if opaque is not None and not weak:
            tags.add(f'"{opaque}"')
        position = element.end()
    if not listed:
        # The list's grammar allows no element at all, but such a condition can never hold:
        # every write would be a 412 that no GET can cure. It is a client's mistake (an
        # ETag variable left empty), said as such.
        raise MalformedIfMatchError(
            'If-Match holds no entity tag: send the ETag header of the product (such as "3") '
            "or *, or leave If-Match out to write whatever the product holds now"
        )
    return IfMatch(any=False, tags=frozenset(tags))


# What the OpenAPI document says If-Match holds (a subset of what the parser takes: no
# empty list elements), so that a generated "valid" header is one.
_TAG = r'(W/)?"[\x21\x23-\x7e]*"'
IF_MATCH_PATTERN = rf"^[ \t]*(\*|{_TAG}([ \t]*,[ \t]*{_TAG})*)[ \t]*$"


def _if_match(
    request: Request,
    if_match: Annotated[
        str,
        Header(
            alias="If-Match",
            description=IF_MATCH_RULES,
            json_schema_extra={"pattern": IF_MATCH_PATTERN},
        ),
    ] = "",
) -> IfMatch | None:
    # ``if_match`` documents the header (optional, never null); every line of it counts
    # (RFC 9110 §5.3).
    try:
        return parse_if_match(request.headers.getlist("if-match"))
    except MalformedIfMatchError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc


IfMatchDep = Annotated[IfMatch | None, Depends(_if_match)]
"""The request's If-Match, parsed (None without one); a malformed one is a 400 in words."""

# OpenAPI: the ETag header of an answer, and the answers of a conditional write.
ETAG: dict[str, object] = {
    "ETag": {
        "description": "the resource's version as a strong entity tag (RFC 9110 §8.8.3), "
        'e.g. "3"; send it back as If-Match to write only what you read',
        "schema": {"type": "string"},
    }
}
STALE: dict[int | str, dict[str, object]] = {
    412: {
        "model": ErrorBody,
        "description": "If-Match names none of the current ETags (RFC 9110 §13.1.1): it "
        "changed since it was read, and nothing was written; the ETag header is the current one",
        "headers": ETAG,
    }
}
BAD_IF_MATCH: dict[int | str, dict[str, object]] = {
    400: {
        "model": ErrorBody,
        "description": "the body could not be read, or If-Match is neither * nor a list "
        "of entity tags",
    }
}
