"""Idempotency keys: a POST retried with the same ``Idempotency-Key`` is done once."""

from app.http.idempotency.keys import IDEMPOTENCY_ERRORS, REPLAYED_HEADER, KeyDep, answer_once
from app.http.idempotency.models import IDEMPOTENCY_KEYS, idempotency_metadata
from app.http.idempotency.retention import add_key_expiry, delete_expired_keys

__all__ = [
    "IDEMPOTENCY_ERRORS",
    "IDEMPOTENCY_KEYS",
    "REPLAYED_HEADER",
    "KeyDep",
    "add_key_expiry",
    "answer_once",
    "delete_expired_keys",
    "idempotency_metadata",
]
