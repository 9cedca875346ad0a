"""JSON request bodies read with answers in words, and, for routes that take money, with
their numbers read exactly.

FastAPI reads a JSON body with ``json.loads`` and answers any error but a syntax error
with a bare "There was an error parsing the body" (400). Two bodies of valid JSON fail
that way: a number of more than 4,300 digits (``int()``'s limit, ``sys.int_info``
``default_max_str_digits``, which guards against quadratic conversion: CVE-2020-10735)
and arrays nested deeper than the parser's recursion limit; read exactly (below), so does
a number whose exponent no ``Decimal`` holds (``1e9999999999999999999``: beyond
``decimal.MAX_EMAX``). A body that is not UTF-8 fails with a ``UnicodeDecodeError`` (a
``ValueError``, like the digit limit's). ``JsonRoute`` says which, and refuses an object
that names a field twice: ``json.loads`` keeps the last value, other readers the first
(RFC 8259 §4 leaves it open), so a proxy that checked one value would pass the other.

FastAPI's ``json.loads`` also turns ``1.005`` into the binary float
1.00499999999999989… and ``0.1000000000000000055`` into 0.1: a rule about decimals could
then only judge what the float happens to print as. pydantic's own JSON parser reads a
number into a Decimal through a float as well (checked with pydantic 2.14:
``TypeAdapter(Decimal).validate_json("0.1000000000000000055")`` gives ``Decimal("0.1")``).
``ExactNumbersRoute`` reads a number with a fraction or an exponent as ``decimal.Decimal``
straight from its text (``json.loads(parse_float=Decimal)``); integers stay ``int``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Coroutine
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import HTTPException, Request, Response, status
from fastapi.routing import APIRoute

MAX_DIGITS = sys.int_info.default_max_str_digits  # 4300


class _NamedTwiceError(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):  # rare: only then look for the name
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _NamedTwiceError(name)
            seen.add(name)
    return found


def read_json(body: bytes, *, parse_float: Callable[[str], Any] | None = None) -> Any:
    """``body`` parsed as JSON. Raises json.JSONDecodeError for text that is not JSON (the
    caller's 422), and HTTPException 400 in words for JSON this parser cannot hold or that
    names a field twice in one object."""
    try:
        return json.loads(body, parse_float=parse_float, object_pairs_hook=_unique)
    except json.JSONDecodeError:
        raise
    except _NamedTwiceError as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"the body's JSON object names {exc.name[:100]!r} twice: send each field once "
            "(JSON readers differ on which of the two counts)",
        ) from exc
    except UnicodeDecodeError as exc:  # a ValueError too, but not about numbers
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "the body is not UTF-8 text (JSON is sent as UTF-8, RFC 8259 §8.1): encode it "
            "as UTF-8, e.g. é as the two bytes C3 A9",
        ) from exc
    except ValueError as exc:  # only int()'s digit limit: every other fault is a syntax error
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"the body holds a JSON number of more than {MAX_DIGITS} digits: no field takes "
            "one, and it is not read",
        ) from exc
    except InvalidOperation as exc:  # Decimal's exponent bound (an ArithmeticError)
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "the body holds a JSON number whose exponent is too large to be read (such as "
            "1e9999999999999999999): no field takes one, and it is not read",
        ) from exc
    except RecursionError as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "the body's JSON arrays or objects are nested too deeply to be read: no field "
            "takes more than a few levels",
        ) from exc


class _JsonRequest(Request):
    parse_float: Callable[[str], Any] | None = None

    async def json(self) -> Any:
        # Starlette caches the parsed body under the same name.
        if not hasattr(self, "_json"):
            self._json = read_json(await self.body(), parse_float=self.parse_float)
        return self._json


class _ExactJsonRequest(_JsonRequest):
    parse_float = Decimal


class JsonRoute(APIRoute):
    """An APIRoute (``APIRouter(route_class=…)``) whose JSON body is read by ``read_json``:
    a body it cannot hold is a 400 saying why (FastAPI re-raises an HTTPException raised
    while reading the body)."""

    request_class: type[_JsonRequest] = _JsonRequest

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        request_class = self.request_class

        async def read(request: Request) -> Response:
            return await handler(request_class(request.scope, request.receive, request._send))

        return read


class ExactNumbersRoute(JsonRoute):
    """A JsonRoute whose JSON body's non-integer numbers reach validation as ``Decimal``
    values, exactly as written. Models it feeds must take a Decimal wherever a JSON number
    may be fractional (``app.core.schemas.JsonInteger`` does for counts). NaN and Infinity,
    which are not JSON, still arrive as floats."""

    request_class = _ExactJsonRequest
