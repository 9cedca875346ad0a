"""The consumer's dead-letter copy of a poison message, made to fit in AMQP's frames.

The copy carries the message's own headers plus the consumer's (``x-poison-reason`` and
the others), and its content header must fit in one frame (AMQP 0-9-1 §4.2.6.1: only the
body is split): a message whose headers filled all but a few hundred bytes of a frame was
accepted by RabbitMQ, but its copy was not, and RabbitMQ closed the consumer's whole
connection over it (501 FRAME_ERROR) at every delivery. The copy drops the message's own
headers that do not fit, largest first, and names them in ``x-poison-dropped-headers``:
the body, the properties and the reason always reach the dead-letter queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pamqp.commands import Basic
from pamqp.frame import marshal
from pamqp.header import ContentHeader

DROPPED_HEADERS = "x-poison-dropped-headers"


def header_frame_size(properties: Basic.Properties, body_size: int) -> int:
    """Bytes of the content header frame carrying ``properties`` (its 8 framing octets
    included, as RabbitMQ compares with its frame_max)."""
    return len(marshal(ContentHeader(properties=properties, body_size=body_size), 1))


def fitted_headers(
    own: Mapping[str, Any],
    added: Mapping[str, Any],
    properties: Basic.Properties,
    *,
    body_size: int,
    frame_max: int,
) -> dict[str, Any]:
    """``own`` (the message's headers) updated with ``added`` (the consumer's), without as
    many of ``own``'s as it takes, largest first, for a content header of ``properties``
    with these headers to fit ``frame_max`` bytes; the dropped names in
    ``x-poison-dropped-headers``."""
    headers = {**own, **added}
    droppable = sorted(
        (name for name in own if name not in added),
        key=lambda name: len(repr(own[name])),
        reverse=True,
    )
    dropped: list[str] = []
    while _size(properties, headers, body_size) > frame_max and droppable:
        name = droppable.pop(0)
        dropped.append(name)
        del headers[name]
        headers[DROPPED_HEADERS] = ",".join(dropped)
    return headers


def _size(properties: Basic.Properties, headers: dict[str, Any], body_size: int) -> int:
    properties.headers = headers
    return header_frame_size(properties, body_size)
