"""The Orders and Products pages, a page at a time: ``PAGE_ROWS`` rows read by keyset
from the API (``after`` / ``before`` a row's id), with links to the pages on either side,
so that every row can be reached however many there are."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from app.catalog.cursor import POSITION
from app.pages.api_client import ApiError, Apis

PAGE_ROWS = 50
_CURSOR = re.compile(rf"^(after|before)={POSITION}$")
GONE = "the row this page began at is gone (deleted since): here is the first page"
NOT_THIS_LIST = "the address names no place in this list: here is the first page"


@dataclass(frozen=True)
class Pager:
    """One page: its ``rows``; the paths of the pages before (``earlier``: newer orders,
    previous products) and after it (``later``), None at either end; ``query``, this
    page's own position (``after=ID``, ``before=ID`` or empty), for the forms on it to
    come back to; ``problem``, why the first page is shown instead of the one asked for."""

    rows: list[dict[str, Any]]
    earlier: str | None
    later: str | None
    query: str
    problem: str | None = None


def position(text: str) -> str:
    """``text`` if it is a page's position (``after=`` or ``before=`` a row's id or a
    products list token), else ""."""
    return text if _CURSOR.match(text) else ""


async def read_page(
    apis: Apis,
    client: httpx.AsyncClient,
    api_path: str,
    token: str,
    *,
    page_path: str,
    params: Mapping[str, str],
    cursor_of: Callable[[dict[str, Any]], str] = lambda row: str(row["id"]),
) -> Pager:
    """The page of ``page_path`` at the position ``params`` name (none: the first), read
    from the listing at ``api_path``. A row more than a page is asked for: it says whether
    there is a page beyond, without a count. A position whose row is gone (a deleted
    product) or that the listing refuses (another list's position) gives the first page,
    with ``problem`` saying so. ``cursor_of``: a row's
    position as the listing takes it in ``after``/``before`` (default: its id; the
    products list's positions are tokens of the name and id, so that a row renamed
    between two reads still marks its place). Raises ApiError otherwise."""
    query = next((position(f"{name}={params[name]}") for name in ("after", "before")
                  if name in params), "")  # fmt: skip
    problem = None
    try:
        rows = await _rows(apis, client, api_path, token, query)
    except ApiError as exc:
        if exc.status not in (404, 422) or not query:
            raise
        # 404: the row is gone; 422: a position of another list's kind (a products
        # position in an orders address, edited by hand).
        query, problem = "", GONE if exc.status == 404 else NOT_THIS_LIST
        rows = await _rows(apis, client, api_path, token, query)
    beyond = len(rows) > PAGE_ROWS
    backwards = query.startswith("before=")
    # Read before a row, the extra row is the farthest from it: the first one listed.
    shown = rows[-PAGE_ROWS:] if backwards else rows[:PAGE_ROWS]
    if not shown:  # past either end (after the last row, before the first)
        return Pager([], page_path if query else None, None, query, problem)
    earlier = later = None
    if query.startswith("after=") or (backwards and beyond):
        earlier = f"{page_path}?before={cursor_of(shown[0])}"
    if beyond or backwards:
        later = f"{page_path}?after={cursor_of(shown[-1])}"
    return Pager(shown, earlier, later, query, problem)


async def _rows(
    apis: Apis, client: httpx.AsyncClient, api_path: str, token: str, query: str
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await apis.call(
        client, "GET", f"{api_path}?limit={PAGE_ROWS + 1}" + (f"&{query}" if query else ""), token
    )
    return rows
