"""Log records in tests: a line's message as its code wrote it."""

from __future__ import annotations

from cloudcrm_outbox.logs import plain_message

__all__ = ["plain_message"]
