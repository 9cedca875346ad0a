"""The library's log lines: each line's fields written into its message, readable under a
plain ``logging.basicConfig``, and kept on the record for a structured formatter.

A library logs through its own loggers (``cloudcrm_outbox.*``) and configures no handler;
what a line says (counts, ids, seconds) must not be lost on an application that prints only
``%(message)s``. So ``logger.info("relayed batch", extra={"claimed": 3})`` is written
``relayed batch claimed=3``; the record also keeps ``claimed`` as an attribute, as
``extra=`` always does, and names the fields it wrote in ``outbox_rendered`` and the message
without them in ``outbox_plain``, so that a formatter that appends fields or writes JSON
can leave them out of the message.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

__all__ = ["PLAIN", "RENDERED", "library_logger", "plain_message", "render_fields"]

RENDERED = "outbox_rendered"  # the record's attribute: the field names in the message
PLAIN = "outbox_plain"  # the record's attribute: the message format without the fields

# A value written as it is: nothing a reader could take for a separator, a quote or the
# end of the line. Anything else is written as a JSON string (quotes, controls and every
# non-ASCII character escaped).
_BARE = re.compile(r"[A-Za-z0-9_.:/@+,\-]+")

if TYPE_CHECKING:
    _Adapter = logging.LoggerAdapter[logging.Logger]
else:
    _Adapter = logging.LoggerAdapter


# A value longer than this is cut (its length said): one line stays a line.
MAX_VALUE_CHARACTERS = 2_000


def _value(value: object) -> str:
    try:
        text = _rendered(value)
    except Exception as exc:  # a value that cannot be shown must not fail the caller
        text = json.dumps(f"<unprintable {type(value).__name__}: {type(exc).__name__}>")
    if len(text) > MAX_VALUE_CHARACTERS:
        cut = text[:MAX_VALUE_CHARACTERS]
        text = json.dumps(f"{cut}…(+{len(text) - MAX_VALUE_CHARACTERS} characters)")
    return text


def _key(key: object) -> str:
    text = str(key)
    return text if _BARE.fullmatch(text) else json.dumps(text)


def _rendered(value: object) -> str:
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    text = value if isinstance(value, str) else None
    if text is None:
        if isinstance(value, list | tuple | set | frozenset | dict):
            return json.dumps(
                sorted(value, key=str) if isinstance(value, set | frozenset) else value,
                default=str,
                separators=(",", ":"),
                skipkeys=True,
            )
        text = str(value)
    return text if _BARE.fullmatch(text) else json.dumps(text)


def render_fields(fields: Mapping[str, object]) -> str:
    """``key=value`` pairs, space-separated, in the mapping's order; a key or string with
    anything but letters, digits and ``_.:/@+,-`` written as a JSON string, lists and dicts
    as JSON; a value longer than MAX_VALUE_CHARACTERS cut, one that cannot be shown named by
    its type."""
    return " ".join(f"{_key(key)}={_value(value)}" for key, value in fields.items())


class _FieldsInMessage(_Adapter):
    """Appends the call's ``extra`` fields to its message (see the module's docstring)."""

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        fields: Mapping[str, object] | None = kwargs.get("extra")
        if fields:
            rendered = render_fields(fields)
            if args:  # the message is still a format string for the call's own arguments
                rendered = rendered.replace("%", "%%")
            kwargs["extra"] = {**fields, RENDERED: tuple(fields), PLAIN: msg}
            msg = f"{msg} {rendered}"
        # The record names the caller's line, not this one.
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
        self.logger.log(level, msg, *args, **kwargs)


def plain_message(record: logging.LogRecord) -> str:
    """``record``'s message as its caller wrote it, without the fields this module wrote
    into it; any other record's message as it is."""
    plain = getattr(record, PLAIN, None)
    if plain is None:
        return record.getMessage()
    return str(plain) % record.args if record.args else str(plain)


def library_logger(name: str) -> logging.LoggerAdapter[logging.Logger]:
    """The logger ``name`` (``cloudcrm_outbox.…``), writing its lines' fields into the
    message."""
    return _FieldsInMessage(logging.getLogger(name), {})
