"""A message whose properties the AMQP client library cannot read must not stall the
queue, on real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime
import struct
import uuid
from typing import Any

import aio_pika
import pytest
from aiormq.abc import ChannelFrame
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.frame import marshal
from pamqp.header import ContentHeader

from tests.conftest import count, query
from tests.support.catalog import new_product, stock_of
from tests.support.consuming import order_placed, publish, running_consumer, valid_props, wait_until
from tests.support.rabbit import read_queue

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

DLQ = "catalog.events.dlq"
_STAMP = datetime.datetime.fromtimestamp(0x12345678, tz=datetime.UTC)  # replaced after marshalling


async def publish_raw(
    broker_url: str, body: bytes, replace: dict[bytes, bytes], **props: Any
) -> None:
    """Publish ``body`` with ``props``, each ``replace`` key in the marshalled content
    header replaced by its value (same length): what another client may send, and
    RabbitMQ passes on unread."""
    async with await aio_pika.connect(broker_url) as connection:
        channel = await connection.channel(publisher_confirms=False)
        underlay = await channel.get_underlay_channel()
        header = marshal(
            ContentHeader(
                properties=Basic.Properties(delivery_mode=2, **props), body_size=len(body)
            ),
            underlay.number,
        )
        for old, new in replace.items():
            assert header.count(old) == 1 and len(old) == len(new)
            header = header.replace(old, new)
        publish = Basic.Publish(exchange="cloudcrm.events", routing_key="OrderPlaced")
        frames = b"".join(
            [
                marshal(publish, underlay.number),
                header,
                marshal(ContentBody(body), underlay.number),
            ]
        )
        await underlay.write_queue.put(ChannelFrame(payload=frames, should_close=False))  # type: ignore[attr-defined]
        await asyncio.sleep(0.2)  # let the frames leave before the connection closes


_ORDER = {"message_type": "OrderPlaced", "content_type": "application/json"}
# An AMQP timestamp is any 64-bit number; pamqp makes it a datetime, which ends at 9999.
_FAR_FUTURE = {struct.pack(">Q", 0x12345678): struct.pack(">Q", 2**63 - 1)}


async def test_properties_the_client_library_cannot_read_do_not_stall_the_queue(
    catalog_db: str, broker: str
) -> None:
    """pamqp refused a timestamp past the year 9999 and a short string that is not UTF-8:
    aiormq closed the connection, and the message, first again after the reconnect, did
    that for ever (no message behind it was consumed). Now such a timestamp is unknown
    (the message is applied) and such a message id is not a UUID (dead-lettered)."""
    product = await new_product(catalog_db, 100)
    far_future = str(uuid.uuid4())
    placeholder = "m" * 255  # as long as a short string gets
    followers = [valid_props() for _ in range(3)]
    async with running_consumer(catalog_db, broker):
        await publish_raw(
            broker,
            order_placed(product, 1),
            _FAR_FUTURE,
            message_id=far_future,
            timestamp=_STAMP,
            **_ORDER,
        )
        await publish_raw(
            broker,
            order_placed(product, 1),
            {placeholder.encode(): b"\xff" * 255},
            message_id=placeholder,
            headers={"test-case": "id not UTF-8"},
            **_ORDER,
        )
        await publish_raw(
            broker,
            b"not JSON",
            _FAR_FUTURE,
            message_id=str(uuid.uuid4()),
            timestamp=_STAMP,
            headers={"test-case": "poison, far future"},
            **_ORDER,
        )
        await publish(broker, [(order_placed(product, 1), props) for props in followers])
        await wait_until(lambda: _inbox_rows(catalog_db, 4), timeout=30)
        dead = await read_queue(broker, DLQ, expected=2, timeout=20)

    applied = {str(mid) for (mid,) in await query(catalog_db, "SELECT message_id FROM inbox")}
    assert applied == {far_future, *(props["message_id"] for props in followers)}
    reasons = {str(m.headers["test-case"]): str(m.headers["x-poison-reason"]) for m in dead}
    assert "is not a UUID" in reasons["id not UTF-8"]
    assert "invalid OrderPlaced" in reasons["poison, far future"]
    assert await stock_of(catalog_db, product) == 96


async def _inbox_rows(database_url: str, at_least: int) -> bool:
    return await count(database_url, "inbox") >= at_least


async def test_headers_the_client_library_cannot_read_do_not_stall_the_queue(
    catalog_db: str, broker: str
) -> None:
    """A header of arrays in arrays (5 KB) nested deeper than Python recurses: pamqp's
    RecursionError closed the connection, again at every redelivery. Now the message is
    dead-lettered, its body whole, saying why; the messages behind it flow."""
    product = await new_product(catalog_db, 100)
    followers = [valid_props() for _ in range(3)]
    nested = b"V"
    for _ in range(1000):
        nested = b"A" + struct.pack(">I", len(nested)) + nested
    filler = len(nested) - 5  # a long string's type octet and length, then its bytes
    placeholder = b"S" + struct.pack(">I", filler) + b"q" * filler
    doomed = str(uuid.uuid4())
    body = order_placed(product, 1)
    async with running_consumer(catalog_db, broker):
        await publish_raw(
            broker,
            body,
            {placeholder: nested},
            message_id=doomed,
            headers={"test-case": "nested deeply", "deep": "q" * filler},
            **_ORDER,
        )
        await publish(broker, [(order_placed(product, 1), props) for props in followers])
        await wait_until(lambda: _inbox_rows(catalog_db, 3), timeout=30)
        dead = await read_queue(broker, DLQ, expected=1, timeout=20)
    assert [(m.message_id, m.body) for m in dead] == [(doomed, body)]
    assert dead[0].headers["x-poison-reason"] == (
        "headers unreadable by the consumer's AMQP client: nested too deeply"
    )
    assert await stock_of(catalog_db, product) == 97
