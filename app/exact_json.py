"""JSON request bodies whose numbers are read exactly, for routes that take money.

FastAPI reads a JSON body with ``json.loads``, which turns ``1.005`` into the binary float
1.00499999999999989… and ``0.1000000000000000055`` into 0.1: a rule about decimals could
then only judge what the float happens to print as. pydantic's own JSON parser reads a
number into a Decimal through a float as well (checked with pydantic 2.14:
``TypeAdapter(Decimal).validate_json("0.1000000000000000055")`` gives ``Decimal("0.1")``).
Here a number with a fraction or an exponent is read as ``decimal.Decimal`` straight from
its text (``json.loads(parse_float=Decimal)``); integers stay ``int``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class _ExactJsonRequest(Request):
    async def json(self) -> Any:
        # Starlette caches the parsed body under the same name.
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_float=Decimal)
        return self._json


class ExactNumbersRoute(APIRoute):
    """An APIRoute (``APIRouter(route_class=…)``) whose JSON body's non-integer numbers
    reach validation as ``Decimal`` values, exactly as written. Models it feeds must take
    a Decimal wherever a JSON number may be fractional (``app.schemas.JsonInteger`` does
    for counts). NaN and Infinity, which are not JSON, still arrive as floats."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(_ExactJsonRequest(request.scope, request.receive, request._send))

        return exact
