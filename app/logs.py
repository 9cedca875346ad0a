"""Logging for every process: one line per event, structured fields as key=value."""

from __future__ import annotations

import logging
import sys

# Attributes every LogRecord has; anything else was passed through ``extra=``.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class KeyValueFormatter(logging.Formatter):
    """``time level logger message key=value ...`` with the ``extra`` fields appended."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if fields:
            line += " " + " ".join(f"{key}={value!r}" for key, value in fields.items())
        return line


def configure_logging(level: str = "INFO") -> None:
    """Send logs to stderr in the project's format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # APScheduler logs every run of every job at INFO: once a second for the relay's poll.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
