"""Logging for every process: one line per event, as ``key=value`` text or as JSON.

Every line carries the process's service and role (``service=catalog role=consume``), and
no line carries a secret: the credentials of any URL in it (a database's, the broker's,
in a message, a field or a traceback) are masked before it is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Literal

from app.outbox.redaction import mask_secrets

__all__ = ["JsonFormatter", "KeyValueFormatter", "configure_logging", "mask_secrets"]

# Attributes every LogRecord has; anything else was passed through ``extra=``.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}

LogFormat = Literal["text", "json"]


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class KeyValueFormatter(logging.Formatter):
    """``time level logger message key=value ...`` with the ``extra`` fields appended."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _fields(record)
        if fields:
            line += " " + " ".join(f"{key}={value!r}" for key, value in fields.items())
        return mask_secrets(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the
    ``extra`` fields, and the traceback as ``exc_info`` text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return mask_secrets(json.dumps(entry, default=repr))


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
