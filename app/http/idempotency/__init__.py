"""Idempotency keys: a POST retried with the same ``Idempotency-Key`` is done once.

The face is lazy (PEP 562): the services' table definitions import
``app.http.idempotency.models`` without loading the web framework that ``keys`` needs
(the operators' commands read those tables); each name's module is imported when the name
is first used."""

import importlib
from typing import TYPE_CHECKING, Any

_FACE: dict[str, str] = {
    "IDEMPOTENCY_ERRORS": "app.http.idempotency.keys",
    "IDEMPOTENCY_KEYS": "app.http.idempotency.models",
    "REPLAYED_HEADER": "app.http.idempotency.keys",
    "KeyDep": "app.http.idempotency.keys",
    "add_key_expiry": "app.http.idempotency.retention",
    "answer_once": "app.http.idempotency.keys",
    "delete_expired_keys": "app.http.idempotency.retention",
    "idempotency_metadata": "app.http.idempotency.models",
}

__all__ = sorted(_FACE)


def __getattr__(name: str) -> Any:
    module = _FACE.get(name)
    if module is None:
        raise AttributeError(f"module 'app.http.idempotency' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_FACE])


if TYPE_CHECKING:  # what type checkers see: the same names, eagerly
    from app.http.idempotency.keys import IDEMPOTENCY_ERRORS as IDEMPOTENCY_ERRORS
    from app.http.idempotency.keys import REPLAYED_HEADER as REPLAYED_HEADER
    from app.http.idempotency.keys import KeyDep as KeyDep
    from app.http.idempotency.keys import answer_once as answer_once
    from app.http.idempotency.models import IDEMPOTENCY_KEYS as IDEMPOTENCY_KEYS
    from app.http.idempotency.models import idempotency_metadata as idempotency_metadata
    from app.http.idempotency.retention import add_key_expiry as add_key_expiry
    from app.http.idempotency.retention import delete_expired_keys as delete_expired_keys
