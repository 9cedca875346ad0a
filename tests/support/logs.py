"""Log records in tests: a line's message as its code wrote it."""

from __future__ import annotations

import logging

from cloudcrm_outbox.logs import PLAIN


def plain_message(record: logging.LogRecord) -> str:
    """``record``'s message without the fields the library wrote into it
    (``cloudcrm_outbox.logs``); any other record's message as it is."""
    plain = getattr(record, PLAIN, None)
    if plain is None:
        return record.getMessage()
    return str(plain) % record.args if record.args else str(plain)
