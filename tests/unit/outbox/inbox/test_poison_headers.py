"""A dead letter's headers can always be written again (a poison message's header that
was not UTF-8 arrives as bytes, which the AMQP encoder refuses)."""

from __future__ import annotations

import pytest
from pamqp.encode import field_table

from cloudcrm_outbox.brokers.rabbitmq.consuming.consumer import _encodable


def test_bytes_in_headers_become_text_the_encoder_takes() -> None:
    headers = {"x-thing": b"\xff\xfe", "nested": {"list": [b"ok", 1, b"\xc3"]}, "n": 3}
    with pytest.raises(TypeError):
        field_table(headers)  # pamqp, the encoder aio-pika writes headers with

    cleaned = _encodable(headers)

    assert cleaned == {"x-thing": "\\xff\\xfe", "nested": {"list": ["ok", 1, "\\xc3"]}, "n": 3}
    assert field_table(cleaned)
