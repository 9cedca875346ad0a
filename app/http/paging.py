"""Keyset pages of a listing, both ways: ``after`` an id (the rows following it in the
listing's order) or ``before`` one (those preceding it, still listed in the listing's
order), and the page's ``Link`` header (RFC 8288 §3: ``rel="next"``, ``rel="prev"``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator

# skip costs what it skips (a million rows: half a second of PostgreSQL), and anyone who
# may read a listing may ask: deeper pages are keyset pages (after=).
MAX_SKIP = 10_000


def _within_skip(value: int) -> int:
    # Said here rather than by the `le` constraint, whose words ("less than or equal to
    # 10000") do not say how to read deeper; the schema still states the maximum.
    if value > MAX_SKIP:
        raise ValueError(
            f"skip stops at {MAX_SKIP:,}: read deeper pages by keyset, following the Link "
            'header\'s rel="next" (after=)'
        )
    return value


Skip = Annotated[
    int,
    Query(ge=0, description=f"rows to skip (at most {MAX_SKIP:,}; deeper: after)",
          json_schema_extra={"maximum": MAX_SKIP}),
    AfterValidator(_within_skip),
]  # fmt: skip

Before = Annotated[
    uuid.UUID | None,
    Query(
        description="keyset page: the rows just before this one in the listing, listed in "
        "the same order (the first id of the following page; the Link header's rel=prev "
        "gives it). Not with after"
    ),
]


def one_cursor(after: object | None, before: object | None) -> None:
    """422 in words when a request names both ``after`` and ``before``: the same answer
    as every other invalid field (``detail``: a list naming the parameter), as the OpenAPI
    document says of a 422."""
    if after is not None and before is not None:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "before"),
                    "msg": "a page is after an id or before one, not both: give after or before",
                    "type": "value_error",
                }
            ]
        )


def _id(row: Any) -> str:
    return str(row.id)


def page_links(
    request: Request,
    rows: Sequence[Any],
    *,
    limit: int,
    skip: int = 0,
    after: object | None = None,
    before: object | None = None,
    position: Callable[[Any], str] = _id,
) -> str | None:
    """The ``Link`` header of a page of ``rows``, or None. A row's place in the links is
    ``position(row)``: its ``id`` unless told otherwise.

    ``next`` (``?after=LAST&limit=N``): on a full page (a full last page links to an empty
    one: knowing there is no more would cost a row more), and on any page read ``before``
    an id (that row follows). ``prev`` (``?before=FIRST&limit=N``): on a page read
    ``after`` an id or past ``skip`` rows (rows precede it), and on a full page read
    ``before`` one."""
    if not rows:
        return None
    full = len(rows) == limit
    found = []
    if full or before is not None:
        found.append(_link(request, "next", after=position(rows[-1]), limit=limit))
    if after is not None or skip > 0 or (before is not None and full):
        found.append(_link(request, "prev", before=position(rows[0]), limit=limit))
    return ", ".join(found) or None


def _link(request: Request, rel: str, **params: object) -> str:
    target = request.url.replace_query_params(**{k: str(v) for k, v in params.items()})
    return f'<{target.path}?{target.query}>; rel="{rel}"'
