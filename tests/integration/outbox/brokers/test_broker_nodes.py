"""Several RabbitMQ nodes in one BROKER_URL: a connection goes to the first that answers
and stays with it."""

from __future__ import annotations

import logging

import pytest

from app.core.settings import Settings
from cloudcrm_outbox.brokers.rabbitmq import nodes as broker_nodes
from tests.support.servers import free_port

pytestmark = pytest.mark.rabbitmq


async def test_a_node_that_is_down_is_passed_over(
    broker: str, caplog: pytest.LogCaptureFixture
) -> None:
    down = broker.replace(":5672/", f":{free_port()}/")
    nodes = f"{down}, {broker}"

    with caplog.at_level(logging.INFO, "cloudcrm_outbox.brokers.rabbitmq.nodes"):
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


async def test_a_node_that_accepts_and_never_answers_is_passed_over_at_start(broker: str) -> None:
    import asyncio
    import time

    from cloudcrm_outbox.brokers import broker_for
    from cloudcrm_outbox.runtime.startup import wait_for_broker

    silent: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.append(writer)  # accepted, never answered

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        await wait_for_broker(
            broker_for(f"{broker.replace(':5672/', f':{port}/')},{broker}"), within=30
        )
        took = time.monotonic() - started
    finally:
        for writer in silent:
            writer.close()
        server.close()
    assert took < 12  # the silent node's 5 s, then the live one


def test_node_urls_are_parsed_and_bad_ones_refused_without_their_password() -> None:
    for bad in ("amqp://u:secret@h:99999/v", "amqp://u:secret@h:notaport/v", "amqp://"):
        with pytest.raises(ValueError) as refused:
            broker_nodes.node_urls(f"amqp://a@ok/,{bad}")
        assert "secret" not in str(refused.value)
    # A comma inside a password stays in its URL; a trailing comma is nothing.
    assert broker_nodes.node_urls("amqp://u:c,d@h1/v,amqp://u:e@h2/v,") == [
        "amqp://u:c,d@h1/v",
        "amqp://u:e@h2/v",
    ]


def test_a_heartbeat_is_asked_for_unless_the_url_names_one() -> None:
    """A connection gone dark is noticed only by missed heartbeats: every connection asks
    for a short one, and a URL's own ``heartbeat`` (0 turns them off) is kept as written."""
    asked = broker_nodes.with_heartbeat("amqp://u:p%2Cw@rabbit:5672/v%2Fx")
    assert asked.query["heartbeat"] == str(broker_nodes.DEFAULT_HEARTBEAT_SECONDS)
    assert (asked.user, asked.password, asked.path) == ("u", "p,w", "/v/x")
    assert broker_nodes.with_heartbeat("amqp://rabbit/?heartbeat=0").query["heartbeat"] == "0"
