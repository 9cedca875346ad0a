"""Log lines carry the process's service and role, as text or JSON, and never a secret."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from app.core.logs import configure_logging, mask_secrets


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/"),
        ("postgresql+psycopg://app:s3cr%40t@db/x", "postgresql+psycopg://app:***@db/x"),
        ("broker='amqps://u:p@h:5671/v' other", "broker='amqps://u:***@h:5671/v' other"),
        (
            "memory:// and sqlite+aiosqlite:///./var/x.db",
            "memory:// and sqlite+aiosqlite:///./var/x.db",
        ),
        ("http://127.0.0.1:8002/path", "http://127.0.0.1:8002/path"),
        ("postgresql+psycopg://u@h/db?password=s3cret", "postgresql+psycopg://u@h/db?password=***"),
        ("postgresql+psycopg://u:pa/ss@h/db", "postgresql+psycopg://u:***@h/db"),
        ("postgresql+psycopg//u:s3cret@h/db", "postgresql+psycopg//u:***@h/db"),
        ("got 'guest:s3cret@host:5672/'", "got 'guest:***@host:5672/'"),
        ("host=db password=s3cret dbname=x", "host=db password=*** dbname=x"),
        # Any case, as the pattern matches it (the quick pre-check must not skip these).
        ("host=db PassWord=s3cret", "host=db PassWord=***"),
        ("sslPASSWORD=s3cret", "sslPASSWORD=***"),
        ("at 12:30 today", "at 12:30 today"),
        # A cluster's nodes in one line (already masked once): each node stays visible.
        (
            "b='amqp://g:***@h1:1/x,amqp://g:***@h2:2/x'",
            "b='amqp://g:***@h1:1/x,amqp://g:***@h2:2/x'",
        ),
        # An unencoded '@' in a password (yarl and libpq split at the last one).
        ("amqp://u:p@ss%2Cw0rd@127.0.0.1:5672/v", "amqp://u:***@127.0.0.1:5672/v"),
        (
            "postgresql+psycopg://u:pa@ss@127.0.0.1/db x",
            "postgresql+psycopg://u:***@127.0.0.1/db x",
        ),
        # The hints' placeholder stays a placeholder to copy; anything else is masked.
        ("set BROKER_URL=amqp://USER:PASSWORD@HOST:5672/", "set BROKER_URL=amqp://USER:PASSWORD@HOST:5672/"),
        ("amqp://u:PASSWORDx@h:5672/", "amqp://u:***@h:5672/"),
        ("amqp://u:password@h:5672/", "amqp://u:***@h:5672/"),
    ],
)  # fmt: skip
def test_urls_lose_their_passwords(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def test_every_line_is_tagged_and_masked_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", log_format="json", service="catalog", role="consume")
    log = logging.getLogger("test")
    log.info("connected", extra={"broker": "amqp://guest:hunter2@rabbit:5672/"})
    try:
        raise ConnectionError("cannot reach postgresql+psycopg://app:hunter2@db:5432/catalog")
    except ConnectionError:
        log.exception("failed")
    log.debug("not written at INFO")
    first, second = (json.loads(line) for line in _lines(capsys))
    assert first["service"] == "catalog" and first["role"] == "consume"
    assert first["broker"] == "amqp://guest:***@rabbit:5672/" and first["level"] == "INFO"
    assert "hunter2" not in second["exc_info"] and "app:***@db" in second["exc_info"]


def test_text_lines_carry_the_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG", service="ordering", role="relay")
    logging.getLogger("test").debug("batch", extra={"messages": 3})
    [line] = _lines(capsys)
    assert "DEBUG test batch" in line and "service='ordering'" in line and "messages=3" in line
    configure_logging()  # back to the default for the other tests


def test_a_batch_line_names_the_first_messages_and_their_traces() -> None:
    import uuid

    from cloudcrm_outbox.observability.batch_logs import SHOWN, ids_fields, trace_id

    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers = {uuid.uuid4(): {"correlation_id": "c1", "traceparent": traceparent}}
    headers |= {uuid.uuid4(): {} for _ in range(SHOWN + 2)}
    fields = ids_fields(headers)
    assert len(fields["message_ids"]) == SHOWN and fields["more"] == 3
    assert fields["correlation_ids"] == ["c1"]
    assert fields["trace_ids"] == ["0af7651916cd43dd8448eb211c80319c"]
    assert trace_id("garbage") is None and trace_id(None) is None


def test_a_url_is_shown_parsed_and_without_any_password() -> None:
    from cloudcrm_outbox.observability.redaction import safe_url

    shown = safe_url("postgresql+psycopg://app:pa/ss@db:5432/x?password=z&sslmode=require")
    assert shown == "postgresql+psycopg://app:***@db:5432/x?password=***&sslmode=require"
    assert safe_url("guest:s3cret@host:5672/") == "guest:***@host:5672/"
    # A RabbitMQ cluster's nodes, each masked.
    nodes = safe_url("amqp://u:a@b@h1:5672/v, amqp://u:c,d@h2/v")
    assert nodes == "amqp://u:***@h1:5672/v,amqp://u:***@h2/v"


def test_access_lines_cut_long_request_targets() -> None:
    from app.core.logs import MAX_LOGGED_TARGET, ShortRequestLines

    target = "/api/catalog/products?" + "x" * 60_000
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1,
        '%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5000", "GET", target, "1.1", 401), None,
    )  # fmt: skip
    assert ShortRequestLines().filter(record)
    line = record.getMessage()
    assert len(line) < MAX_LOGGED_TARGET + 100
    assert f"…({len(target)} characters)" in line and line.endswith('HTTP/1.1" 401')
    short = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1,
        '%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5000", "GET", "/health/live", "1.1", 200), None,
    )  # fmt: skip
    ShortRequestLines().filter(short)
    assert short.getMessage() == '127.0.0.1:5000 - "GET /health/live HTTP/1.1" 200'


def test_access_lines_never_carry_a_token_from_the_query_string() -> None:
    from app.core.logs import ShortRequestLines

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/api/x?access_token=eyJsecret&limit=5&token=t2", "1.1", 401),
        None,
    )  # fmt: skip
    ShortRequestLines().filter(record)
    line = record.getMessage()
    assert "eyJsecret" not in line and "t2" not in line
    assert "access_token=***&limit=5&token=***" in line


def test_access_lines_mask_anything_shaped_like_a_jwt() -> None:
    from app.core.logs import ShortRequestLines

    jwt_like = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/api/x/{jwt_like}?jwt={jwt_like}", "1.1", 401), None,
    )  # fmt: skip
    ShortRequestLines().filter(record)
    assert "eyJ" not in record.getMessage()


# What a client can put in a log line: C0 controls (newline, ESC), DEL, C1 controls (NEL,
# CSI), the Unicode line and paragraph separators and bidirectional controls.
HOSTILE = "a\nb\r\x1b[2J\x00\x7f\x85\x9b\u2028\u2029\u202eevil\u2066\u200f\u061cz"
SHOWN = "a\\nb\\r\\x1b[2J\\x00\\x7f\\x85\\x9b\\u2028\\u2029\\u202eevil\\u2066\\u200f\\u061cz"


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("app.test", logging.WARNING, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_text_lines_escape_every_control_character_from_input() -> None:
    from app.core.logs import KeyValueFormatter

    formatter = KeyValueFormatter("%(levelname)s %(name)s %(message)s")
    line = formatter.format(_record("subject %s done", HOSTILE, who=HOSTILE, ids=[HOSTILE]))
    assert line == f"WARNING app.test subject {SHOWN} done who='{SHOWN}' ids=['{SHOWN}']"


def test_json_values_hold_the_escapes_not_the_characters() -> None:
    from app.core.logs import JsonFormatter

    entry = json.loads(JsonFormatter().format(_record("%s", HOSTILE, who=HOSTILE,
                                                      ids=[HOSTILE], n=3)))  # fmt: skip
    assert entry["message"] == SHOWN and entry["who"] == SHOWN and entry["ids"] == [SHOWN]
    assert entry["n"] == 3


def test_a_traceback_is_part_of_its_one_line() -> None:
    """An exception's message comes from input as often as not (a driver quoting a value)."""
    from app.core.logs import JsonFormatter, KeyValueFormatter

    try:
        raise ValueError(f"bad value {HOSTILE}")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    text = KeyValueFormatter("%(levelname)s %(message)s").format(record)
    assert "\n" not in text and "\x1b" not in text and "\u202e" not in text
    assert text.startswith("WARNING failed") and "Traceback (most recent call last):" in text
    assert f"ValueError: bad value {SHOWN}" in text
    entry = json.loads(JsonFormatter().format(record))
    assert "\n" not in entry["exc_info"] and f"ValueError: bad value {SHOWN}" in entry["exc_info"]


