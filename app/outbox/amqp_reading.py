"""Reading what any AMQP client may send, so that no single message can end a connection.

pamqp (aiormq's codec) refuses two values RabbitMQ passes on unread: a timestamp past
the year 9999 (AMQP's timestamp is any 64-bit number; pamqp makes it a ``datetime``) and
a short string that is not UTF-8 (AMQP 0-9-1 §4.2.5.3 says UTF-8; RabbitMQ does not
check). aiormq then closes the whole connection (``InvalidFrameError``), RabbitMQ gives
the message to the reconnected consumer first, and the same happens again: one such
message from another client stalled its queue for good, and every message behind it.

A header table pamqp cannot read ends it the same way: nested deeper than Python
recurses (a 5 KB header of arrays in arrays), a key that is not UTF-8.

``install`` makes pamqp read them instead: such a timestamp as None (unknown), such a
short string with "?" for the bytes that are not UTF-8, such a header table as one
header, ``x-unreadable-headers``, saying why. The consumer then judges the message as it
does any other (a ``message_id`` so read is not a UUID, or unreadable headers:
dead-lettered with that reason; a timestamp is only information) and the messages
behind it flow.
"""

from __future__ import annotations

import datetime
import struct

from pamqp import common, decode

from app.outbox.decoding import UNREADABLE_HEADERS

_TIMESTAMP_BYTES = 8
_pamqp_timestamp = decode.timestamp
_pamqp_short_str = decode.short_str
_pamqp_field_table = decode.field_table
_TABLE_LENGTH = struct.Struct(">I")


def timestamp(value: bytes) -> tuple[int, datetime.datetime | None]:
    """pamqp's timestamp decoder, but a time no ``datetime`` can hold reads as None.
    Raises ValueError, as pamqp does, when fewer than 8 bytes are left."""
    try:
        return _pamqp_timestamp(value)
    except (ValueError, OverflowError, OSError):
        if len(value) < _TIMESTAMP_BYTES:
            raise
        return _TIMESTAMP_BYTES, None


def short_str(value: bytes) -> tuple[int, str]:
    """pamqp's short string decoder, but bytes that are not UTF-8 read as "?". Raises
    ValueError, as pamqp does, when no length octet is left."""
    try:
        return _pamqp_short_str(value)
    except UnicodeDecodeError:
        (length,) = struct.unpack_from(">B", value)
        # One byte for each run that is not UTF-8, never more: the text must go back into a
        # short string (a dead letter's message_id), and U+FFFD's three bytes for each of
        # 255 such bytes did not (pamqp refused the copy, and the consumer stalled again).
        text = value[1 : length + 1].decode("utf-8", errors="replace").replace("\ufffd", "?")
        return length + 1, text


def field_table(value: bytes) -> tuple[int, common.FieldTable]:
    """pamqp's field table decoder for a top-level table (a message's headers), but one it
    cannot read gives ``{UNREADABLE_HEADERS: why}`` and is skipped by its length prefix.
    Raises ValueError, as pamqp does, when the prefix itself does not fit."""
    try:
        return _pamqp_field_table(value)
    except (ValueError, RecursionError) as exc:
        if len(value) < _TABLE_LENGTH.size:
            raise
        (length,) = _TABLE_LENGTH.unpack_from(value)
        if _TABLE_LENGTH.size + length > len(value):
            raise
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        return _TABLE_LENGTH.size + length, {UNREADABLE_HEADERS: why}


def install() -> None:
    """Have pamqp decode properties, method fields and header values with the decoders
    above (idempotent; it changes pamqp's lookup tables for the whole process, which only
    widens what it can read)."""
    decode.METHODS["timestamp"] = timestamp
    decode.METHODS["shortstr"] = short_str
    decode.TABLE_MAPPING[b"T"] = timestamp
    # The top level only: a nested table's failure reaches it, which skips the whole.
    decode.METHODS["table"] = field_table
