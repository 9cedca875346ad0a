"""Logging for every process: one line per event, as ``key=value`` text or as JSON.

Every line carries the process's service and role (``service=catalog role=consume``), and
no line carries a secret: the credentials of any URL in it (a database's, the broker's,
in a message, a field or a traceback) are masked before it is written. Nor a control
character: values from outside (a token's subject, a header, a message id, a driver's
error) are written with their control, format and invisible characters escaped (``\\n``,
``\\x1b``, ``\\u202e``, ``\\u200b``), so no input can forge a line, drive a terminal,
reorder what a reader sees or pass for another value.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Literal

from cloudcrm_outbox.logs import PLAIN, RENDERED, plain_message
from cloudcrm_outbox.observability.redaction import mask_secrets

__all__ = [
    "JsonFormatter",
    "KeyValueFormatter",
    "configure_logging",
    "escape_controls",
    "mask_secrets",
]

# The library's own markers: which fields its message already shows, and the message
# without them.
_MARKERS = frozenset({RENDERED, PLAIN})
# Attributes every LogRecord has; anything else was passed through ``extra=``.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}

LogFormat = Literal["text", "json"]


def _fields(record: logging.LogRecord, *, rendered: bool = True) -> dict[str, object]:
    """The record's ``extra`` fields; without those the library already wrote into the
    message (``cloudcrm_outbox.logs``) unless ``rendered``."""
    skip = _MARKERS if rendered else {*_MARKERS, *getattr(record, RENDERED, ())}
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k not in skip}


# What a terminal or a log reader acts on, or shows as nothing, and so is never written as
# it is: C0 controls (a newline starts a forged line, ESC drives the terminal: "\x1b[2J"
# clears it), DEL, C1 controls (NEL ends a line for some readers, CSI is ESC's 8-bit
# form), the Unicode line and paragraph separators; every format character (category Cf:
# the bidirectional controls of Unicode TR #9, which make text display in another order
# than it is stored, the zero width space and joiners, the BOM, the tag characters) and
# the other default-ignorable code points (Unicode's DerivedCoreProperties.txt, 15.1:
# variation selectors, Hangul fillers, the combining grapheme joiner), which display as
# nothing, so that "api:alice\u200b" reads differently from "api:alice". As ranges, so
# that a Python on an older Unicode escapes them too (tests/unit/test_logs.py checks them
# against unicodedata's Cf).
_CONTROL_RANGES = ((0x00, 0x1F), (0x7F, 0x9F), (0x2028, 0x2029))
_FORMAT_RANGES = (
    (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD),
    (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E),
    (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F),
    (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD),
    (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
)  # fmt: skip
_IGNORABLE_RANGES = (
    (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
    (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8), (0xE0000, 0xE0FFF),
)  # fmt: skip
_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _escape(code: int) -> str:
    # As Python writes the character in a string literal.
    if code in _NAMED:
        return _NAMED[code]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


_ESCAPES = {
    code: _escape(code)
    for first, last in (*_CONTROL_RANGES, *_FORMAT_RANGES, *_IGNORABLE_RANGES)
    for code in range(first, last + 1)
}


def escape_controls(text: str) -> str:
    """``text`` with each control, format or default-ignorable character written as
    Python writes it in a string literal (``\\n``, ``\\x1b``, ``\\u200b``,
    ``\\U000e0041``); everything else, backslashes and spaces included, as it is."""
    return text.translate(_ESCAPES)


def _escaped(value: object) -> object:
    # JSON's own escaping (ensure_ascii) protects the line, not the value: a reader that
    # decodes it (jq -r .message) would print the raw characters. So escape the values.
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return escape_controls(value)
    if isinstance(value, list | tuple):
        return [_escaped(item) for item in value]
    if isinstance(value, dict):
        return {escape_controls(str(key)): _escaped(item) for key, item in value.items()}
    return escape_controls(repr(value))


class KeyValueFormatter(logging.Formatter):
    """``time level logger message key=value ...`` with the ``extra`` fields appended;
    one line per record, a traceback included (its line breaks written ``\\n``)."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _fields(record, rendered=False)
        if fields:
            line += " " + " ".join(f"{key}={value!r}" for key, value in fields.items())
        # The whole line at once: message, arguments, fields and traceback alike.
        return mask_secrets(escape_controls(line))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the
    ``extra`` fields, and the traceback as ``exc_info`` text when there is one; control
    characters escaped in every value (escape_controls)."""

    def format(self, record: logging.LogRecord) -> str:
        own: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": plain_message(record),
        }
        # A field named like the line's own keys keeps its value under "field_NAME": it
        # never stands in for the record's time, level, logger or message.
        fields = {
            (f"field_{key}" if key in own or key == "exc_info" else key): value
            for key, value in _fields(record).items()
        }
        entry: dict[str, object] = {**own, **fields}
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return mask_secrets(json.dumps(_escaped(entry)))


class _ProcessFields(logging.Filter):
    """Adds the process's service and role to every record that does not name them."""

    def __init__(self, service: str | None, role: str | None) -> None:
        super().__init__()
        self._defaults = {"service": service, "role": role}

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self._defaults.items():
            if value is not None and not hasattr(record, key):
                setattr(record, key, value)
        return True


# The longest request target an access-log line repeats: a client may send 64 KiB of URL,
# and each such request would otherwise write 64 KiB of log.
MAX_LOGGED_TARGET = 300
_TOKEN_IN_QUERY = re.compile(r"((?:access_|id_|refresh_)?token|code)=[^&\s]*", re.IGNORECASE)
# Anything shaped like a JWT (base64url header starting {" , payload, signature), anywhere.
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")


class ShortRequestLines(logging.Filter):
    """Cuts the request target of uvicorn's access lines (``%s - "%s %s HTTP/%s" %d``,
    the target third) to MAX_LOGGED_TARGET characters, saying how long it was."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            # A token put in the query string is refused, but must not be logged either.
            target = _JWT.sub("***", _TOKEN_IN_QUERY.sub(r"\1=***", args[2]))
            if len(target) > MAX_LOGGED_TARGET:
                target = f"{target[:MAX_LOGGED_TARGET]}…({len(args[2])} characters)"
            record.args = (*args[:2], target, *args[3:])
        return True


def configure_logging(
    level: str = "INFO",
    *,
    log_format: LogFormat = "text",
    service: str | None = None,
    role: str | None = None,
) -> None:
    """Send logs to stderr: ``level`` and above, as ``log_format``, each line tagged with
    the process's ``service`` and ``role`` (the command: api, relay, consume, dev…)."""
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter = (
        JsonFormatter()
        if log_format == "json"
        else KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    handler.setFormatter(formatter)
    handler.addFilter(_ProcessFields(service, role))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # APScheduler logs every run of every job at INFO: once a second for the relay's poll.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # LOG_LEVEL=DEBUG is for this system's own lines (one per message); the drivers' own
    # debug output (every SQLite call, every AMQP frame) stays at INFO.
    for noisy in ("aiosqlite", "aiormq", "aio_pika", "httpcore", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.INFO))
    # Said once, in this system's words, by the code that retries: a failed connect, each
    # in-process call dev makes to catalog, the head check of every readiness probe.
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, ShortRequestLines) for f in access.filters):
        access.addFilter(ShortRequestLines())
    if role not in {"migrate", "dev"}:
        logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
