"""pamqp's decoders, widened so that no value another client sends ends a connection."""

from __future__ import annotations

import datetime
import struct

import pytest
from pamqp import decode

from app.outbox import amqp_reading
from app.outbox.decoding import UNREADABLE_HEADERS


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
