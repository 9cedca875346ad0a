"""pamqp's decoders, widened so that no value another client sends ends a connection."""

from __future__ import annotations

import datetime
import struct

import pytest
from pamqp import decode

from cloudcrm_outbox.brokers.rabbitmq import reading as amqp_reading
from cloudcrm_outbox.names import UNREADABLE_HEADERS


def test_a_timestamp_no_datetime_holds_reads_as_unknown_and_others_as_before() -> None:
    assert amqp_reading.timestamp(struct.pack(">Q", 2**63 - 1) + b"rest") == (8, None)
    assert amqp_reading.timestamp(struct.pack(">Q", 0)) == (
        8,
        datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC),
    )
    with pytest.raises(ValueError, match="timestamp"):
        amqp_reading.timestamp(b"\x00\x01")  # truncated: still refused


def test_a_short_string_not_utf8_reads_with_question_marks_no_longer_than_it_was() -> None:
    assert amqp_reading.short_str(b"\x03a\xffbtail") == (4, "a?b")
    assert len(amqp_reading.short_str(b"\xff" * 256)[1].encode()) == 255
    assert amqp_reading.short_str(b"\x02okmore") == (3, "ok")
    with pytest.raises(ValueError, match="short string"):
        amqp_reading.short_str(b"")


def test_install_puts_them_where_pamqp_looks_them_up() -> None:
    amqp_reading.install()
    amqp_reading.install()  # idempotent
    assert decode.by_type(struct.pack(">Q", 2**63 - 1), "timestamp") == (8, None)
    assert decode.by_type(b"\x01\xff", "shortstr") == (2, "?")
    table = struct.pack(">I", 11) + b"\x01tT" + struct.pack(">Q", 2**64 - 1)
    assert decode.field_table(table) == (15, {"t": None})


def _table(*items: bytes) -> bytes:
    content = b"".join(items)
    return struct.pack(">I", len(content)) + content


def test_a_header_table_it_cannot_read_is_skipped_whole_and_said_unreadable() -> None:
    nested = b"V"
    for _ in range(2000):
        nested = b"A" + struct.pack(">I", len(nested)) + nested
    deep = _table(b"\x04deep" + nested)
    assert amqp_reading.field_table(deep + b"next") == (
        len(deep),
        {UNREADABLE_HEADERS: "nested too deeply"},
    )
    not_utf8 = _table(b"\x02\xff\xfeV")
    consumed, headers = amqp_reading.field_table(not_utf8)
    assert consumed == len(not_utf8) and set(headers) == {UNREADABLE_HEADERS}
    readable = _table(b"\x01aV")
    assert amqp_reading.field_table(readable) == (len(readable), {"a": None})
    with pytest.raises(ValueError):
        amqp_reading.field_table(struct.pack(">I", 50) + b"short")  # its length does not fit


def test_on_an_untested_pamqp_its_own_decoders_stay_and_a_warning_says_so(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fallback: pamqp's own lookup tables, untouched; the consumer reads as pamqp does.
    monkeypatch.setattr(amqp_reading, "_installed", False)
    monkeypatch.setattr(amqp_reading, "_refused", False)
    # Copies of pamqp's tables, so that a wrongful install would change only these.
    monkeypatch.setattr(decode, "METHODS", dict(decode.METHODS))
    monkeypatch.setattr(decode, "TABLE_MAPPING", dict(decode.TABLE_MAPPING))
    decode.METHODS["timestamp"] = "pamqp's own"  # type: ignore[assignment]
    assert not amqp_reading.install("4.1.0")
    assert not amqp_reading.install("4.1.0")  # said once
    assert decode.METHODS["timestamp"] == "pamqp's own"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "pamqp 4.1.0 is not among" in warnings[0]


def test_the_installed_pamqp_is_one_tolerant_reading_was_tested_on() -> None:
    # Fails when the lock or constraints move pamqp: run the unreadable-frames tests on the
    # new release, then widen TOLERANT_PAMQP.
    assert amqp_reading.applies_to(amqp_reading.installed("pamqp"))
    assert not amqp_reading.applies_to("3.2.0") and not amqp_reading.applies_to("unknown")
