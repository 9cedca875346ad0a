"""The library's log lines under a plain ``logging.basicConfig``: the fields are in the
message, keys and values written so that no line can be forged, and a value that cannot be
shown never fails the code that logs it."""

from __future__ import annotations

import logging

import pytest

from cloudcrm_outbox.logs import MAX_VALUE_CHARACTERS, PLAIN, RENDERED, library_logger


def _line(caplog: pytest.LogCaptureFixture, message: str, *args: object, **fields: object) -> str:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cloudcrm_outbox.test"):
        library_logger("cloudcrm_outbox.test").info(message, *args, extra=fields)
    [record] = caplog.records
    return record.getMessage()


def test_the_fields_are_in_the_message_and_on_the_record(caplog: pytest.LogCaptureFixture) -> None:
    line = _line(caplog, "relayed batch", claimed=3, ids=["a", "b"], error="50% lost")
    assert line == 'relayed batch claimed=3 ids=["a","b"] error="50% lost"'
    [record] = caplog.records
    assert record.claimed == 3  # type: ignore[attr-defined]
    assert getattr(record, RENDERED) == ("claimed", "ids", "error")
    assert getattr(record, PLAIN) == "relayed batch"


def test_a_percent_sign_in_a_value_survives_the_calls_own_arguments(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert _line(caplog, "%s is up", "RabbitMQ", at="h:5672/v", share="5%") == (
        'RabbitMQ is up at=h:5672/v share="5%"'
    )


def test_no_key_or_value_can_start_a_line_or_forge_a_field(
    caplog: pytest.LogCaptureFixture,
) -> None:
    line = _line(caplog, "x", **{"a\nINFO:forged k": 1, "a=1 admin": "ok", "v": "\x1b[2J\u202e"})
    assert "\n" not in line and "\x1b" not in line and "\u202e" not in line
    assert '"a=1 admin"=ok' in line and '"a\\nINFO:forged k"=1' in line


def test_a_value_that_cannot_be_shown_is_named_and_a_long_one_cut(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    circular: list[object] = []
    circular.append(circular)
    line = _line(caplog, "x", bad=Unprintable(), loop=circular, big="y" * 10_000)
    assert 'bad="<unprintable Unprintable: RuntimeError>"' in line
    assert 'loop="<unprintable list: ValueError>"' in line
    assert "+8000 characters" in line and len(line) < MAX_VALUE_CHARACTERS + 200
