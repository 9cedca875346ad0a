"""Several RabbitMQ nodes in one BROKER_URL: a connection goes to the first that answers
and stays with it."""

from __future__ import annotations

import logging

import pytest

from app.outbox import broker_nodes
from app.settings import Settings
from tests.support.servers import free_port

pytestmark = pytest.mark.rabbitmq


async def test_a_node_that_is_down_is_passed_over(
    broker: str, caplog: pytest.LogCaptureFixture
) -> None:
    down = broker.replace(":5672/", f":{free_port()}/")
    nodes = f"{down}, {broker}"

    with caplog.at_level(logging.INFO, "app.outbox.broker_nodes"):
        first = await broker_nodes.connect(nodes, node_timeout=2)
        await first.close()
        passed_over = caplog.text
        caplog.clear()
        again = await broker_nodes.connect(nodes, node_timeout=2)
        await again.close()

    assert "trying the next" in passed_over and "connected to another" in passed_over
    assert not caplog.records  # the node that answered is tried first


async def test_when_no_node_answers_the_last_error_is_raised(broker: str) -> None:
    nodes = ",".join(broker.replace(":5672/", f":{free_port()}/") for _ in range(2))
    with pytest.raises(OSError):
        await broker_nodes.connect(nodes, node_timeout=2)


def test_every_node_must_be_an_amqp_url() -> None:
    assert broker_nodes.node_urls(" amqp://a@h1/ ,amqps://a@h2/,") == [
        "amqp://a@h1/",
        "amqps://a@h2/",
    ]
    assert broker_nodes.where("amqp://u:secret@h1:5672/v,amqp://u:secret@h2:5673/v") == (
        "h1:5672/v,h2:5673/v"
    )
    with pytest.raises(ValueError, match="not an amqp"):
        Settings(broker_url="amqp://a@h1/,http://h2/")
