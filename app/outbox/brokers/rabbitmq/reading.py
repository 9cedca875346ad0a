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

from cloudcrm_outbox.brokers.rabbitmq.tested_versions import described, installed, within
from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.names import UNREADABLE_HEADERS

logger = library_logger(__name__)

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


# The pamqp releases these decoders were tested on (inclusive): the consumer's integration
# tests with unreadable properties and headers pass on them. ``install`` replaces entries
# of pamqp's module-level lookup tables (``decode.METHODS``, ``decode.TABLE_MAPPING``),
# which are not pamqp's documented API: widen only after running those tests on a new
# release.
TOLERANT_PAMQP = ("4.0.1", "4.0.1")
_LOOKUPS = (("METHODS", ("timestamp", "shortstr", "table")), ("TABLE_MAPPING", (b"T",)))
_installed = False
_refused = False


def applies_to(pamqp_version: str) -> bool:
    """True when tolerant reading may be installed on ``pamqp_version``: a tested release
    whose lookup tables hold the entries it replaces."""
    return within(pamqp_version, TOLERANT_PAMQP) and all(
        isinstance(table := getattr(decode, name, None), dict) and all(k in table for k in keys)
        for name, keys in _LOOKUPS
    )


def install(pamqp_version: str | None = None) -> bool:
    """Have pamqp decode properties, method fields and header values with the decoders
    above, on the pamqp releases they were tested on (``TOLERANT_PAMQP``; default: the
    installed one). Idempotent; it changes pamqp's lookup tables for the whole process,
    which only widens what it can read. On any other release pamqp reads as it does (a
    message it cannot read closes the connection), said once in a WARNING. Returns
    whether tolerant reading is installed."""
    global _installed, _refused
    if _installed:
        return True
    found = pamqp_version or installed("pamqp")
    if not applies_to(found):
        if not _refused:
            _refused = True
            logger.warning(
                "pamqp %s is not among the releases tolerant reading was tested on (%s): "
                "a message whose properties or headers pamqp cannot read will close the "
                "consumer's connection at each delivery",
                found,
                described(TOLERANT_PAMQP),
            )
        return False
    decode.METHODS["timestamp"] = timestamp
    decode.METHODS["shortstr"] = short_str
    decode.TABLE_MAPPING[b"T"] = timestamp
    # The top level only: a nested table's failure reaches it, which skips the whole.
    decode.METHODS["table"] = field_table
    _installed = True
    return True
