"""A consumer that may not declare (its least-privilege account) meets a poison message
while its dead-letter exchange is gone: the poison waits, the others flow."""

from __future__ import annotations

import asyncio
from urllib.parse import unquote, urlsplit

import aio_pika
import pytest

from app.messaging.registry import all_bindings
from cloudcrm_outbox.brokers.rabbitmq.topology import declare_at
from tests.conftest import count
from tests.support.catalog import new_product, stock_of
from tests.support.consuming import order_placed, publish, running_consumer, valid_props, wait_until
from tests.support.rabbit import _ctl, least_privilege_accounts, queue_depth, read_queue

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


async def test_a_poison_message_without_its_dead_letter_exchange_holds_only_itself(
    catalog_db: str,
) -> None:
    """Its copy to an exchange that is gone (404) closed the consuming channel: every
    delivery came back, the poison message first, and nothing behind it was consumed
    (85 reconnections in 20 s). Now only the dead-letter channel closes; the poison waits,
    unacked, until the exchange is declared again, and the others flow."""
    async with least_privilege_accounts() as url:
        await declare_at(url("admin"), all_bindings(), within=30)
        product = await new_product(catalog_db, 100)
        async with running_consumer(catalog_db, url("catalog-consumer")):
            async with await aio_pika.connect(url("admin")) as connection:
                channel = await connection.channel()
                await channel.exchange_delete("catalog.events.dlx")
            followers = [valid_props() for _ in range(3)]
            poison = valid_props()
            await publish(
                url("admin"),
                [(b"not JSON", poison)]
                + [(order_placed(product, 1), props) for props in followers],
            )
            await wait_until(lambda: _inbox_rows(catalog_db, 3), timeout=20)
            assert await queue_depth(url("admin"), "catalog.events.dlq") == 0
            # `broker declare` makes the exchange again: the held poison goes through.
            await declare_at(url("admin"), all_bindings(), within=30)
            dead = await read_queue(url("admin"), "catalog.events.dlq", expected=1, timeout=20)
        assert [m.message_id for m in dead] == [poison["message_id"]]
        assert "invalid OrderPlaced" in str(dead[0].headers["x-poison-reason"])
        assert await stock_of(catalog_db, product) == 97


async def _inbox_rows(database_url: str, expected: int) -> bool:
    return await count(database_url, "inbox") == expected


async def test_a_poison_message_its_account_may_not_dead_letter_holds_only_itself(
    catalog_db: str,
) -> None:
    """The same with the exchange there but the consumer's account not allowed to write
    to it (403, a permission changed by hand): only the poison message waits."""
    async with least_privilege_accounts() as url:
        await declare_at(url("admin"), all_bindings(), within=30)
        consumer_url = url("catalog-consumer")
        parts = urlsplit(consumer_url)
        user, vhost = parts.username or "", unquote(parts.path[1:])
        await asyncio.to_thread(_ctl, "set_permissions", "-p", vhost, user, "^$", "^$", ".*")
        product = await new_product(catalog_db, 100)
        poison, followers = valid_props(), [valid_props() for _ in range(3)]
        async with running_consumer(catalog_db, consumer_url):
            await publish(
                url("admin"),
                [(b"not JSON", poison)]
                + [(order_placed(product, 1), props) for props in followers],
            )
            await wait_until(lambda: _inbox_rows(catalog_db, 3), timeout=20)
            # The permission back: the held poison goes through.
            await asyncio.to_thread(
                _ctl, "set_permissions", "-p", vhost, user, "^$", "^catalog\\.events\\.dlx$", ".*"
            )
            dead = await read_queue(url("admin"), "catalog.events.dlq", expected=1, timeout=20)
        assert [m.message_id for m in dead] == [poison["message_id"]]
