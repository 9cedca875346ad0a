"""Reading what any AMQP client may send, so that no single message can end a connection.

pamqp (aiormq's codec) refuses two values RabbitMQ passes on unread: a timestamp past
the year 9999 (AMQP's timestamp is any 64-bit number; pamqp makes it a ``datetime``) and
a short string that is not UTF-8 (AMQP 0-9-1 §4.2.5.3 says UTF-8; RabbitMQ does not
check). aiormq then closes the whole connection (``InvalidFrameError``), RabbitMQ gives
the message to the reconnected consumer first, and the same happens again: one such
message from another client stalled its queue for good, and every message behind it.

``install`` makes pamqp read them instead: such a timestamp as None (unknown), such a
short string with U+FFFD for each byte that is not UTF-8. The consumer then judges the
message as it does any other (a ``message_id`` so read is not a UUID: dead-lettered with
that reason; a timestamp is only information) and the messages behind it flow.
"""

from __future__ import annotations

import datetime
import struct

from pamqp import decode

_TIMESTAMP_BYTES = 8
_pamqp_timestamp = decode.timestamp
_pamqp_short_str = decode.short_str


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
    """pamqp's short string decoder, but bytes that are not UTF-8 read as U+FFFD.
    Raises ValueError, as pamqp does, when no length octet is left."""
    try:
        return _pamqp_short_str(value)
    except UnicodeDecodeError:
        (length,) = struct.unpack_from(">B", value)
        return length + 1, value[1 : length + 1].decode("utf-8", errors="replace")


def install() -> None:
    """Have pamqp decode properties, method fields and header values with the decoders
    above (idempotent; it changes pamqp's lookup tables for the whole process, which only
    widens what it can read)."""
    decode.METHODS["timestamp"] = timestamp
    decode.METHODS["shortstr"] = short_str
    decode.TABLE_MAPPING[b"T"] = timestamp
