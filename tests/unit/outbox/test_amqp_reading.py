"""pamqp's decoders, widened so that no value another client sends ends a connection."""

from __future__ import annotations

import datetime
import struct

import pytest
from pamqp import decode

from app.outbox import amqp_reading


def test_a_timestamp_no_datetime_holds_reads_as_unknown_and_others_as_before() -> None:
    assert amqp_reading.timestamp(struct.pack(">Q", 2**63 - 1) + b"rest") == (8, None)
    assert amqp_reading.timestamp(struct.pack(">Q", 0)) == (
        8,
        datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC),
    )
    with pytest.raises(ValueError, match="timestamp"):
        amqp_reading.timestamp(b"\x00\x01")  # truncated: still refused


def test_a_short_string_not_utf8_reads_with_replacement_characters() -> None:
    assert amqp_reading.short_str(b"\x03a\xffbtail") == (4, "a\ufffdb")
    assert amqp_reading.short_str(b"\x02okmore") == (3, "ok")
    with pytest.raises(ValueError, match="short string"):
        amqp_reading.short_str(b"")


def test_install_puts_them_where_pamqp_looks_them_up() -> None:
    amqp_reading.install()
    amqp_reading.install()  # idempotent
    assert decode.by_type(struct.pack(">Q", 2**63 - 1), "timestamp") == (8, None)
    assert decode.by_type(b"\x01\xff", "shortstr") == (2, "\ufffd")
    table = struct.pack(">I", 11) + b"\x01tT" + struct.pack(">Q", 2**64 - 1)
    assert decode.field_table(table) == (15, {"t": None})