def test_an_access_line_with_a_hostile_target_stays_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", service="web", role="web")
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/x{HOSTILE}", "1.1", 404
    )
    [line] = _lines(capsys)
    assert f"/x{SHOWN}" in line
    configure_logging()


# Default_Ignorable_Code_Point (Unicode 15.1, DerivedCoreProperties.txt): what renders as
# nothing. unicodedata has no such property; its Cf part is checked against unicodedata.
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)  # fmt: skip


def test_no_invisible_character_reaches_a_log_as_it_is() -> None:
    """An audit line for ``api:alice\\u200b`` must not look like one for ``api:alice``:
    every format character (Unicode category Cf: zero width space and joiners, the BOM,
    the tag characters) and every other default-ignorable code point is escaped."""
    import unicodedata

    from app.core.logs import escape_controls

    invisible = {chr(code) for code in range(0x110000) if unicodedata.category(chr(code)) == "Cf"}
    invisible |= {chr(code) for first, last in DEFAULT_IGNORABLE for code in range(first, last + 1)}
    left = sorted(f"U+{ord(c):04X}" for c in invisible if escape_controls(c) == c)
    assert left == [], left
    assert escape_controls("api:alice\u200b") == "api:alice\\u200b"
    assert escape_controls("\U000e0041\ufeff") == "\\U000e0041\\ufeff"
    # Visible text, and spaces, as they are.
    assert escape_controls("Zoë 東京 — \u00a0\u3000 \\u200b") == "Zoë 東京 — \u00a0\u3000 \\u200b"


