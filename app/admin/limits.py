"""The most rows or messages one listing returns, shared by the admin API's validation and
the command line's ``--limit`` (which reads it without importing the operations)."""

from __future__ import annotations

MAX_LIMIT = 10_000