def test_both_formats_escape_invisible_characters(capsys: pytest.CaptureFixture[str]) -> None:
    for log_format in ("text", "json"):
        configure_logging("INFO", log_format=log_format)  # type: ignore[arg-type]
        logging.getLogger("app.admin").warning(
            "operator %s purged", "api:alice\u200b\U000e0001", extra={"who": "\u2060x\ufeff"}
        )
        [line] = _lines(capsys)
        assert not any(c in line for c in "\u200b\U000e0001\u2060\ufeff"), (log_format, line)
        if log_format == "json":
            entry = json.loads(line)
            assert entry["message"] == "operator api:alice\\u200b\\U000e0001 purged"
            assert entry["who"] == "\\u2060x\\ufeff"
        else:
            assert "operator api:alice\\u200b\\U000e0001 purged" in line, line
    configure_logging()


def test_a_password_in_a_mangled_url_is_masked_too() -> None:
    assert mask_secrets("got 'amqp:guest:SECRETPW@h://'") == "got 'amqp:guest:***@h://'"


def test_a_json_line_keeps_its_own_time_level_logger_and_message() -> None:
    from app.core.logs import JsonFormatter

    record = logging.makeLogRecord(
        {"name": "app.test", "levelname": "INFO", "levelno": logging.INFO, "msg": "hello",
         "level": "DEBUG", "logger": "evil", "time": "1970"}
    )  # fmt: skip
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["level"], entry["logger"], entry["message"]) == ("INFO", "app.test", "hello")
    assert entry["time"] != "1970" and entry["field_time"] == "1970"
    assert (entry["field_level"], entry["field_logger"]) == ("DEBUG", "evil")
